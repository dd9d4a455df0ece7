"""A tiny GAN for tests and quick experiments: 16x16 RGB, one hidden layer each side.

The tests (tests/*_test.py) and the notebook test train it for a few steps on a 64-image
built-in dataset; one step takes milliseconds on a CPU and compiles in seconds.

Run:
  python -m jaxgan.main --config configs/tiny.py --workdir runs/tiny
"""

from jaxgan import config as config_lib


def get_config():
  c = config_lib.default_config()
  c.data.image_size = (16, 16)
  c.data.builtin_size = 64
  c.data.shuffle_buffer = 64
  c.model.latent_dim = 8
  g, d = c.model.generator, c.model.discriminator
  g.base_features, g.features, g.strides, g.kernel_size = 16, (8,), (2, 2), 3
  d.features, d.strides, d.kernel_size = (8,), (2,), 3
  c.train.batch_size = 8
  c.train.num_steps = 10
  c.log_every = 5
  c.sample_every = 5
  c.checkpoint_every = 5
  c.num_samples = 16
  return c
