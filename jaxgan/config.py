"""The config schema: every field jaxgan reads, with its default, and its validation.

Config files in `configs/` start from `default_config()` and override fields, so a
field's meaning is documented once, here. `validate(config)` runs before anything is
compiled and raises `ConfigError` naming the field, the bad value and what is allowed.
"""

from __future__ import annotations

import os
from typing import Sequence

import ml_collections

NORMS = ("batch", "spectral", "layer", "none")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "elu", "gelu")
INITS = ("dcgan", "xavier", "default")
DTYPES = ("float32", "bfloat16")
PROJECTIONS = ("dense", "conv")
UPSAMPLE_IMPLS = ("auto", "col2im", "lax")
RESIZE_POLICIES = ("center_crop", "random_crop", "resize")


class ConfigError(ValueError):
  """An invalid config value, raised before any compilation."""


def default_config() -> ml_collections.ConfigDict:
  """The full schema with defaults (the 128x128 hobby DCGAN, see configs/dcgan128.py)."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  # ---- data (jaxgan/input_pipeline.py) ----
  c.data = d = ml_collections.ConfigDict()
  # 'builtin:NAME', 'folder:PATH' or 'tfds:NAME[:SPLIT]'.
  d.source = "builtin:shapes"
  d.image_size = (128, 128)  # (height, width)
  d.channels = 3  # 3 = RGB, 1 = grayscale
  d.resize = "center_crop"  # one of RESIZE_POLICIES
  d.background = (255, 255, 255)  # RGBA images are composited onto this colour
  d.flip = True  # random horizontal flip
  d.shuffle_buffer = 10_000
  d.cache = "memory"  # 'memory', 'none' or a directory path for an on-disk cache
  d.tfds_data_dir = ""  # '' = TFDS default
  d.tfds_image_key = ""  # '' = find the image feature automatically
  d.builtin_size = 2048  # number of examples of a builtin dataset
  d.prefetch = 2  # batches placed on the devices ahead of the step

  # ---- model (jaxgan/models) ----
  c.model = m = ml_collections.ConfigDict()
  m.name = "dcgan"
  m.latent_dim = 100
  m.dtype = "float32"  # computation dtype; parameters stay float32
  m.upsample_impl = "auto"  # how transposed convolutions are computed, see models/layers.py

  m.generator = g = ml_collections.ConfigDict()
  g.project = "dense"  # 'dense': Dense + reshape; 'conv': 1x1 latent -> base via a full transposed conv
  g.base_features = 256  # channels of the projected base feature map
  g.project_norm_act = False  # norm + activation after the projection
  g.features = (128, 64)  # channels of the hidden upsampling layers
  g.strides = (2, 2, 1)  # one per hidden layer plus one for the output layer
  g.kernel_size = 5
  g.norm = "batch"
  g.activation = "relu"
  g.leaky_alpha = 0.2
  g.dropout = 0.0
  g.init = "default"
  g.use_bias = True

  m.discriminator = dd = ml_collections.ConfigDict()
  dd.features = (64, 128)
  dd.strides = (4, 2)
  dd.kernel_size = 5
  dd.norm = "batch"
  dd.first_layer_norm = True  # Radford's D has no norm on its first layer
  dd.activation = "leaky_relu"
  dd.leaky_alpha = 0.2
  dd.dropout = 0.0
  dd.init = "default"
  dd.use_bias = True

  # ---- training (jaxgan/steps.py, jaxgan/train.py) ----
  c.train = t = ml_collections.ConfigDict()
  t.batch_size = 32  # global batch of one D or G update
  t.num_steps = 20_000  # one step = d_steps D updates + g_steps G updates
  t.d_steps = 1
  t.g_steps = 2
  t.loss = "non_saturating"  # see jaxgan/losses.py
  t.label_smoothing = 0.0  # one-sided: real target 1 - label_smoothing (non_saturating, minimax)
  t.penalty = "none"  # 'none', 'wgan_gp', 'r1', 'dragan'; see jaxgan/regularizers.py
  t.penalty_weight = 10.0
  t.allow_batchnorm_with_penalty = False
  t.ema_decay = 0.0  # 0 disables the EMA generator
  t.sync_batchnorm = False  # multi-device: BatchNorm statistics over the whole global batch

  c.optim = o = ml_collections.ConfigDict()
  o.g_lr = 1e-4
  o.d_lr = 2e-4
  o.b1 = 0.5
  o.b2 = 0.999
  o.eps = 1e-7  # Keras' Adam epsilon (the hobby project is Keras)

  # ---- the loop (jaxgan/train.py) ----
  c.log_every = 50
  c.log_every_secs = 60.0  # also log when this long has passed since the last log; 0: off
  c.sample_every = 500
  c.checkpoint_every = 1000
  c.max_to_keep = 3
  c.num_samples = 64  # images in a sample grid
  return c


def _fail(field: str, value, allowed: str) -> None:
  raise ConfigError(f"config.{field}={value!r} is invalid: {allowed}")


def _check_choice(config, field: str, choices: Sequence[str]) -> None:
  value = _get(config, field)
  if value not in choices:
    _fail(field, value, f"expected one of {', '.join(map(repr, choices))}")


def _get(config, field: str):
  for part in field.split("."):
    config = config[part]
  return config


def _check_positive(config, field: str) -> None:
  value = _get(config, field)
  if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
    _fail(field, value, "expected a positive number")


def conv_out_size(size: int, stride: int) -> int:
  """Output size of a SAME-padded strided convolution."""
  return -(-size // stride)


def size_chain(size: int, strides: Sequence[int]) -> list[int]:
  """Sizes after each SAME-padded conv of `strides`, starting with `size`."""
  sizes = [size]
  for s in strides:
    sizes.append(conv_out_size(sizes[-1], s))
  return sizes


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for the first invalid field; returns None if all are valid."""
  from jaxgan import losses, regularizers  # pylint: disable=g-import-not-at-top

  _check_choice(config, "model.dtype", DTYPES)
  _check_choice(config, "model.upsample_impl", UPSAMPLE_IMPLS)
  _check_positive(config, "model.latent_dim")
  for net in ("generator", "discriminator"):
    _check_choice(config, f"model.{net}.norm", NORMS)
    _check_choice(config, f"model.{net}.activation", ACTIVATIONS)
    _check_choice(config, f"model.{net}.init", INITS)
    dropout = config.model[net].dropout
    if not 0.0 <= dropout < 1.0:
      _fail(f"model.{net}.dropout", dropout, "expected a rate in [0, 1)")
    if config.model[net].kernel_size < 1:
      _fail(f"model.{net}.kernel_size", config.model[net].kernel_size, "expected >= 1")
  _check_choice(config, "model.generator.project", PROJECTIONS)
  g, d = config.model.generator, config.model.discriminator
  if len(g.strides) != len(g.features) + 1:
    _fail("model.generator.strides", tuple(g.strides),
          f"expected {len(g.features) + 1} strides: one per entry of model.generator.features "
          f"{tuple(g.features)} plus one for the output layer")
  if len(d.strides) != len(d.features):
    _fail("model.discriminator.strides", tuple(d.strides),
          f"expected one stride per entry of model.discriminator.features {tuple(d.features)}")
  for field, strides in (("model.generator.strides", g.strides),
                         ("model.discriminator.strides", d.strides)):
    if any(s < 1 for s in strides):
      _fail(field, tuple(strides), "expected strides >= 1")

  size = config.data.image_size
  if len(size) != 2 or any(int(s) < 1 for s in size):
    _fail("data.image_size", tuple(size), "expected (height, width), both positive")
  if g.project == "conv":
    # A 1x1 latent is projected to the base map by one transposed conv; every base size works,
    # but a base of more than 64x64 from a 1x1 input is almost certainly a mistake in strides.
    base = base_size(config)
    if max(base) > 64:
      _fail("data.image_size", tuple(size),
            f"model.generator.strides {tuple(g.strides)} leave a {base[0]}x{base[1]} base map "
            f"for the 1x1 latent projection; expected a base of at most 64x64 (add stride-2 layers)")
  if config.data.channels not in (1, 3):
    _fail("data.channels", config.data.channels, "expected 1 (grayscale) or 3 (RGB)")
  _check_choice(config, "data.resize", RESIZE_POLICIES)
  source = config.data.source
  if not any(source.startswith(p) for p in ("builtin:", "folder:", "tfds:")):
    _fail("data.source", source, "expected 'builtin:NAME', 'folder:PATH' or 'tfds:NAME[:SPLIT]'")
  if source.startswith("folder:"):
    path = os.path.abspath(os.path.expanduser(source[len("folder:"):]))
    if not os.path.isdir(path):
      what = "is not a directory" if os.path.exists(path) else "does not exist"
      _fail("data.source", source, f"{path} {what}; expected 'folder:PATH' with PATH a "
            f"directory of images")

  _check_choice(config, "train.loss", tuple(losses.LOSSES))
  _check_choice(config, "train.penalty", tuple(regularizers.PENALTIES))
  for field in ("train.batch_size", "train.num_steps", "train.d_steps", "train.g_steps",
                "optim.g_lr", "optim.d_lr", "log_every", "sample_every", "checkpoint_every",
                "max_to_keep", "num_samples"):
    _check_positive(config, field)
  if not config.log_every_secs >= 0:
    _fail("log_every_secs", config.log_every_secs, "expected seconds >= 0 (0: log by steps only)")
  if not 0.0 <= config.train.label_smoothing < 1.0:
    _fail("train.label_smoothing", config.train.label_smoothing, "expected a value in [0, 1)")
  if not 0.0 <= config.train.ema_decay < 1.0:
    _fail("train.ema_decay", config.train.ema_decay, "expected a decay in [0, 1); 0 disables EMA")
  if config.train.penalty != "none" and config.train.penalty_weight <= 0:
    _fail("train.penalty_weight", config.train.penalty_weight, "expected a positive weight")
  if (config.train.penalty in regularizers.PER_SAMPLE_PENALTIES and d.norm == "batch"
      and not config.train.allow_batchnorm_with_penalty):
    _fail("model.discriminator.norm", d.norm,
          f"BatchNorm in the discriminator makes each sample's output depend on the whole batch, "
          f"so the per-sample gradient penalty train.penalty={config.train.penalty!r} no longer "
          f"penalises per-sample gradients (the WGAN-GP paper forbids it). Use 'layer', "
          f"'spectral' or 'none', or set train.allow_batchnorm_with_penalty=True to proceed anyway")


def symmetric_dcgan(config: ml_collections.ConfigDict, *, depth: int, increment: int,
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


def base_size(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """The generator's base feature-map size for the configured image size."""
  strides = tuple(config.model.generator.strides)[::-1]  # the output layer is undone first
  h, w = config.data.image_size
  return size_chain(h, strides)[-1], size_chain(w, strides)[-1]


def images_per_step(config: ml_collections.ConfigDict) -> int:
  """Real images consumed by one training step (one batch per D update)."""
  return config.train.batch_size * config.train.d_steps

