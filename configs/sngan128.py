"""128x128 DCGAN with latent 150, hidden width 64 and five blocks; spectral norm and
dropout in D as options (on here: SN-GAN style).

G: Dense -> 4x4x1024 BN ReLU -> ConvT 512, 256, 128, 64 (k4, s2) BN ReLU -> ConvT 3 (s2) tanh.
D: Conv 64, 128, 256, 512, 1024 (k4, s2) spectral norm, LReLU(0.2), dropout 0.3 -> Dense(1).
Hinge loss.

Run:
  python -m jaxgan.main --config configs/sngan128.py --workdir runs/sngan128
  Without spectral norm or dropout in D:
      --config.model.discriminator.norm=batch --config.model.discriminator.dropout=0
"""

from jaxgan import config as config_lib


def get_config():
  c = config_lib.default_config()
  c.data.image_size = (128, 128)
  c.model.latent_dim = 150
  width = 64
  g, d = c.model.generator, c.model.discriminator
  g.base_features, g.project_norm_act = width * 16, True
  g.features, g.strides, g.kernel_size = (width * 8, width * 4, width * 2, width), (2,) * 5, 4
  d.features = (width, width * 2, width * 4, width * 8, width * 16)
  d.strides, d.kernel_size = (2,) * 5, 4
  d.norm, d.dropout = "spectral", 0.3
  c.train.loss, c.train.g_steps = "hinge", 1
  c.optim.g_lr = c.optim.d_lr = 2e-4
  return c
