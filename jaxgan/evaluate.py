r"""Sample-quality metrics from the command line: of a trained run, or of any two image sets.

  python -m jaxgan.evaluate --workdir runs/dcgan128 --metrics fid,kid,is,pr --num 10000 \
      --weights ~/pt_inception-2015-12-05-6726825d.pth
  python -m jaxgan.evaluate --workdir runs/dcgan128 --step best      # the kept best checkpoint
  python -m jaxgan.evaluate --images my_samples/ --ref folder:/data/paintings --size 128,128
  python -m jaxgan.evaluate --images samples.npz --ref tfds:cifar10

A run is scored from its checkpoint (the latest, --step N, or --step best), with the EMA
generator when it has one (--noema: the trained weights), against the real images of its
config's data (or --ref). --images and --ref take a folder of images, an .npz file (its
'images' array, or its only array: uint8 [N, H, W, C] in 0..255, or floats in [-1, 1]) or
a data source ('folder:PATH', 'tfds:NAME[:SPLIT]', 'builtin:NAME'); folder images are
center-cropped to --size (default: the size of the folder's first image). Features of
folders and sources are cached (--cache_dir), keyed by the files, size, count and network.

Prints one line per metric, then the values as one JSON object (also written to --json).
The Inception weights are the pytorch-fid file (see jaxgan/metrics/inception.py and the
README); --network random scores with a seeded random network instead (for trying this
without the file; its numbers are not comparable with published ones).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from absl import app, flags, logging

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir to score.")
_STEP = flags.DEFINE_string("step", None, "Checkpoint step, or 'best' (WORKDIR/best/); "
                            "default the latest.")
_IMAGES = flags.DEFINE_string("images", None, "Images to score instead of a run: a folder, an "
                              ".npz or a data source.")
_REF = flags.DEFINE_string("ref", None, "The reference images: a folder, an .npz or a data "
                           "source; default the run's training data.")
_METRICS = flags.DEFINE_string("metrics", "fid,kid,is,pr", "Comma-separated: fid, kid, is, pr.")
_NUM = flags.DEFINE_integer("num", 10_000, "Images to generate (or the first of --images).")
_REF_NUM = flags.DEFINE_integer("ref_num", 0, "Reference images; 0: as many as --num (all of "
                                "a smaller set).")
_NETWORK = flags.DEFINE_string("network", "inception", "Feature network (jaxgan.metrics.networks).")
_WEIGHTS = flags.DEFINE_string("weights", "", "The network's weights: for inception the path (or "
                               "an https URL) of pt_inception-2015-12-05-6726825d.pth; default "
                               "$JAXGAN_INCEPTION_WEIGHTS, ~/.cache/jaxgan/, torch hub's cache.")
_BATCH = flags.DEFINE_integer("batch", 64, "Images per embedding batch (over all devices).")
_SIZE = flags.DEFINE_string("size", "", "'H,W' of folder images; default the first image's.")
_EMA = flags.DEFINE_bool("ema", True, "Use the EMA generator when the run kept one.")
_CACHE = flags.DEFINE_string("cache_dir", "", "Where reference features are cached; default "
                             "the data cache directory or ~/.cache/jaxgan/reference.")
_JSON = flags.DEFINE_string("json", "", "Also write the values as JSON to this file.")
_SOURCES = ("folder:", "tfds:", "builtin:")


def _parse_size(text: str) -> tuple[int, int] | None:
  if not text:
    return None
  parts = text.replace("x", ",").split(",")
  if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
    raise ValueError(f"--size={text!r}: expected 'H,W', two positive integers")
  return int(parts[0]), int(parts[1])


def _first_image_size(folder: str) -> tuple[int, int]:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from jaxgan.data import sources  # pylint: disable=g-import-not-at-top
  paths = sources.list_images(folder)
  if not paths:
    raise ValueError(f"{folder} holds no images (.jpg, .jpeg, .png, .webp, .bmp, .gif)")
  with Image.open(paths[0]) as image:
    return image.height, image.width


def _load_npz(path: str):
  import numpy as np  # pylint: disable=g-import-not-at-top
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


def image_set_features(where: str, embed, num: int, size: tuple[int, int] | None,
                       cache_dir: str = "", base_config=None) -> dict[str, Any]:
  """Features of up to `num` images of a folder, an .npz or a data source `where`."""
  from jaxgan import config as config_lib  # pylint: disable=g-import-not-at-top
  from jaxgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
  if where.endswith(".npz"):
    if not os.path.isfile(where):
      raise FileNotFoundError(f"{where} does not exist")
    images = _load_npz(where)[:num]
    return evaluation.embed_array(embed, images, f"embedding {where}")
  source = where if where.startswith(_SOURCES) else f"folder:{where}"
  if source.startswith("folder:"):
    folder = source[len("folder:"):]
    if not os.path.isdir(folder):
      raise FileNotFoundError(f"{folder} is not a folder of images (nor an .npz or a "
                              f"'folder:', 'tfds:' or 'builtin:' source)")
    size = size or _first_image_size(folder)
  config = base_config.copy_and_resolve_references() if base_config else config_lib.default_config()
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
  import jax  # pylint: disable=g-import-not-at-top
  from jaxgan import checkpointing  # pylint: disable=g-import-not-at-top
  from jaxgan import sampling  # pylint: disable=g-import-not-at-top
  from jaxgan import sharding  # pylint: disable=g-import-not-at-top
  from jaxgan.metrics import evaluation, networks  # pylint: disable=g-import-not-at-top
  checkpointing.quiet_orbax_info_logs()
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
    real = (image_set_features(ref, embed, ref_num, size, cache_dir) if ref else
            evaluation.reference_features(gen.config, embed, ref_num, cache_dir or None))
    result.update(step=gen.step, ema=gen.ema)
  else:
    fake = image_set_features(images, embed, num, size, cache_dir)
    real = image_set_features(ref, embed, ref_num, size, cache_dir)
  values = evaluation.compute_scores(names, real, fake)
  return {**values, "num": len(fake["pool"]), "ref_num": len(real["pool"]),
          "network": embed.network.fingerprint, **result}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  try:
    size = _parse_size(_SIZE.value)
    step = _STEP.value
    if step not in (None, "best") and not step.isdigit():
      raise ValueError(f"--step={step!r}: expected a step number or 'best'")
    values = evaluate(workdir=_WORKDIR.value, step=step, images=_IMAGES.value, ref=_REF.value,
                      metrics=_METRICS.value, num=_NUM.value, ref_num=_REF_NUM.value,
                      network=_NETWORK.value, weights=_WEIGHTS.value, batch=_BATCH.value,
                      size=size, ema=_EMA.value, cache_dir=_CACHE.value)
  except (ValueError, FileNotFoundError) as e:  # The message names the bad input.
    logging.error("%s", e)
    sys.exit(1)
  from jaxgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
  scored = {k: v for k, v in values.items() if k in {v for vs in evaluation.METRICS.values()
                                                       for v in vs}}
  what = (f"checkpoint {values['step']} of {_WORKDIR.value}" if "step" in values
          else _IMAGES.value)
  print(f"{what}: {values['num']} images vs {values['ref_num']} reference images "
        f"({values['network']})")
  for line in evaluation.format_scores(scored):
    print(line)
  text = json.dumps(values, sort_keys=True)
  print(text)
  if _JSON.value:
    Path(_JSON.value).write_text(text + "\n")


if __name__ == "__main__":
  app.run(main)
