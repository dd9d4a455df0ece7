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
center-cropped to --size (default: a run's resolution, else the size of the folder's first
image). Features of folders and sources are cached (--cache_dir), keyed by the files, size,
count and network.

Prints one line per metric, then the values as one JSON object (also written to --json).
The Inception weights are the pytorch-fid file (see jaxgan/metrics/inception.py and the
README); --network random scores with a seeded random network instead (for trying this
without the file; its numbers are not comparable with published ones).
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags

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


def _parse_size(text: str) -> tuple[int, int] | None:
  if not text:
    return None
  parts = text.replace("x", ",").split(",")
  if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
    raise ValueError(f"--size={text!r}: expected 'H,W', two positive integers")
  return int(parts[0]), int(parts[1])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  try:
    size = _parse_size(_SIZE.value)
    step = _STEP.value
    if step not in (None, "best") and not step.isdigit():
      raise ValueError(f"--step={step!r}: expected a step number or 'best'")
    # pylint: disable-next=g-import-not-at-top
    from jaxgan.metrics import evaluation, offline  # (fast start: JAX)
    values = offline.evaluate(
        workdir=_WORKDIR.value, step=step, images=_IMAGES.value, ref=_REF.value,
        metrics=_METRICS.value, num=_NUM.value, ref_num=_REF_NUM.value, network=_NETWORK.value,
        weights=_WEIGHTS.value, batch=_BATCH.value, size=size, ema=_EMA.value,
        cache_dir=_CACHE.value)
  except ValueError as e:  # A bad flag value or image set; a checkpoint's failure: status 1.
    raise app.UsageError(str(e)) from e
  names = {v for group in evaluation.METRICS.values() for v in group}
  scored = {k: v for k, v in values.items() if k in names}
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
  from jaxgan import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, __name__, __doc__, required=())
