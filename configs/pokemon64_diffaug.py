"""configs/pokemon64.py with DiffAugment: the recommended way to train on a few hundred images.

Every image D sees (reals and fakes in the D update, the fakes of the G update, the
penalty's inputs) is augmented inside the compiled step with DiffAugment's three ops at
the paper's strengths (Zhao et al. 2020): colour (brightness, saturation, contrast),
translation by up to 1/8 of the image with zero padding, and cutout of half the image side
(jaxgan/training/augment.py). With 809 sprites D otherwise memorises the training set.

Run:
  python -m jaxgan.main --config configs/pokemon64_diffaug.py --workdir runs/pokemon_diffaug \
      --config.data.source=folder:../shared/data/pokemon

Adaptive augmentation (ADA: p steered by r_t = E[sign(D(real))] towards 0.6) instead of
a fixed p = 1:
      --config.augment.policy=flip,rotate90,translation,color,cutout --config.augment.ada=True
"""

import os

from jaxgan import config as config_lib


def get_config():
  c = config_lib.load_file(os.path.join(os.path.dirname(__file__), "pokemon64.py"))
  c.augment.policy = "color,translation,cutout"
  c.augment.probability = 1.0
  return c
