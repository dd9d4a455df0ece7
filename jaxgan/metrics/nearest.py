"""The memorisation check: each generated sample next to its nearest training images.

    gen = sampling.load_generator("runs/pokemon")
    result = find(gen, k=4, num=8)              # pixel space, and features when configured
    images.save_png(grid(result), "nearest.png")
    print("\n".join(summary(result)))

A GAN trained on a few hundred images can learn to copy them; the standard check is to
put each sample beside the training images nearest to it. Two spaces are searched:

  pixels    the RMS difference of the images in [-1, 1] at the training resolution (0 for
            equal images, 2 for black against white): finds copies, also shifted colours
            of one, but not a flipped or moved copy
  features  the L2 distance of the metrics network's pool features (config.evals' first
            'metrics' entry: its network and weights; Inception's 2048-d pool for FID),
            less sensitive than pixels to a small shift or a colour change; searched
            only when the run has such an entry (or when asked)

The training images are the metrics' reference set (`input_pipeline.reference_set`: the
first images of the data in their epoch-0 order, centre-cropped as for training, not
flipped); their features come from the same cache as the metrics' reference statistics.
As a yardstick, each space also gives the distance from each of the first `LOO_LIMIT`
training images to its nearest other training image: a sample much nearer to a training
image than training images are to each other is likely a copy.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import numpy as np
from absl import logging

from jaxgan import images as images_lib
from jaxgan import input_pipeline
from jaxgan import sampling
from jaxgan import sharding
from jaxgan import workdir as workdir_lib
from jaxgan.metrics import evaluation
from jaxgan.metrics import networks

# The training images of the leave-one-out yardstick (their pairwise distances are computed).
LOO_LIMIT = 1000
# The default number of training images searched when the run has no 'metrics' entry.
DEFAULT_REF_NUM = 10_000
# Keys are converted to float32 this many at a time (the training images stay uint8).
_CHUNK = 256


@dataclasses.dataclass
class Neighbours:
  """The nearest training images of each sample in one space.

  Attributes:
    space: 'pixels' or 'features'.
    index: [S, K] indices into the training images, nearest first.
    distance: [S, K] their distances.
    between_reals: [M] each of the first M training images' distance to its nearest other
      training image (the yardstick).
  """
  space: str
  index: np.ndarray
  distance: np.ndarray
  between_reals: np.ndarray


@dataclasses.dataclass
class Result:
  """`find`'s answer: samples and training images as uint8 [N, H, W, C], and the neighbours
  in each space searched."""
  samples: np.ndarray
  reals: np.ndarray
  neighbours: list[Neighbours]
  network: str = ""


def _vectors(x: np.ndarray) -> np.ndarray:
  """uint8 images -> float32 rows in [-1, 1]; feature rows as float32."""
  x = np.asarray(x)
  if x.dtype == np.uint8:
    return x.reshape(len(x), -1).astype(np.float32) / 127.5 - 1.0
  return x.reshape(len(x), -1).astype(np.float32)


def squared_distances(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
  """[S, N] squared L2 distances between the rows of `queries` and `keys` (images as uint8
  [N, H, W, C] or features [N, D]); keys are converted a chunk at a time."""
  q = _vectors(queries).astype(np.float64)
  out = np.empty((len(q), len(keys)), np.float64)
  qq = (q * q).sum(1)[:, None]
  for start in range(0, len(keys), _CHUNK):
    k = _vectors(keys[start:start + _CHUNK]).astype(np.float64)
    out[:, start:start + len(k)] = qq + (k * k).sum(1)[None] - 2.0 * q @ k.T
  return np.maximum(out, 0.0)


def nearest(queries: np.ndarray, keys: np.ndarray, k: int, exclude_self: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
  """The `k` nearest keys of each query by L2 distance: (index [S, k], distance [S, k]),
  nearest first (ties by index). With `exclude_self`, query i is key i and is skipped."""
  d2 = squared_distances(queries, keys)
  if exclude_self:
    d2[np.arange(len(d2)), np.arange(len(d2))] = np.inf
  k = min(k, d2.shape[1] - int(exclude_self))
  index = np.argsort(d2, axis=1, kind="stable")[:, :k]
  return index, np.sqrt(np.take_along_axis(d2, index, axis=1))


def search(space: str, queries: np.ndarray, keys: np.ndarray, k: int, scale: float = 1.0
           ) -> Neighbours:
  """`nearest` of the queries among the keys, and the keys' leave-one-out yardstick; the
  distances are multiplied by `scale` (1/sqrt(pixels) makes pixel distances RMS)."""
  index, distance = nearest(queries, keys, k)
  m = min(len(keys), LOO_LIMIT)
  between = nearest(keys[:m], keys[:m], 1, exclude_self=True)[1][:, 0] if m > 1 else np.zeros(0)
  return Neighbours(space, index, distance * scale, between * scale)


def metrics_entry(config) -> dict | None:
  """The options of config.evals' first 'metrics' entry (by name), or None."""
  for name in sorted(config.evals):
    spec = config.evals[name]
    if spec.get("type") == "metrics":
      return evaluation.options(spec)
  return None


def _load_reals(config, num: int, batch: int) -> np.ndarray:
  _, open_set = input_pipeline.reference_set(config, num, batch)
  batches, count = open_set()
  parts, have = [], 0
  for images in batches:
    parts.append(images_lib.to_uint8(images))
    have += len(images)
    if have >= count:
      break
  return np.concatenate(parts)[:count]


def find(gen: sampling.LoadedGenerator, k: int, num: int = 8, ref_num: int = 0,
         features: bool | None = None, seeds: Sequence[int] | None = None) -> Result:
  """The `k` nearest training images of `num` samples (seeds 0..num-1, or `seeds`; a
  conditional generator draws label i % num_classes for sample i).

  Args:
    gen: the generator (its config names the data and the metrics network).
    k: neighbours per sample and space.
    num: samples, when `seeds` is not given.
    ref_num: training images searched; 0: the metrics entry's reference count (so that the
      metrics' cached features are reused), else all up to DEFAULT_REF_NUM.
    features: search the metrics network's feature space too; None: when the config has a
      'metrics' entry. True without one uses the 'inception' network.
    seeds: the samples' seeds.

  Returns:
    The Result.
  """
  if k < 1:
    raise ValueError(f"nearest k={k}: expected a whole number >= 1")
  config = gen.config
  seeds = list(seeds) if seeds is not None else list(range(num))
  if not seeds:
    raise ValueError(f"nearest: num={num}: expected at least one sample")
  entry = metrics_entry(config)
  if features is None:
    features = entry is not None
  options = entry or dict(evaluation.DEFAULTS)
  if not ref_num:
    ref_num = int(entry["ref_num"] or entry["num"]) if entry else DEFAULT_REF_NUM
  labels = ([s % gen.gan.num_classes for s in seeds] if gen.gan.conditional else None)
  samples = sampling.sample(gen, seeds, None, labels)
  samples = images_lib.to_uint8(images_lib.upscale(samples, tuple(config.data.image_size)))
  batch = int(options["batch"])
  reals = _load_reals(config, ref_num, batch)
  logging.info("Nearest neighbours of %d samples among %d training images of %s.",
               len(samples), len(reals), config.data.source)
  pixels = float(np.prod(samples.shape[1:]))
  result = Result(samples, reals, [search("pixels", samples, reals, k, 1.0 / np.sqrt(pixels))])
  if features:
    embed = evaluation.Embedder(networks.build(options["network"], options["weights"]),
                                sharding.make_mesh(), batch)
    real = evaluation.reference_features(config, embed, ref_num, options["cache_dir"] or None)
    if len(real["pool"]) != len(reals):
      raise RuntimeError(f"{len(real['pool'])} reference features for {len(reals)} images")
    fake = evaluation.embed_array(embed, samples.astype(np.float32) / 127.5 - 1.0,
                                  "embedding the samples")
    result.neighbours.append(search("features", fake["pool"], real["pool"], k))
    result.network = options["network"]
  return result


def grid(result: Result, min_side: int = images_lib.DISPLAY_MIN_SIDE) -> np.ndarray:
  """One row per sample: the sample, then its nearest training images in pixel space, then
  (after a blank tile) those in feature space; uint8, upscaled to be readable."""
  blank = np.full(result.samples.shape[1:], 255, np.uint8)
  rows = []
  for i, sample in enumerate(result.samples):
    row = [sample]
    for j, found in enumerate(result.neighbours):
      if j:
        row.append(blank)
      row.extend(result.reals[found.index[i]])
    rows.append(row)
  width = max(len(r) for r in rows)
  tiles = [t for r in rows for t in r + [blank] * (width - len(r))]
  return images_lib.make_grid(np.stack(tiles), nrow=width, min_side=min_side)


def summary(result: Result) -> list[str]:
  """Lines for the console and the report: per space, the samples' median distance to
  their nearest training image against the training images' own, and how many samples lie
  nearer to a training image than 95% of training images lie to their nearest other."""
  lines = []
  for found in result.neighbours:
    nearest_d = found.distance[:, 0]
    what = "RMS pixel difference" if found.space == "pixels" else f"{result.network} feature L2"
    line = (f"{found.space} ({what}): samples' median distance to the nearest training "
            f"image {np.median(nearest_d):.4g}")
    if len(found.between_reals):
      low = np.percentile(found.between_reals, 5)
      close = int((nearest_d < low).sum())
      line += (f"; training images' to their nearest other {np.median(found.between_reals):.4g}"
               f" (5th percentile {low:.4g}); {close} of {len(nearest_d)} samples are nearer "
               f"than that to a training image")
    lines.append(line)
  return lines


def write_check(workdir: str, out: str | None = None, *, k: int, num: int | None = None,
                seeds: Sequence[int] | None = None, ref_num: int = 0,
                features: bool | None = None, step: int | None = None, ema: bool = True,
                best: bool = False) -> list[str]:
  """The memorisation check of `workdir`'s checkpoint (`find`; `num` samples, default 8) as
  a `grid` in `out` (default WORKDIR/nearest.png) and, when `out` is the default, the step,
  the counts and the `summary` lines in WORKDIR/nearest.json; returns the console lines
  (`python -m jaxgan.sample --nearest K`)."""
  if num is not None and num < 1:
    raise ValueError(f"--num={num}: expected a whole number >= 1")
  gen = sampling.load_generator(workdir, step=step, ema=ema, best=best)
  result = find(gen, k, num=num or 8, ref_num=ref_num, features=features, seeds=seeds)
  wd = workdir_lib.Workdir(workdir)
  path = images_lib.save_png(grid(result), out or wd.nearest_grid)
  lines = summary(result)
  spaces = " and ".join(n.space for n in result.neighbours)
  head = (f"Wrote {path}: {len(result.samples)} samples (checkpoint {gen.step}), each followed "
          f"by its {k} nearest of {len(result.reals)} training images in {spaces}.")
  if out is None:
    record = {"step": gen.step, "k": k, "samples": len(result.samples),
              "reals": len(result.reals), "spaces": [n.space for n in result.neighbours],
              "network": result.network, "summary": lines}
    wd.nearest_json.write_text(json.dumps(record, indent=2) + "\n")
  return [head, *lines]
