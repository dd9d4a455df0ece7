"""Host batches and reference sets: the one module that composes the data stages.

    spec -> list (folder | builtin | tfds_source) -> decode -> store -> order -> finish

Folder and builtin datasets are listed, decoded once into an `ImageStore` (RAM, or
memory-mapped from `config.data.cache`), then every batch is gathered from it by the
index-based order of `jaxgan.data.order`: batch k is a pure function of (seed, k), which
makes resuming O(1). Every process decodes the whole dataset (they are small) and takes
its slice of each global batch, so the global batch is the same for any number of
processes. With `cache='none'` the files are decoded again for every batch, in the same
order.

TFDS datasets are streamed: each process reads its own part of the split, optionally
caches it, shuffles it with a `shuffle_buffer`-sized buffer (a new, seeded order every
epoch) and repeats. Resuming at step k skips k local batches, re-reading that data.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from jaxgan import errors
from jaxgan.data import builtin
from jaxgan.data import decode
from jaxgan.data import finish
from jaxgan.data import folder
from jaxgan.data import order
from jaxgan.data import store as store_lib
from jaxgan.data.spec import DataSpec

Batch = dict[str, np.ndarray]


class Batches:
  """An iterator of host batches that knows its dataset: `num_examples` (None when the
  source does not say, TFDS) and `skipped` (names of files that could not be decoded)."""

  def __init__(self, batches: Iterator[Batch], num_examples: int | None,
               skipped: tuple[str, ...] = ()):
    self._batches, self.num_examples, self.skipped = batches, num_examples, tuple(skipped)

  def __iter__(self) -> Batches:
    return self

  def __next__(self) -> Batch:
    return next(self._batches)

  def close(self) -> None:
    if hasattr(self._batches, "close"):
      self._batches.close()


def check_labels(batches: Iterator[Batch], spec: DataSpec) -> Iterator[Batch]:
  """Passes batches through, raising ValueError on a label outside [0, num_classes)."""
  for batch in batches:
    labels = batch.get("label")
    if spec.num_classes and labels is not None and len(labels):
      lo, hi = int(np.min(labels)), int(np.max(labels))
      if lo < 0 or hi >= spec.num_classes:
        bad = lo if lo < 0 else hi
        raise errors.DataError(f"{spec.source} has label {bad}, outside the range 0.."
                               f"{spec.num_classes - 1} of config.model.num_classes="
                               f"{spec.num_classes}; set num_classes to the dataset's class count")
    yield batch


def _listing(spec: DataSpec) -> list[str] | None:
  """The list stage of a random-access source: a folder's image files, or None for a
  builtin dataset (examples 0 .. builtin_size - 1, rendered by `decode`)."""
  return folder.list_images(spec.arg) if spec.kind == "folder" else None


def build_store(spec: DataSpec) -> store_lib.ImageStore:
  """The decoded dataset of a folder or builtin source, from the disk cache if present."""
  paths = _listing(spec)
  on_disk = spec.cache not in ("memory", "none")
  if on_disk:
    name = store_lib.cache_name(spec, paths)
    cached = store_lib.load(spec.cache, name)
    if cached is not None:
      if paths is not None:
        decode.warn_skipped(spec, list(cached.skipped), len(paths))
      return cached
  images, kept = decode.decode_all(spec, paths, keep=True)
  skipped = [] if paths is None else sorted(set(paths) - {paths[i] for i in kept})
  labels = folder.class_labels(spec, paths)
  result = store_lib.from_images(images, labels=None if labels is None else labels[kept],
                                 skipped=skipped)
  if on_disk:
    store_lib.save(result, spec.cache, name)
    result = store_lib.load(spec.cache, name)
  return result


def _stage_size(spec: DataSpec, step: int) -> tuple[int, int]:
  """The (height, width) of global batch `step`'s stage."""
  return spec.stage_size(order.span(step, spec.stages)[2])


def stored_batches(spec: DataSpec, store: store_lib.ImageStore, start_step: int,
                   process_index: int, process_count: int) -> Iterator[Batch]:
  """Local batches gathered from a decoded store, from global batch `start_step` on."""
  for step in itertools.count(start_step):
    pos = order.local_positions(step, spec.stages, process_index, process_count)
    idx = order.example_indices(pos, len(store), spec.seed)
    batch = {"image": finish.finish_batch(spec, store.take(idx), pos, _stage_size(spec, step))}
    if store.labels is not None:
      batch["label"] = store.labels[idx]
    yield batch


def _decoded_batches(spec: DataSpec, start_step: int, process_index: int,
                     process_count: int) -> Batches:
  """Like `stored_batches`, but decoding the examples of every batch again (cache='none')."""
  paths = _listing(spec)
  labels, skipped = None, ()
  if paths is not None:  # Find the decodable files first: the order is over those.
    _, kept = decode.decode_all(spec, paths, keep=False)
    skipped = tuple(sorted(set(paths) - {paths[i] for i in kept}))
    paths = [paths[i] for i in kept]
    labels = folder.class_labels(spec, paths)
  num = len(paths) if paths is not None else spec.builtin_size
  positions = functools.partial(order.local_positions, stages=spec.stages,
                                process_index=process_index, process_count=process_count)

  def indices():
    for step in itertools.count(start_step):
      yield from order.example_indices(positions(step), num, spec.seed)

  examples = decode.decode_stream(spec, paths, indices)

  def batches():
    for step in itertools.count(start_step):
      pos = positions(step)
      pairs = [next(examples) for _ in pos]
      images = [image for _, image in pairs]
      batch = {"image": finish.finish_batch(spec, images, pos, _stage_size(spec, step))}
      if labels is not None:
        batch["label"] = labels[np.array([int(i) for i, _ in pairs], np.int64)]
      yield batch
  return Batches(batches(), num, skipped)


def _tfds_batches(spec: DataSpec, start_step: int, process_index: int,
                  process_count: int) -> Iterator[Batch]:
  """Local batches of a TFDS split: cache, per-epoch seeded shuffle, repeat, skip."""
  # tensorflow_datasets is slow to import: loaded only for a tfds source.
  from jaxgan.data import tfds_source  # pylint: disable=g-import-not-at-top  (TensorFlow)
  ds, has_labels = tfds_source.local_examples(
      spec.arg, data_dir=spec.tfds_data_dir, image_key=spec.tfds_image_key,
      process_index=process_index, process_count=process_count)
  if spec.num_classes and not has_labels:
    raise errors.DataError(f"config.model.num_classes={spec.num_classes} is invalid: {spec.source} "
                           f"has no integer 'label' feature; use num_classes=0 for unlabelled data")
  ds = decode.preprocess_examples(ds, spec)
  if spec.cache == "memory":
    ds = ds.cache()
  elif spec.cache != "none":
    os.makedirs(spec.cache, exist_ok=True)
    key = store_lib.tfds_key(spec)
    ds = ds.cache(os.path.join(spec.cache, f"tfds-{key}-p{process_index}of{process_count}"))
  ds = ds.shuffle(max(spec.shuffle_buffer, 1), seed=spec.seed, reshuffle_each_iteration=True)
  start = order.span(start_step, spec.stages)[0] // process_count  # local examples before it
  ds = ds.repeat().skip(start)
  # Same-size images of one batch size batch in tf.data; random-crop sizes differ, and
  # growing stages change the batch size, so those go one by one.
  dense = spec.resize != "random_crop" and len(spec.stages) <= 1
  if dense:
    ds = ds.batch(spec.batch_size // process_count)
  examples = ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()

  def batches():
    for step in itertools.count(start_step):
      pos = order.local_positions(step, spec.stages, process_index, process_count)
      try:
        if dense:
          ex = next(examples)
          images, labels = ex["image"], ex.get("label")
        else:
          exs = [next(examples) for _ in pos]
          images = [e["image"] for e in exs]
          labels = np.array([e["label"] for e in exs]) if has_labels else None
      except StopIteration:
        raise errors.DataError(
            f"{spec.source} has no examples for process {process_index}") from None
      batch = {"image": finish.finish_batch(spec, images, pos, _stage_size(spec, step))}
      if labels is not None:
        batch["label"] = labels
      yield batch
  return batches()


def host_batches(spec: DataSpec, start_step: int, process_index: int,
                 process_count: int) -> Batches:
  """This process's local batches, from global batch `start_step` on.

  The source is opened (and, if cached, decoded) before this returns, so a bad path or
  dataset raises here rather than at the first batch.

  Args:
    spec: the data spec.
    start_step: the first global batch.
    process_index: this process.
    process_count: number of processes (divides spec.batch_size).

  Returns:
    An infinite `Batches` of {'image': float32 [B/P, H, W, C] in [-1, 1], 'label': int32
    [B/P] (sources with labels)}, with the dataset's size and skipped files.
  """
  decode.hide_gpus_from_tf()
  if spec.kind == "tfds":
    batches = Batches(_tfds_batches(spec, start_step, process_index, process_count), None)
  else:
    if spec.kind == "builtin":
      builtin.get_renderer(spec.arg)  # Fails early for an unknown name.
    if spec.cache == "none":
      batches = _decoded_batches(spec, start_step, process_index, process_count)
    else:
      store = build_store(spec)
      batches = Batches(stored_batches(spec, store, start_step, process_index, process_count),
                        len(store), store.skipped)
  return Batches(check_labels(batches, spec), batches.num_examples, batches.skipped)


def reference_set(spec: DataSpec, num: int, batch: int
                  ) -> tuple[str, Callable[[], tuple[Iterator[np.ndarray], int]]]:
  """The real images a metric compares against: the first min(num, dataset size) examples
  of the epoch-0 order at full size, not flipped, in full batches of `batch` (keep the first
  `count` results: the last batch runs on into the examples that follow). A TFDS split's
  size is not known in advance: its first `num` examples (repeating when it is smaller).

  Returns:
    (a key naming the data and its preprocessing: the files with their sizes and times, or
    the TFDS source; `open()` -> (an iterator of float32 [batch, H, W, C] in [-1, 1], the
    number of real images)). Nothing is decoded until `open` is called.
  """
  decode.hide_gpus_from_tf()
  spec = dataclasses.replace(spec, flip=False, batch_size=batch,
                             stages=((0, batch, spec.image_size),))
  if spec.kind == "tfds":
    key = store_lib.tfds_key(spec)
  else:
    if spec.kind == "builtin":
      builtin.get_renderer(spec.arg)
    key = store_lib.cache_name(spec, _listing(spec))

  def images(batches, count):
    for _ in range(0, count, batch):
      yield next(batches)["image"]

  def open_set():
    if spec.kind == "tfds":
      return images(_tfds_batches(spec, 0, 0, 1), num), num
    store = build_store(dataclasses.replace(spec, cache="memory") if spec.cache == "none"
                        else spec)
    count = min(num, len(store))
    return images(stored_batches(spec, store, 0, 0, 1), count), count
  return key, open_set
