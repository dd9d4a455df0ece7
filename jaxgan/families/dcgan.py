"""The configurable DCGAN family: one generator and one discriminator that express the
hobby and paper DCGANs by configuration alone (configs/ has one file per architecture).

Generator: latent [+ class embedding] -> projection to a base map (Dense + reshape, or a
transposed conv from a 1x1 latent) -> [optional norm + act] -> hidden transposed convs
(norm, act, dropout) -> output transposed conv -> tanh. The base size is derived from the
image size by dividing through the strides (rounding up, as SAME convolutions do), and
each transposed conv produces exactly the size the mirrored discriminator conv consumed,
so odd and non-square sizes (150x150, 200x180) come out exactly.

Discriminator: strided SAME convs (norm, act, dropout) -> flatten -> Dense(1). It returns
one float32 logit per image; the sigmoid, if any, lives in the loss.

Class-conditional (`config.model.num_classes > 0`): G concatenates a learned embedding
of the class (as long as the latent) to z; D is a projection discriminator (Miyato and
Koyama 2018): logit = Dense(h) + <embed(y), h> on the flattened features h.

The family's fields are `config.model.generator.*` and `config.model.discriminator.*`
(`model_config` below documents each); `symmetric` sets the Keras-style symmetric recipe.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxgan import checks
from jaxgan import kernels
from jaxgan.sharding import DATA_AXIS
from jaxgan.families.base import GAN, Family
from jaxgan.nn import layers
from jaxgan.kernels.geometry import size_chain

Array = jax.Array


class Generator(nn.Module):
  """DCGAN generator. `__call__(z, labels, train)` maps [B, latent] to [B, H, W, C] in [-1, 1].

  Attributes:
    net: `config.model.generator` (frozen); its fields are documented in `model_config`.
  """
  net: Any
  image_size: tuple[int, int]
  channels: int = 3
  dtype: Any = jnp.float32
  upsample_impl: str = "auto"
  bn_axis_name: str | None = None
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: Array, labels: Array | None = None, train: bool = True) -> Array:
    # Sizes from the image back to the base map: the output layer undoes strides[-1] first.
    heights = size_chain(self.image_size[0], self.net.strides[::-1])
    widths = size_chain(self.image_size[1], self.net.strides[::-1])
    h0, w0, c0 = heights[-1], widths[-1], self.net.base_features
    kinit = layers.kernel_init(self.net.init)
    block = lambda x, layer, **kw: layers.block(  # noqa: E731
        x, layer, train=train, init=self.net.init, dtype=self.dtype,
        bn_axis_name=self.bn_axis_name, alpha=self.net.leaky_alpha, **kw)
    if self.num_classes:
      embedding = layers.class_embedding(self.num_classes, z.shape[-1], labels)
      z = jnp.concatenate([z, embedding], axis=-1)
    z = z.astype(self.dtype)
    if self.net.project == "dense":
      proj = layers.Dense(h0 * w0 * c0, use_bias=self.net.use_bias, kernel_init=kinit,
                          dtype=self.dtype, impl=self.upsample_impl)
    else:  # A transposed conv from a 1x1 latent to (h0, w0): a dense map with per-channel bias.
      proj = _LatentProjection((h0, w0), c0, self.net.use_bias, kinit, self.dtype)
    spectral = "spectral" if self.net.norm == "spectral" else "none"
    x = block(z, proj, norm=spectral, act=None).reshape(z.shape[0], h0, w0, c0)
    if self.net.project_norm_act:  # Spectral norm already wrapped the projection.
      x = block(x, lambda y: y, norm="none" if self.net.norm == "spectral" else self.net.norm,
                act=self.net.activation)
    n = len(self.net.features)
    for i, f in enumerate(self.net.features):
      up = layers.ConvTranspose(f, self.net.kernel_size, (self.net.strides[i],) * 2,
                                (heights[n - i], widths[n - i]), use_bias=self.net.use_bias,
                                kernel_init=kinit, dtype=self.dtype, impl=self.upsample_impl)
      x = block(x, up, norm=self.net.norm, act=self.net.activation, dropout=self.net.dropout)
    out = layers.ConvTranspose(self.channels, self.net.kernel_size, (self.net.strides[-1],) * 2,
                               tuple(self.image_size), use_bias=self.net.use_bias,
                               kernel_init=kinit, dtype=self.dtype, impl=self.upsample_impl)
    x = block(x, out, norm=spectral, act="tanh")
    return x.astype(jnp.float32)


class _LatentProjection(nn.Module):
  """Radford's first layer: ConvTranspose(k=base, VALID) on a 1x1 latent, as a matmul."""
  size: tuple[int, int]
  features: int
  use_bias: bool
  kernel_init: Any
  dtype: Any

  @nn.compact
  def __call__(self, z: Array) -> Array:
    kernel = self.param("kernel", self.kernel_init, (*self.size, z.shape[-1], self.features),
                        jnp.float32)
    # One [B, N] x [N, H*W*C] matmul, so that the kernel gradient is z^T dx (its rows move
    # back to HWNC in runs of C); XLA:CPU ran the einsum's gradient through a strided
    # transpose of dx (docs/performance.md).
    (h, w), n = self.size, z.shape[-1]
    flat = kernel.astype(self.dtype).transpose(2, 0, 1, 3).reshape(n, h * w * self.features)
    x = (z.astype(self.dtype) @ flat).reshape(z.shape[0], h, w, self.features)
    if self.use_bias:
      x = x + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
    return x.reshape(z.shape[0], -1)


class Discriminator(nn.Module):
  """DCGAN discriminator. `__call__(x, labels, train)` maps [B, H, W, C] to [B] float32 logits.

  Attributes:
    net: `config.model.discriminator` (frozen); its fields are documented in `model_config`.
  """
  net: Any
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None
  num_classes: int = 0
  upsample_impl: str = "auto"

  @nn.compact
  def __call__(self, x: Array, labels: Array | None = None, train: bool = True) -> Array:
    kinit = layers.kernel_init(self.net.init)
    x = x.astype(self.dtype)
    for i, (f, s) in enumerate(zip(self.net.features, self.net.strides)):
      conv = nn.Conv(f, (self.net.kernel_size,) * 2, (s, s), padding="SAME", use_bias=self.net.use_bias,
                     kernel_init=kinit, dtype=self.dtype,
                     conv_general_dilated=kernels.select(self.upsample_impl).conv)
      norm = self.net.norm if (i > 0 or self.net.first_layer_norm or self.net.norm == "spectral") else "none"
      x = layers.block(x, conv, train=train, norm=norm, act=self.net.activation,
                       alpha=self.net.leaky_alpha, dropout=self.net.dropout, init=self.net.init,
                       dtype=self.dtype, bn_axis_name=self.bn_axis_name)
    h = x.reshape(x.shape[0], -1)
    head = layers.Dense(1, use_bias=self.net.use_bias, kernel_init=kinit, dtype=self.dtype,
                        impl=self.upsample_impl)
    logits = layers.block(h, head, train=train,
                          norm="spectral" if self.net.norm == "spectral" else "none")[:, 0]
    if self.num_classes:  # The projection term <embed(y), h>.
      embedding = layers.class_embedding(self.num_classes, h.shape[-1], labels)
      logits = logits + jnp.sum(embedding * h, axis=-1)
    return logits.astype(jnp.float32)


# ---- the family: its fields, their validation, and construction ------------------------------

NORMS = ("batch", "spectral", "layer", "none")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "elu", "gelu")
INITS = ("dcgan", "xavier", "default")
PROJECTIONS = ("dense", "conv")


def base_size(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """The generator's base feature-map size for the configured image size."""
  strides = tuple(config.model.generator.strides)[::-1]  # the output layer is undone first
  h, w = config.data.image_size
  return size_chain(h, strides)[-1], size_chain(w, strides)[-1]


def symmetric(config: ml_collections.ConfigDict, *, depth: int, increment: int,
              kernel_size: int = 5, stride: int = 2, dropout: float = 0.0) -> None:
  """Sets a Keras-style symmetric DCGAN: D has `depth` convs of increment*(i+1) kernels.

  G mirrors D: it projects the latent to D's last feature map (size and channels) and
  upsamples through the same sizes in reverse, so any image size comes out exactly. The
  Keras recipe: BatchNorm + LeakyReLU in G (also after the projection), no norm in D,
  1 D + 1 G update per step, Adam 2e-4 for both.
  """
  feats = tuple(increment * (i + 1) for i in range(depth))
  d, g = config.model.discriminator, config.model.generator
  d.features, d.strides, d.kernel_size, d.dropout = feats, (stride,) * depth, kernel_size, dropout
  g.base_features = feats[-1]
  g.features = tuple(reversed(feats[:-1]))
  g.strides = (stride,) * depth
  g.kernel_size = kernel_size
  g.project, g.project_norm_act, g.activation = "dense", True, "leaky_relu"
  d.norm = "none"
  config.train.g_steps = 1
  config.optim.g_lr = config.optim.d_lr = 2e-4


class DCGAN(Family):
  """The DCGAN family (see the module docstring)."""
  name = "dcgan"

  def model_config(self) -> ml_collections.ConfigDict:
    """Defaults: the 128x128 hobby DCGAN (configs/dcgan128.py)."""
    m = ml_collections.ConfigDict()
    m.generator = g = ml_collections.ConfigDict()
    g.project = "dense"  # 'dense': Dense + reshape; 'conv': 1x1 latent -> base via a full transposed conv
    g.base_features = 256  # channels of the projected base feature map
    g.project_norm_act = False  # norm + activation after the projection
    g.features = (128, 64)  # channels of the hidden upsampling layers
    g.strides = (2, 2, 1)  # one per hidden layer plus one for the output layer
    g.kernel_size = 5  # transposed-conv kernel size
    g.norm = "batch"  # one of NORMS
    g.activation = "relu"  # one of ACTIVATIONS
    g.leaky_alpha = 0.2  # negative slope of leaky_relu
    g.dropout = 0.0  # dropout rate after each hidden layer
    g.init = "default"  # one of INITS
    g.use_bias = True  # biases in the (transposed) convolutions

    m.discriminator = d = ml_collections.ConfigDict()
    d.features = (64, 128)  # channels of D's conv layers
    d.strides = (4, 2)  # one per conv layer
    d.kernel_size = 5  # conv kernel size
    d.norm = "batch"  # one of NORMS
    d.first_layer_norm = True  # Radford's D has no norm on its first layer
    d.activation = "leaky_relu"  # one of ACTIVATIONS
    d.leaky_alpha = 0.2  # negative slope of leaky_relu
    d.dropout = 0.0  # dropout rate after each conv layer
    d.init = "default"  # one of INITS
    d.use_bias = True  # biases in the convolutions
    return m

  def validate(self, config: ml_collections.ConfigDict) -> None:
    fail, choice = checks.fail, checks.check_choice
    for net in ("generator", "discriminator"):
      choice(config, f"model.{net}.norm", NORMS)
      choice(config, f"model.{net}.activation", ACTIVATIONS)
      choice(config, f"model.{net}.init", INITS)
      dropout = config.model[net].dropout
      if not 0.0 <= dropout < 1.0:
        fail(f"model.{net}.dropout", dropout, "expected a rate in [0, 1)")
      if config.model[net].kernel_size < 1:
        fail(f"model.{net}.kernel_size", config.model[net].kernel_size, "expected >= 1")
    choice(config, "model.generator.project", PROJECTIONS)
    g, d = config.model.generator, config.model.discriminator
    if len(g.strides) != len(g.features) + 1:
      fail("model.generator.strides", tuple(g.strides),
           f"expected {len(g.features) + 1} strides: one per entry of model.generator.features "
           f"{tuple(g.features)} plus one for the output layer")
    if len(d.strides) != len(d.features):
      fail("model.discriminator.strides", tuple(d.strides),
           f"expected one stride per entry of model.discriminator.features {tuple(d.features)}")
    for field, strides in (("model.generator.strides", g.strides),
                           ("model.discriminator.strides", d.strides)):
      if any(s < 1 for s in strides):
        fail(field, tuple(strides), "expected strides >= 1")
    if g.project == "conv":
      # A 1x1 latent is projected to the base map by one transposed conv; every base size
      # works, but a base of more than 64x64 from a 1x1 input is almost certainly a mistake.
      base = base_size(config)
      if max(base) > 64:
        fail("data.image_size", tuple(config.data.image_size),
             f"model.generator.strides {tuple(g.strides)} leave a {base[0]}x{base[1]} base map "
             f"for the 1x1 latent projection; expected a base of at most 64x64 (add stride-2 "
             f"layers)")

  def batch_coupled_d(self, config: ml_collections.ConfigDict) -> tuple[str, Any] | None:
    """BatchNorm in D couples each sample's output to the whole batch."""
    norm = config.model.discriminator.norm
    return ("model.discriminator.norm", norm) if norm == "batch" else None

  def build(self, config: ml_collections.ConfigDict) -> GAN:
    """G and D of `config`. With `config.train.sync_batchnorm` BatchNorm statistics are
    averaged over the mesh's data axis in training mode (the step runs under shard_map);
    otherwise each device normalises by its own slice."""
    m, g, d = config.model, config.model.generator, config.model.discriminator
    dtype = jnp.dtype(m.dtype)
    bn_axis_name = DATA_AXIS if config.train.sync_batchnorm else None
    shared = dict(dtype=dtype, bn_axis_name=bn_axis_name, num_classes=m.num_classes,
                  upsample_impl=m.upsample_impl)
    gen = Generator(ml_collections.FrozenConfigDict(g), image_size=tuple(config.data.image_size),
                    channels=config.data.channels, **shared)
    disc = Discriminator(ml_collections.FrozenConfigDict(d), **shared)
    h, w = config.data.image_size
    return GAN(gen, disc, latent_dim=m.latent_dim, num_classes=m.num_classes,
               image_shape=(h, w, config.data.channels))
