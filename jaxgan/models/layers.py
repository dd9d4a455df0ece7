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
matmul speed (53 vs 141 GFLOP/s here). `conv_transpose_col2im` computes the same thing
as one matmul over all kernel taps and a sum of shifted slices, with a hand-written
backward pass made of two more matmuls, and multiplies no zero taps (a sub-pixel
formulation, tried first, pads every phase's sub-kernel to 3x3 for a 5x5 kernel at
stride 2: 44% more FLOPs, and measured slower). On other backends ('auto') XLA's own
transposed convolution is used.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

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


def _tap_plan(in_size: int, out_size: int, k: int, s: int):
  """Per axis: for each output phase r (o = s*q + r), the taps j and offsets d with
  y[s*q + r] += x[q + d] * w[j]; and the number q of outputs per phase."""
  lo, _ = transpose_padding(in_size, out_size, k, s)
  phases = [[(j, (r + j - lo) // s) for j in range(k) if (r + j - lo) % s == 0] for r in range(s)]
  return phases, -(-out_size // s)


def _matmul_taps(x: Array, kernel: Array) -> Array:
  """z[b, h, w, i, j, o] = x[b, h, w] . kernel[i, j, :, o], as one [N, Cin] x [Cin, k*k*Cout] matmul."""
  (kh, kw, cin, cout), (b, h, w) = kernel.shape, x.shape[:3]
  z = x.reshape(-1, cin) @ kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)
  return z.reshape(b, h, w, kh, kw, cout)


def _row_gap_layout(x: Array, offsets: list[int], q: int) -> tuple[Array, int]:
  """x [B, H, ...] with g zero rows before, between and after the images, flattened to
  [g + B * (H + g) + t, ...], where g covers every row offset's reach into a neighbour.

  Row r of image b sits at g + b * (H + g) + r, so for every offset d the window of rows
  q' + d (0 <= q' < q) of all images is one slice reshaped to [B, H + g, ...][:, :q], with
  the rows outside an image reading zeros. The gaps cost g / H more rows of the matmul
  (1/32 for dcgan128's 32 -> 64 layer); in exchange the col2im sum reads plain slices,
  which XLA:CPU fuses about 3x faster than the zero-padded slices they replace.
  """
  b, h = x.shape[:2]
  g = max(0, -min(offsets), max(offsets) + q - h)
  tail = max(g, max(offsets))  # the last window ends max(offsets) rows past the images
  pad = ((0, 0), (0, g)) + ((0, 0),) * (x.ndim - 2)
  flat = jnp.pad(x, pad).reshape((b * (h + g),) + x.shape[2:])
  return jnp.pad(flat, ((g, tail),) + ((0, 0),) * (x.ndim - 2)), g


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose_col2im(x: Array, kernel: Array, strides: tuple[int, int],
                          out_size: tuple[int, int]) -> Array:
  """Same result as `conv_transpose_lax`, as one exact matmul and a col2im of its taps.

  z = x @ W for all k*k taps ([rows, W, kh, kw, Cout]: the transposed conv's FLOPs, no
  zero taps, in one large matrix product, on the row-gap layout of `_row_gap_layout`);
  then output phase (r_h, r_w) is the sum of its taps' slices of z, shifted on the input
  grid. The backward pass stacks shifted slices of the output gradient into dz and forms
  both gradients as one matmul each.
  """
  (kh, kw, _, cout), (sh, sw), (b, h, w) = kernel.shape, strides, x.shape[:3]
  ph, qh = _tap_plan(h, out_size[0], kh, sh)
  pw, qw = _tap_plan(w, out_size[1], kw, sw)
  xg, g = _row_gap_layout(x, [d for taps in ph for _, d in taps] or [0], qh)
  z = _matmul_taps(xg[:, None], kernel)[:, 0]  # [rows, w, kh, kw, cout]
  rows = []
  for taps_h in ph:
    row = []
    for taps_w in pw:
      y = jnp.zeros((b, qh, qw, cout), x.dtype)
      for i, dh in taps_h:
        zh = z[g + dh:g + dh + b * (h + g)].reshape(b, h + g, w, kh, kw, cout)[:, :qh]
        for j, dw in taps_w:
          # Phase output p reads z[p + dw] where 0 <= p + dw < w: a slice, zero-padded to
          # qw outputs (padding z itself would copy all of it).
          p0, p1 = max(0, -dw), min(qw, w - dw)
          if p0 < p1:
            y = y + jnp.pad(zh[:, :, p0 + dw:p1 + dw, i, j], ((0, 0), (0, 0), (p0, qw - p1), (0, 0)))
      row.append(y)
    rows.append(jnp.stack(row, axis=3))  # (b, qh, qw, sw, cout)
  y = jnp.stack(rows, axis=2)  # (b, qh, sh, qw, sw, cout)
  return y.reshape(b, qh * sh, qw * sw, cout)[:, :out_size[0], :out_size[1]]


def _window_pads(offsets: list[int], in_size: int, q: int) -> tuple[int, int]:
  """(low, high) zero padding of a phase of q outputs so that the windows
  [lo - d, lo - d + in_size) exist for every tap offset d."""
  return max(0, max(offsets)), max(0, in_size - q - min(offsets))


def _col2im_fwd(x, kernel, strides, out_size):
  return conv_transpose_col2im(x, kernel, strides, out_size), (x, kernel)


def _col2im_bwd(strides, out_size, res, dy):
  x, kernel = res
  (kh, kw, cin, cout), (sh, sw), (b, h, w) = kernel.shape, strides, x.shape[:3]
  ph, qh = _tap_plan(h, out_size[0], kh, sh)
  pw, qw = _tap_plan(w, out_size[1], kw, sw)
  dy = jnp.pad(dy, ((0, 0), (0, qh * sh - out_size[0]), (0, qw * sw - out_size[1]), (0, 0)))
  dy = dy.reshape(b, qh, sh, qw, sw, cout)
  # dz[h, i] = dy_phase(i)[h - d_i]: shifted windows of each phase's gradient, zero outside.
  # Each phase is padded only as far as its taps' offsets reach (padding it by the whole
  # input size wrote 9x the phase's size and cost ~0.25 s per dcgan128 step).
  cols = {}
  for rh, taps_h in enumerate(ph):
    for rw, taps_w in enumerate(pw):
      if not taps_h or not taps_w:
        continue
      lo_h, hi_h = _window_pads([d for _, d in taps_h], h, qh)
      lo_w, hi_w = _window_pads([d for _, d in taps_w], w, qw)
      dyp = jnp.pad(dy[:, :, rh, :, rw], ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))
      for i, dh in taps_h:
        for j, dw in taps_w:
          cols[i, j] = dyp[:, lo_h - dh:lo_h - dh + h, lo_w - dw:lo_w - dw + w]
  dz = jnp.stack([cols[i, j] for i in range(kh) for j in range(kw)], axis=3)
  dz = dz.reshape(b * h * w, kh * kw * cout)
  w2 = kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)
  dx = (dz @ w2.T).reshape(x.shape)
  dkernel = (x.reshape(-1, cin).T @ dz).reshape(cin, kh, kw, cout).transpose(1, 2, 0, 3)
  return dx.astype(x.dtype), dkernel.astype(kernel.dtype)


conv_transpose_col2im.defvjp(_col2im_fwd, _col2im_bwd)


def resolve_upsample_impl(impl: str) -> str:
  """'auto' is col2im on CPU (see module docstring) and XLA's own kernel elsewhere."""
  if impl == "auto":
    return "col2im" if jax.default_backend() == "cpu" else "lax"
  return impl


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
    fn = {"col2im": conv_transpose_col2im,
          "lax": conv_transpose_lax}[resolve_upsample_impl(self.impl)]
    y = fn(x, kernel, tuple(self.strides), tuple(out))
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
    return y


@jax.custom_vjp
def add_bias(y: Array, bias: Array) -> Array:
  """y + bias over the last axis, whose bias gradient is a ones-vector matmul.

  Autodiff would reduce the output gradient over its rows; for the generator's projection
  (32 rows of 262,144 at batch 32) XLA:CPU's YNNPACK reduction took 82-85 ms where the
  matmul takes 1.2-1.5 ms, twice per dcgan128 step.
  """
  return y + bias


def _add_bias_fwd(y, bias):
  return y + bias, None


def _add_bias_bwd(_, g):
  rows = g.reshape(-1, g.shape[-1])
  return g, jnp.ones((rows.shape[0],), g.dtype) @ rows


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


class Dense(nn.Dense):
  """`flax.linen.Dense` (same parameters and names) with the bias added by `add_bias`."""

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    kernel = self.param("kernel", self.kernel_init, (inputs.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    y = jax.lax.dot_general(inputs, kernel, (((inputs.ndim - 1,), (0,)), ((), ())),
                            precision=self.precision)
    return y if bias is None else add_bias(y, bias)


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
