"""Keras-style symmetric DCGAN on non-square 200x180 (height x width) face crops.

`depth` 5 (default) or 6, 32 kernels added per depth step. D sizes for depth 5:
200x180 -> 100x90 -> 50x45 -> 25x23 -> 13x12 -> 7x6; G mirrors them exactly.

Run:
  python -m jaxgan.main --config configs/faces200x180.py --workdir runs/faces \
      --config.data.source=folder:/path/to/faces --config.data.resize=resize
  depth 6: --config configs/faces200x180.py:6

Few images (a few hundred)? Augment what D sees, inside the compiled step (DiffAugment):
  --config.augment.policy=color,translation,cutout
or adaptively (ADA): --config.augment.policy=flip,rotate90,translation,color,cutout
  --config.augment.ada=True (jaxgan/training/augment.py).
"""

from jaxgan import config as config_lib
from jaxgan.families import dcgan


def get_config(depth: str = "5"):
  c = config_lib.default_config()
  c.data.image_size = (200, 180)
  c.data.resize = "resize"
  dcgan.symmetric(c, depth=int(depth), increment=32, kernel_size=5, stride=2, dropout=0.3)
  c.train.g_update_fakes = "fresh"  # new noise for every update, as the seed's spec has it
  return c
