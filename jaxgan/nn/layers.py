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
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan import kernels
from jaxgan.nn.geometry import transpose_padding

Array = jax.Array
Dtype = Any

_DN = ("NHWC", "HWIO", "NHWC")


def conv_transpose_lax(x: Array, kernel: Array, strides: Sequence[int],
                       out_size: Sequence[int]) -> Array:
  """The reference: `lax.conv_transpose` with the padding of `transpose_padding`."""
  pads = [transpose_padding(n, o, k, s)
          for n, o, k, s in zip(x.shape[1:3], out_size, kernel.shape[:2], strides)]
  return jax.lax.conv_transpose(x, kernel, tuple(strides), pads, dimension_numbers=_DN,
                                transpose_kernel=False)


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
  if norm == "batch":
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     scale_init=norm_scale_init(init), dtype=dtype,
                     axis_name=bn_axis_name if train else None)(x)
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
