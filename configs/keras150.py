"""Keras-style symmetric DCGAN on 150x150 RGB: depth 4, 32 kernels added per depth step.

D: Conv(32, 64, 96, 128; k5, s2) LeakyReLU(0.2) + dropout 0.3 -> Dense(1); sizes 150-75-38-19-10.
G mirrors it: Dense -> 10x10x128 -> ConvT 96 (19) -> 64 (38) -> 32 (75) -> 3 (150) tanh.

Run:
  python -m jaxgan.main --config configs/keras150.py --workdir runs/keras150

Few images (a few hundred)? Augment what D sees, inside the compiled step (DiffAugment):
  --config.augment.policy=color,translation,cutout
or adaptively (ADA): --config.augment.policy=flip,rotate90,translation,color,cutout
  --config.augment.ada=True (jaxgan/training/augment.py).
"""

from jaxgan import config as config_lib
from jaxgan.families import dcgan


def get_config(arg: str = ""):
  del arg
  c = config_lib.default_config()
  c.data.image_size = (150, 150)
  dcgan.symmetric(c, depth=4, increment=32, kernel_size=5, stride=2, dropout=0.3)
  c.train.g_update_fakes = "fresh"  # new noise for every update, as the seed's spec has it
  return c
