"""The transposed convolution: the fast formulations equal lax.conv_transpose exactly."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import kernels
from jaxgan.kernels import cpu
from jaxgan.kernels import lax as lax_kernels
from jaxgan.nn import layers

DN = ("NHWC", "HWIO", "NHWC")
# (in_h, in_w, out_h, out_w, kernel, stride): even, odd (150 -> 75 -> 38 mirrors), non-square,
# kernel smaller than the stride, stride 1 and stride 4.
CASES = [(4, 4, 8, 8, 5, 2), (5, 3, 10, 6, 4, 2), (10, 10, 19, 19, 5, 2), (7, 6, 13, 12, 5, 2),
         (4, 3, 8, 6, 1, 2), (6, 5, 6, 5, 5, 1), (3, 4, 11, 16, 5, 4), (4, 4, 11, 12, 3, 3)]


def _inputs(in_h, in_w, k, cin=3, cout=5, batch=2):
  kx, kw = jax.random.split(jax.random.key(in_h * 100 + in_w * 10 + k))
  return (jax.random.normal(kx, (batch, in_h, in_w, cin)),
          jax.random.normal(kw, (k, k, cin, cout)))


@pytest.mark.parametrize("chunks", [1, 2, 4])
@pytest.mark.parametrize("in_h,in_w,out_h,out_w,k,s", CASES)
def test_col2im_equals_lax_forward_and_gradient(in_h, in_w, out_h, out_w, k, s, chunks):
  # chunks: the whole batch at once, or 2 or 4 batch slices in turn (lax.map / lax.scan).
  x, w = _inputs(in_h, in_w, k, batch=4)
  ref = lax_kernels.conv_transpose_lax(x, w, (s, s), (out_h, out_w))
  col2im = lambda x, w, s, o: cpu.conv_transpose_col2im(x, w, s, o, chunks)  # noqa: E731
  got = col2im(x, w, (s, s), (out_h, out_w))
  assert got.shape == ref.shape == (4, out_h, out_w, 5)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
  ct = jax.random.normal(jax.random.key(7), ref.shape)  # a random cotangent
  grads = lambda fn: jax.grad(lambda x, w: jnp.sum(fn(x, w, (s, s), (out_h, out_w)) * ct),
                              argnums=(0, 1))(x, w)
  for g_ref, g_got in zip(grads(lax_kernels.conv_transpose_lax), grads(col2im)):
    np.testing.assert_allclose(g_got, g_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("in_h,in_w,out_h,out_w,k,s", CASES[:4])
def test_lax_reference_is_the_adjoint_of_a_same_convolution(in_h, in_w, out_h, out_w, k, s):
  # Keras Conv2DTranspose(padding='same') semantics: the adjoint of the SAME conv out -> in.
  x, w = _inputs(in_h, in_w, k)
  w_adj = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
  conv = lambda y: jax.lax.conv_general_dilated(y, w_adj, (s, s), "SAME", dimension_numbers=DN)
  _, vjp = jax.vjp(conv, jnp.zeros((2, out_h, out_w, 5)))
  np.testing.assert_allclose(lax_kernels.conv_transpose_lax(x, w, (s, s), (out_h, out_w)), vjp(x)[0],
                             rtol=1e-5, atol=1e-5)


def test_batch_slices_bound_the_tap_tensor():
  # dcgan128's last stride-2 layer at batch 32: 839 MB of taps -> 8 slices of 105 MB.
  taps = 32 * 64 * 64 * 5 * 5 * 64 * 4
  assert cpu.batch_chunks(32, taps, 128 * 2**20) == 8
  assert cpu.batch_chunks(32, taps, 2**40) == 1
  assert cpu.batch_chunks(6, 7 * 2**20, 2**20) == 6  # no divisor fits: one image a slice
  x, w = _inputs(8, 8, 5, batch=6)
  ref = lax_kernels.conv_transpose_lax(x, w, (2, 2), (16, 16))
  taps = 6 * 8 * 8 * 5 * 5 * 5 * 4  # 192 kB
  assert [cpu.batch_chunks(6, taps, b) for b in (10_000, 70_000, 2**30)] == [6, 3, 1]
  for budget in (0, 10_000, 70_000, 2**30):
    np.testing.assert_allclose(cpu.conv_transpose(x, w, (2, 2), (16, 16), budget), ref,
                               rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="chunks=4 does not divide the batch of 6"):
    cpu.conv_transpose_col2im(x, w, (2, 2), (16, 16), 4)


def test_bad_output_size_is_rejected():
  x, w = _inputs(4, 4, 5)
  with pytest.raises(ValueError, match="maps 4 to 7..8, not 10"):
    cpu.conv_transpose_col2im(x, w, (2, 2), (10, 8))


@pytest.mark.parametrize("impl", ["col2im", "lax"])
def test_module_matches_flax_conv_transpose_shapes_and_params(impl):
  # Same parameter layout as flax's ConvTranspose; the output equals lax with our padding.
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
  mod = layers.ConvTranspose(6, 5, (2, 2), impl=impl)
  variables = mod.init(jax.random.key(1), x)
  ref = nn.ConvTranspose(6, (5, 5), (2, 2)).init(jax.random.key(1), x)
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, ref)
  y = mod.apply(variables, x)
  p = variables["params"]
  np.testing.assert_allclose(y, lax_kernels.conv_transpose_lax(x, p["kernel"], (2, 2), (16, 16)) + p["bias"],
                             rtol=1e-5, atol=1e-5)


def test_auto_picks_col2im_on_cpu_and_plain_layers_elsewhere():
  assert jax.default_backend() == "cpu"
  assert kernels.select("auto") == kernels.select("col2im")
  assert kernels.select("auto").conv_transpose is cpu.conv_transpose
  assert kernels.select("auto").add_bias is cpu.add_bias
  gpu = kernels.select("auto", backend="gpu")
  assert gpu.conv_transpose is lax_kernels.conv_transpose_lax and gpu.add_bias is not cpu.add_bias


@pytest.mark.parametrize("impl", ["col2im", "lax"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_equals_flax_dense_in_value_and_gradient(use_bias, impl):
  x = jax.random.normal(jax.random.key(0), (6, 3, 7))
  ours, ref = layers.Dense(11, use_bias=use_bias, impl=impl), nn.Dense(11, use_bias=use_bias)
  params = ref.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + 0.1, params)  # a non-zero bias
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))  # noqa: E731
  np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), rtol=1e-6)
  for a, b in zip(jax.tree.leaves(jax.grad(loss(ours), argnums=(0, 1))(params, x)),
                  jax.tree.leaves(jax.grad(loss(ref), argnums=(0, 1))(params, x))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# (h, w, kernel, stride, padding, input channels, path): Radford's k4 s2 on even and odd
# sizes, k6 s3, k2 s2 VALID, k4 s4, non-square; 's2d': XLA's forward, space-to-depth
# gradients; 'winograd' (kernel over s and at most 3s taps, even output sizes, >= 16 input
# channels; k4 and k6 at stride 2, k5 padded to 6, k6 at stride 3): Winograd's forward and
# kernel gradient; 'lax': stride 1, uneven padded sizes and odd kernels elsewhere fall back
# to XLA's convolution.
CONV_CASES = [(16, 16, 4, 2, "SAME", 5, "s2d"), (8, 6, 4, 2, "SAME", 5, "s2d"),
              (9, 9, 4, 2, "SAME", 5, "s2d"), (12, 12, 6, 3, "SAME", 5, "s2d"),
              (8, 8, 2, 2, "VALID", 5, "s2d"), (16, 16, 4, 4, "SAME", 5, "s2d"),
              (10, 10, 5, 2, "SAME", 5, "lax"), (8, 8, 3, 1, "SAME", 5, "lax"),
              (7, 7, 4, 2, ((1, 1), (1, 1)), 5, "lax"),
              (16, 16, 4, 2, "SAME", 16, "winograd"), (8, 12, 4, 2, "SAME", 24, "winograd"),
              (12, 12, 6, 3, "SAME", 16, "winograd"), (10, 10, 4, 2, ((1, 3), (3, 1)), 16, "winograd"),
              (16, 16, 5, 2, "SAME", 16, "winograd"), (12, 8, 5, 2, "SAME", 16, "winograd"),
              (8, 8, 6, 2, "SAME", 16, "winograd"), (11, 11, 5, 2, ((2, 2), (2, 2)), 16, "winograd"),
              (8, 6, 4, 2, "SAME", 16, "s2d"), (9, 9, 4, 2, "SAME", 16, "s2d"),
              (16, 16, 4, 4, "SAME", 16, "s2d"), (10, 10, 5, 2, "SAME", 16, "lax"),
              (16, 24, 4, 2, "SAME", 16, "winograd"), (24, 16, 5, 2, "SAME", 16, "winograd"),
              (24, 24, 6, 3, "SAME", 16, "winograd"),
              (16, 16, 7, 2, "SAME", 16, "lax")]


def _equations(jaxpr):
  """The equations of a jaxpr and of its sub-jaxprs (custom_vjp and pjit bodies)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for sub in eqn.params.values():
      sub = getattr(sub, "jaxpr", sub)
      if hasattr(sub, "eqns"):
        yield from _equations(sub)


# The Kronecker matrices of the Winograd kernel transforms ([p*p, t*t]), by shape.
_KERNEL_TRANSFORMS = {((m + t - 1) ** 2, t * t) for m, t in cpu._WINOGRAD}


def _dot_multiplies(jaxpr, kernel_transforms: bool = False) -> int:
  """Multiplies in the dot_generals of a jaxpr and its sub-jaxprs (batch x free x
  contracted sizes); without `kernel_transforms`, less the kernel transforms' (a product
  with a [p*p, t*t] Kronecker matrix, `cpu._kernel_transform`), which scale with the
  kernel, not with the data."""
  total = 0
  for eqn in _equations(jaxpr):
    shapes = {tuple(v.aval.shape) for v in eqn.invars}
    if not kernel_transforms and shapes & _KERNEL_TRANSFORMS:
      continue
    if eqn.primitive.name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += int(np.prod(eqn.outvars[0].aval.shape)) * int(np.prod([lhs[d] for d in contract]))
  return total


def _winograd_tile(out_h: int, out_w: int) -> int:
  """4x4 output tiles where both sizes are multiples of 4 from WINOGRAD_F4_MIN_SIZE (8)."""
  return 4 if all(o % 4 == 0 and o >= cpu.WINOGRAD_F4_MIN_SIZE for o in (out_h, out_w)) else 2


def test_winograd_takes_4x4_tiles_on_outputs_of_8_and_more():
  assert cpu.WINOGRAD_F4_MIN_SIZE == 8
  assert [cpu.winograd_tile(h, w) for h, w in [(4, 4), (6, 8), (8, 8), (8, 12), (12, 10), (16, 16)]] == [
      2, 2, 4, 4, 2, 4]


@pytest.mark.parametrize("h,w,k,s,padding,cin,path", CONV_CASES)
def test_strided_conv_equals_lax_in_value_and_both_gradients(h, w, k, s, padding, cin, path):
  x = jax.random.normal(jax.random.key(0), (3, h, w, cin))
  kernel = jax.random.normal(jax.random.key(1), (k, k, cin, 7))
  dn = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, DN)
  assert cpu.conv_path(x.shape, kernel.shape, (s, s), padding) == path
  ref = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
      x, k, (s, s), padding, dimension_numbers=DN)
  got = lambda x, k: cpu.conv(x, k, (s, s), padding, dimension_numbers=dn)  # noqa: E731
  np.testing.assert_allclose(got(x, kernel), ref(x, kernel), rtol=1e-5, atol=1e-4)
  ct = jax.random.normal(jax.random.key(2), ref(x, kernel).shape)
  grad = lambda fn: jax.grad(lambda x, k: jnp.sum(fn(x, k) * ct), argnums=(0, 1))  # noqa: E731
  for g_ref, g_got in zip(grad(ref)(x, kernel), grad(got)(x, kernel)):
    np.testing.assert_allclose(g_got, g_ref, rtol=1e-4, atol=1e-3)
  # s2d: the backward pass has no convolution left (the forward's only); Winograd: none.
  convs = str(jax.make_jaxpr(grad(got))(x, kernel)).count("conv_general_dilated")
  assert convs == {"lax": convs if convs > 1 else -1, "s2d": 1, "winograd": 0}[path], convs
  if path == "winograd":  # (m+t-1)^2 products per m x m tile of the t x t kernel after s2d
    t, out = -(-k // s), ref(x, kernel).shape
    m = _winograd_tile(*out[1:3])
    multiplies = int(np.prod(out)) * (m + t - 1) ** 2 * s * s * cin // m ** 2
    assert _dot_multiplies(jax.make_jaxpr(got)(x, kernel).jaxpr) == multiplies
    assert multiplies < int(np.prod(ref(x, kernel).shape)) * k * k * cin  # fewer than direct


# (size, kernel, cin, cout): 2x2 output tiles (8x8 inputs), 4x4 (32x32 inputs).
@pytest.mark.parametrize("size,k,cin,cout", [(8, 4, 16, 6), (8, 5, 16, 6), (32, 4, 32, 16),
                                             (32, 5, 32, 16)])
def test_winograd_conv_second_order_gradient_equals_lax(size, k, cin, cout):
  # A gradient penalty differentiates D's input gradient again (R1, WGAN-GP, DRAGAN).
  x = jax.random.normal(jax.random.key(0), (2, size, size, cin))
  kernel = 0.1 * jax.random.normal(jax.random.key(1), (k, k, cin, cout))  # tanh not saturated
  dn = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, DN)
  assert cpu.conv_path(x.shape, kernel.shape, (2, 2), "SAME") == "winograd"
  assert cpu.winograd_tile(size // 2, size // 2) == (4 if size == 32 else 2)

  def penalty(conv):
    d = lambda x, k: jnp.sum(jnp.tanh(conv(x, k, (2, 2), "SAME", dimension_numbers=dn)))  # noqa: E731
    return lambda x, k: jnp.sum(jax.grad(d)(x, k) ** 2)
  got = jax.grad(penalty(cpu.conv), argnums=(0, 1))(x, kernel)
  ref = jax.grad(penalty(jax.lax.conv_general_dilated), argnums=(0, 1))(x, kernel)
  # F(4x4, txt) on the 16x16 outputs rounds to about 5e-6 of the gradient's scale (the
  # kernel gradient's reaches 450 here).
  for g_got, g_ref in zip(got, ref):
    np.testing.assert_allclose(g_got, g_ref, rtol=1e-4,
                               atol=max(1e-3, 1e-5 * float(jnp.abs(g_ref).max())))


# (h, w, kernel, padding): D's layers from 32x32 (4x4 and 5x5 kernels, square and not) and
# from 16x16, VALID pads (4x4 output tiles); outputs of 4x4 and 10x10 (2x2 tiles).
WINOGRAD_DX = [(32, 32, 4, "SAME"), (32, 40, 4, "SAME"), (32, 32, 5, "SAME"),
               (16, 16, 4, "SAME"), (34, 34, 4, "VALID"), (8, 8, 4, "SAME"), (20, 20, 5, "SAME")]


@pytest.mark.parametrize("h,w,k,padding", WINOGRAD_DX)
def test_winograd_conv_input_gradient_by_its_autodiff_equals_lax(h, w, k, padding):
  x = jax.random.normal(jax.random.key(0), (2, h, w, 32))
  kernel = jax.random.normal(jax.random.key(1), (k, k, 32, 16))
  dn = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, DN)
  plan = cpu.winograd_plan(x.shape, kernel.shape, (2, 2), padding)
  assert plan is not None
  ref = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
      x, k, (2, 2), padding, dimension_numbers=DN)
  got = lambda x, k: cpu.conv(x, k, (2, 2), padding, dimension_numbers=dn)  # noqa: E731
  y = ref(x, kernel)
  ct = jax.random.normal(jax.random.key(2), y.shape)
  dx = lambda fn: jax.grad(lambda x: jnp.sum(fn(x, kernel) * ct))  # noqa: E731
  want = dx(ref)(x)
  # F(4x4, txt) rounds to about 1e-5 of the gradient's scale (see the sub-pixel forward test).
  np.testing.assert_allclose(dx(got)(x), want, rtol=1e-5,
                             atol=max(1e-4, 2e-5 * float(jnp.abs(want).max())))
  # Products of the input gradient (the backward pass's less the kernel gradient's), per
  # pixel of dy and channel pair: (m+t-1)^2 per m x m tile of the s2d blocks' s*s*Cin
  # channels (25/4 for a 4x4 kernel in 4x4 tiles, 9 in 2x2 ones); the sub-pixel forward's 9
  # or the s2d matmul's k*k would fail.
  s, pads = plan
  bwd = lambda x, k, ct: cpu._conv_winograd_bwd(s, pads, (x, k), ct)  # noqa: E731
  kernel_grad = lambda x, k, ct: jax.vjp(  # noqa: E731
      lambda k: cpu._s2d_winograd(x, k, s, pads), k)[1](ct)
  count = lambda fn: _dot_multiplies(jax.make_jaxpr(fn)(x, kernel, ct).jaxpr)  # noqa: E731
  t, m = -(-k // s), _winograd_tile(*y.shape[1:3])
  assert m == (2 if h in (8, 20) else 4)
  assert count(bwd) - count(kernel_grad) == (
      int(np.prod(y.shape)) * 32 * (m + t - 1) ** 2 * s * s // m ** 2)


# Transposed convs whose gradients come from the Winograd adjoint (even input sizes, >= 16
# output channels; k4 and k5 at stride 2, k6 at stride 3): square and non-square; and two
# that do not (an odd size, 8 output channels).
WINOGRAD_TCONV = [(4, 4, 4, 16, 2, True), (4, 6, 4, 16, 2, True), (2, 4, 6, 18, 3, True),
                  (4, 4, 5, 16, 2, True), (4, 6, 5, 16, 2, True), (5, 4, 4, 16, 2, False),
                  (4, 4, 5, 8, 2, False)]


@pytest.mark.parametrize("chunks", [1, 2])
@pytest.mark.parametrize("in_h,in_w,k,cout,s,winograd", WINOGRAD_TCONV)
def test_transposed_conv_winograd_gradients_equal_lax(in_h, in_w, k, cout, s, winograd, chunks):
  out = (in_h * s, in_w * s)
  x, w = _inputs(in_h, in_w, k, cin=6, cout=cout, batch=4)
  assert (cpu._winograd_adjoint(x.shape, w.shape, (s, s), out) is not None) == winograd
  col2im = lambda x, w: cpu.conv_transpose_col2im(x, w, (s, s), out, chunks)  # noqa: E731
  ref = lambda x, w: lax_kernels.conv_transpose_lax(x, w, (s, s), out)  # noqa: E731
  np.testing.assert_allclose(col2im(x, w), ref(x, w), rtol=1e-5, atol=1e-4)
  ct = jax.random.normal(jax.random.key(7), ref(x, w).shape)
  grads = lambda fn: jax.grad(lambda x, w: jnp.sum(fn(x, w) * ct), argnums=(0, 1))(x, w)  # noqa: E731
  for g_ref, g_got in zip(grads(ref), grads(col2im)):
    np.testing.assert_allclose(g_got, g_ref, rtol=1e-4, atol=1e-3)


def test_winograd_with_hwoi_kernel_equals_hwio_and_keeps_its_gradient_in_hwoi():
  # The transposed conv's adjoint takes its kernel as HWOI (`out_in`): same conv, and the
  # kernel gradient arrives in HWOI order with no transpose swapping the channel axes.
  x = jax.random.normal(jax.random.key(0), (2, 8, 6, 16))
  hwoi = jax.random.normal(jax.random.key(1), (4, 4, 12, 16))
  pads = ((1, 1), (1, 1))
  hwio = lambda x, k: cpu._s2d_winograd(x, k.transpose(0, 1, 3, 2), 2, pads)  # noqa: E731
  oi = lambda x, k: cpu._s2d_winograd(x, k, 2, pads, out_in=True)  # noqa: E731
  np.testing.assert_allclose(oi(x, hwoi), hwio(x, hwoi), rtol=1e-5, atol=1e-5)
  ct = jax.random.normal(jax.random.key(2), oi(x, hwoi).shape)
  grad = lambda fn: jax.grad(lambda k: jnp.sum(fn(x, k) * ct))  # noqa: E731
  np.testing.assert_allclose(grad(oi)(hwoi), grad(hwio)(hwoi), rtol=1e-4, atol=1e-4)

  def channel_swaps(jaxpr):
    perms = [e.params["permutation"] for e in _equations(jaxpr) if e.primitive.name == "transpose"]
    return sum(perm[-2:] == (len(perm) - 1, len(perm) - 2) for perm in perms)
  assert channel_swaps(jax.make_jaxpr(grad(oi))(hwoi).jaxpr) == 0
  assert channel_swaps(jax.make_jaxpr(grad(hwio))(hwoi).jaxpr) > 0
  # The transposed conv's backward pass through its adjoint: no channel swap either.
  xt, w = _inputs(4, 4, 4, cin=16, cout=16, batch=2)
  dy = jax.random.normal(jax.random.key(3), (2, 8, 8, 16))
  back = jax.make_jaxpr(lambda x, w, dy: cpu._backward(x, w, dy, (2, 2), (8, 8)))(xt, w, dy)
  assert channel_swaps(back.jaxpr) == 0


@pytest.mark.parametrize("key", sorted(cpu._WINOGRAD))
def test_winograd_matrices_compute_the_correlation_exactly(key):
  # y_i = sum_k d_{i+k} g_k for i < m, from A^T [(G g) * (B^T d)], in float64.
  m, t = key
  f = {name: np.asarray(matrix, np.float64) for name, matrix in cpu._WINOGRAD[key].items()}
  assert f["BT"].shape == (m + t - 1, m + t - 1) and f["G"].shape == (m + t - 1, t)
  assert f["AT"].shape == (m, m + t - 1)
  rng = np.random.default_rng(0)
  for _ in range(3):
    d, g = rng.standard_normal(m + t - 1), rng.standard_normal(t)
    want = np.array([d[i:i + t] @ g for i in range(m)])
    np.testing.assert_allclose(f["AT"] @ ((f["G"] @ g) * (f["BT"] @ d)), want, atol=1e-12)


@pytest.mark.parametrize("key", sorted(cpu._WINOGRAD))
def test_winograd_kernel_transform_is_the_matrix_on_both_tap_axes(key):
  g = cpu._WINOGRAD[key]["G"]
  w = jax.random.normal(jax.random.key(0), (key[1], key[1], 5, 3))
  got = lambda w: cpu._kernel_transform(w, g)  # noqa: E731
  dense = jnp.asarray(g, jnp.float32)
  ref = lambda w: jnp.einsum("pi,qj,ijab->pqab", dense, dense, w)  # noqa: E731
  np.testing.assert_allclose(got(w), ref(w), rtol=1e-6, atol=1e-6)
  ct = jax.random.normal(jax.random.key(1), ref(w).shape)
  np.testing.assert_allclose(jax.vjp(got, w)[1](ct)[0], jax.vjp(ref, w)[1](ct)[0],
                             rtol=1e-5, atol=1e-5)
  # One [p*p, t*t] x [t*t, A*B] product.
  jaxpr = jax.make_jaxpr(got)(w).jaxpr
  assert _dot_multiplies(jaxpr, kernel_transforms=True) == (key[0] + key[1] - 1) ** 2 * key[1] ** 2 * 15
  assert _dot_multiplies(jaxpr) == 0


@pytest.mark.parametrize("key,name", [((2, 2), "G"), ((2, 2), "AT"), ((2, 3), "AT"),
                                      ((4, 2), "G"), ((4, 2), "AT"), ((4, 3), "G"),
                                      ((4, 3), "AT")])
@pytest.mark.parametrize("axis", [0, 2])
def test_winograd_axis_transform_and_its_adjoint_are_the_matrix_and_its_transpose(key, name,
                                                                                  axis):
  # The kernel and output transforms, their gradient (the transposed matrix, as one stack of
  # combined slices: no pads, which autodiff's adjoint of the slices is) and the gradient's
  # own gradient (gradient penalties), against the dense matrix by tensordot.
  matrix = cpu._WINOGRAD[key][name]
  dense = jnp.asarray(matrix, jnp.float32)
  shape = [5, 3, 7]
  shape[axis] = len(matrix[0])
  x = jax.random.normal(jax.random.key(0), shape)
  fn = lambda x: cpu._winograd_transform(x, axis, matrix)  # noqa: E731
  ref = lambda x: jnp.moveaxis(jnp.tensordot(dense, x, axes=([1], [axis])), 0, axis)  # noqa: E731
  np.testing.assert_allclose(fn(x), ref(x), rtol=1e-6, atol=1e-6)
  g = jax.random.normal(jax.random.key(1), ref(x).shape)
  pullback = lambda g: jax.vjp(fn, x)[1](g)[0]  # noqa: E731
  np.testing.assert_allclose(pullback(g), jax.vjp(ref, x)[1](g)[0], rtol=1e-6, atol=1e-6)
  gradient = jax.make_jaxpr(pullback)(g).jaxpr
  assert "pad" not in {e.primitive.name for e in _equations(gradient)}
  h = jax.random.normal(jax.random.key(2), x.shape)
  np.testing.assert_allclose(jax.vjp(pullback, g)[1](h)[0], ref(h), rtol=1e-6, atol=1e-6)


# Transposed convs whose forward pass is the sub-pixel Winograd (5x5 at stride 2, >= 16 input
# channels, >= 32 output channels; 4x4 and 5x5 with 4x4 tiles from 16x16 inputs): even, odd
# (19 and 33 outputs: an odd number of outputs per phase, padded to whole tiles) and
# non-square sizes; and four that keep the col2im (a 4x4 kernel on a map too small for 4x4
# tiles, whose 3-offset window saves nothing with 2x2 tiles; 8 input channels; 16 output
# channels; stride 3).
SUBPIXEL_TCONV = [(4, 4, 8, 8, 5, 2, 16, 32, True), (5, 3, 10, 6, 5, 2, 16, 32, True),
                  (10, 10, 19, 19, 5, 2, 16, 32, True), (7, 6, 13, 12, 5, 2, 24, 40, True),
                  (16, 16, 32, 32, 5, 2, 16, 32, True), (17, 16, 33, 32, 5, 2, 16, 32, True),
                  (16, 20, 32, 40, 4, 2, 16, 32, True), (18, 17, 36, 34, 4, 2, 24, 40, True),
                  (4, 4, 8, 8, 4, 2, 16, 32, False), (4, 4, 8, 8, 5, 2, 8, 32, False),
                  (4, 4, 8, 8, 5, 2, 16, 16, False), (3, 4, 9, 12, 5, 3, 16, 32, False)]


@pytest.mark.parametrize("chunks", [1, 2])
@pytest.mark.parametrize("in_h,in_w,out_h,out_w,k,s,cin,cout,subpixel", SUBPIXEL_TCONV)
def test_transposed_conv_subpixel_winograd_forward_equals_lax(in_h, in_w, out_h, out_w, k, s,
                                                              cin, cout, subpixel, chunks):
  out = (out_h, out_w)
  x, w = _inputs(in_h, in_w, k, cin=cin, cout=cout, batch=4)
  plan = cpu.subpixel_plan(x.shape, w.shape, (s, s), out)
  assert (plan is not None) == subpixel
  ref = lambda x, w: lax_kernels.conv_transpose_lax(x, w, (s, s), out)  # noqa: E731
  got = lambda x, w: cpu.conv_transpose_col2im(x, w, (s, s), out, chunks)  # noqa: E731
  # F(4x4, 3x3) rounds to up to about 1e-5 of the output's scale (its transforms scale
  # values by up to 100; a direct sum's rounding is about 1e-7 of it); the rest as before.
  f4 = plan is not None and plan[3] == 4
  atol = max(1e-4, 2e-5 * float(jnp.abs(ref(x, w)).max())) if f4 else 1e-4
  np.testing.assert_allclose(got(x, w), ref(x, w), rtol=1e-5, atol=atol)
  np.testing.assert_allclose(cpu._forward(x, w, (s, s), out), ref(x, w), rtol=1e-5, atol=atol)
  # The phase kernels come from static slices: XLA:CPU fused a gather into the kernel
  # transform and repeated it per transformed tap (docs/performance.md).
  forward = jax.make_jaxpr(lambda x, w: cpu._forward(x, w, (s, s), out))(x, w).jaxpr
  assert "gather" not in {e.primitive.name for e in _equations(forward)}
  ct = jax.random.normal(jax.random.key(7), ref(x, w).shape)
  grads = lambda fn: jax.grad(lambda x, w: jnp.sum(fn(x, w) * ct), argnums=(0, 1))(x, w)  # noqa: E731
  for g_ref, g_got in zip(grads(ref), grads(got)):
    np.testing.assert_allclose(g_got, g_ref, rtol=1e-4, atol=1e-3)


# (in_h, in_w, kernel, cin, cout, adjoint forward): 4x4 and 5x5 kernels at stride 2 on maps
# of at most 4x4 (square and not; the 5x5 kernel with too few outputs for the sub-pixel
# forward), and two that stay the col2im (an 8x8 map, 8 output channels).
ADJOINT_TCONV = [(4, 4, 4, 8, 16, True), (2, 4, 4, 16, 24, True), (4, 4, 5, 8, 16, True),
                 (8, 8, 4, 8, 16, False), (4, 4, 4, 8, 8, False)]


@pytest.mark.parametrize("in_h,in_w,k,cin,cout,adjoint", ADJOINT_TCONV)
def test_transposed_conv_forward_by_the_adjoint_winograd_equals_lax(in_h, in_w, k, cin, cout,
                                                                    adjoint):
  out = (2 * in_h, 2 * in_w)
  x, w = _inputs(in_h, in_w, k, cin=cin, cout=cout, batch=4)
  plan = cpu.adjoint_forward_plan(x.shape, w.shape, (2, 2), out)
  assert (plan is not None) == adjoint
  ref = lambda x, w: lax_kernels.conv_transpose_lax(x, w, (2, 2), out)  # noqa: E731
  got = lambda x, w: cpu.conv_transpose(x, w, (2, 2), out)  # noqa: E731
  np.testing.assert_allclose(got(x, w), ref(x, w), rtol=1e-5, atol=1e-4)
  ct = jax.random.normal(jax.random.key(7), ref(x, w).shape)
  grads = lambda fn: jax.grad(lambda x, w: jnp.sum(fn(x, w) * ct), argnums=(0, 1))(x, w)  # noqa: E731
  for g_ref, g_got in zip(grads(ref), grads(got)):
    np.testing.assert_allclose(g_got, g_ref, rtol=1e-4, atol=1e-3)
  # Winograd's products: 9 (4x4 kernel) or 16 (5x5) per input pixel and channel pair on 2x2
  # tiles of the input, fewer than the col2im's k*k with its row gaps' zero rows.
  products = lambda fn: _dot_multiplies(jax.make_jaxpr(fn)(x, w).jaxpr)  # noqa: E731
  per_pixel = 9 if k == 4 else 16  # also (t + 1)^2, the Winograd products per 2x2 tile
  if adjoint:
    # The jaxpr holds C's forward pass at zeros too (the vjp's primal), with as many
    # products; XLA removes it: one batched dot is left in the compiled program.
    winograd = products(lambda x, w: cpu._forward(x, w, (2, 2), out)) // 2
    assert winograd == 4 * in_h * in_w * cin * cout * per_pixel
    assert winograd < products(lambda x, w: cpu._col2im_forward(x, w, (2, 2), out))
    hlo = jax.jit(lambda x, w: cpu._forward(x, w, (2, 2), out)).lower(x, w).compile().as_text()
    # (and the kernel transform's 2-D one, `cpu._kernel_transform`)
    assert len(re.findall(r"= f32\[\d+,\d+,\d+\]\{[\d,]+\} dot\(", hlo)) == 1
    assert cpu.tap_bytes(x.shape, w.shape, (2, 2), out, 4) == (
        per_pixel * 4 * -(-in_h // 2) * -(-in_w // 2) * (cin + 4 * cout) * 4)


# (input size, kernel, tile m, products per input pixel and channel pair: 4 phases x
# (m+2)^2 per m x m tile / m^2 pixels, against the col2im's k^2): dcgan128's layer shapes at
# batch 1 with fewer channels, and Radford's 4x4 kernel on a 16x16 map.
SUBPIXEL_PRODUCTS = [(8, 5, 2, 16), (32, 5, 4, 9), (16, 4, 4, 9)]


@pytest.mark.parametrize("size,k,m,per_pixel", SUBPIXEL_PRODUCTS)
def test_subpixel_winograd_multiplies_fewer_products_than_the_col2im(size, k, m, per_pixel):
  x, w = _inputs(size, size, k, cin=16, cout=32, batch=1)
  out = (2 * size, 2 * size)
  plan = cpu.subpixel_plan(x.shape, w.shape, (2, 2), out)
  assert plan == (3, -1, -1, m)

  products = lambda fn: _dot_multiplies(jax.make_jaxpr(fn)(x, w).jaxpr)  # noqa: E731
  got = products(lambda x, w: cpu._subpixel_winograd(x, w, (2, 2), out, plan))
  col2im = products(lambda x, w: cpu._col2im_forward(x, w, (2, 2), out))
  assert col2im == (size + 3) * size * 16 * k * k * 32  # the row-gap layout's 3 zero rows
  assert got == size * size * 16 * per_pixel * 32 < col2im
  tiles = (size // m) ** 2
  assert cpu.tap_bytes(x.shape, w.shape, (2, 2), out, 4) == (m + 2) ** 2 * tiles * (16 + 4 * 32) * 4


def test_discriminator_convs_take_the_cpu_path():
  mod = nn.Conv(7, (4, 4), (2, 2), padding="SAME", conv_general_dilated=kernels.select("auto").conv)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  variables = mod.init(jax.random.key(1), x)
  ref = nn.Conv(7, (4, 4), (2, 2), padding="SAME")
  np.testing.assert_allclose(mod.apply(variables, x), ref.apply(variables, x), rtol=1e-5, atol=1e-5)
  assert kernels.select("auto").conv is cpu.conv
  assert kernels.select("lax").conv is jax.lax.conv_general_dilated


def test_over_chunks_sums_and_concatenates_like_one_pass():
  a = jax.random.normal(jax.random.key(0), (6, 3, 2))
  b = jax.random.normal(jax.random.key(1), (6, 4))
  f = lambda a, b: (a.sum(0), b * 2.0, a[:, :1] + b[:, :1, None])  # noqa: E731
  for chunks in (1, 2, 3, 6):
    got = cpu.over_chunks(f, (a, b), chunks, summed=1)
    np.testing.assert_allclose(got[0], a.sum(0), rtol=1e-6)
    np.testing.assert_array_equal(got[1], b * 2.0)
    np.testing.assert_array_equal(got[2], a[:, :1] + b[:, :1, None])


def test_after_is_the_identity_for_every_cotangent_but_nan():
  x = jax.random.normal(jax.random.key(0), (3, 4))
  for v in (0.0, -2.5, 1e30, np.inf, -np.inf):
    np.testing.assert_array_equal(cpu.after(x, jnp.full((2, 2), v)), x)


BN_ACTS = [None, "relu", "leaky_relu", "tanh", "elu"]


def _bn_pair(act, x, axis_name=None):
  init = layers.norm_scale_init("dcgan")
  ref = nn.BatchNorm(use_running_average=False, momentum=0.9, scale_init=init, axis_name=axis_name)
  new = layers.BatchNorm(use_running_average=False, momentum=0.9, scale_init=init, act=act,
                         axis_name=axis_name)
  return ref, new, ref.init(jax.random.key(1), x), new.init(jax.random.key(1), x)


@pytest.mark.parametrize("act", BN_ACTS)
def test_batchnorm_equals_flax_in_value_statistics_and_gradient(act):
  # Forward values and statistics bit for bit; gradients to float32 rounding.
  x = jax.random.normal(jax.random.key(0), (8, 6, 5, 16)) * 3.0 + 1.0
  ct = jax.random.normal(jax.random.key(2), x.shape)
  ref, new, v_ref, v_new = _bn_pair(act, x)
  chex_equal = lambda a, b: jax.tree.all(jax.tree.map(lambda p, q: bool((p == q).all()), a, b))  # noqa: E731
  assert chex_equal(v_ref, v_new)
  f = layers.activation(act) if act else (lambda t: t)

  def loss(module, post):
    def fn(params, x):
      y, stats = module.apply({**v_ref, "params": params}, x, mutable=["batch_stats"])
      y = post(y)
      return jnp.sum(y * ct), (y, stats)
    return jax.jit(jax.value_and_grad(fn, (0, 1), has_aux=True))(v_ref["params"], x)

  (_, (y_ref, s_ref)), g_ref = loss(ref, f)
  (_, (y_new, s_new)), g_new = loss(new, lambda t: t)
  np.testing.assert_array_equal(y_new, y_ref)
  assert chex_equal(s_new, s_ref)
  for a, b in zip(jax.tree.leaves(g_new), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-5 * float(jnp.abs(b).max()))
  # Inference (running statistics) equals flax's too.
  y_ref = ref.clone(use_running_average=True).apply(v_ref, x)
  new_eval = layers.BatchNorm(use_running_average=True, scale_init=layers.norm_scale_init("dcgan"),
                              act=act)
  np.testing.assert_array_equal(new_eval.apply(v_ref, x), f(y_ref))


def test_batchnorm_backward_keeps_only_its_input():
  # Residuals of x's size the pullback holds: flax's BatchNorm + ReLU keeps several, the
  # fused one keeps x alone.
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 16))
  ref, new, v_ref, _ = _bn_pair("relu", x)
  flax_fn = lambda x: nn.relu(ref.apply(v_ref, x, mutable=["batch_stats"])[0])  # noqa: E731
  fused_fn = lambda x: new.apply(v_ref, x, mutable=["batch_stats"])[0]  # noqa: E731

  def big_residuals(fn):
    _, pullback = jax.vjp(fn, x)
    return sum(1 for r in jax.tree.leaves(pullback) if getattr(r, "size", 0) == x.size)

  assert big_residuals(fused_fn) == 1
  assert big_residuals(flax_fn) >= 2


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_batchnorm_backward_reduces_over_its_input_twice(act):
  # The backward pass's sums over x's size: the bias and scale gradients' (of g and of
  # g * (x - mean)); the input gradient's two sums are scale times them. The forward's two
  # (mean and mean of squares) are in the jaxpr as well: 6 in all when the input gradient
  # took its sums again.
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 16))
  _, new, v_new, _ = _bn_pair(act, x)
  fn = lambda x: new.apply(v_new, x, mutable=["batch_stats"])[0]  # noqa: E731
  grad = lambda x, ct: jax.vjp(fn, x)[1](ct)[0]  # noqa: E731
  jaxpr = jax.make_jaxpr(grad)(x, x).jaxpr
  big = [e for e in _equations(jaxpr) if e.primitive.name == "reduce_sum"
         and e.invars[0].aval.size == x.size]
  assert len(big) == 4, [str(e) for e in big]
