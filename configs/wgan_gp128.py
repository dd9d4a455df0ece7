"""The art project's WGAN-GP at 128x128 (Gulrajani et al. 2017): the architecture of
configs/art128.py with a Wasserstein critic.

G: Dense -> 4x4x1024 BN ReLU -> ConvT 512, 256, 128, 64 (k4, s2) BN ReLU -> ConvT 3 (k4, s2) tanh.
Critic: Conv 64, 128, 256, 512, 1024 (k4, s2) LeakyReLU(0.2), layer norm from the second
conv on (no BatchNorm: it would break the per-sample gradient penalty, and the config is
rejected with it) -> Dense(1).
Wasserstein loss, gradient penalty lambda 10, 5 critic updates per G update (each on its
own batch of 64, the paper's batch), Adam 1e-4 (0.0, 0.9) as in the paper.

Run on the shared WikiArt abstract paintings:
  python -m jaxgan.main --config configs/wgan_gp128.py --workdir runs/wgan_gp128 \
      --config.data.source=folder:../shared/data/art/wikiart_abstract_224 --config.data.resize=resize
Without any normalization in the critic: --config.model.discriminator.norm=none
"""

import pathlib

from jaxgan import config as config_lib


def get_config():
  c = config_lib.load_file(pathlib.Path(__file__).with_name("art128.py"))
  c.model.discriminator.norm = "layer"
  c.train.batch_size = 64
  c.train.loss, c.train.label_smoothing = "wasserstein", 0.0
  c.train.d_steps, c.train.g_steps = 5, 1
  c.train.penalty, c.train.penalty_weight = "wgan_gp", 10.0
  c.optim.g_lr = c.optim.d_lr = 1e-4
  c.optim.b1, c.optim.b2 = 0.0, 0.9
  c.train.g_update_fakes = "fresh"  # Gulrajani et al.'s code draws new noise for each G update
  return c
