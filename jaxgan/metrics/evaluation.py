"""Sample quality of a generator: embed real and generated images on the mesh, score them.

    network = networks.build("inception", weights="pt_inception-2015-12-05-6726825d.pth")
    embed = Embedder(network, mesh, batch=64)
    real = reference_features(config, embed, num=10_000)        # cached on disk
    fake = generated_features(gan, g_variables, extra, embed, num=10_000,
                              size=config.data.image_size)
    compute_scores(("fid", "kid"), real, fake)   # {'fid': ..., 'kid': ..., 'kid_std': ...}

Images are embedded in global batches split over the mesh's data axis, one compiled
program per batch shape; the features come back replicated, so every process holds them
all and computes the same scores. Generated images are quantised to the 256 levels of an
8-bit image before they are embedded (as stylegan2-ada's metrics do), so that they are
scored as the saved PNGs would be and as the reals, which come from 8-bit files, are.
A growing model's images are upscaled (nearest) to the data resolution first.

Reference features are cached in `cache_dir` (default: config.data.cache when it is a
directory, else ~/.cache/jaxgan/reference) as `reference-KEY.npz`, keyed by the data (the
files with their sizes and times, or the TFDS source), the preprocessing and resolution,
the number of images and the feature network's weights; a file whose stored key differs
is recomputed.

The `config.evals` type 'metrics' (`jaxgan.training.evaluators.MetricsEvaluator`) calls these
functions; DEFAULTS and `options` are its options.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxgan import images as images_lib
from jaxgan import input_pipeline
from jaxgan import sampling
from jaxgan import sharding
from jaxgan.data import store as store_lib
from jaxgan.metrics import networks as networks_lib
from jaxgan.metrics import scores

# The metric groups of `metrics=`, and the values each writes.
METRICS = {"fid": ("fid",), "kid": ("kid", "kid_std"), "is": ("is", "is_std"),
           "pr": ("precision", "recall")}
# keep_best: the value and whether lower is better.
BEST = {"fid": True, "kid": True, "is": False, "precision": False, "recall": False}
_REFERENCE_VERSION = 1
_PROGRESS_SECS = 30.0


def parse_metrics(metrics: str | Sequence[str]) -> tuple[str, ...]:
  """'fid,kid' -> ('fid', 'kid'); ValueError naming an unknown metric."""
  names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics)]
  names = [m for m in names if m]
  bad = [m for m in names if m not in METRICS]
  if bad or not names:
    raise ValueError(f"metrics={metrics!r} is invalid: expected a comma-separated list of "
                     f"{', '.join(METRICS)}")
  return tuple(dict.fromkeys(names))


def quantize(images: jax.Array) -> jax.Array:
  """[-1, 1] floats -> the nearest of the 256 levels of an 8-bit image, back in [-1, 1]."""
  levels = jnp.clip(jnp.round((images + 1.0) * 127.5), 0.0, 255.0)
  return levels / 127.5 - 1.0


class Embedder:
  """A feature network placed on a mesh: global batches of images -> features on the host.

  `batch` is rounded up to a multiple of the mesh's devices; every call takes exactly that
  many images (pad the last batch and drop its extra results).
  """

  def __init__(self, network: networks_lib.FeatureNetwork, mesh: jax.sharding.Mesh,
               batch: int = 64):
    n = mesh.shape[sharding.DATA_AXIS]
    self.network, self.mesh, self.batch = network, mesh, -(-int(batch) // n) * n
    self._replicated, self._split = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    self.variables = jax.device_put(network.variables, self._replicated)
    self._embed = jax.jit(network.apply, out_shardings=self._replicated)
    self._generators: dict[Any, Any] = {}

  def place(self, array: np.ndarray) -> jax.Array:
    """A host array that every process holds whole -> a global array split over the mesh."""
    array = np.asarray(array)
    return jax.make_array_from_callback(array.shape, self._split, lambda index: array[index])

  def images(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """Features of one batch of [batch, H, W, C] images in [-1, 1]."""
    return sharding.host(self._embed(self.variables, self.place(images)))

  def generated(self, gan, g_variables, z: np.ndarray, labels: np.ndarray | None, extra,
                size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Features of the images `gan` generates from one batch of latents (and labels)."""
    key = (gan, tuple(size))
    if key not in self._generators:
      apply = self.network.apply

      def fn(net_variables, g_variables, z, labels, extra):
        images = gan.generate(g_variables, z, labels, train=False, extra=extra)[0]
        images = images_lib.upscale(images.astype(jnp.float32), size)
        return apply(net_variables, quantize(images))
      self._generators[key] = jax.jit(fn, out_shardings=self._replicated)
    labels = None if labels is None else self.place(labels)
    return sharding.host(self._generators[key](self.variables, g_variables, self.place(z),
                                              labels, extra))


class _Progress:
  """'what: done/total' in the log every _PROGRESS_SECS."""

  def __init__(self, what: str, total: int):
    self._what, self._total = what, total
    self._start = self._last = time.perf_counter()

  def update(self, done: int) -> None:
    now = time.perf_counter()
    if now - self._last >= _PROGRESS_SECS and done < self._total:
      rate = done / (now - self._start)
      logging.info("%s: %d/%d images (%.1f images/s)", self._what, done, self._total, rate)
      self._last = now


def _concat(parts: list[dict[str, np.ndarray]], count: int) -> dict[str, np.ndarray]:
  return {k: np.concatenate([p[k] for p in parts])[:count] for k in parts[0]}


def embed_batches(embed: Embedder, batches: Iterable[np.ndarray], count: int,
                  what: str = "embedding") -> dict[str, np.ndarray]:
  """Features of the first `count` images of `batches` (each [embed.batch, H, W, C])."""
  parts, done, progress = [], 0, _Progress(what, count)
  for images in batches:
    if done >= count:
      break
    parts.append(embed.images(images))
    done += len(images)
    progress.update(done)
  if done < count:
    raise ValueError(f"{what}: the images ran out after {done} of {count}")
  return _concat(parts, count)


def embed_array(embed: Embedder, images: np.ndarray, what: str = "embedding"
                ) -> dict[str, np.ndarray]:
  """Features of every image of [N, H, W, C] in [-1, 1] (the last batch padded)."""
  n, b = len(images), embed.batch
  pad = -n % b
  if pad:
    images = np.concatenate([images, np.repeat(images[-1:], pad, axis=0)])
  return embed_batches(embed, (images[i:i + b] for i in range(0, len(images), b)), n, what)


def generated_features(gan, g_variables, extra, embed: Embedder, num: int,
                       size: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
  """Features of `num` generated images: latents of seeds seed..seed+num-1
  (`sampling.latents`), and labels i % num_classes for a conditional generator (every
  class equally often)."""
  parts, progress = [], _Progress("embedding generated images", num)
  for start in range(0, num, embed.batch):
    seeds = range(seed + start, seed + start + embed.batch)
    z = np.asarray(sampling.latents(seeds, gan.latent_dim))
    labels = (np.arange(start, start + embed.batch, dtype=np.int32) % gan.num_classes
              if gan.conditional else None)
    parts.append(embed.generated(gan, g_variables, z, labels, extra, size))
    progress.update(start + embed.batch)
  return _concat(parts, num)


def default_cache_dir(config: ml_collections.ConfigDict) -> Path:
  """config.data.cache when it names a directory, else $XDG_CACHE_HOME/jaxgan/reference."""
  if config.data.cache not in ("memory", "none"):
    return Path(config.data.cache)
  return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jaxgan" / "reference"


def reference_features(config: ml_collections.ConfigDict, embed: Embedder, num: int,
                       cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
  """Features of the real images of `config.data` (up to `num`, all of a smaller dataset),
  from the cache when its key matches, else computed and cached (by process 0)."""
  data_key, open_set = input_pipeline.reference_set(config, num, embed.batch)
  key = {"data": data_key, "source": config.data.source,
         "image_size": [int(s) for s in config.data.image_size],
         "channels": int(config.data.channels), "num": int(num),
         "network": embed.network.fingerprint, "version": _REFERENCE_VERSION}
  directory = Path(cache_dir) if cache_dir else default_cache_dir(config)
  path = directory / f"reference-{store_lib.fingerprint(**key)}.npz"
  if path.exists():
    try:
      with np.load(path) as f:
        if json.loads(str(f["key"])) == key:
          features = {k: f[k] for k in f.files if k != "key"}
          logging.info("Reference features of %s: %d images, from %s.", config.data.source,
                       len(features["pool"]), path)
          return features
      logging.warning("Reference features %s have another key: recomputing them.", path)
    except (OSError, ValueError, KeyError) as e:
      logging.warning("Reference features %s are unreadable (%s): recomputing them.", path, e)
  t = time.perf_counter()
  batches, count = open_set()
  features = embed_batches(embed, batches, count, f"embedding {config.data.source}")
  logging.info("Reference features of %s: %d images in %.1f s.", config.data.source, count,
               time.perf_counter() - t)
  if jax.process_index() == 0:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, key=json.dumps(key, sort_keys=True), **features)
    tmp.replace(path)
  return features


def _softmax(logits: np.ndarray) -> np.ndarray:
  z = np.asarray(logits, np.float64)
  z = np.exp(z - z.max(axis=1, keepdims=True))
  return z / z.sum(axis=1, keepdims=True)


def compute_scores(metrics: Sequence[str], real: dict[str, np.ndarray],
                   fake: dict[str, np.ndarray], *, kid_subsets: int = 100,
                   kid_subset_size: int = 1000, is_splits: int = 10, k: int = 3
                   ) -> dict[str, float]:
  """The values of `metrics` (names of METRICS) from real and fake features:
  fid; kid, kid_std; is, is_std (of the fakes' logits); precision, recall."""
  out: dict[str, float] = {}
  if "fid" in metrics:
    out["fid"] = scores.frechet_distance(*scores.moments(real["pool"]),
                                         *scores.moments(fake["pool"]))
  if "kid" in metrics:
    out["kid"], out["kid_std"] = scores.kernel_inception_distance(
        real["pool"], fake["pool"], num_subsets=kid_subsets, subset_size=kid_subset_size)
  if "is" in metrics:
    if "logits" not in fake:
      raise ValueError("the Inception Score needs class logits, and this feature network "
                       "gives none")
    out["is"], out["is_std"] = scores.inception_score(
        _softmax(fake["logits"]), splits=min(is_splits, len(fake["logits"])))
  if "pr" in metrics:
    out["precision"], out["recall"] = scores.precision_recall(real["pool"], fake["pool"], k=k)
  return out


def format_scores(values: dict[str, float]) -> list[str]:
  """One 'name value' line per metric ('kid 0.0123 +- 0.0008')."""
  lines = []
  for name, value in values.items():
    if name.endswith("_std"):
      continue
    std = values.get(f"{name}_std")
    lines.append(f"{name} {value:.6g}" + (f" +- {std:.3g}" if std is not None else ""))
  return lines


# ---- the options of a 'metrics' entry of config.evals ------------------------------------

DEFAULTS = {"metrics": "fid,kid", "num": 10_000, "ref_num": 0, "network": "inception",
            "weights": "", "batch": 64, "ema": True, "keep_best": "fid", "cache_dir": ""}


def options(spec: ml_collections.ConfigDict) -> dict[str, Any]:
  """The options of a 'metrics' entry of config.evals, with the DEFAULTS filled in."""
  return {k: spec.get(k, v) for k, v in DEFAULTS.items()}
