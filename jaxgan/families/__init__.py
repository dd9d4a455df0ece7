"""The registry of model families: name -> `Family` (see `jaxgan.families.base`).

    gan = families.build(config)      # config.model.family selects the family
    families.register(MyFamily())     # a family defined elsewhere (a test, a notebook)

Adding a family touches its own module, this registry and a config; docs/families.md has
a worked example.
"""

from __future__ import annotations

import ml_collections

from jaxgan.families import dcgan, progan
from jaxgan.families.base import GAN, Family, Stage, stage_index

FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
  """Adds `family` under `family.name` (replacing one of the same name); returns it."""
  if not family.name:
    raise ValueError(f"{type(family).__name__}.name is empty: a family needs a name")
  FAMILIES[family.name] = family
  return family


def get(name: str) -> Family:
  """The family called `name`; ConfigError listing the registered ones otherwise."""
  from jaxgan import config as config_lib  # pylint: disable=g-import-not-at-top
  if name not in FAMILIES:
    raise config_lib.ConfigError(
        f"config.model.family={name!r} is invalid: expected one of "
        f"{', '.join(map(repr, sorted(FAMILIES)))}")
  return FAMILIES[name]


def build(config: ml_collections.ConfigDict) -> GAN:
  """The GAN of `config`, built by the family `config.model.family`."""
  return get(config.model.family).build(config)


def stages(config: ml_collections.ConfigDict) -> tuple[Stage, ...]:
  """The stages of `config`'s run (`Family.stages`): one, unless the family grows."""
  return get(config.model.family).stages(config)


register(dcgan.DCGAN())
register(progan.ProGAN())

__all__ = ["FAMILIES", "GAN", "Family", "Stage", "build", "get", "register", "stage_index",
           "stages"]
