"""The six DCGAN architectures by config: output shapes and exact parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import families
from jaxgan.training import assemble
from tests.helpers import load_config, tiny_config


def conv(k, cin, cout, bias=True):
  return k * k * cin * cout + (cout if bias else 0)


def dense(n_in, n_out, bias=True):
  return n_in * n_out + (n_out if bias else 0)


def bn(c):
  return 2 * c


def convs_bn(k, chans, bias=True, norm=True):
  return sum(conv(k, a, b, bias) + (bn(b) if norm else 0) for a, b in zip(chans, chans[1:]))


def symmetric(h, w, depth, inc, latent=100):
  """Keras-style symmetric DCGAN: D 3 -> inc -> ... -> depth*inc, G mirrors it."""
  d_ch = [3] + [inc * (i + 1) for i in range(depth)]
  g_ch = d_ch[::-1]
  g = (dense(latent, h * w * g_ch[0]) + bn(g_ch[0]) + convs_bn(5, g_ch[:-1])
       + conv(5, g_ch[-2], 3))
  d = convs_bn(5, d_ch, norm=False) + dense(h * w * d_ch[-1], 1)
  return g, d


EXPECTED = {
    # name: (config arg, image shape, G params, D params)
    # 1. The hobby 128x128 project; the same counts as ../shared/bench/torch_dcgan.py's G128/D128.
    "dcgan128": (None, (128, 128, 3),
                 dense(100, 32 * 32 * 256) + convs_bn(5, [256, 128, 64]) + conv(5, 64, 3),
                 convs_bn(5, [3, 64, 128]) + dense(16 * 16 * 128, 1)),
    # 2. Keras symmetric: 150 -> 75 -> 38 -> 19 -> 10; 200x180 -> ... -> 7x6 (depth 5), 4x3 (6).
    "keras150": (None, (150, 150, 3), *symmetric(10, 10, 4, 32)),
    "faces200x180": (None, (200, 180, 3), *symmetric(7, 6, 5, 32)),
    "faces200x180:6": ("6", (200, 180, 3), *symmetric(4, 3, 6, 32)),
    # 3. Pokemon 64x64.
    "pokemon64": (None, (64, 64, 3),
                  dense(100, 4 * 4 * 512) + bn(512) + convs_bn(5, [512, 256, 128, 64])
                  + conv(5, 64, 3),
                  convs_bn(5, [3, 64, 128, 256, 512]) + dense(4 * 4 * 512, 1)),
    # 4. Radford et al.: the well-known PyTorch DCGAN counts (nz=100, ngf=ndf=64).
    "radford64": (None, (64, 64, 3), 3_576_704, 2_765_568),
    # The same layout at 32x32 (torch_dcgan.py --model 32): G 100 -> 512 -> 256 -> 128 -> 3.
    "radford32": (None, (32, 32, 3),
                  4 * 4 * 100 * 512 + bn(512) + convs_bn(4, [512, 256, 128], bias=False)
                  + conv(4, 128, 3, bias=False),
                  conv(4, 3, 128, bias=False) + convs_bn(4, [128, 256, 512], bias=False)
                  + dense(4 * 4 * 512, 1, bias=False)),
    # 5. 512x512 from a 1x1 latent of 256.
    "dcgan512": (None, (512, 512, 3),
                 4 * 4 * 256 * 1024 + bn(1024)
                 + convs_bn(4, [1024, 512, 256, 128, 64, 32, 16], bias=False)
                 + conv(4, 16, 3, bias=False),
                 conv(4, 3, 16, bias=False)
                 + convs_bn(4, [16, 32, 64, 128, 256, 512, 1024], bias=False)
                 + dense(4 * 4 * 1024, 1, bias=False)),
    # 6. Latent 150, width 64, five blocks; spectral norm in D adds state, not parameters.
    "sngan128": (None, (128, 128, 3),
                 dense(150, 4 * 4 * 1024) + bn(1024) + convs_bn(4, [1024, 512, 256, 128, 64])
                 + conv(4, 64, 3),
                 convs_bn(4, [3, 64, 128, 256, 512, 1024], norm=False) + dense(4 * 4 * 1024, 1)),
}


def count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_architecture_shapes_and_parameter_counts(name):
  arg, shape, g_params, d_params = EXPECTED[name]
  config = load_config(name.split(":")[0], arg)
  assemble.validate(config)
  gan = families.build(config)
  z = jax.ShapeDtypeStruct((2, config.model.latent_dim), jnp.float32)
  g_vars = jax.eval_shape(lambda z: gan.generator.init(jax.random.key(0), z, train=False), z)
  images = jax.eval_shape(lambda v, z: gan.generator.apply(v, z, train=False), g_vars, z)
  assert images.shape == (2, *shape) and images.dtype == jnp.float32
  d_vars = jax.eval_shape(lambda x: gan.discriminator.init(jax.random.key(0), x, train=False), images)
  logits = jax.eval_shape(lambda v, x: gan.discriminator.apply(v, x, train=False), d_vars, images)
  assert logits.shape == (2,)
  assert (count(g_vars["params"]), count(d_vars["params"])) == (g_params, d_params)


def test_sngan_discriminator_uses_spectral_norm_and_dropout():
  config = load_config("sngan128")
  gan = families.build(config)
  x = jnp.zeros((2, 128, 128, 3))
  d_vars = jax.eval_shape(lambda x: gan.discriminator.init(jax.random.key(0), x, train=False), x)
  assert all(k.startswith("SpectralNorm") for k in d_vars["batch_stats"])
  assert len(d_vars["batch_stats"]) == 6  # five convs and the head


def test_generator_ends_in_tanh_and_discriminator_dropout_is_random():
  config = tiny_config(**{"model.discriminator.dropout": 0.5})
  gan = families.build(config)
  g_vars, d_vars = gan.init(jax.random.key(0))
  z = 10.0 * jax.random.normal(jax.random.key(1), (4, 8))
  images = gan.generator.apply(g_vars, z, train=False)
  assert float(jnp.abs(images).max()) <= 1.0
  run = lambda k: gan.discriminator.apply(d_vars, images, train=True, rngs={"dropout": k},
                                      mutable=["batch_stats"])[0]
  assert not jnp.allclose(run(jax.random.key(2)), run(jax.random.key(3)))
  assert jnp.array_equal(gan.discriminator.apply(d_vars, images, train=False),
                         gan.discriminator.apply(d_vars, images, train=False))


@pytest.mark.parametrize("norm", ["batch", "spectral", "layer", "none"])
@pytest.mark.parametrize("channels", [1, 3])
def test_norms_and_channels(norm, channels):
  config = tiny_config(**{"model.generator.norm": norm, "model.discriminator.norm": norm,
                          "data.channels": channels})
  gan = families.build(config)
  g_vars, d_vars = gan.init(jax.random.key(0))
  images, _ = gan.generator.apply(g_vars, jnp.ones((3, 8)), train=True, mutable=["batch_stats"])
  assert images.shape == (3, 16, 16, channels)
  logits, _ = gan.discriminator.apply(d_vars, images, train=True, mutable=["batch_stats"])
  assert logits.shape == (3,) and bool(jnp.all(jnp.isfinite(logits)))
  has_stats = norm in ("batch", "spectral")
  assert bool(g_vars.get("batch_stats")) == has_stats


def test_bfloat16_computes_in_bfloat16_with_float32_params():
  config = tiny_config(**{"model.dtype": "bfloat16"})
  gan = families.build(config)
  g_vars, _ = gan.init(jax.random.key(0))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(g_vars["params"]))
  jaxpr = jax.make_jaxpr(lambda v: gan.generator.apply(v, jnp.ones((2, 8)), train=False))(g_vars)
  assert "bf16" in str(jaxpr)
  images = gan.generator.apply(g_vars, jnp.ones((2, 8)), train=False)
  assert images.dtype == jnp.float32  # outputs are cast back for the losses


def test_init_schemes():
  stds = {}
  for init in ("dcgan", "xavier", "default"):
    config = tiny_config(**{"model.generator.init": init})
    gan = families.build(config)
    g_vars, _ = gan.init(jax.random.key(0))
    stds[init] = float(jnp.std(g_vars["params"]["ConvTranspose_0"]["kernel"]))
  assert abs(stds["dcgan"] - 0.02) < 0.004
  fan_in, fan_out = 3 * 3 * 16, 3 * 3 * 8
  assert abs(stds["xavier"] - (2 / (fan_in + fan_out)) ** 0.5) < 0.01
  assert abs(stds["default"] - (1 / fan_in) ** 0.5) < 0.01


def test_latent_projection_is_the_einsum_of_a_1x1_conv_transpose_in_value_and_gradients():
  # Radford's first layer (a k x k VALID transposed conv of the 1 x 1 latent) is one matmul
  # against the HWNC kernel: y[b, h, w, c] = sum_n z[b, n] kernel[h, w, n, c].
  from jaxgan.families import dcgan  # pylint: disable=g-import-not-at-top
  layer = dcgan._LatentProjection(size=(4, 3), features=8, use_bias=True,
                                  kernel_init=jax.nn.initializers.normal(1.0), dtype=jnp.float32)
  z = jax.random.normal(jax.random.key(0), (5, 7))
  params = layer.init(jax.random.key(1), z)
  params = jax.tree.map(lambda p: p + 0.5, params)  # a nonzero bias
  kernel, bias = params["params"]["kernel"], params["params"]["bias"]
  assert kernel.shape == (4, 3, 7, 8)

  def ref(params, z):
    p = params["params"]
    return (jnp.einsum("bn,hwnc->bhwc", z, p["kernel"]) + p["bias"]).reshape(5, -1)
  np.testing.assert_allclose(layer.apply(params, z), ref(params, z), rtol=1e-5, atol=1e-5)
  ct = jax.random.normal(jax.random.key(2), (5, 4 * 3 * 8))
  grads = lambda fn: jax.grad(lambda p, z: jnp.sum(fn(p, z) * ct), argnums=(0, 1))(params, z)  # noqa: E731
  got, want = grads(layer.apply), grads(ref)
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)
  assert kernel.dtype == bias.dtype == jnp.float32
