"""128x128 DCGAN with latent 150, hidden width 64 and five blocks; spectral norm and
dropout in D as options (on here: SN-GAN style). The architecture of configs/art128.py
(the art project's stage 2 approximately: this one uses the hinge loss).

G: Dense -> 4x4x1024 BN ReLU -> ConvT 512, 256, 128, 64 (k4, s2) BN ReLU -> ConvT 3 (s2) tanh.
D: Conv 64, 128, 256, 512, 1024 (k4, s2) spectral norm, LReLU(0.2), dropout 0.3 -> Dense(1).
Hinge loss, batch 32, Adam 2e-4 (0.5, 0.999) for both.

Run:
  python -m jaxgan.main --config configs/sngan128.py --workdir runs/sngan128
  Without spectral norm or dropout in D:
      --config.model.discriminator.norm=batch --config.model.discriminator.dropout=0
"""

import pathlib

from jaxgan import config as config_lib


def get_config():
  c = config_lib.load_file(pathlib.Path(__file__).with_name("art128.py"))
  d = c.model.discriminator
  d.norm, d.dropout, d.first_layer_norm = "spectral", 0.3, True
  c.train.batch_size = 32
  c.train.loss, c.train.label_smoothing = "hinge", 0.0
  c.train.g_update_fakes = "fresh"  # new noise for every update, as the seed's spec has it
  return c
