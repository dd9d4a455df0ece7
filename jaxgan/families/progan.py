"""The ProGAN family: progressive growing of GANs (Karras et al. 2018, "Progressive
Growing of GANs for Improved Quality, Stability, and Variation").

G and D grow from 4x4 to `config.data.image_size` (a square power of two, 8 to 1024),
one resolution level at a time. Level l (resolution 4 * 2^l) is first faded in over
`model.fade_images` real images shown, then stabilised over `model.stable_images`; level 0
(4x4) is only stabilised, and the last level trains until `train.num_steps`. During a
fade, with alpha rising linearly from 0 to 1 in images shown,

    G(z)  = (1 - alpha) * upsample(toRGB_{l-1}(h_{l-1})) + alpha * toRGB_l(block_l(h_{l-1}))
    D(x)  = blocks_{<l}((1 - alpha) * fromRGB_{l-1}(avgpool(x)) + alpha * block_l(fromRGB_l(x)))
    reals = (1 - alpha) * upsample(avgpool(x)) + alpha * x

(the reals at the current resolution are the box-downsampled images, the paper's 2x2
averaging; the blend is the official code's `process_reals`). Upsampling is nearest
neighbour, downsampling 2x2 average pooling.

G: z [+ class embedding] -> pixel norm -> 4x4 "conv from 1x1" (a dense layer) -> LReLU ->
pixel norm -> conv3x3 -> LReLU -> pixel norm; each further level: upsample, two conv3x3
(LReLU, pixel norm); toRGB is a linear 1x1 conv (no tanh, as in the paper).
D: fromRGB 1x1 conv (LReLU); each level: conv3x3, conv3x3 (LReLU), avgpool; at 4x4:
minibatch standard deviation (one more feature map), conv3x3, a 4x4 dense layer, Dense(1).
Class-conditional (`model.num_classes > 0`): G concatenates a class embedding to z before
the pixel norm, D adds a projection term on its last features.

Equalized learning rate: every weight is initialised N(0, 1) and multiplied at run time by
its layer's He constant gain / sqrt(fan_in) (gain sqrt(2), 1 for toRGB and the last dense
layer; fan_in = kernel height * width * input channels, 16 * latent for G's first layer,
which is a 4x4 conv on a 1x1 input). Pixel norm: x / sqrt(mean over channels of x^2 +
1e-8). Minibatch stddev: the biased standard deviation of each feature over groups of
`mbstd_group` images (the largest divisor of the device batch up to that size; image i is in
group i mod (batch / group)), averaged over features and pixels, as one constant feature map.

All levels' parameters exist from the start (one state layout for the whole run); the
parameters of levels above the current one get zero gradients. The growth (`level`,
`alpha`, `images` shown) lives in the state's extra part, updated inside the step and
checkpointed; one program is compiled per resolution (`stages`), and the optimizers'
states restart at every new phase (`model.restart_optimizers`, as the official code's
`reset_opt_for_new_lod`). The loss is the config's (`configs/progan256.py`: WGAN-GP with
the drift term `train.drift`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgan import checks
from jaxgan import errors
from jaxgan.families.base import GAN, Family, Stage, apply
from jaxgan.nn import layers

Array = jax.Array
MAX_RESOLUTION = 1024
START_RESOLUTION = 4


# ---- layers ---------------------------------------------------------------------------------

def pixel_norm(x: Array, eps: float = 1e-8) -> Array:
  """x / sqrt(mean(x^2 over the last axis) + eps): pixelwise feature normalisation."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def group_size(batch: int, group: int) -> int:
  """The largest divisor of `batch` that is at most `group`."""
  return max(g for g in range(1, min(group, batch) + 1) if batch % g == 0)


def minibatch_stddev(x: Array, group: int) -> Array:
  """x [N, H, W, C] with one more channel: per group, the standard deviation of every
  feature over the group's images, averaged over features and pixels (Karras et al.)."""
  n, h, w, c = x.shape
  g = group_size(n, group)
  y = x.astype(jnp.float32).reshape(g, n // g, h, w, c)  # image i is in group i % (n // g)
  y = jnp.sqrt(jnp.mean(jnp.square(y - y.mean(axis=0)), axis=0) + 1e-8)  # [M, H, W, C]
  y = jnp.mean(y, axis=(1, 2, 3))  # [M]
  y = jnp.broadcast_to(jnp.tile(y, g)[:, None, None, None], (n, h, w, 1)).astype(x.dtype)
  return jnp.concatenate([x, y], axis=-1)


def upsample(x: Array) -> Array:
  """Nearest-neighbour 2x upsampling of [N, H, W, C]."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x: Array) -> Array:
  """2x2 average pooling of [N, H, W, C]."""
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def lerp(a: Array, b: Array, t: Array) -> Array:
  return a + (b - a) * jnp.asarray(t, a.dtype)


def he_scale(fan_in: int, gain: float = math.sqrt(2.0)) -> float:
  """The equalized-learning-rate constant of a layer: gain / sqrt(fan_in)."""
  return gain / math.sqrt(fan_in)


class EqualConv(nn.Module):
  """A SAME conv with an equalized learning rate: kernel N(0, 1) times he_scale at run time."""
  features: int
  kernel_size: int = 3
  gain: float = math.sqrt(2.0)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    w = (kernel * he_scale(k * k * x.shape[-1], self.gain)).astype(self.dtype)
    y = jax.lax.conv_general_dilated(x.astype(self.dtype), w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias.astype(self.dtype)


class EqualDense(nn.Module):
  """A dense layer with an equalized learning rate; `fan_in` overrides the input size
  (G's first layer is a 4x4 conv on a 1x1 input: fan_in = 16 * inputs)."""
  features: int
  gain: float = math.sqrt(2.0)
  fan_in: int | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel = self.param("kernel", nn.initializers.normal(1.0), (x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    w = (kernel * he_scale(self.fan_in or x.shape[-1], self.gain)).astype(self.dtype)
    return x.astype(self.dtype) @ w + bias.astype(self.dtype)


def features(net, level: int) -> int:
  """Channels of level `level` (0 = 4x4): min(fmap_base / 2^(level + 1), fmap_max)."""
  return int(min(net.fmap_base // 2 ** (level + 1), net.fmap_max))


# ---- networks -------------------------------------------------------------------------------

class Generator(nn.Module):
  """ProGAN generator at `level`: `__call__(z, labels, alpha, train)` -> [B, r, r, C],
  r = 4 * 2^level; `alpha` blends in the level's block (1: the block alone)."""
  net: Any  # config.model (frozen)
  level: int
  channels: int = 3
  num_classes: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: Array, labels: Array | None = None, alpha: Array | float = 1.0,
               train: bool = True) -> Array:
    del train
    act = lambda x: pixel_norm(nn.leaky_relu(x, self.net.leaky_alpha))  # noqa: E731
    if self.num_classes:
      z = jnp.concatenate([z, layers.class_embedding(self.num_classes, z.shape[-1], labels)], -1)
    x = pixel_norm(z.astype(jnp.float32)).astype(self.dtype)
    f0 = features(self.net, 0)
    x = EqualDense(16 * f0, gain=math.sqrt(2.0), fan_in=16 * x.shape[-1], dtype=self.dtype,
                   name="dense_4x4")(x).reshape(x.shape[0], 4, 4, f0)
    x = act(EqualConv(f0, 3, dtype=self.dtype, name="conv_4x4")(act(x)))
    # Every level's toRGB exists from the start: all are created (and called) at init.
    wanted = range(self.level + 1) if self.is_initializing() else (self.level - 1, self.level)
    to_rgb = {level: EqualConv(self.channels, 1, gain=1.0, dtype=self.dtype,
                               name=f"to_rgb_{level}") for level in wanted if level >= 0}
    prev = x
    for level in range(1, self.level + 1):
      if self.is_initializing():
        to_rgb[level - 1](x)
      prev, r = x, 4 * 2 ** level
      x = upsample(x)
      for i in range(2):
        x = act(EqualConv(features(self.net, level), 3, dtype=self.dtype,
                          name=f"conv{i}_{r}x{r}")(x))
    out = to_rgb[self.level](x)
    if self.level > 0:
      out = lerp(upsample(to_rgb[self.level - 1](prev)), out, alpha)
    return out.astype(jnp.float32)


class Discriminator(nn.Module):
  """ProGAN discriminator at `level`: `__call__(x [B, r, r, C], labels, alpha, train)` ->
  [B] logits; `alpha` blends in the level's block."""
  net: Any  # config.model (frozen)
  level: int
  num_classes: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, labels: Array | None = None, alpha: Array | float = 1.0,
               train: bool = True) -> Array:
    del train
    act = lambda h: nn.leaky_relu(h, self.net.leaky_alpha)  # noqa: E731
    # Every level's fromRGB exists from the start: all are created (and called) at init.
    wanted = range(self.level + 1) if self.is_initializing() else (self.level - 1, self.level)
    convs = {level: EqualConv(features(self.net, level), 1, dtype=self.dtype,
                              name=f"from_rgb_{level}") for level in wanted if level >= 0}
    from_rgb = lambda level, img: act(convs[level](img))  # noqa: E731
    x = x.astype(self.dtype)
    h = from_rgb(self.level, x)
    if self.is_initializing():
      small = x
      for level in range(self.level - 1, -1, -1):
        small = downsample(small)
        from_rgb(level, small)
    for level in range(self.level, 0, -1):
      r = 4 * 2 ** level
      h = act(EqualConv(features(self.net, level), 3, dtype=self.dtype, name=f"conv0_{r}x{r}")(h))
      h = act(EqualConv(features(self.net, level - 1), 3, dtype=self.dtype,
                        name=f"conv1_{r}x{r}")(h))
      h = downsample(h)
      if level == self.level:
        h = lerp(from_rgb(level - 1, downsample(x)), h, alpha)
    h = minibatch_stddev(h, self.net.mbstd_group)
    h = act(EqualConv(features(self.net, 0), 3, dtype=self.dtype, name="conv_4x4")(h))
    h = act(EqualDense(int(min(self.net.fmap_base, self.net.fmap_max)), dtype=self.dtype,
                       name="dense_4x4")(h.reshape(h.shape[0], -1)))
    logits = EqualDense(1, gain=1.0, dtype=self.dtype, name="out")(h)[:, 0].astype(jnp.float32)
    if self.num_classes:  # The projection term <embed(y), h>.
      emb = layers.class_embedding(self.num_classes, h.shape[-1], labels)
      logits = logits + jnp.sum(emb * h.astype(jnp.float32), axis=-1)
    return logits


# ---- the schedule ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Phase:
  """A fade or a stabilisation of one level.

  Attributes:
    level: the resolution level (0 = 4x4).
    fade: True while the level is faded in.
    start: its first step.
    steps: its length in steps (None: the last phase, until the end of training).
    batch_size: the global batch of one update.
    per_step: real images shown per step (batch_size * train.d_steps).
    start_images: real images shown before it.
    images: its nominal length in real images shown (model.fade_images or stable_images).
  """
  level: int
  fade: bool
  start: int
  steps: int | None
  batch_size: int
  per_step: int
  start_images: int
  images: int

  @property
  def resolution(self) -> int:
    return START_RESOLUTION * 2 ** self.level


def num_levels(config) -> int:
  """Resolution levels from 4x4 to config.data.image_size."""
  return int(round(math.log2(config.data.image_size[0] / START_RESOLUTION))) + 1


def phases(config) -> tuple[Phase, ...]:
  """The run's phases: stabilise 4x4, then fade in and stabilise each larger level.

  A phase of N images lasts ceil(N / images per step) steps, images per step being the
  level's batch size times train.d_steps; the last phase runs to the end of training."""
  m, d_steps = config.model, int(config.train.d_steps)
  out, step, shown = [], 0, 0
  levels = num_levels(config)
  for level in range(levels):
    batch = int(m.batch_sizes[level])
    for fade in ((False,) if level == 0 else (True, False)):
      last = level == levels - 1 and not fade
      length = int(m.fade_images if fade else m.stable_images)
      steps = None if last else -(-length // (batch * d_steps))
      out.append(Phase(level, fade, step, steps, batch, batch * d_steps, shown, length))
      if not last:
        step, shown = step + steps, shown + steps * batch * d_steps
  return tuple(out)


def schedule_steps(config) -> int:
  """Steps of the whole schedule: to the end of the last level's stable phase of
  model.stable_images images (configs set train.num_steps to it)."""
  last = phases(config)[-1]
  return last.start + -(-int(config.model.stable_images) // last.per_step)


def schedule_at(config_phases: tuple[Phase, ...], step: int) -> tuple[Phase, float, int]:
  """(the phase of step `step`, its fade alpha, the real images shown before it), on the
  host, as the step computes them: alpha = images shown in the fade / its images."""
  phase = [p for p in config_phases if p.start <= step][-1]
  shown = (step - phase.start) * phase.per_step
  alpha = min(np.float32(shown) / np.float32(phase.images), np.float32(1.0)) if phase.fade else 1.0
  return phase, float(alpha), phase.start_images + shown


# ---- the GAN --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProGANNetworks(GAN):
  """The ProGAN networks at `level`; the growth state (extra) supplies alpha."""
  level: int = 0

  def at(self, stage: Stage) -> ProGANNetworks:
    return dataclasses.replace(
        self, generator=self.generator.clone(level=stage.level),
        discriminator=self.discriminator.clone(level=stage.level),
        image_shape=stage.image_shape, level=stage.level)

  def generate(self, variables, z, labels=None, *, train, rng=None, extra=None):
    return apply(self.generator, variables, z, labels, train=train, rng=rng,
                 alpha=_extra_alpha(extra))

  def discriminate(self, variables, x, labels=None, *, train, rng=None, extra=None):
    return apply(self.discriminator, variables, x, labels, train=train, rng=rng,
                 alpha=_extra_alpha(extra))

  def describe(self, extra) -> str:
    r = START_RESOLUTION * 2 ** int(extra["level"])
    alpha = float(extra["alpha"])
    phase = f"fade-in {alpha:.3f}" if alpha < 1 else "stable"
    return f"{r}x{r} {phase}, {_count(int(extra['images']))} img"

  def reals(self, x, extra=None):
    """During a fade: (1 - alpha) * upsample(avgpool(x)) + alpha * x."""
    if self.level == 0:
      return x
    return lerp(upsample(downsample(x)), x, _extra_alpha(extra))


def _count(n: int) -> str:
  """1234 -> '1234', 123456 -> '123.5k', 12345678 -> '12.35M'."""
  if n < 10_000:
    return str(n)
  return f"{n / 1e3:.1f}k" if n < 1_000_000 else f"{n / 1e6:.2f}M"


def _extra_alpha(extra) -> Array | float:
  return 1.0 if extra is None else extra["alpha"]


class _Growth:
  """The growth state as arrays inside the step: extra_init, extra_update, restarts.

  extra = {'level': int32, 'alpha': float32, 'images': int32}: the schedule at state.step
  (the step about to run), so a checkpoint holds the phase and alpha it resumes in."""

  def __init__(self, config_phases: tuple[Phase, ...], restart: bool):
    p = self._phases = config_phases
    self._restart = restart
    self._starts = np.array([x.start for x in p], np.int32)
    self._levels = np.array([x.level for x in p], np.int32)
    self._fade = np.array([x.fade for x in p], bool)
    self._per_step = np.array([x.per_step for x in p], np.int32)
    self._start_images = np.array([x.start_images for x in p], np.int32)
    self._images = np.array([x.images for x in p], np.float32)

  def state(self, step: Array) -> dict[str, Array]:
    i = jnp.searchsorted(jnp.asarray(self._starts), step, side="right") - 1
    shown = (step - jnp.asarray(self._starts)[i]) * jnp.asarray(self._per_step)[i]
    fraction = jnp.minimum(shown.astype(jnp.float32) / jnp.asarray(self._images)[i], 1.0)
    return {"level": jnp.asarray(self._levels)[i],
            "alpha": jnp.where(jnp.asarray(self._fade)[i], fraction, 1.0).astype(jnp.float32),
            "images": (jnp.asarray(self._start_images)[i] + shown).astype(jnp.int32)}

  def init(self) -> dict[str, Array]:
    return self.state(jnp.zeros((), jnp.int32))

  def update(self, extra, step: Array) -> dict[str, Array]:
    del extra
    return self.state(step + 1)

  def check(self, extra, step: int) -> None:
    """ConfigError unless a restored growth state is this schedule's at `step`."""
    phase, alpha, shown = schedule_at(self._phases, step)
    level, images, got = int(extra["level"]), int(extra["images"]), float(extra["alpha"])
    if level != phase.level or images != shown or abs(got - alpha) > 1e-6:
      r = START_RESOLUTION * 2 ** level
      raise errors.ConfigError(
          f"the checkpoint of step {step} is at {r}x{r}, alpha {got:.4f}, after {images} "
          f"images shown, but this config's schedule puts step {step} at "
          f"{phase.resolution}x{phase.resolution}, alpha {alpha:.4f}, after {shown} images: "
          f"model.fade_images, model.stable_images, model.batch_sizes or train.d_steps "
          f"changed since the run began; resume with the run's config (WORKDIR/config.json)")

  def restarts(self, step: Array) -> Array:
    """True on the first step of every phase after the first (the optimizers restart)."""
    return jnp.any(step == jnp.asarray(self._starts[1:])) & self._restart


# ---- the family -----------------------------------------------------------------------------

class ProGAN(Family):
  """The ProGAN family (see the module docstring)."""
  name = "progan"

  def model_config(self) -> ml_collections.ConfigDict:
    """Defaults: the paper's networks and schedule (configs/progan256.py)."""
    m = ml_collections.ConfigDict()
    m.fmap_base = 8192  # channels of level l: min(fmap_base / 2^(l + 1), fmap_max)
    m.fmap_max = 512  # the most channels of any level
    m.leaky_alpha = 0.2  # negative slope of the leaky ReLUs in G and D
    m.mbstd_group = 4  # images per minibatch-stddev group (at most; a divisor of the batch)
    m.fade_images = 800_000  # real images shown while a level fades in
    m.stable_images = 800_000  # real images shown while a level is stabilised
    # Global batch per level (4x4, 8x8, ..., 1024x1024): the paper's sizes.
    m.batch_sizes = (16, 16, 16, 16, 16, 16, 14, 6, 3)
    m.restart_optimizers = True  # Adam states restart at every new phase (official code)
    return m

  def validate(self, config: ml_collections.ConfigDict) -> None:
    fail, m = checks.fail, config.model
    h, w = (int(s) for s in config.data.image_size)
    if h != w or h < 8 or h > MAX_RESOLUTION or h & (h - 1):
      fail("data.image_size", tuple(config.data.image_size),
           f"the progan family grows square images from 4x4 by doubling: expected (R, R) "
           f"with R a power of two from 8 to {MAX_RESOLUTION}")
    levels = num_levels(config)
    sizes = tuple(m.batch_sizes)
    if len(sizes) < levels or any(not isinstance(b, int) or b < 1 for b in sizes[:levels]):
      fail("model.batch_sizes", sizes, f"expected a positive batch size for each of the "
           f"{levels} levels 4x4..{h}x{h}")
    for field in ("fmap_base", "fmap_max", "mbstd_group", "fade_images", "stable_images"):
      checks.check_positive(config, f"model.{field}")
    if features(m, levels - 1) < 1:
      fail("model.fmap_base", m.fmap_base, f"leaves no channels at {h}x{h}; expected at "
           f"least 2^{levels} ({2 ** levels})")
    if m.upsample_impl != "auto":
      fail("model.upsample_impl", m.upsample_impl, "the progan family has no transposed "
           "convolutions (it upsamples by repetition); expected 'auto'")
    if config.train.batch_size != sizes[levels - 1]:
      fail("train.batch_size", config.train.batch_size,
           f"the progan family takes its batch sizes from model.batch_sizes; expected "
           f"train.batch_size = the last level's, {sizes[levels - 1]}")

    reached = phases(config)[-1].start
    if config.train.num_steps <= reached:
      logging.warning(
          "train.num_steps=%d ends before the last level (%dx%d) is stabilised from step %d; "
          "the whole schedule takes %d steps (progan.schedule_steps)", config.train.num_steps,
          h, h, reached, schedule_steps(config))

  def build(self, config: ml_collections.ConfigDict) -> ProGANNetworks:
    """The networks at the final resolution (all levels' parameters), with the growth."""
    m = config.model
    net = ml_collections.FrozenConfigDict(m)
    dtype, levels, c = jnp.dtype(m.dtype), num_levels(config), int(config.data.channels)
    growth = _Growth(phases(config), bool(m.restart_optimizers))
    r = int(config.data.image_size[0])
    return ProGANNetworks(
        Generator(net, levels - 1, channels=c, num_classes=m.num_classes, dtype=dtype),
        Discriminator(net, levels - 1, num_classes=m.num_classes, dtype=dtype),
        latent_dim=m.latent_dim, num_classes=m.num_classes, image_shape=(r, r, c),
        extra_init=growth.init, extra_update=growth.update,
        restart_optimizers=growth.restarts, check_extra=growth.check, level=levels - 1)

  def stages(self, config: ml_collections.ConfigDict) -> tuple[Stage, ...]:
    """One stage per level, from the start of its fade to the start of the next level."""
    c = int(config.data.channels)
    return tuple(Stage(p.start, p.batch_size, (p.resolution, p.resolution, c), p.level,
                       f"{p.resolution}x{p.resolution}")
                 for p in phases(config) if p.fade or p.level == 0)
