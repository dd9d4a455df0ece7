"""The 128x128 RGB DCGAN of a hobby TensorFlow project, reproduced exactly.

G: noise(100) -> Dense -> 32x32x256 -> ConvT(128, k5, s2) BN ReLU -> ConvT(64, k5, s2) BN ReLU
   -> ConvT(3, k5, s1) tanh.
D: Conv(64, k5, s4) BN LeakyReLU(0.2) -> Conv(128, k5, s2) BN LeakyReLU(0.2) -> Dense(1) logit.
Adam(beta1=0.5), D lr 2e-4, G lr 1e-4, 1 D + 2 G updates per step, batch 32, 20,000 steps,
non-saturating loss. Trains on the built-in dataset by default.

Run:
  python -m jaxgan.main --config configs/dcgan128.py --workdir runs/dcgan128
On a folder of images, or a TFDS dataset:
  python -m jaxgan.main --config configs/dcgan128.py --workdir runs/art \
      --config.data.source=folder:/path/to/paintings
  python -m jaxgan.main --config configs/dcgan128.py --workdir runs/celeba \
      --config.data.source=tfds:celeb_a:train

Few images (a few hundred)? Augment what D sees, inside the compiled step (DiffAugment):
  --config.augment.policy=color,translation,cutout
or adaptively (ADA): --config.augment.policy=flip,rotate90,translation,color,cutout
  --config.augment.ada=True (jaxgan/training/augment.py).
"""

from jaxgan import config as config_lib


def get_config():
  c = config_lib.default_config()
  c.train.g_update_fakes = "fresh"  # the project draws new noise for each of its 2 G updates
  return c
