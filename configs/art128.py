"""The art project's label-smoothed DCGAN at 128x128: latent 150, hidden width 64, five
blocks, one-sided label smoothing (real target 0.9), batch 128, Adam 2e-4 (0.5, 0.999).

G: Dense -> 4x4x1024 BN ReLU -> ConvT 512, 256, 128, 64 (k4, s2) BN ReLU -> ConvT 3 (k4, s2) tanh.
D: Conv 64, 128, 256, 512, 1024 (k4, s2) LeakyReLU(0.2), BatchNorm from the second conv on
   (Radford et al.) -> Dense(1) logit.
Non-saturating loss, 1 D + 1 G update per step.

Run on the shared WikiArt abstract paintings (224x224 JPEGs, resized to 128x128):
  python -m jaxgan.main --config configs/art128.py --workdir runs/art128 \
      --config.data.source=folder:../shared/data/art/wikiart_abstract_224 --config.data.resize=resize
The project's faster-G variants (G at 4e-4 or 8e-4, D at 2e-4):
  ... --config.optim.g_lr=4e-4
  ... --config.optim.g_lr=8e-4
Its second stage, spectral normalization and dropout in D (configs/sngan128.py is the
same with the hinge loss and batch 32):
  ... --config.model.discriminator.norm=spectral --config.model.discriminator.dropout=0.3

Few images (a few hundred)? Augment what D sees, inside the compiled step (DiffAugment):
  --config.augment.policy=color,translation,cutout
or adaptively (ADA): --config.augment.policy=flip,rotate90,translation,color,cutout
  --config.augment.ada=True (jaxgan/training/augment.py).
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
  d.norm, d.first_layer_norm = "batch", False
  c.train.batch_size = 128
  c.train.loss, c.train.label_smoothing = "non_saturating", 0.1
  c.train.d_steps, c.train.g_steps = 1, 1
  c.optim.g_lr = c.optim.d_lr = 2e-4
  c.optim.b1, c.optim.b2 = 0.5, 0.999
  c.train.g_update_fakes = "fresh"  # new noise for every update, as the seed's spec has it
  return c
