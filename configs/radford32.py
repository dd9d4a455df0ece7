"""The DCGAN of Radford et al. (2016) laid out for 32x32 images (CIFAR-10's size), as in
`../shared/bench/torch_dcgan.py --model 32`.

G: 1x1 latent(100) -> ConvT(512, k4) to 4x4 BN ReLU -> ConvT 256, 128 (k4, s2) BN ReLU
   -> ConvT 3 (k4, s2) tanh. D: Conv 128 (k4, s2) LReLU(0.2) -> Conv 256, 512 BN LReLU
   -> 4x4 conv to one logit. No biases before BatchNorm; weights ~ normal(0, 0.02).
Adam(2e-4, beta1=0.5), 1 D + 1 G update, batch 64; the G update reuses the D update's
noise (`train.g_update_fakes = 'reuse'`, the PyTorch DCGAN tutorial's schedule). Everything
but the sizes, widths and batch comes from configs/radford64.py.

Run:
  python -m jaxgan.main --config configs/radford32.py --workdir runs/radford32 \
      --config.data.source=tfds:cifar10:train
"""

import os

from jaxgan import config as config_lib


def get_config():
  c = config_lib.load_file(os.path.join(os.path.dirname(__file__), "radford64.py"))
  c.data.image_size = (32, 32)
  c.model.generator.features, c.model.generator.strides = (256, 128), (2, 2, 2)
  c.model.discriminator.features, c.model.discriminator.strides = (128, 256, 512), (2, 2, 2)
  c.train.batch_size = 64
  return c  # train.g_update_fakes = 'reuse' from radford64.py
