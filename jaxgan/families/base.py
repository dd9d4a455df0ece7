"""The model-family interface: what a family provides and what the step, the loop and
sampling call.

A family (`Family`) owns its config fields (`model_config`), their validation (`validate`)
and the construction of its networks (`build`). `build` returns a `GAN`: the generator and
discriminator modules plus the three functions everything else calls,

    g_vars, d_vars = gan.init(rng)
    images, g_collections = gan.generate(g_vars, z, labels, train=True, rng=key)
    logits, d_collections = gan.discriminate(d_vars, x, labels, train=True, rng=key)

`variables` are Flax variables, {'params': ..., COLLECTION: ...}: every collection other
than 'params' (BatchNorm statistics, spectral-norm vectors, anything a family's modules
declare) is mutable in training mode and returned updated, so the step carries it with no
per-collection code. `labels` is an int32 [B] array of classes, or None when
`num_classes == 0`. A family whose networks need more than Flax modules do overrides
`generate` / `discriminate`; one that keeps state outside its variables (a progressive
growing phase, say) declares it in `GAN.extra_init` and updates it in `GAN.extra_update`,
and the state's `extra` part holds, checkpoints and restores it; the step passes that part
to every call as `extra=`.

Stages: a family whose networks change shape during training (ProGAN grows from 4x4)
splits the run into `Stage`s, each a span of steps with one batch size and image shape
and so one compiled program (`Family.stages(config)`, `GAN.at(stage)`); a family with
fixed networks has the one stage of the default `Family.stages`.

The default `GAN` works for any pair of modules called as `module(inputs, labels, train=)`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

Array = jax.Array
PRNGKey = jax.Array
Variables = Mapping[str, Any]
Collections = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Stage:
  """A span of training steps that one compiled program runs.

  Attributes:
    start: the first step of the stage (it lasts until the next stage's start).
    batch_size: the global batch of one D or G update.
    image_shape: (H, W, C) of the images G makes and D sees in this stage.
    level: the family's index of the stage (ProGAN: the resolution level, 0 = 4x4).
    name: how the console names it (e.g. '32x32'); '' for a single-stage family.
  """
  start: int
  batch_size: int
  image_shape: tuple[int, int, int]
  level: int = 0
  name: str = ""


def stage_index(stages: Sequence[Stage], step: int) -> int:
  """The index of the stage that runs the step taken when `step` steps are done."""
  index = 0
  for i, stage in enumerate(stages):
    if stage.start <= step:
      index = i
  return index


def mutable_collections(variables: Variables) -> list[str]:
  """The collections a training-mode call updates: every one but 'params'."""
  return sorted(k for k in variables if k != "params")


def apply(module: nn.Module, variables: Variables, inputs: Array, labels: Array | None, *,
          train: bool, rng: PRNGKey | None, **kwargs) -> tuple[Array, Collections]:
  """`module(inputs, labels, train=train, **kwargs)`; in training mode also the updated
  collections.

  Returns:
    (output, {collection: value} for every non-'params' collection of `variables`; in
    eval mode those are returned unchanged).
  """
  rest = {k: v for k, v in variables.items() if k != "params"}
  if not train:
    return module.apply(variables, inputs, labels, train=False, **kwargs), rest
  rngs = {} if rng is None else {"dropout": rng}
  out, mutated = module.apply(variables, inputs, labels, train=True, rngs=rngs,
                              mutable=mutable_collections(variables), **kwargs)
  return out, {**rest, **mutated}


@dataclasses.dataclass(frozen=True)
class GAN:
  """A family's built networks and the functions the step, the loop and sampling call.

  Attributes:
    generator: Flax module, `generator(z [B, latent_dim], labels [B] | None, train=)` ->
      images [B, H, W, C] float32 in [-1, 1].
    discriminator: Flax module, `discriminator(x, labels, train=)` -> logits [B] float32.
    latent_dim: size of z.
    num_classes: 0 for an unconditional GAN.
    image_shape: (H, W, C) of the images.
    extra_init: () -> a pytree of arrays kept in `GANState.extra['family']`, or None.
    extra_update: (extra, step) -> extra, run at the end of every training step inside
      the compiled program (step = the number of steps done before it).
    restart_optimizers: step -> bool array: whether both networks' optimizer states start
      afresh (`tx.init`) before this step, inside the compiled program (ProGAN: at every
      new phase); None: never.
    check_extra: (extra as numpy, step) -> None, run on a restored state: raises
      `jaxgan.errors.ConfigError` when the restored extra does not belong to this config
      at that step (ProGAN: a changed schedule); None: no check.
  """
  generator: nn.Module
  discriminator: nn.Module
  latent_dim: int
  num_classes: int
  image_shape: tuple[int, int, int]
  extra_init: Callable[[], Any] | None = None
  extra_update: Callable[[Any, Array], Any] | None = None
  restart_optimizers: Callable[[Array], Array] | None = None
  check_extra: Callable[[Any, int], None] | None = None

  @property
  def conditional(self) -> bool:
    return self.num_classes > 0

  def example_inputs(self, batch: int = 1):
    """(z, x, labels) of zeros, for initialisation and shape inference."""
    z = jnp.zeros((batch, self.latent_dim), jnp.float32)
    x = jnp.zeros((batch, *self.image_shape), jnp.float32)
    labels = jnp.zeros((batch,), jnp.int32) if self.conditional else None
    return z, x, labels

  def init(self, rng: PRNGKey) -> tuple[Variables, Variables]:
    """Both networks' variables (params and every other collection): (g_vars, d_vars)."""
    kg, kd, kdrop = jax.random.split(rng, 3)
    z, x, labels = self.example_inputs()
    g_vars = self.generator.init({"params": kg, "dropout": kdrop}, z, labels, train=False)
    d_vars = self.discriminator.init({"params": kd, "dropout": kdrop}, x, labels, train=False)
    return dict(g_vars), dict(d_vars)

  def at(self, stage: Stage) -> GAN:
    """The networks of `stage` (a growing family's current resolution); self by default."""
    del stage
    return self

  def generate(self, variables: Variables, z: Array, labels: Array | None = None, *,
               train: bool, rng: PRNGKey | None = None,
               extra: Any = None) -> tuple[Array, Collections]:
    """Images of latents z (and labels): (images, updated non-param collections).
    `extra` is the family's part of the state's extra (None for a family without one)."""
    del extra
    return apply(self.generator, variables, z, labels, train=train, rng=rng)

  def discriminate(self, variables: Variables, x: Array, labels: Array | None = None, *,
                   train: bool, rng: PRNGKey | None = None,
                   extra: Any = None) -> tuple[Array, Collections]:
    """Logits of images x (and labels): (logits [B], updated non-param collections)."""
    del extra
    return apply(self.discriminator, variables, x, labels, train=train, rng=rng)

  def describe(self, extra: Any) -> str:
    """Where training stands, for the progress line (from the extra, as numpy); ''."""
    del extra
    return ""

  def reals(self, x: Array, extra: Any = None) -> Array:
    """The real batch as D sees it (ProGAN blends resolutions during a fade); x by default."""
    del extra
    return x


class Family:
  """A model family: subclass it, set `name`, and register an instance (`families.register`).

  A field is defined once: the family's own fields live in `model_config()` and nowhere
  else; `jaxgan.config.default_config(family=NAME)` merges them into `config.model` next
  to the shared ones (family, latent_dim, num_classes, dtype, upsample_impl).
  """
  name: str = ""

  def model_config(self) -> ml_collections.ConfigDict:
    """This family's fields of `config.model`, with their defaults."""
    return ml_collections.ConfigDict()

  def validate(self, config: ml_collections.ConfigDict) -> None:
    """Raises `jaxgan.errors.ConfigError` for an invalid field of this family."""
    del config

  def batch_coupled_d(self, config: ml_collections.ConfigDict) -> tuple[str, Any] | None:
    """(field, value) of the setting that makes D's output for one sample depend on the
    rest of its batch (BatchNorm), or None. Per-sample gradient penalties refuse such a D
    (`jaxgan.training.step.validate`) unless train.allow_batchnorm_with_penalty."""
    del config
    return None

  def build(self, config: ml_collections.ConfigDict) -> GAN:
    """The GAN of `config` (config.model, the image size and channels of config.data)."""
    raise NotImplementedError(f"family {self.name!r} does not define build(config)")

  def stages(self, config: ml_collections.ConfigDict) -> tuple[Stage, ...]:
    """The run's stages in step order, the first starting at step 0. By default one:
    `config.train.batch_size` images of `config.data.image_size` for the whole run."""
    h, w = config.data.image_size
    return (Stage(0, int(config.train.batch_size), (int(h), int(w), int(config.data.channels))),)
