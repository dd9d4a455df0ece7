"""A tiny ProGAN for tests: 4x4 -> 8x8 -> 16x16 RGB, a few hundred images per phase.

Phases (64 images each, batch 8, then 4 at 16x16): 4x4 stable for 8 steps, 8x8 fade-in
8 steps and stable 8 steps, 16x16 fade-in 16 steps, then 16x16 stable to num_steps (48).
One step takes milliseconds on a CPU; each of the three stages compiles in seconds.

Run:
  python -m jaxgan.main --config configs/progan_tiny.py --workdir runs/progan_tiny
"""

from jaxgan import config as config_lib


def get_config():
  c = config_lib.default_config("progan")
  c.data.image_size = (16, 16)
  c.data.builtin_size = 64
  c.data.shuffle_buffer = 64
  m = c.model
  m.latent_dim = 16
  m.fmap_base, m.fmap_max = 64, 16
  m.fade_images = m.stable_images = 64
  m.batch_sizes = (8, 8, 4)
  c.train.batch_size = m.batch_sizes[-1]  # the last level's (progan requires it)
  c.train.num_steps = 48
  c.train.loss, c.train.d_steps, c.train.g_steps = "wasserstein", 1, 1
  c.train.penalty, c.train.penalty_weight, c.train.drift = "wgan_gp", 10.0, 0.001
  c.train.ema_decay = 0.999
  c.optim.g_lr = c.optim.d_lr = 1e-3
  c.optim.b1, c.optim.b2, c.optim.eps = 0.0, 0.99, 1e-8
  c.log_every = 8
  c.sample_every = 8
  c.checkpoint_every = 16
  c.num_samples = 16
  return c
