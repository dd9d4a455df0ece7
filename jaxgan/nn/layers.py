"""Building blocks shared by the GAN families: an exact transposed convolution, a Dense
layer, and norms, activations and initialisers selected by name.

The transposed convolution (`ConvTranspose`) computes exactly
`jax.lax.conv_transpose(x, kernel, strides, padding, transpose_kernel=False)` with the
padding of the adjoint of a SAME-padded strided convolution (TensorFlow/Keras
`Conv2DTranspose(padding='same')`), for any output size the strides allow, so a
generator can mirror a discriminator exactly, odd sizes included. How it is computed is
chosen once per backend by `jaxgan.kernels.select` (`impl`): on CPU the col2im formulation
of `jaxgan.kernels.cpu`, elsewhere XLA's own kernel. `Dense` adds its bias the same way.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan import kernels

Array = jax.Array
Dtype = Any

class ConvTranspose(nn.Module):
  """A transposed convolution to an exact output size; see the module docstring.

  Attributes:
    features: output channels.
    kernel_size: square kernel size.
    strides: (height, width) strides.
    out_size: (height, width) of the output; None = input size times strides.
    impl: 'col2im', 'lax' or 'auto'.
  """
  features: int
  kernel_size: int
  strides: tuple[int, int] = (2, 2)
  out_size: tuple[int, int] | None = None
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros
  dtype: Dtype = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
    out = self.out_size or (x.shape[1] * self.strides[0], x.shape[2] * self.strides[1])
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    y = kernels.select(self.impl).conv_transpose(x, kernel, tuple(self.strides), tuple(out))
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
    return y


class Dense(nn.Dense):
  """`flax.linen.Dense` (same parameters and names), its bias added by `kernels.select(impl)`
  (on CPU a bias gradient by matmul: XLA:CPU's row reduction of G's projection gradient took
  82-85 ms where the matmul takes 1.2-1.5 ms, twice per dcgan128 step)."""
  impl: str = "auto"

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    kernel = self.param("kernel", self.kernel_init, (inputs.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    y = jax.lax.dot_general(inputs, kernel, (((inputs.ndim - 1,), (0,)), ((), ())),
                            precision=self.precision)
    return y if bias is None else kernels.select(self.impl).add_bias(y, bias)


# ---- BatchNorm with its activation, keeping only its input for the backward pass ----

def _stats_mean(xs: tuple[Array, ...], axes: tuple[int, ...], axis_name: str | None):
  """flax's `_compute_stats` means: each over `axes`, then one `pmean` of them stacked."""
  mus = tuple(v.mean(axes) for v in xs)
  if axis_name is None:
    return mus
  stacked = jax.lax.pmean(jnp.stack(mus, axis=0), axis_name)
  return tuple(stacked[i] for i in range(len(xs)))


def _psum(v: Array, axis_name: str | None) -> Array:
  return v if axis_name is None else jax.lax.psum(v, axis_name)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6, 7))
def batch_norm_act(x: Array, scale: Array, bias: Array, act: str | None, alpha: float,
                   epsilon: float, dtype: Any, axis_name: str | None):
  """act(BatchNorm(x)) in training mode, the last axis the features; returns (y, mean, var).

  The forward pass is `flax.linen.BatchNorm`'s (fast variance, float32 statistics, one
  `pmean` over `axis_name`) followed by the activation, bit for bit. The backward pass
  keeps only x and the statistics and recomputes x - mean and the activation's input from
  them, where JAX's own derivative of BatchNorm + activation keeps several tensors of x's
  size (docs/performance.md). The cotangents of mean and var (zero where only the running
  averages read them) are propagated exactly, the clamp of var at 0 included.
  """
  return _bn_act_fwd(x, scale, bias, act, alpha, epsilon, dtype, axis_name)[0]


def _bn_pre(x, mean, var, scale, bias, epsilon, dtype):
  """flax's `_normalize`: (x - mean) * (rsqrt(var + eps) * scale) + bias, as `dtype`."""
  mul = jax.lax.rsqrt(var + epsilon) * scale
  return jnp.asarray((x - mean) * mul + bias, dtype)


def _bn_act_fwd(x, scale, bias, act, alpha, epsilon, dtype, axis_name):
  axes = tuple(range(x.ndim - 1))
  x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  mean, mean2 = _stats_mean((x32, jax.lax.square(x32)), axes, axis_name)
  var = jnp.maximum(0.0, mean2 - jax.lax.square(mean))
  pre = _bn_pre(x, mean, var, scale, bias, epsilon, dtype)
  y = pre if act is None else activation(act, alpha)(pre)
  return (y, mean, var), (x, mean, var, mean2, scale, bias)


def _bn_act_bwd(act, alpha, epsilon, dtype, axis_name, res, cotangents):
  x, mean, var, mean2, scale, bias = res
  dy, dmean, dvar = cotangents
  axes = tuple(range(x.ndim - 1))
  centred = x - mean  # as in `_bn_pre`; everything below reads x through it only
  if act is None:
    g = dy
  else:
    pre = jnp.asarray(centred * (jax.lax.rsqrt(var + epsilon) * scale) + bias, dtype)
    g = jax.vjp(activation(act, alpha), pre)[1](dy)[0]
  g = g.astype(scale.dtype)
  n = x.size // x.shape[-1]
  if axis_name is not None:
    n = n * jax.lax.psum(1, axis_name)
    dmean, dvar = jax.lax.psum(dmean, axis_name), jax.lax.psum(dvar, axis_name)
  r = jax.lax.rsqrt(var + epsilon)
  # Two reductions over x's size: the sums of dxhat = g * scale and of dxhat * centred are
  # scale times them.
  dbias, g_centred = g.sum(axes), (g * centred).sum(axes)
  dscale = g_centred * r
  dxhat = g * scale
  s1, s2 = scale * _psum(dbias, axis_name), scale * _psum(g_centred, axis_name)
  # var = max(0, mean2 - mean^2): no derivative where the clamp holds (as JAX's own).
  dvar = jnp.where(mean2 - jax.lax.square(mean) > 0, dvar - 0.5 * r ** 3 * s2, 0.0)
  dx = dxhat * r + (dmean - r * s1 + 2.0 * dvar * centred) / n
  return dx.astype(x.dtype), dscale, dbias


batch_norm_act.defvjp(_bn_act_fwd, _bn_act_bwd)


class BatchNorm(nn.Module):
  """`flax.linen.BatchNorm` over the last axis (same variables, names, initialisation and
  forward values) with an optional activation after it, through `batch_norm_act` in
  training mode: a backward pass that keeps only the input. Named BatchNorm so that
  variable paths (BatchNorm_0, ...) and checkpoints are those of `nn.BatchNorm`."""
  use_running_average: bool = False
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Dtype | None = None
  scale_init: Callable = nn.initializers.ones
  bias_init: Callable = nn.initializers.zeros
  axis_name: str | None = None
  act: str | None = None
  alpha: float = 0.2

  @nn.compact
  def __call__(self, x: Array) -> Array:
    features = (x.shape[-1],)
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), features)
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), features)
    scale = self.param("scale", self.scale_init, features, jnp.float32)
    bias = self.param("bias", self.bias_init, features, jnp.float32)
    dtype = self.dtype or jnp.result_type(x, scale, bias)
    if self.use_running_average:
      y = _bn_pre(x, ra_mean.value, ra_var.value, scale, bias, self.epsilon, dtype)
      return y if self.act is None else activation(self.act, self.alpha)(y)
    axis_name = None if self.is_initializing() else self.axis_name
    y, mean, var = batch_norm_act(x, scale, bias, self.act, self.alpha, self.epsilon, dtype,
                                  axis_name)
    if not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return y


# ---- choices by name ----

def kernel_init(name: str) -> Callable:
  """'dcgan': normal(0, 0.02) (Radford et al.); 'xavier': Glorot uniform; 'default': Flax's."""
  return {"dcgan": nn.initializers.normal(0.02),
          "xavier": nn.initializers.glorot_uniform(),
          "default": nn.initializers.lecun_normal()}[name]


def norm_scale_init(name: str) -> Callable:
  """BatchNorm scale: normal(1, 0.02) for the DCGAN init, ones otherwise."""
  if name == "dcgan":
    return lambda key, shape, dtype=jnp.float32: 1.0 + 0.02 * jax.random.normal(key, shape, dtype)
  return nn.initializers.ones


def activation(name: str, alpha: float = 0.2) -> Callable[[Array], Array]:
  fns = {"relu": nn.relu, "leaky_relu": functools.partial(nn.leaky_relu, negative_slope=alpha),
         "tanh": jnp.tanh, "elu": nn.elu, "gelu": nn.gelu}
  return fns[name]


def block(x: Array, layer: nn.Module, *, train: bool, norm: str = "none", act: str | None = None,
          alpha: float = 0.2, dropout: float = 0.0, init: str = "default",
          dtype: Dtype = jnp.float32, bn_axis_name: str | None = None) -> Array:
  """layer -> norm -> activation -> dropout; call inside a parent's `nn.compact` method.

  Spectral norm wraps the layer (its power-iteration vector lives in `batch_stats`);
  batch and layer norm follow it. `act=None` skips the activation.
  """
  if norm == "spectral":
    x = nn.SpectralNorm(layer, error_on_non_matrix=False)(x, update_stats=train)
  else:
    x = layer(x)
  if norm == "batch":  # the activation fused into its backward pass (BatchNorm below)
    x = BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                  scale_init=norm_scale_init(init), dtype=dtype,
                  axis_name=bn_axis_name if train else None, act=act, alpha=alpha)(x)
    act = None
  elif norm == "layer":
    x = nn.LayerNorm(reduction_axes=tuple(range(1, x.ndim)), dtype=dtype)(x)
  if act is not None:
    x = activation(act, alpha)(x)
  if dropout > 0:
    x = nn.Dropout(dropout, deterministic=not train)(x)
  return x


def class_embedding(num_classes: int, features: int, labels: Array | None) -> Array:
  """A learned [features] vector per class, normal(0, 1/sqrt(features)) at init; call it
  inside a parent's `nn.compact` method."""
  if labels is None:
    raise ValueError(f"a class-conditional network (num_classes={num_classes}) needs labels")
  init = nn.initializers.normal(features ** -0.5)
  return nn.Embed(num_classes, features, embedding_init=init)(labels).astype(jnp.float32)
