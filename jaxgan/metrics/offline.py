"""Sample-quality metrics outside the training loop: of a run's checkpoint, or of any two
image sets (folders, .npz arrays, data sources). `python -m jaxgan.evaluate` is its
command line.

    values = offline.evaluate(workdir="runs/dcgan128", metrics="fid,kid", num=10_000)
    values = offline.evaluate(images="samples.npz", ref="folder:/data/paintings", size=(128, 128))
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from jaxgan import config as config_lib
from jaxgan import sampling
from jaxgan import sharding
from jaxgan.data import folder as folder_lib
from jaxgan.metrics import evaluation
from jaxgan.metrics import networks

SOURCES = ("folder:", "tfds:", "builtin:")


def _first_image_size(folder: str) -> tuple[int, int]:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  paths = folder_lib.list_images(folder)
  if not paths:
    raise ValueError(f"{folder} holds no images (.jpg, .jpeg, .png, .webp, .bmp, .gif)")
  with Image.open(paths[0]) as image:
    return image.height, image.width


def load_npz(path: str) -> np.ndarray:
  """The images of an .npz as float32 [N, H, W, C] in [-1, 1]."""
  with np.load(path) as f:
    names = f.files
    if "images" in names:
      array = f["images"]
    elif len(names) == 1:
      array = f[names[0]]
    else:
      raise ValueError(f"{path} has the arrays {names}: expected one named 'images', or one")
  if array.ndim != 4 or array.shape[-1] not in (1, 3):
    raise ValueError(f"{path}: images of shape {array.shape}: expected [N, H, W, C], C 1 or 3")
  if array.dtype == np.uint8:
    return array.astype(np.float32) / 127.5 - 1.0
  array = array.astype(np.float32)
  if array.min() < -1.001 or array.max() > 1.001:
    raise ValueError(f"{path}: float images in [{array.min():.3g}, {array.max():.3g}]: "
                     f"expected [-1, 1] (or uint8 0..255)")
  return array


def image_set_features(where: str, embed: evaluation.Embedder, num: int,
                       size: tuple[int, int] | None, cache_dir: str = "") -> dict[str, Any]:
  """Features of up to `num` images of a folder, an .npz or a data source `where`."""
  if where.endswith(".npz"):
    if not os.path.isfile(where):
      raise FileNotFoundError(f"{where} does not exist")
    images = load_npz(where)[:num]
    return evaluation.embed_array(embed, images, f"embedding {where}")
  source = where if where.startswith(SOURCES) else f"folder:{where}"
  if source.startswith("folder:"):
    folder = source[len("folder:"):]
    if not os.path.isdir(folder):
      raise FileNotFoundError(f"{folder} is not a folder of images (nor an .npz or a "
                              f"'folder:', 'tfds:' or 'builtin:' source)")
    size = size or _first_image_size(folder)
  config = config_lib.default_config()
  with config.unlocked():
    config.data.source = source
    if size:
      config.data.image_size = tuple(size)
    config.data.labels = "none"
    config.model.num_classes = 0
  return evaluation.reference_features(config, embed, num, cache_dir or None)


def evaluate(*, workdir: str | None = None, step: str | int | None = None,
             images: str | None = None, ref: str | None = None,
             metrics: str = "fid,kid,is,pr", num: int = 10_000, ref_num: int = 0,
             network: str = "inception", weights: str = "", batch: int = 64,
             size: tuple[int, int] | None = None, ema: bool = True,
             cache_dir: str = "") -> dict[str, Any]:
  """The metric values (and what was compared) of a run's generator or of `images`.

  Returns:
    {'fid': ..., 'kid': ..., 'kid_std': ..., ..., 'num': generated or scored images,
     'ref_num': reference images, 'network': ..., and 'step' for a run}.
  """
  names = evaluation.parse_metrics(metrics)
  if (workdir is None) == (images is None):
    raise ValueError("give either --workdir (score a run) or --images (score a set of images)")
  if images is not None and ref is None:
    raise ValueError("--images needs --ref, the images to compare them with")
  if num < 2:
    raise ValueError(f"--num={num}: expected at least 2 images")
  ref_num = ref_num or num
  mesh = sharding.make_mesh(jax.local_devices())
  embed = evaluation.Embedder(networks.build(network, weights), mesh, batch)
  result: dict[str, Any] = {}
  if workdir is not None:
    best = step == "best"
    gen = sampling.load_generator(workdir, step=None if best or step is None else int(step),
                                  ema=ema, best=best)
    variables, extra = jax.device_put((gen.variables, gen.extra), sharding.replicated(mesh))
    fake = evaluation.generated_features(gen.gan, variables, extra, embed, num,
                                         tuple(gen.config.data.image_size))
    size = size or tuple(gen.config.data.image_size)  # a --ref folder at the run's resolution
    real = (image_set_features(ref, embed, ref_num, size, cache_dir) if ref else
            evaluation.reference_features(gen.config, embed, ref_num, cache_dir or None))
    result.update(step=gen.step, ema=gen.ema)
  else:
    fake = image_set_features(images, embed, num, size, cache_dir)
    real = image_set_features(ref, embed, ref_num, size, cache_dir)
  values = evaluation.compute_scores(names, real, fake)
  return {**values, "num": len(fake["pool"]), "ref_num": len(real["pool"]),
          "network": embed.network.fingerprint, **result}
