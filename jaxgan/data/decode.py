"""The decode stage: a listing's files (or a builtin's renders) -> stored uint8 images.

Each example is read, decoded and brought to its stored form (`tf_ops.preprocess`: alpha
composited, channels, resized or cropped by `config.data.resize`) in a parallel,
deterministic `tf.data` map, so examples come out in index order. Files that fail to
decode are skipped with one warning naming them. TensorFlow is kept off the GPUs
(`hide_gpus_from_tf`), which JAX needs.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Iterator, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from jaxgan import errors
from jaxgan.data import builtin
from jaxgan.data import tf_ops
from jaxgan.data.spec import DataSpec

AUTOTUNE = tf.data.AUTOTUNE


def hide_gpus_from_tf() -> None:
  """Keeps TensorFlow off the GPUs, so that it does not reserve the memory JAX needs."""
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TF already initialised its devices; it was then hidden before.
    pass


def processor(spec: DataSpec) -> Callable[[tf.Tensor], tf.Tensor]:
  """Decoded image (1-4 channels) -> its stored uint8 form under `spec`."""
  return functools.partial(tf_ops.preprocess, target=spec.image_size, policy=spec.resize,
                           channels=spec.channels, background=spec.background)


def _file_loader(paths: Sequence[str], min_size: Sequence[int]) -> Callable[[tf.Tensor], tf.Tensor]:
  """index -> decoded image of file `paths[index]`."""
  table = tf.constant(list(paths), tf.string)
  return lambda i: tf_ops.decode(tf.io.read_file(tf.gather(table, i)), min_size)


def _numpy_loader(render: Callable[[int], np.ndarray], channels: int) -> Callable:
  """index -> image rendered by the numpy function `render(index)` (uint8 [H, W, channels])."""
  def load(i):
    image = tf.numpy_function(lambda j: render(int(j)), [i], tf.uint8, stateful=False)
    image.set_shape([None, None, channels])
    return image
  return load


def loader(spec: DataSpec, paths: list[str] | None) -> Callable[[tf.Tensor], tf.Tensor]:
  """index -> decoded image: a file of `paths`, or a rendered builtin example."""
  min_size = tf_ops.stored_size(spec.image_size, spec.resize)
  if spec.kind == "folder":
    return _file_loader(paths, min_size)
  render = builtin.get_renderer(spec.arg)
  return _numpy_loader(lambda i: render(builtin.DATA_SEED, i, *min_size), 3)


def _map_indices(indices: tf.data.Dataset, load: Callable[[tf.Tensor], tf.Tensor],
                 process: Callable[[tf.Tensor], tf.Tensor]) -> tf.data.Dataset:
  """index -> (index, process(load(index))), parallel and deterministic (order kept)."""
  fn = tf.autograph.experimental.do_not_convert(lambda i: (i, process(load(i))))
  return indices.map(fn, num_parallel_calls=AUTOTUNE, deterministic=True)


def _materialize(dataset: tf.data.Dataset, skip_errors: bool) -> Iterator[tuple[int, np.ndarray]]:
  """Runs a dataset of (index, image) in parallel, yielding (index, numpy image) in order.

  Args:
    dataset: elements (int64 index, uint8 image), built with deterministic parallel maps.
    skip_errors: drop elements whose map raised (corrupt files); the caller sees which
      indices are missing.

  Yields:
    (index, uint8 image) in index order.
  """
  if skip_errors:
    dataset = dataset.ignore_errors()
  for index, image in dataset.prefetch(AUTOTUNE).as_numpy_iterator():
    yield int(index), image


def warn_skipped(spec: DataSpec, skipped: Sequence[str], total: int) -> None:
  """One warning naming the files of a folder source that could not be decoded."""
  if not skipped:
    return
  root = os.path.abspath(os.path.expanduser(spec.arg))
  names = [os.path.relpath(p, root) for p in skipped]
  shown = ", ".join(names[:20]) + (f", ... and {len(names) - 20} more" if len(names) > 20 else "")
  logging.warning("%s: skipped %d of %d image files that could not be decoded: %s",
                  spec.source, len(skipped), total, shown)


def decode_all(spec: DataSpec, paths: list[str] | None,
               keep: bool) -> tuple[list[np.ndarray] | None, list[int]]:
  """Decodes and preprocesses every example once, in parallel.

  Args:
    spec: the data spec.
    paths: a folder's files (`folder.list_images`), None for a builtin source.
    keep: return the images (else only find which examples decode).

  Returns:
    (list of stored uint8 images, or None if not `keep`; indices that decoded).
  """
  num = len(paths) if paths is not None else spec.builtin_size
  ds = _map_indices(tf.data.Dataset.range(num), loader(spec, paths), processor(spec))
  images, kept = [], []
  for index, image in _materialize(ds, skip_errors=spec.kind == "folder"):
    kept.append(index)
    if keep:
      images.append(image)
  if paths is not None:
    kept_set = set(kept)
    warn_skipped(spec, [p for i, p in enumerate(paths) if i not in kept_set], num)
    if not kept:
      raise errors.DataError(f"{spec.source}: none of the {num} image files could be decoded")
  return (images if keep else None), kept


def decode_stream(spec: DataSpec, paths: list[str] | None,
                  make_indices: Callable[[], Iterator[int]]) -> Iterator[tuple[int, np.ndarray]]:
  """(index, stored uint8 image) of each index that `make_indices()` yields, decoded anew
  (cache='none'), in order, prefetched."""
  indices = tf.data.Dataset.from_generator(make_indices,
                                           output_signature=tf.TensorSpec([], tf.int64))
  ds = _map_indices(indices, loader(spec, paths), processor(spec))
  return ds.prefetch(AUTOTUNE).as_numpy_iterator()


def preprocess_examples(ds: tf.data.Dataset, spec: DataSpec) -> tf.data.Dataset:
  """A stream of decoded {'image', ...} examples (TFDS) with each image in its stored form."""
  process = processor(spec)
  fn = tf.autograph.experimental.do_not_convert(lambda ex: {**ex, "image": process(ex["image"])})
  return ds.map(fn, num_parallel_calls=AUTOTUNE, deterministic=True)
