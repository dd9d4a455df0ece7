"""Building blocks shared by the GAN families: an exact, fast transposed convolution,
norms, activations and initialisers selected by name.

The transposed convolution (`ConvTranspose`) computes exactly
`jax.lax.conv_transpose(x, kernel, strides, padding, transpose_kernel=False)` with the
padding of the adjoint of a SAME-padded strided convolution (TensorFlow/Keras
`Conv2DTranspose(padding='same')`), for any output size the strides allow, so a
generator can mirror a discriminator exactly, odd sizes included.

Why a second formulation: on XLA CPU the kernel gradient of a stride-2 transposed
convolution takes a slow path (20 s for one 32x32x256 -> 64x64x128 layer at batch 4,
see PITFALLS.md), and XLA CPU's convolutions in general run at about a third of its
matmul speed. `conv_transpose_subpixel` computes the same thing as one stride-1
convolution with s*s times the output channels followed by depth-to-space, and that
convolution (`conv_valid`) is computed, forward and backward, as large matmuls. On
other backends ('auto') XLA's own transposed convolution is used.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Dtype = Any

_DN = ("NHWC", "HWIO", "NHWC")


def transpose_padding(in_size: int, out_size: int, kernel: int, stride: int) -> tuple[int, int]:
  """(low, high) padding of `lax.conv_transpose` mapping in_size -> out_size.

  It is the adjoint of a SAME-padded convolution from out_size to in_size, which
  requires in_size == ceil(out_size / stride).
  """
  if in_size != -(-out_size // stride):
    raise ValueError(f"a stride-{stride} transposed convolution maps {in_size} to "
                     f"{(in_size - 1) * stride + 1}..{in_size * stride}, not {out_size}")
  total = max((in_size - 1) * stride + kernel - out_size, 0)
  pad_lo = total // 2  # SAME pads the smaller half first
  return kernel - 1 - pad_lo, out_size - (in_size - 1) * stride - 1 + pad_lo


def conv_transpose_lax(x: Array, kernel: Array, strides: Sequence[int],
                       out_size: Sequence[int]) -> Array:
  """The reference: `lax.conv_transpose` with the padding of `transpose_padding`."""
  pads = [transpose_padding(n, o, k, s)
          for n, o, k, s in zip(x.shape[1:3], out_size, kernel.shape[:2], strides)]
  return jax.lax.conv_transpose(x, kernel, tuple(strides), pads, dimension_numbers=_DN,
                                transpose_kernel=False)


@functools.lru_cache(maxsize=None)
def _subpixel_plan(in_size: int, out_size: int, k: int, s: int):
  """Per-axis plan: phase tap indices into the kernel (k = zero tap), input window, Q."""
  lo, _ = transpose_padding(in_size, out_size, k, s)
  phases = []
  for r in range(s):
    j0 = (lo - r) % s
    taps = list(range(j0, k, s))
    phases.append(((r + j0 - lo) // s, taps))  # output s*q+r reads x[q + c + m] * w[taps[m]]
  live = [(c, taps) for c, taps in phases if taps]
  start = min(c for c, _ in live)
  length = max(c + len(taps) for c, taps in live) - start
  idx = np.full((s, length), k, dtype=np.int32)
  for r, (c, taps) in enumerate(phases):
    for m, j in enumerate(taps):
      idx[r, c - start + m] = j
  q = -(-out_size // s)
  return idx, start, length, q


def _shifted(x: Array, kh: int, kw: int, oh: int, ow: int) -> list[Array]:
  """The kh*kw windows x[:, i:i+oh, j:j+ow], tap-major (i, then j)."""
  return [x[:, i:i + oh, j:j + ow] for i in range(kh) for j in range(kw)]


def _col2im(z: Array, kh: int, kw: int, oh: int, ow: int) -> Array:
  """Adjoint of `_shifted`: sums tap t's [B, oh, ow, C] slice of z into its window of x."""
  b, c = z.shape[0], z.shape[-1] // (kh * kw)
  out = 0
  for t, (i, j) in enumerate((i, j) for i in range(kh) for j in range(kw)):
    out = out + jnp.pad(z[..., t * c:(t + 1) * c], ((0, 0), (i, kh - 1 - i), (j, kw - 1 - j), (0, 0)))
  return out.reshape(b, oh + kh - 1, ow + kw - 1, c)


@jax.custom_vjp
def conv_valid(x: Array, kernel: Array) -> Array:
  """Stride-1 VALID convolution (NHWC, HWIO) computed with matrix products.

  XLA CPU runs its convolutions at about a third of its matmul speed here (53 vs 141
  GFLOP/s for a 3x3x256x512 layer at batch 32) and their kernel gradients ten times
  slower still, so the forward and both gradients are formed as large matmuls:
  im2col (patches of x times the [k*k*Cin, Cout] kernel) when Cin <= Cout, else col2im
  (x times the [Cin, k*k*Cout] kernel, then the k*k shifted slices summed), whichever
  materialises the smaller intermediate.
  """
  return _conv_valid_fwd(x, kernel)[0]


def _conv_valid_fwd(x, kernel):
  kh, kw, cin, cout = kernel.shape
  oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  if cin <= cout:  # im2col
    y = jnp.einsum("bhwk,ko->bhwo", jnp.concatenate(_shifted(x, kh, kw, oh, ow), -1),
                   kernel.reshape(kh * kw * cin, cout))
  else:  # col2im: z[b, h, w, (tap, o)] = x[b, h, w] . kernel[tap, :, o]
    z = jnp.einsum("bhwc,tco->bhwto", x, kernel.reshape(kh * kw, cin, cout))
    y = sum(zt[:, :, :, t] for t, zt in enumerate(_shifted(z, kh, kw, oh, ow)))
  return y, (x, kernel)


def _conv_valid_bwd(res, dy):
  x, kernel = res
  kh, kw, cin, cout = kernel.shape
  oh, ow = dy.shape[1:3]
  if cin <= cout:
    patches = jnp.concatenate(_shifted(x, kh, kw, oh, ow), -1)
    dkernel = jnp.einsum("bhwk,bhwo->ko", patches, dy).reshape(kernel.shape)
    dx = _col2im(jnp.einsum("bhwo,ko->bhwk", dy, kernel.reshape(kh * kw * cin, cout)),
                 kh, kw, oh, ow)
  else:
    # dz[b, h, w, tap] = dy[b, h - i, w - j] (zero outside): windows of dy padded by k-1.
    dyp = jnp.pad(dy, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
    dz = jnp.stack(_shifted(dyp, kh, kw, x.shape[1], x.shape[2])[::-1], axis=3)
    dkernel = jnp.einsum("bhwc,bhwto->tco", x, dz).reshape(kernel.shape)
    dx = jnp.einsum("bhwto,tco->bhwc", dz, kernel.reshape(kh * kw, cin, cout))
  return dx.astype(x.dtype), dkernel.astype(kernel.dtype)


conv_valid.defvjp(_conv_valid_fwd, _conv_valid_bwd)


def conv_transpose_subpixel(x: Array, kernel: Array, strides: Sequence[int],
                            out_size: Sequence[int]) -> Array:
  """Same result as `conv_transpose_lax`, as a stride-1 conv followed by depth-to-space."""
  (kh, kw, cin, cout), (sh, sw) = kernel.shape, strides
  idx_h, start_h, len_h, qh = _subpixel_plan(x.shape[1], out_size[0], kh, sh)
  idx_w, start_w, len_w, qw = _subpixel_plan(x.shape[2], out_size[1], kw, sw)
  # One kernel for all s*s phases: zeros where a phase has no tap.
  kpad = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  sub = kpad[idx_h[:, :, None, None], idx_w[None, None, :, :]]  # (sh, Lh, sw, Lw, cin, cout)
  sub = sub.transpose(1, 3, 4, 0, 2, 5).reshape(len_h, len_w, cin, sh * sw * cout)
  # Input window x[start : start + q + L - 1] per axis, zero outside x.
  def window(n, start, q, length):
    lo = max(0, -start)
    hi = max(0, start + q + length - 1 - n)
    return (lo, hi), start + lo
  (ph, oh), (pw, ow) = window(x.shape[1], start_h, qh, len_h), window(x.shape[2], start_w, qw, len_w)
  xp = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
  xp = xp[:, oh:oh + qh + len_h - 1, ow:ow + qw + len_w - 1]
  y = conv_valid(xp, sub)
  b = x.shape[0]
  y = y.reshape(b, qh, qw, sh, sw, cout).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(b, qh * sh, qw * sw, cout)[:, :out_size[0], :out_size[1]]


def resolve_upsample_impl(impl: str) -> str:
  """'auto' is sub-pixel on CPU (see module docstring) and XLA's own kernel elsewhere."""
  if impl == "auto":
    return "subpixel" if jax.default_backend() == "cpu" else "lax"
  return impl


class ConvTranspose(nn.Module):
  """A transposed convolution to an exact output size; see the module docstring.

  Attributes:
    features: output channels.
    kernel_size: square kernel size.
    strides: (height, width) strides.
    out_size: (height, width) of the output; None = input size times strides.
    impl: 'subpixel', 'lax' or 'auto'.
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
    fn = conv_transpose_subpixel if resolve_upsample_impl(self.impl) == "subpixel" else conv_transpose_lax
    y = fn(x, kernel, self.strides, out)
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
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
