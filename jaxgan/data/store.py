"""Decoded, resized uint8 images held for random access: in RAM or memory-mapped from disk.

Images of one size are one dense array [N, H, W, C]; images of different sizes (the
random_crop policy keeps each image's aspect ratio) are one flat buffer plus their shapes.
On disk a store is `NAME.npy` (the pixels, memory-mapped when read) and `NAME.index.npz`
(shapes, labels, names of skipped files), written under temporary names and renamed, so an
interrupted run never leaves a half-written cache behind. A cached store is named by what
it depends on (`cache_name`: the files with their sizes and times, the preprocessing), so a
changed folder or config decodes anew.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import uuid
from typing import Sequence

import numpy as np

from jaxgan.data.spec import DataSpec

# Bump when preprocessing changes, so that on-disk caches of the old version are not reused.
_PREPROCESS_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ImageStore:
  """N uint8 images [h_i, w_i, C] with optional int labels.

  Attributes:
    pixels: dense [N, H, W, C] when all shapes are equal, else flat [sum(h_i * w_i * C)].
    shapes: int64 [N, 3].
    labels: int32 [N] or None.
    skipped: names of source files that could not be decoded.
  """
  pixels: np.ndarray
  shapes: np.ndarray
  labels: np.ndarray | None = None
  skipped: tuple[str, ...] = ()

  def __len__(self) -> int:
    return len(self.shapes)

  @property
  def dense(self) -> bool:
    return self.pixels.ndim == 4

  @functools.cached_property
  def _offsets(self) -> np.ndarray:
    sizes = np.prod(self.shapes, axis=1)
    return np.concatenate([[0], np.cumsum(sizes)])

  def take(self, indices: np.ndarray):
    """Images `indices`: a dense uint8 array [n, H, W, C], or a list of arrays if ragged."""
    if self.dense:
      return self.pixels[np.asarray(indices)]
    out = []
    for i in indices:
      start = self._offsets[i]
      out.append(np.asarray(self.pixels[start:self._offsets[i + 1]]).reshape(self.shapes[i]))
    return out


def from_images(images: Sequence[np.ndarray], labels: Sequence[int] | None = None,
                skipped: Sequence[str] = ()) -> ImageStore:
  """Builds a store from a list of uint8 [h, w, C] images (dense if all shapes are equal)."""
  if not images:
    raise ValueError("an ImageStore needs at least one image")
  shapes = np.array([im.shape for im in images], np.int64)
  if (shapes == shapes[0]).all():
    pixels = np.stack(images)
  else:
    pixels = np.concatenate([im.reshape(-1) for im in images])
  labels = None if labels is None else np.asarray(labels, np.int32)
  return ImageStore(pixels, shapes, labels, tuple(skipped))


def fingerprint(**parts) -> str:
  """A short stable hash of JSON-serialisable `parts` (what a cached store depends on)."""
  text = json.dumps(parts, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_name(spec: DataSpec, paths: list[str] | None) -> str:
  """The name of a folder or builtin source's cached store (also the metrics' reference-set
  key): a fingerprint of the files (path, size, mtime) or the builtin, and the preprocessing."""
  files = None
  if paths is not None:
    files = [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
  key = fingerprint(
      source=spec.source if spec.kind == "builtin" else "folder", files=files,
      labels=spec.labels if spec.kind == "folder" else "none",
      builtin_size=spec.builtin_size if spec.kind == "builtin" else None,
      size=spec.image_size, policy=spec.resize, channels=spec.channels,
      background=spec.background, version=_PREPROCESS_VERSION)
  return f"{spec.kind}-{key}"


def tfds_key(spec: DataSpec) -> str:
  """A fingerprint of a TFDS source and its preprocessing (its cache's name, and the
  metrics' reference-set key)."""
  return fingerprint(source=spec.source, data_dir=spec.tfds_data_dir, size=spec.image_size,
                     policy=spec.resize, channels=spec.channels, background=spec.background,
                     version=_PREPROCESS_VERSION)


def _paths(directory: str, name: str) -> tuple[str, str]:
  base = os.path.join(directory, name)
  return base + ".npy", base + ".index.npz"


def save(store: ImageStore, directory: str, name: str) -> None:
  """Writes `store` as `directory/name.npy` and `directory/name.index.npz`, atomically."""
  os.makedirs(directory, exist_ok=True)
  pixels_path, index_path = _paths(directory, name)
  tmp = f".tmp-{uuid.uuid4().hex}"  # Unique even for processes on other hosts.
  with open(pixels_path + tmp, "wb") as f:
    np.save(f, store.pixels)
  with open(index_path + tmp, "wb") as f:
    np.savez(f, shapes=store.shapes, skipped=np.array(store.skipped, dtype=str),
             labels=store.labels if store.labels is not None else np.zeros(0, np.int32),
             has_labels=store.labels is not None)
  # The index is renamed last: a store exists once its index does.
  os.replace(pixels_path + tmp, pixels_path)
  os.replace(index_path + tmp, index_path)


def load(directory: str, name: str) -> ImageStore | None:
  """The store saved as `name` in `directory` (pixels memory-mapped), or None if absent."""
  pixels_path, index_path = _paths(directory, name)
  if not (os.path.exists(index_path) and os.path.exists(pixels_path)):
    return None
  with np.load(index_path) as index:
    labels = index["labels"] if bool(index["has_labels"]) else None
    shapes, skipped = index["shapes"], tuple(str(s) for s in index["skipped"])
  return ImageStore(np.load(pixels_path, mmap_mode="r"), shapes, labels, skipped)
