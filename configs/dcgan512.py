"""512x512 RGB from a latent of 256: a 1x1 latent projected to 4x4 and up by transposed convs.

G: 1x1x256 -> ConvT(1024, k4) 4x4 -> 7 stride-2 ConvT (k4): 512, 256, 128, 64, 32, 16 -> 3 at 512x512.
D mirrors it: Conv 16 ... 1024 (k4, s2) down to 4x4 -> Dense(1).

Run:
  python -m jaxgan.main --config configs/dcgan512.py --workdir runs/dcgan512 \
      --config.data.source=folder:/path/to/images
"""

from jaxgan import config as config_lib


def get_config():
  c = config_lib.default_config()
  c.data.image_size = (512, 512)
  c.model.latent_dim = 256
  g, d = c.model.generator, c.model.discriminator
  g.project, g.base_features, g.project_norm_act = "conv", 1024, True
  g.features, g.strides, g.kernel_size = (512, 256, 128, 64, 32, 16), (2,) * 7, 4
  g.init, g.use_bias = "dcgan", False
  d.features, d.strides, d.kernel_size = (16, 32, 64, 128, 256, 512, 1024), (2,) * 7, 4
  d.first_layer_norm, d.init, d.use_bias = False, "dcgan", False
  c.train.batch_size, c.train.g_steps = 16, 1
  c.optim.g_lr = c.optim.d_lr = 2e-4
  c.train.g_update_fakes = "fresh"  # new noise for every update, as the seed's spec has it
  return c
