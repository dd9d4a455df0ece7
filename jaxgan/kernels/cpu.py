"""XLA:CPU formulations of three layers, each computing what the plain layer does, exactly in
real arithmetic (in float32 to rounding: tests/layers_test.py).

`conv_transpose_col2im`: the transposed convolution of `jaxgan.kernels.lax.conv_transpose_lax`
as one matmul over all kernel taps plus a col2im, with a hand-written backward pass of two
more matmuls. On XLA CPU the kernel gradient of a stride-2 transposed convolution takes a
slow path (20 s for one 32x32x256 -> 64x64x128 layer at batch 4; docs/pitfalls.md), and
XLA CPU's convolutions run at about a third of its matmul speed (53 vs 141 GFLOP/s here).
It multiplies no zero taps (a sub-pixel formulation, tried first, pads every phase's
sub-kernel to 3x3 for a 5x5 kernel at stride 2: 44% more FLOPs, and measured slower).

`conv_transpose` runs it over batch slices (`over_chunks`, a loop) that keep each slice's
tap tensor within TAP_BUDGET: the tensor is kh*kw/(sh*sw) times the layer's output.

`conv`: `lax.conv_general_dilated` for `flax.linen.Conv`, whose two gradients, for a
stride-s convolution with a kernel that s divides, come from an exact space-to-depth
matmul instead of XLA:CPU's convolution gradients (the forward stays XLA's).

Winograd's F(mxm, 2x2) and F(mxm, 3x3) (`_s2d_winograd`), for kernels of more than s and
at most 3s taps: zero-padded to 2s or 3s taps (Radford's 4x4 stays 4x4, the hobby configs'
5x5 becomes 6x6 at stride 2), such a conv has a 2x2 or 3x3 kernel after space to depth, and
Winograd computes each 4x4 output tile (on outputs of 8x8 and more, `winograd_tile`) with
25 products instead of 64 (4x4 kernels) or 36 instead of 100 (5x5), and each 2x2 tile on
smaller maps with 9 instead of 16 or 16 instead of 25. Where `winograd_plan` applies (even
output sizes, at least WINOGRAD_MIN_CHANNELS input channels), `conv` takes its forward pass
and both gradients from it (the input gradient by its autodiff); the transposed conv takes
both gradients from the Winograd conv of its adjoint (`_winograd_adjoint`).

The transposed conv's forward pass is Winograd's too where `subpixel_plan` applies (4x4 and
5x5 kernels at stride 2, at least 32 output channels): all output phases read one 3x3
window of inputs, so the layer is one 3x3 stride-1 correlation with the phases' kernels
stacked on the output channels, which F(4x4, 3x3) computes with 9 products per input pixel
(on maps of at least 16x16) and F(2x2, 3x3) with 16, instead of the col2im's 16 (4x4) or
25 (5x5) (`_subpixel_winograd`). On inputs of at most 4x4 where that does not apply (4x4
kernels), it is the input gradient of the Winograd conv of its adjoint
(`adjoint_forward_plan`: 9 products per input pixel instead of the col2im's 16 and its
row gaps' quarter more); elsewhere (4x4 kernels on other maps, layers with few outputs) it
stays the col2im.

`add_bias`: y + bias whose bias gradient is a matmul with a ones vector.

`jaxgan.kernels.select` picks these on the CPU backend and the plain layers elsewhere;
tests/layers_test.py checks each against the plain computation. Measured effects:
docs/performance.md.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.kernels.geometry import transpose_padding

Array = jax.Array


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


TAP_BUDGET = 128 * 2**20  # bytes of tap tensor per batch slice (docs/performance.md)
_budget = [TAP_BUDGET]  # what `conv_transpose` uses by default; `tap_budget` sets it


@contextlib.contextmanager
def tap_budget(budget: int):
  """Within the block, `conv_transpose` traces with `budget` (0: unsliced). XLA's cost
  analysis counts a loop's body once, so FLOP counts come from an unsliced trace."""
  old, _budget[0] = _budget[0], budget
  try:
    yield
  finally:
    _budget[0] = old


def batch_chunks(batch: int, nbytes: int, budget: int = TAP_BUDGET) -> int:
  """The fewest equal batch slices (a divisor of `batch`) whose tap tensor fits `budget`."""
  for chunks in range(1, batch + 1):
    if batch % chunks == 0 and nbytes <= budget * chunks:
      return chunks
  return batch


def tap_bytes(x_shape, kernel_shape, strides, out_size, itemsize: int) -> int:
  """Bytes of the forward pass's largest temporaries: the col2im's tap tensor [B, H, W, kh,
  kw, Cout], or on the `subpixel_plan` path Winograd's batched matmul, its transformed
  input [(m+t-1)^2, B * tiles, Cin] and its products [(m+t-1)^2, B * tiles, sh*sw*Cout];
  on the `adjoint_forward_plan` path the same with m = 2 and the tiles on the input."""
  (kh, kw, cin, cout), (sh, sw), (b, h, w) = kernel_shape, strides, x_shape[:3]
  plan = subpixel_plan(x_shape, kernel_shape, strides, out_size)
  if plan is None:
    if adjoint_forward_plan(x_shape, kernel_shape, strides, out_size) is not None:
      t, tiles = -(-kh // sh), -(-h // 2) * -(-w // 2)
      return (t + 1) ** 2 * b * tiles * (cin + sh * sw * cout) * itemsize
    return b * h * w * kh * kw * cout * itemsize
  t, m = plan[0], plan[3]
  tiles = -(-out_size[0] // (m * sh)) * -(-out_size[1] // (m * sw))
  return (m + t - 1) ** 2 * b * tiles * (cin + sh * sw * cout) * itemsize


def conv_transpose(x: Array, kernel: Array, strides: tuple[int, int],
                   out_size: tuple[int, int], budget: int | None = None) -> Array:
  """`conv_transpose_col2im` over as many batch slices as keep each slice's forward
  temporary (`tap_bytes`) within `budget` bytes (0: the whole batch at once; None: the
  `tap_budget` in force, by default TAP_BUDGET)."""
  budget = _budget[0] if budget is None else budget
  taps = tap_bytes(x.shape, kernel.shape, strides, out_size, x.dtype.itemsize)
  chunks = batch_chunks(x.shape[0], taps, budget) if budget else 1
  return conv_transpose_col2im(x, kernel, strides, out_size, chunks)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_transpose_col2im(x: Array, kernel: Array, strides: tuple[int, int],
                          out_size: tuple[int, int], chunks: int = 1) -> Array:
  """Same result as `conv_transpose_lax`, as one exact matmul and a col2im of its taps,
  over `chunks` equal slices of the batch in turn (see `batch_chunks`).

  z = x @ W for all k*k taps ([rows, W, kh, kw, Cout]: the transposed conv's FLOPs, no
  zero taps, in one large matrix product, on the row-gap layout of `_row_gap_layout`);
  then output phase (r_h, r_w) is the sum of its taps' slices of z, shifted on the input
  grid. The backward pass stacks shifted slices of the output gradient into dz and forms
  both gradients as one matmul each. The tap tensor is kh*kw/(sh*sw) times the output's
  size (839 MB for dcgan128's last stride-2 layer at batch 32); slicing the batch bounds
  it, at one loop per pass.
  """
  if chunks == 1:
    return _forward(x, kernel, strides, out_size)
  y, = over_chunks(lambda xc: (_forward(xc, kernel, strides, out_size),), (x,), chunks)
  return y


def _split(a: Array, chunks: int) -> Array:
  """[B, ...] -> [chunks, B / chunks, ...]."""
  if a.shape[0] % chunks:
    raise ValueError(f"chunks={chunks} does not divide the batch of {a.shape[0]}")
  return a.reshape((chunks, a.shape[0] // chunks) + a.shape[1:])


def over_chunks(f, arrays: tuple[Array, ...], chunks: int, summed: int = 0) -> tuple:
  """f over `chunks` equal batch slices of `arrays`, one slice after the other (a loop).

  f maps slices of `arrays` to a tuple of outputs: its first `summed` outputs are summed
  over the slices, the others concatenated along the batch. The concatenated outputs start
  as the broadcast of slice 0's (computed before the loop), not as zeros as in `lax.map`
  and `lax.scan`: XLA:CPU's scheduler placed those zero buffers and their copies at the
  start of the step and kept them to the loop, 390 MiB of dcgan128's step temporaries
  (docs/performance.md).
  """
  split = [_split(a, chunks) for a in arrays]
  first = tuple(f(*(a[0] for a in split)))
  stacked = tuple(jnp.broadcast_to(o[None], (chunks,) + o.shape) for o in first[summed:])

  def body(i, carry):
    sums, stacked = carry
    outs = f(*(jax.lax.dynamic_index_in_dim(a, i, keepdims=False) for a in split))
    sums = tuple(t + o for t, o in zip(sums, outs[:summed]))
    stacked = tuple(jax.lax.dynamic_update_index_in_dim(t, o, i, 0)
                    for t, o in zip(stacked, outs[summed:]))
    return sums, stacked
  sums, stacked = jax.lax.fori_loop(1, chunks, body, (first[:summed], stacked))
  return sums + tuple(t.reshape((-1,) + t.shape[2:]) for t in stacked)


SUBPIXEL_MIN_OUT_CHANNELS = 32  # from which the transposed conv's forward takes `subpixel_plan`
SUBPIXEL_F4_MIN_SIZE = 16  # input height and width from which it takes 4x4 output tiles


def subpixel_plan(x_shape, kernel_shape, strides,
                  out_size) -> tuple[int, int, int, int] | None:
  """(t, dmin_h, dmin_w, m) where the transposed conv's forward pass is
  `_subpixel_winograd`; None elsewhere.

  Output phase r of a stride-s transposed conv reads the inputs x[q + d] for its taps'
  offsets d (`_tap_plan`). Where every phase's offsets lie in one window of t = 2 or 3
  offsets from dmin, the same on both axes (a 5x5 kernel at stride 2: phases of 2 and 3 taps
  in offsets -1..1), the layer is a t x t stride-1 correlation of the shifted input with all
  sh*sw phases' kernels stacked on the output channels, then depth to space; Winograd's
  F(mxm, txt) takes (m+t-1)^2 products per m x m tile of each phase, so
  sh*sw*(m+t-1)^2/m^2 per input pixel against kh*kw for the col2im. The tiles are 4x4
  (m = 4, F(4x4, 3x3)) where t = 3 and the input is at least SUBPIXEL_F4_MIN_SIZE on both
  axes, else 2x2: on smaller maps the few tiles make the (m+t-1)^2 matmuls too small. It
  applies where that is fewer products (5x5 at stride 2: 16 of 25 with 2x2 tiles, 9 of 25
  with 4x4; 4x4 kernels only with 4x4 tiles, 9 of 16), x has at least WINOGRAD_MIN_CHANNELS
  channels and the layer at least SUBPIXEL_MIN_OUT_CHANNELS outputs: with fewer, the
  transforms cost more than the products saved (docs/performance.md)."""
  (kh, kw, cin, cout), (sh, sw) = kernel_shape, tuple(strides)
  if len(x_shape) != 4 or cin < WINOGRAD_MIN_CHANNELS or cout < SUBPIXEL_MIN_OUT_CHANNELS:
    return None
  windows = []
  for n, o, k, s in ((x_shape[1], out_size[0], kh, sh), (x_shape[2], out_size[1], kw, sw)):
    offsets = [d for taps in _tap_plan(n, o, k, s)[0] for _, d in taps]
    if not offsets:
      return None
    windows.append((min(offsets), max(offsets) - min(offsets) + 1))
  (dmin_h, t), (dmin_w, t_w) = windows
  m = 4 if t == 3 and min(x_shape[1:3]) >= SUBPIXEL_F4_MIN_SIZE else 2
  if t != t_w or (m, t) not in _WINOGRAD or sh * sw * (m + t - 1) ** 2 >= m * m * kh * kw:
    return None
  return t, dmin_h, dmin_w, m


def _subpixel_kernel(kernel: Array, strides, x_shape, out_size, t: int, dmins) -> Array:
  """[t, t, Cin, sh*sw*Cout]: tap (a, c) of phase (rh, rw) is the kernel tap j with offset
  dmin + a on the first axis (and likewise on the second), zero where the phase has none.
  Built from static slices: as a gather, XLA:CPU fused it into the kernel transform and
  gathered again for each transformed tap (docs/performance.md)."""
  (kh, kw, cin, cout), (sh, sw) = kernel.shape, strides
  tables = []  # per axis: [t][s] kernel tap index, None where the phase has no tap there
  for n, o, k, s, dmin in ((x_shape[1], out_size[0], kh, sh, dmins[0]),
                           (x_shape[2], out_size[1], kw, sw, dmins[1])):
    table = [[None] * s for _ in range(t)]
    for r, taps in enumerate(_tap_plan(n, o, k, s)[0]):
      for j, d in taps:
        table[d - dmin][r] = j
    tables.append(table)
  zero = jnp.zeros((cin, cout), kernel.dtype)
  tap = lambda i, j: zero if i is None or j is None else kernel[i, j]  # noqa: E731
  return jnp.stack([jnp.stack([
      jnp.concatenate([tap(tables[0][a][rh], tables[1][c][rw])
                       for rh in range(sh) for rw in range(sw)], axis=-1)
      for c in range(t)]) for a in range(t)])


def _subpixel_winograd(x: Array, kernel: Array, strides: tuple[int, int],
                       out_size: tuple[int, int], plan) -> Array:
  """The transposed conv's forward pass where `subpixel_plan` gives (t, dmin_h, dmin_w, m):
  the input shifted by dmin and zero-padded to whole m x m tiles per phase, F(mxm, txt)
  against the stacked phase kernels (`_s2d_winograd` at stride 1), then depth to space."""
  cout, (sh, sw), (b, h, w) = kernel.shape[3], strides, x.shape[:3]
  t, dmin_h, dmin_w, m = plan
  qh, qw = -(-out_size[0] // sh), -(-out_size[1] // sw)
  eh, ew = -(-qh // m) * m, -(-qw // m) * m  # outputs per phase, in whole m x m tiles
  # xp[i] = x[i + dmin] for i < e + t - 1 (lax.pad crops where a pad is negative).
  xp = jax.lax.pad(x, jnp.zeros((), x.dtype),
                   ((0, 0, 0), (-dmin_h, eh + t - 1 + dmin_h - h, 0),
                    (-dmin_w, ew + t - 1 + dmin_w - w, 0), (0, 0, 0)))
  g = _subpixel_kernel(kernel, strides, x.shape, out_size, t, (dmin_h, dmin_w))
  z = _s2d_winograd(xp, g, 1, ((0, 0), (0, 0)), tile=m)  # [b, eh, ew, sh*sw*cout]
  y = z.reshape(b, eh, ew, sh, sw, cout).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(b, eh * sh, ew * sw, cout)[:, :out_size[0], :out_size[1]]


ADJOINT_FORWARD_MAX_SIZE = 4  # input height and width up to which `adjoint_forward_plan` applies


def adjoint_forward_plan(x_shape, kernel_shape, strides, out_size) -> tuple[int, tuple] | None:
  """(s, pads) where the transposed conv's forward pass is `_adjoint_winograd_forward`: where
  `subpixel_plan` does not apply, `_winograd_adjoint` does and the input is at most
  ADJOINT_FORWARD_MAX_SIZE on both axes. There the col2im's row-gap layout adds a quarter
  of the products (one zero row per 4 input rows), and Winograd needs 9 of the col2im's 16
  per input pixel (4x4 kernels). On 8x8 inputs it was faster in three of four A/Bs of the
  step and slower in radford64's reuse schedule (docs/performance.md). None elsewhere."""
  if max(x_shape[1:3]) > ADJOINT_FORWARD_MAX_SIZE:
    return None
  if subpixel_plan(x_shape, kernel_shape, strides, out_size) is not None:
    return None
  return _winograd_adjoint(x_shape, kernel_shape, strides, out_size)


def _adjoint_winograd_forward(x: Array, kernel: Array, out_size: tuple[int, int], s: int,
                              pads) -> Array:
  """The transposed conv as the input gradient of its adjoint: the SAME stride-s conv C from
  `out_size` to x's size whose kernel is the flipped kernel with its channel axes swapped
  (`_winograd_adjoint`), by `_s2d_winograd`'s autodiff (C is linear in its input; its
  forward pass at zeros is dead code). Its matmuls are the Winograd products of C with the
  kernel transposed."""
  conv_c = functools.partial(_s2d_winograd, kernel=jnp.flip(kernel, (0, 1)), s=s, pads=pads,
                             out_in=True)
  zeros = jnp.zeros((x.shape[0], *out_size, kernel.shape[3]), x.dtype)
  return jax.vjp(conv_c, zeros)[1](x)[0]


def _forward(x: Array, kernel: Array, strides: tuple[int, int],
             out_size: tuple[int, int]) -> Array:
  plan = subpixel_plan(x.shape, kernel.shape, strides, out_size)
  if plan is not None:
    return _subpixel_winograd(x, kernel, strides, out_size, plan)
  plan = adjoint_forward_plan(x.shape, kernel.shape, strides, out_size)
  if plan is not None:
    return _adjoint_winograd_forward(x, kernel, out_size, *plan)
  return _col2im_forward(x, kernel, strides, out_size)


def _col2im_forward(x: Array, kernel: Array, strides: tuple[int, int],
                    out_size: tuple[int, int]) -> Array:
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


def _col2im_fwd(x, kernel, strides, out_size, chunks):
  return conv_transpose_col2im(x, kernel, strides, out_size, chunks), (x, kernel)


def _col2im_bwd(strides, out_size, chunks, res, dy):
  x, kernel = res
  if chunks == 1:
    return _backward(x, kernel, dy, strides, out_size)

  def grads(xc, dyc):
    dx, dk = _backward(xc, kernel, dyc, strides, out_size)
    return dk, dx
  dkernel, dx = over_chunks(grads, (x, dy), chunks, summed=1)
  return dx, dkernel


def _winograd_adjoint(x_shape, kernel_shape, strides, out_size):
  """(s, pads) where the transposed conv's gradients come from `_s2d_winograd`: it is the
  adjoint of the SAME stride-s conv from `out_size` to the input's size, with the kernel
  flipped and its channel axes swapped, where `winograd_plan` applies to that conv; else
  None."""
  kh, kw, cin, cout = kernel_shape
  return winograd_plan((x_shape[0], *out_size, cout), (kh, kw, cout, cin), strides, "SAME")


def after(x: Array, dy: Array) -> Array:
  """x, computed after dy: x + min(|dy[0...0]|, 0), which is x for every dy but NaN.

  XLA:CPU drops `optimization_barrier`s, and its scheduler computed what a backward pass
  derives from a residual alone (Winograd's transform of x for the kernel gradient of a
  transposed conv) in the forward pass and kept it to the backward pass. A value of dy in
  x makes it wait: dcgan128's step temporaries 1350 -> 1196 MiB (docs/performance.md)."""
  return x + jnp.minimum(jnp.abs(dy.reshape(-1)[0]), 0).astype(x.dtype)


def _winograd_backward(x, kernel, dy, s, pads):
  """Both gradients of the transposed conv through its adjoint conv C (dy -> x's shape):
  dx = C(dy), and the kernel gradient is C's kernel gradient at input dy and cotangent x,
  flipped back."""
  x = after(x, dy)
  # C's kernel is the flipped kernel with its channel axes swapped: given as HWOI, it is
  # the flipped kernel itself, and so is its gradient.
  adjoint = lambda k: _s2d_winograd(dy, k, s, pads, out_in=True)  # noqa: E731
  dx, pullback = jax.vjp(adjoint, jnp.flip(kernel, (0, 1)))
  dk, = pullback(x)
  return dx.astype(x.dtype), jnp.flip(dk, (0, 1)).astype(kernel.dtype)


def _backward(x, kernel, dy, strides, out_size):
  plan = _winograd_adjoint(x.shape, kernel.shape, strides, out_size)
  if plan is not None:
    return _winograd_backward(x, kernel, dy, *plan)
  return _col2im_backward(x, kernel, dy, strides, out_size)


def _col2im_backward(x, kernel, dy, strides, out_size):
  """Both gradients as one matmul each over all taps of the stacked output gradient."""
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


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
  """TensorFlow's SAME padding (low, high) of one axis."""
  total = max((-(-size // s) - 1) * s + k - size, 0)
  return total // 2, total - total // 2


WINOGRAD_MIN_CHANNELS = 16  # input channels from which `conv` takes the Winograd path


def _explicit_pads(x_shape, k: int, s: int, padding) -> list | None:
  """`padding` ('SAME', 'VALID' or explicit pairs) as explicit non-negative (low, high)
  pads per spatial axis; None for anything else."""
  if isinstance(padding, str):
    if padding.upper() == "SAME":
      return [_same_pads(n, k, s) for n in x_shape[1:3]]
    if padding.upper() == "VALID":
      return [(0, 0), (0, 0)]
    return None
  pads = [tuple(int(p) for p in pad) for pad in padding]
  return None if any(lo < 0 or hi < 0 for lo, hi in pads) else pads


def s2d_plan(x_shape, kernel_shape, strides, padding) -> tuple[int, list] | None:
  """(stride, explicit pads) where `conv` takes its space-to-depth gradients: a 2-D
  NHWC/HWIO conv with equal strides s > 1, a square kernel k that s divides, and padded
  sizes that s divides; None elsewhere."""
  (kh, kw), (sh, sw) = kernel_shape[:2], tuple(strides)
  if len(x_shape) != 4 or kh != kw or sh != sw or sh < 2 or kh % sh:
    return None
  pads = _explicit_pads(x_shape, kh, sh, padding)
  if pads is None or any((n + lo + hi) % sh for n, (lo, hi) in zip(x_shape[1:3], pads)):
    return None
  return sh, pads


def conv_path(x_shape, kernel_shape, strides, padding) -> str:
  """Which formulation `conv` takes for a plain NHWC/HWIO conv: 'winograd'
  (`winograd_plan`), 's2d' (`s2d_plan`) or 'lax' (XLA's convolution)."""
  if winograd_plan(x_shape, kernel_shape, strides, padding) is not None:
    return "winograd"
  return "s2d" if s2d_plan(x_shape, kernel_shape, strides, padding) is not None else "lax"


def _space_to_depth(x: Array, kernel: Array, s: int, pads) -> tuple[Array, Array]:
  """The padded input as s x s blocks [B, H/s, W/s, s*s*Cin], channels ordered (column
  in the block, row in the block, Cin), and the kernel as the matching stride-1 kernel
  [k/s, k/s, s*s*Cin, Cout] (`_s2d_kernel`): the stride-s conv is the plain VALID
  correlation of the two."""
  b, cin = x.shape[0], x.shape[3]
  xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  hs, ws = xp.shape[1] // s, xp.shape[2] // s
  blocks = xp.reshape(b, hs, s, ws, s, cin).transpose(0, 1, 3, 4, 2, 5).reshape(b, hs, ws, -1)
  return blocks, _s2d_kernel(kernel, s)


def _s2d_kernel(kernel: Array, s: int, out_in: bool = False) -> Array:
  """[k, k, Cin, Cout] -> [k/s, k/s, s*s*Cin, Cout], the kernel of the stride-1 conv on
  `_space_to_depth`'s blocks; with `out_in`, [k, k, Cout, Cin] -> [k/s, k/s, Cout, s*s*Cin]."""
  k = kernel.shape[0]
  t = k // s
  if out_in:
    cout, cin = kernel.shape[2:]
    w = kernel.reshape(t, s, t, s, cout, cin).transpose(0, 2, 4, 3, 1, 5)
    return w.reshape(t, t, cout, s * s * cin)
  cin, cout = kernel.shape[2:]
  w = kernel.reshape(t, s, t, s, cin, cout).transpose(0, 2, 3, 1, 4, 5)
  return w.reshape(t, t, s * s * cin, cout)


def _s2d_matmul(x: Array, kernel: Array, s: int, pads) -> Array:
  """The stride-s convolution as space-to-depth(s) of the padded input, then the k/s x k/s
  windows of the blocks (plain slices, no stride) concatenated and one matmul: exact, no
  zero taps. Used for its gradients (autodiff), whose kernel gradient XLA:CPU's
  convolution takes a slow path for."""
  blocks, w = _space_to_depth(x, kernel, s, pads)
  t, cout, b = w.shape[0], w.shape[-1], x.shape[0]
  ho, wo = blocks.shape[1] - t + 1, blocks.shape[2] - t + 1
  cols = jnp.concatenate([blocks[:, a:a + ho, c:c + wo] for a in range(t) for c in range(t)], -1)
  return (cols.reshape(-1, t * t * w.shape[2]) @ w.reshape(-1, cout)).reshape(b, ho, wo, cout)


def winograd_plan(x_shape, kernel_shape, strides, padding) -> tuple[int, tuple] | None:
  """(stride, explicit pads) where `_s2d_winograd` computes the conv; None elsewhere.

  It applies to a 2-D NHWC/HWIO conv with equal strides s > 1 and a square kernel k of
  more than s taps and at most 3s: the kernel, zero-padded at its end to t*s taps (t = 2
  or 3; 4 -> 4 and 5 -> 6 at stride 2), is a t x t kernel after space to depth. The output
  sizes must be even (2x2 tiles) and the input have at least WINOGRAD_MIN_CHANNELS channels.
  The pads returned include the kernel's padding (one more high pad per added tap)."""
  (kh, kw), (sh, sw) = kernel_shape[:2], tuple(strides)
  if len(x_shape) != 4 or kh != kw or sh != sw or sh < 2 or not sh < kh <= 3 * sh:
    return None
  if kernel_shape[2] < WINOGRAD_MIN_CHANNELS:
    return None
  pads = _explicit_pads(x_shape, kh, sh, padding)
  if pads is None:
    return None
  extra = -(-kh // sh) * sh - kh
  pads = tuple((lo, hi + extra) for lo, hi in pads)
  for n, (lo, hi) in zip(x_shape[1:3], pads):
    size = n + lo + hi
    out = size // sh - (kh + extra) // sh + 1
    if size % sh or out <= 0 or out % 2:
      return None
  return sh, pads


# Winograd's F(m, t), keyed (m, t): F(2, 2), F(4, 2), F(2, 3) and F(4, 3) (Lavin & Gray
# 2016; points 0, 1, inf; 0, 1, -1, 2, inf; 0, 1, -1, inf; 0, 1, -1, 2, -2, inf; F(4, 2)'s
# rows of B^T scaled by 2, 2, 6, 6, 1 and G's by their inverses): y = A^T [(G g) * (B^T d)]
# is the correlation y_i = sum_k d_{i+k} g_k of m outputs from m + t - 1 inputs.
_WINOGRAD = {
    (2, 2): {"BT": ((1, -1, 0), (0, 1, 0), (0, -1, 1)),
             "G": ((1, 0), (1, 1), (0, 1)),
             "AT": ((1, 1, 0), (0, 1, 1))},
    (4, 2): {"BT": ((2, -1, -2, 1, 0), (0, 2, 1, -1, 0), (0, -2, 3, -1, 0), (0, -1, 0, 1, 0),
                    (0, 2, -1, -2, 1)),
             "G": ((1 / 2, 0), (1 / 2, 1 / 2), (1 / 6, -1 / 6), (1 / 6, 1 / 3), (0, 1)),
             "AT": ((1, 1, 1, 1, 0), (0, 1, -1, 2, 0), (0, 1, 1, 4, 0), (0, 1, -1, 8, 1))},
    (2, 3): {"BT": ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
             "G": ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1)),
             "AT": ((1, 1, 1, 0), (0, 1, -1, -1))},
    (4, 3): {"BT": ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
                    (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
             "G": ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
                   (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1)),
             "AT": ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0),
                    (0, 1, -1, 8, -8, 1))},
}


def _combine(parts: list[Array], coeffs) -> Array:
  """sum_j coeffs[j] * parts[j], skipping zeros and multiplying only by coefficients != +-1."""
  out = None
  for part, c in zip(parts, coeffs):
    if c == 0:
      continue
    term = part if abs(c) == 1 else part * abs(c)
    if out is None:
      out = term if c > 0 else -term
    else:
      out = out + term if c > 0 else out - term
  return out


def _winograd_transform(x: Array, axis: int, matrix, windows: int | None = None,
                        tile: int = 2) -> Array:
  """Applies `matrix` [p, n] along `axis`: with `windows`, to the n strided windows
  x[j + tile*i] (i < windows) of each tile (the input transform); without, to the axis
  itself (size n: the kernel and output transforms; `_axis_transform`). The p results are a
  new axis after `axis` with `windows`, and take the axis's place without."""
  if windows is None:
    return _axis_transform(x, axis, tuple(map(tuple, matrix)))
  parts = [jax.lax.slice_in_dim(x, j, j + tile * (windows - 1) + 1, tile, axis)
           for j in range(len(matrix[0]))]
  return jnp.stack([_combine(parts, row) for row in matrix], axis + 1)


def _row_transform(xp: Array, s: int, matrix, windows: int, tile: int) -> Array:
  """The input transform along the rows of the space-to-depth blocks of xp [B, H, W, C],
  read from xp's rows: [B, windows, p, W, s, C], which is [B, windows, p, W/s, s*s*C] in
  `_space_to_depth`'s channel order. Row sy of block row i of window q is xp's row
  s*(tile*q + i) + sy: each result is a combination of whole rows, where transforming the
  blocks read runs of C per block (docs/performance.md)."""
  span = s * tile * (windows - 1) + 1
  rows = [[jax.lax.slice_in_dim(xp, s * i + sy, s * i + sy + span, s * tile, 1)
           for sy in range(s)] for i in range(len(matrix[0]))]
  return jnp.stack([jnp.stack([_combine([r[sy] for r in rows], row) for sy in range(s)], 3)
                    for row in matrix], 2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _axis_transform(x: Array, axis: int, matrix) -> Array:
  """`matrix` [p, n] applied along `axis` (of size n; p results in its place). Its gradient
  is the same transform by the transposed matrix: one stack of combined slices, where
  autodiff's had each slice's adjoint padded to the whole axis and summed (several passes
  over the output transform's gradient, in which XLA also recomputed the fused producer of
  dy; docs/performance.md)."""
  parts = [jax.lax.index_in_dim(x, j, axis, keepdims=False) for j in range(len(matrix[0]))]
  return jnp.stack([_combine(parts, row) for row in matrix], axis)


_axis_transform.defvjp(lambda x, axis, matrix: (_axis_transform(x, axis, matrix), None),
                       lambda axis, matrix, _, g: (_axis_transform(g, axis,
                                                                   tuple(zip(*matrix))),))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _kernel_transform(w: Array, matrix) -> Array:
  """`matrix` [p, t] applied to both tap axes of w [t, t, A, B]: [p, p, A, B], as one
  [p*p, t*t] x [t*t, A*B] matmul by the Kronecker product of `matrix` with itself; its
  gradient is the product with the transposed Kronecker matrix (autodiff's had the product
  the other way round and a transpose of the result). As two stacks of combined slices,
  XLA:CPU's concatenate fusion wrote the [25, 512, 256] result at 4 GB/s (3.5 ms; the
  matmul 1 ms)."""
  return _kron_apply(w, np.kron(matrix, matrix))


def _kron_apply(w: Array, kron) -> Array:
  """kron [P*P, T*T] applied to w's first two axes [T, T, ...]: [P, P, ...]."""
  p = round(kron.shape[0] ** 0.5)
  flat = jnp.asarray(kron, w.dtype) @ w.reshape(kron.shape[1], -1)
  return flat.reshape((p, p) + w.shape[2:])


def _kernel_transform_bwd(matrix, _, g):
  return (_kron_apply(g, np.kron(matrix, matrix).T),)


_kernel_transform.defvjp(lambda w, matrix: (_kernel_transform(w, matrix), None),
                         _kernel_transform_bwd)


WINOGRAD_F4_MIN_SIZE = 8  # output height and width from which `_s2d_winograd` takes 4x4 tiles


def winograd_tile(out_h: int, out_w: int) -> int:
  """The output tile of `_s2d_winograd` for an out_h x out_w output: 4 (F(4x4, txt)) where
  both sizes are multiples of 4 and at least WINOGRAD_F4_MIN_SIZE, else 2 (F(2x2, txt)).
  On 4x4 outputs one tile per image leaves matmuls of batch rows against a transformed
  kernel 25/9 times the size: radford64's 8x8 -> 4x4 layer's forward pass and input
  gradient took 1.27-1.40x as long, and 4x4 tiles from 4x4 outputs made the step 1.045x
  slower, from 16x16 1.021x (docs/performance.md)."""
  sizes = (out_h, out_w)
  return 4 if all(o % 4 == 0 and o >= WINOGRAD_F4_MIN_SIZE for o in sizes) else 2


def _s2d_winograd(x: Array, kernel: Array, s: int, pads, out_in: bool = False,
                  tile: int | None = None) -> Array:
  """The stride-s convolution (pads from `winograd_plan`) as the t x t VALID correlation of
  the space-to-depth blocks with the kernel zero-padded to t*s taps, by Winograd's
  F(mxm, txt): per m x m output tile, (m+t-1)^2 products of transformed input tiles and the
  transformed kernel instead of m*m*t*t, as (m+t-1)^2 batched [tiles, s*s*Cin] x
  [s*s*Cin, Cout] matmuls. The tile m is `tile`, by default `winograd_tile`'s: with m = 2,
  9/16 of the direct FLOPs for a 4x4 kernel at stride 2 and 16/25 for a 5x5 one, with
  transforms whose entries are 0, +-1 and +-1/2, rounding close to a direct sum
  (tests/layers_test.py); with m = 4, 25/64 and 36/100, with entries up to 8 (and 1/24 in
  the kernel's), rounding about ten times a direct sum's. The sub-pixel forward
  (`subpixel_plan`) calls it at stride 1 with its own tile.

  The input transform along the rows reads the padded input's rows themselves
  (`_row_transform`), not the space-to-depth blocks: a fusion that gathered the blocks'
  runs of Cin took 1.5-3x as long.

  With `out_in` the kernel is [k, k, Cout, Cin] (HWOI) and stays in that order through the
  transforms and the products (the matmuls read it transposed), so that its gradient comes
  out in that order too: the transposed conv's adjoint has its kernel's channel axes swapped,
  and swapping them back after the gradient cost a strided copy in each of the gradient's
  consumers (docs/pitfalls.md)."""
  k, s_taps = kernel.shape[0], -(-kernel.shape[0] // s) * s
  kernel = jnp.pad(kernel, ((0, s_taps - k), (0, s_taps - k), (0, 0), (0, 0)))
  w = _s2d_kernel(kernel, s, out_in)
  t, b, cin = w.shape[0], x.shape[0], x.shape[3]
  cout = w.shape[2] if out_in else w.shape[3]
  xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  hs, ws, c = xp.shape[1] // s, xp.shape[2] // s, s * s * cin
  tile = winograd_tile(hs - t + 1, ws - t + 1) if tile is None else tile
  f, n = _WINOGRAD[tile, t], tile + t - 1
  p, th, tw = n * n, (hs - t + 1) // tile, (ws - t + 1) // tile
  v = _row_transform(xp, s, f["BT"], th, tile).reshape(b, th, n, ws, c)
  v = _winograd_transform(v, 3, f["BT"], tw, tile)  # [b, th, n, tw, n, c]
  v = v.transpose(2, 4, 0, 1, 3, 5).reshape(p, b * th * tw, c)
  u = _kernel_transform(w, f["G"])
  if out_in:
    m = jnp.einsum("prc,pdc->prd", v, u.reshape(p, cout, c))
  else:
    m = jnp.einsum("prc,pcd->prd", v, u.reshape(p, c, cout))
  m = m.reshape(n, n, b, th, tw, cout)
  y = _winograd_transform(_winograd_transform(m, 0, f["AT"]), 1, f["AT"])  # [tile, tile, b, ...]
  return y.transpose(2, 3, 0, 4, 1, 5).reshape(b, tile * th, tile * tw, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_winograd(x: Array, kernel: Array, s: int, pads) -> Array:
  """A stride-s NHWC/HWIO convolution where `winograd_plan` gives (s, pads), by
  `_s2d_winograd`, whose backward pass recomputes the transformed input from x (x and the
  kernel are the only residuals) and takes both gradients by its autodiff. The input
  gradient by Winograd's autodiff needs 25/4 products per pixel of dy and channel pair (4x4
  kernels, 4x4 tiles; 9 for 5x5 kernels), the transposed conv's sub-pixel forward 9: it
  was 3-4% slower in radford64's step (docs/performance.md)."""
  return _s2d_winograd(x, kernel, s, pads)


def _conv_winograd_fwd(x, kernel, s, pads):
  return _s2d_winograd(x, kernel, s, pads), (x, kernel)


def _conv_winograd_bwd(s, pads, res, dy):
  x, kernel = res
  return jax.vjp(lambda x, k: _s2d_winograd(x, k, s, pads), x, kernel)[1](dy)


conv_winograd.defvjp(_conv_winograd_fwd, _conv_winograd_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_s2d(x: Array, kernel: Array, s: int, pads) -> Array:
  """A stride-s NHWC/HWIO convolution with explicit `pads` (see `s2d_plan` for where it
  applies): XLA's own forward, both gradients of `_s2d_matmul`."""
  return jax.lax.conv_general_dilated(x, kernel, (s, s), pads,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _conv_s2d_fwd(x, kernel, s, pads):
  return conv_s2d(x, kernel, s, pads), (x, kernel)


def _conv_s2d_bwd(s, pads, res, dy):
  x, kernel = res
  return jax.vjp(lambda x, k: _s2d_matmul(x, k, s, pads), x, kernel)[1](dy)


conv_s2d.defvjp(_conv_s2d_fwd, _conv_s2d_bwd)


def conv(lhs: Array, rhs: Array, window_strides, padding, lhs_dilation=None,
         rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
         precision=None) -> Array:
  """`lax.conv_general_dilated` (the signature `flax.linen.Conv` calls), whose gradients
  come from the space-to-depth matmul where `s2d_plan` applies and nothing else is set
  (no dilation or groups, NHWC/HWIO, default precision)."""
  plain = lambda: jax.lax.conv_general_dilated(  # noqa: E731
      lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count, precision=precision)
  nhwc = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
  dilated = any(d != 1 for d in (lhs_dilation or ()) + (rhs_dilation or ()))
  if (dilated or feature_group_count != 1 or precision is not None
      or jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != nhwc):
    return plain()
  plan = winograd_plan(lhs.shape, rhs.shape, window_strides, padding)
  if plan is not None:
    return conv_winograd(lhs, rhs, plan[0], tuple(plan[1]))
  plan = s2d_plan(lhs.shape, rhs.shape, window_strides, padding)
  return plain() if plan is None else conv_s2d(lhs, rhs, plan[0], tuple(plan[1]))
