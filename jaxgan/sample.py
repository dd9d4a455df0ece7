r"""Samples from a trained generator, and the workdir's loss plot and GIF on demand.

  python -m jaxgan.sample --workdir runs/dcgan128 --num 64 --out samples.png
  python -m jaxgan.sample --workdir runs/dcgan128 --seeds 0-7,42 --truncation 0.7 --out t.png
  python -m jaxgan.sample --workdir runs/dcgan128 --interpolate 3,7 --frames 12 --out lerp.png
  python -m jaxgan.sample --workdir runs/dcgan128 --summary   # losses.png and samples.gif
  python -m jaxgan.sample --workdir runs/cond --labels 0,3,7 --num 8 --out classes.png
  python -m jaxgan.sample --workdir runs/pokemon --nearest 4   # WORKDIR/nearest.png

--nearest K is the memorisation check (jaxgan.metrics.nearest): a grid with one row per
sample (--num, default 8, or --seeds), the sample followed by its K nearest training images
in pixel space and, when config.evals has a 'metrics' entry, in that network's feature
space; the distances, with the training images' own to each other as a yardstick, are
printed and saved with the grid (WORKDIR/nearest.json, read by jaxgan.report).

A class-conditional generator draws a per-class grid: one row per class (every class, or
those of --labels), the same seeds (--seeds, or 0..num-1 with --num default 8) in each row;
an interpolation uses the first of --labels (default class 0).

Loads the latest checkpoint (or --step; --best: the checkpoint a 'metrics' evaluator kept),
with the EMA generator when the run kept one (--noema for the trained parameters). Seed s
always gives the same image for a given checkpoint; the training grids show seeds
0..num_samples-1. A growing model (ProGAN) samples at the resolution its checkpoint had
reached, the grid upscaled to the final size (--separate_dir keeps the native size).
"""

from __future__ import annotations

import os
from typing import Sequence

from absl import app, flags, logging

from jaxgan import images
from jaxgan import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's workdir.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
_NUM = flags.DEFINE_integer("num", None, "Images, from seeds 0..num-1 (when --seeds is not "
                            "set); default 64, or 8 per class for a conditional generator.")
_LABELS = flags.DEFINE_string("labels", "", "Classes of a conditional generator, e.g. '0,3,7' "
                              "or '0-9': one grid row each; default every class.")
_SEEDS = flags.DEFINE_string("seeds", "", "Seeds, e.g. '0-63' or '3,7,11-15'.")
_TRUNCATION = flags.DEFINE_float("truncation", None,
                                 "Truncate the latents to [-t, t] (e.g. 0.7); default none.")
_INTERPOLATE = flags.DEFINE_string("interpolate", "",
                                   "'A,B': spherical interpolation from seed A to seed B.")
_FRAMES = flags.DEFINE_integer("frames", 10, "Images of an interpolation, both ends included.")
_NROW = flags.DEFINE_integer("nrow", None, "Images per row of the grid; default square "
                             "(one row for an interpolation).")
_OUT = flags.DEFINE_string("out", "samples.png", "The grid PNG to write.")
_SEPARATE = flags.DEFINE_string("separate_dir", "", "Also write one PNG per image here.")
_EMA = flags.DEFINE_bool("ema", True, "Use the EMA generator when the run kept one.")
_BEST = flags.DEFINE_bool("best", False, "Use the kept checkpoint of the best metric value "
                          "(WORKDIR/best/, from a 'metrics' evaluator) instead of the latest.")
_SUMMARY = flags.DEFINE_bool("summary", False, "Only rewrite WORKDIR/losses.png and "
                             "WORKDIR/samples.gif from the metrics and sample grids.")
_NEAREST = flags.DEFINE_integer("nearest", 0, "Write the memorisation check instead: each "
                                "sample and its K nearest training images (to --out, default "
                                "WORKDIR/nearest.png).")
_NEAREST_REF = flags.DEFINE_integer("nearest_ref", 0, "Training images that --nearest "
                                    "searches; default the metrics entry's reference count, "
                                    "else up to 10,000.")
_FEATURES = flags.DEFINE_bool("features", None, "--nearest also (or not) in the metrics "
                              "network's feature space; default: when config.evals has a "
                              "'metrics' entry.")
flags.mark_flag_as_required("workdir")


def parse_seeds(text: str) -> list[int]:
  """'0-3,7' -> [0, 1, 2, 3, 7]; ranges include both ends."""
  seeds = []
  for part in filter(None, (p.strip() for p in text.split(","))):
    lo, sep, hi = part.partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()):
      raise ValueError(f"seeds {text!r}: expected non-negative integers and ranges like '0-63'")
    seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
  if not seeds:
    raise ValueError(f"seeds {text!r}: no seed given")
  return seeds


def write_samples(workdir: str, out: str, *, seeds: Sequence[int] | None = None,
                  num: int | None = None, labels: Sequence[int] | None = None,
                  truncation: float | None = None,
                  interpolate: tuple[int, int] | None = None, frames: int = 10,
                  nrow: int | None = None, step: int | None = None, ema: bool = True,
                  separate_dir: str = "", best: bool = False) -> str:
  """Loads the generator of `workdir` and writes a grid of samples or an interpolation.

  Returns:
    A one-line description of what was written.
  """
  from jaxgan import sampling  # pylint: disable=g-import-not-at-top  (fast start: JAX)

  gen = sampling.load_generator(workdir, step=step, ema=ema, best=best)
  latent_dim, conditional = gen.config.model.latent_dim, gen.gan.conditional
  if labels is not None and not conditional:
    raise ValueError(f"--labels: the generator of {workdir} is unconditional "
                     f"(model.num_classes=0)")
  if interpolate is not None:
    ends = sampling.latents(interpolate, latent_dim, truncation)
    frame_labels = [labels[0] if labels else 0] * frames if conditional else None
    pictures = sampling.generate(gen, sampling.interpolate(ends[0], ends[1], frames),
                                 frame_labels)
    nrow, what = nrow or frames, f"an interpolation from seed {interpolate[0]} to {interpolate[1]}"
  elif conditional:
    classes = list(labels) if labels else list(range(gen.gan.num_classes))
    row = list(seeds) if seeds else list(range(num or 8))
    all_seeds, all_labels, per_row = sampling.class_grid(row, classes)
    pictures = sampling.sample(gen, all_seeds, truncation, all_labels)
    nrow = nrow or per_row
    what = f"{len(all_seeds)} samples, one row per class of {classes}"
  else:
    seeds = list(seeds) if seeds else list(range(num or 64))
    pictures = sampling.sample(gen, seeds, truncation)
    what = f"{len(seeds)} samples"
  size = tuple(gen.config.data.image_size)
  native = tuple(pictures.shape[1:3])
  # A growing model's grid: its current resolution, upscaled to the final size.
  images.save_grid(images.upscale(pictures, size), out, nrow)
  if separate_dir:
    sampling.save_images(pictures, separate_dir)
  where = gen.gan.describe(gen.extra) if gen.extra is not None else ""
  if native != size:
    where = f"{where or f'{native[0]}x{native[1]}'}; the grid upscaled to {size[0]}x{size[1]}"
  return (f"Wrote {what} to {out} (checkpoint {gen.step}, {'EMA' if gen.ema else 'trained'} "
          f"parameters, truncation {truncation}{'; ' + where if where else ''}).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if _SUMMARY.value:
    wd = workdir_lib.Workdir(_WORKDIR.value)
    if not wd.root.is_dir():
      raise app.UsageError(f"--workdir={_WORKDIR.value}: no such directory")
    written = workdir_lib.write_summary(wd)
    if not written:
      raise app.UsageError(f"--workdir={_WORKDIR.value}: no metrics.jsonl records and no "
                           f"sample grids to summarise")
    logging.info("Wrote %s.", " and ".join(map(str, written)))
    return
  try:
    seeds = parse_seeds(_SEEDS.value) if _SEEDS.value else None
    pair = parse_seeds(_INTERPOLATE.value) if _INTERPOLATE.value else None
    labels = parse_seeds(_LABELS.value) if _LABELS.value else None
  except ValueError as e:
    raise app.UsageError(str(e).replace("seeds", "--seeds/--interpolate/--labels", 1)) from e
  if pair is not None and len(pair) != 2:
    raise app.UsageError(f"--interpolate={_INTERPOLATE.value!r}: expected two seeds 'A,B'")
  for flag, least in ((_NUM, 1), (_NROW, 1), (_FRAMES, 2)):
    if flag.value is not None and flag.value < least:
      raise app.UsageError(f"--{flag.name}={flag.value}: expected a whole number >= {least}")
  if _STEP.value is not None and _STEP.value < 0:
    raise app.UsageError(f"--step={_STEP.value}: expected a checkpoint step >= 0")
  if not os.path.isdir(_WORKDIR.value):
    raise app.UsageError(f"--workdir={_WORKDIR.value}: no such directory")
  if _NEAREST.value < 0:
    raise app.UsageError(f"--nearest={_NEAREST.value}: expected the number of neighbours, >= 1")
  if _NEAREST.value:
    try:
      from jaxgan.metrics import nearest  # pylint: disable=g-import-not-at-top  (fast start: JAX)
      lines = nearest.write_check(_WORKDIR.value, _OUT.value if _OUT.present else None,
                                  k=_NEAREST.value, num=_NUM.value, seeds=seeds,
                                  ref_num=_NEAREST_REF.value, features=_FEATURES.value,
                                  step=_STEP.value, ema=_EMA.value, best=_BEST.value)
    except ValueError as e:  # A bad count; a missing or corrupt checkpoint fails with 1.
      raise app.UsageError(str(e)) from e
    for line in lines:
      logging.info("%s", line)
    return
  try:
    message = write_samples(
        _WORKDIR.value, _OUT.value, seeds=seeds, num=_NUM.value, labels=labels,
        truncation=_TRUNCATION.value, interpolate=tuple(pair) if pair else None,
        frames=_FRAMES.value, nrow=_NROW.value, step=_STEP.value, ema=_EMA.value,
        separate_dir=_SEPARATE.value, best=_BEST.value)
  except ValueError as e:  # A bad label, seed or truncation (a checkpoint's failure: status 1).
    raise app.UsageError(str(e)) from e
  logging.info("%s", message)


if __name__ == "__main__":
  from jaxgan import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, __name__, __doc__, required=("workdir",))
