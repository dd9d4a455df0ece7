"""Test helpers: load configs/ files by path, and a tiny config for fast step tests."""

import importlib.util
from pathlib import Path

from jaxgan import config as config_lib

ROOT = Path(__file__).resolve().parents[1]


def load_config(name: str, arg: str | None = None):
  spec = importlib.util.spec_from_file_location(f"configs_{name}", ROOT / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg is not None else module.get_config()


def tiny_config(**overrides):
  """A 16x16 GAN with a few thousand parameters: each step compiles and runs in seconds."""
  c = config_lib.default_config()
  c.data.image_size = (16, 16)
  c.model.latent_dim = 8
  g, d = c.model.generator, c.model.discriminator
  g.base_features, g.features, g.strides, g.kernel_size = 16, (8,), (2, 2), 3
  d.features, d.strides, d.kernel_size = (8, 16), (2, 2), 3
  c.train.batch_size = 8
  for key, value in overrides.items():
    node = c
    *path, last = key.split(".")
    for part in path:
      node = node[part]
    node[last] = value
  return c
