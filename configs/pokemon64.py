"""64x64 Pokemon DCGAN: noise 100, LeakyReLU(0.01) in G, Xavier init, BatchNorm, tanh.

G: Dense -> 4x4x512 BN LReLU(.01) -> ConvT 256, 128, 64 (k5, s2) BN LReLU(.01) -> ConvT 3 (s2) tanh.
D: Conv 64, 128, 256, 512 (k5, s2, no pooling) BN LReLU(0.2) -> Dense(1).

Run (809 sprites, RGBA composited onto white):
  python -m jaxgan.main --config configs/pokemon64.py --workdir runs/pokemon \
      --config.data.source=folder:../shared/data/pokemon

With 809 sprites D memorises the data: configs/pokemon64_diffaug.py is this config with
DiffAugment (--config.augment.policy=color,translation,cutout); for ADA add
--config.augment.policy=flip,rotate90,translation,color,cutout --config.augment.ada=True.
"""

from jaxgan import config as config_lib


def get_config():
  c = config_lib.default_config()
  c.data.image_size = (64, 64)
  m = c.model
  m.latent_dim = 100
  g, d = m.generator, m.discriminator
  g.base_features, g.features, g.strides = 512, (256, 128, 64), (2, 2, 2, 2)
  g.project_norm_act = True
  g.activation, g.leaky_alpha, g.init = "leaky_relu", 0.01, "xavier"
  d.features, d.strides, d.init = (64, 128, 256, 512), (2, 2, 2, 2), "xavier"
  c.train.g_steps = 1
  c.optim.g_lr = c.optim.d_lr = 2e-4
  c.train.g_update_fakes = "fresh"  # new noise for every update, as the seed's spec has it
  return c
