"""Test helpers: load configs/ files by path, and a tiny config for fast step tests."""

from pathlib import Path

from jaxgan import config as config_lib

ROOT = Path(__file__).resolve().parents[1]


def load_config(name: str, arg: str | None = None):
  """configs/NAME.py's get_config([arg])."""
  return config_lib.load_file(ROOT / "configs" / f"{name}.py", arg)


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
