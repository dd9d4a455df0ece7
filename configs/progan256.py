"""ProGAN at 256x256 (Karras et al. 2018): progressive growing from 4x4 with the paper's
networks (512 channels up to 32x32, then 256, 128, 64), pixel norm, minibatch stddev,
equalized learning rate, WGAN-GP (lambda 10) with the drift term (0.001), the EMA
generator (0.999), Adam 1e-3 (0.0, 0.99, eps 1e-8), and the paper's schedule: 800k real
images per fade-in and per stabilisation, batch 16 up to 128x128 and 14 at 256x256.
`train.num_steps` is the whole schedule (664,286 steps, 10.4M images): 4x4 stable, then
each of 8x8..256x256 faded in and stabilised.

The art project's fourth stage, on the shared WikiArt abstract paintings (224x224 JPEGs,
resized to 256x256):
  python -m jaxgan.main --config configs/progan256.py --workdir runs/progan256 \
      --config.data.source=folder:../shared/data/art/wikiart_abstract_224 --config.data.resize=resize
A shorter schedule (remember train.num_steps: progan.schedule_steps gives the whole one):
  ... --config.model.fade_images=300000 --config.model.stable_images=300000 \
      --config.train.num_steps=249108
"""

from jaxgan import config as config_lib
from jaxgan.families import progan


def get_config():
  c = config_lib.default_config("progan")
  c.data.image_size = (256, 256)
  m = c.model
  m.latent_dim = 512
  c.train.batch_size = m.batch_sizes[progan.num_levels(c) - 1]  # the last level's (14)
  c.train.loss, c.train.d_steps, c.train.g_steps = "wasserstein", 1, 1
  c.train.penalty, c.train.penalty_weight, c.train.drift = "wgan_gp", 10.0, 0.001
  c.train.ema_decay = 0.999
  c.optim.g_lr = c.optim.d_lr = 1e-3
  c.optim.b1, c.optim.b2, c.optim.eps = 0.0, 0.99, 1e-8
  c.train.num_steps = progan.schedule_steps(c)
  c.log_every = 500
  c.sample_every = 5000
  c.checkpoint_every = 10000
  c.train.g_update_fakes = "fresh"  # Karras et al.'s code draws new latents for each G update
  return c
