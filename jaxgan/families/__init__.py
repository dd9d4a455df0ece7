"""The registry of model families: name -> `Family` (see `jaxgan.families.base`).

    gan = families.build(config)      # config.model.family selects the family
    families.register(MyFamily())     # a family defined elsewhere (a test, a notebook)

Adding a family touches its own module, this registry and a config; docs/families.md has
a worked example.
"""

from __future__ import annotations

import ml_collections

from jaxgan import checks
from jaxgan import errors
from jaxgan import kernels
from jaxgan.families import dcgan, progan
from jaxgan.families.base import GAN, Family, Stage, stage_index

FAMILIES: dict[str, Family] = {}
DTYPES = ("float32", "bfloat16")  # config.model.dtype
# config.model's own fields; the rest of config.model belongs to the family.
SHARED_MODEL_FIELDS = ("family", "latent_dim", "num_classes", "dtype", "upsample_impl")


def register(family: Family) -> Family:
  """Adds `family` under `family.name` (replacing one of the same name); returns it."""
  if not family.name:
    raise ValueError(f"{type(family).__name__}.name is empty: a family needs a name")
  FAMILIES[family.name] = family
  return family


def get(name: str) -> Family:
  """The family called `name`; ConfigError listing the registered ones otherwise."""
  if name not in FAMILIES:
    raise errors.ConfigError(
        f"config.model.family={name!r} is invalid: expected one of "
        f"{', '.join(map(repr, sorted(FAMILIES)))}")
  return FAMILIES[name]


def validate_shared(config: ml_collections.ConfigDict) -> None:
  """ConfigError for a bad shared field of `config.model`, or a field its family does not
  define (the family's own fields: `Family.validate`)."""
  family = get(config.model.family)
  known = set(SHARED_MODEL_FIELDS) | set(family.model_config().keys())
  for field in config.model.keys():
    if field not in known:
      checks.fail(f"model.{field}", config.model[field],
                  f"model.{field} is not a field of family {family.name!r}; its fields are "
                  f"{', '.join(sorted(known))}")
  checks.check_choice(config, "model.dtype", DTYPES)
  checks.check_choice(config, "model.upsample_impl", kernels.UPSAMPLE_IMPLS)
  checks.check_positive(config, "model.latent_dim")
  num_classes = config.model.num_classes
  if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
    checks.fail("model.num_classes", num_classes, "expected an int >= 0 (0: unconditional)")


def build(config: ml_collections.ConfigDict) -> GAN:
  """The GAN of `config`, built by the family `config.model.family`."""
  return get(config.model.family).build(config)


def stages(config: ml_collections.ConfigDict) -> tuple[Stage, ...]:
  """The stages of `config`'s run (`Family.stages`): one, unless the family grows."""
  return get(config.model.family).stages(config)


register(dcgan.DCGAN())
register(progan.ProGAN())

__all__ = ["DTYPES", "FAMILIES", "GAN", "SHARED_MODEL_FIELDS", "Family", "Stage", "build", "get",
           "register", "stage_index", "stages", "validate_shared"]
