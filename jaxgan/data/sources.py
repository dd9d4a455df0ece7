"""Host batches from each source: folder and builtin (random access), TFDS (streamed).

Folder and builtin datasets are decoded once into an `ImageStore` (RAM, or memory-mapped
from `config.data.cache`), then every batch is gathered from it by the index-based order of
`jaxgan.data.order`: batch k is a pure function of (seed, k), which makes resuming O(1).
Every process decodes the whole dataset (they are small) and takes its slice of each
global batch, so the global batch is the same for any number of processes.
With `cache='none'` the files are decoded again for every batch, in the same order.

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

from absl import logging
import numpy as np
import tensorflow as tf

from jaxgan import errors
from jaxgan.data import builtin
from jaxgan.data import order
from jaxgan.data import store as store_lib
from jaxgan.data import tf_ops
from jaxgan.data.spec import DataSpec

Batch = dict[str, np.ndarray]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
# Bump when preprocessing changes, so that on-disk caches of the old version are not reused.
_PREPROCESS_VERSION = 1


def hide_gpus_from_tf() -> None:
  """Keeps TensorFlow off the GPUs, so that it does not reserve the memory JAX needs."""
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TF already initialised its devices; it was then hidden before.
    pass


def list_images(path: str) -> list[str]:
  """Every image file under `path`, recursively, sorted; ValueError if there are none.

  Files are selected by extension (IMAGE_EXTENSIONS, any case); others are ignored.
  Links to folders are followed, but never into a folder already listed (by device and
  inode), so a link loop or two links to one folder list each file once; the links skipped
  are reported in a warning, as are folders that cannot be read.
  """
  root = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(root):
    what = "is not a directory" if os.path.exists(root) else "does not exist"
    raise errors.DataError(f"config.data.source='folder:{path}': {root} {what}")
  files, repeats, unreadable = [], [], []
  root_stat = os.stat(root)
  visited = {(root_stat.st_dev, root_stat.st_ino)}
  for dirpath, dirnames, filenames in os.walk(root, followlinks=True,
                                              onerror=lambda e: unreadable.append(e.filename)):
    keep = []
    for name in sorted(dirnames):
      sub = os.path.join(dirpath, name)
      try:
        st = os.stat(sub)
      except OSError:
        unreadable.append(sub)  # a broken link
        continue
      if (st.st_dev, st.st_ino) in visited:
        repeats.append(sub)
        continue
      visited.add((st.st_dev, st.st_ino))
      keep.append(name)
    dirnames[:] = keep
    files += [os.path.join(dirpath, f) for f in filenames
              if f.lower().endswith(IMAGE_EXTENSIONS)]
  if repeats:
    logging.warning("folder:%s: skipped %d links to folders already listed (a link loop or a "
                    "second link to one folder): %s", path, len(repeats),
                    ", ".join(os.path.relpath(r, root) for r in repeats[:5])
                    + (", ..." if len(repeats) > 5 else ""))
  if unreadable:
    logging.warning("folder:%s: could not read %d folders or links: %s", path, len(unreadable),
                    ", ".join(map(str, unreadable[:5])) + (", ..." if len(unreadable) > 5 else ""))
  if not files:
    raise errors.DataError(f"config.data.source='folder:{path}': no images "
                           f"({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
  return sorted(files)


def folder_classes(path: str, files: list[str]) -> tuple[np.ndarray, list[str]]:
  """Class labels from the first level of subfolders: (int32 [len(files)], class names).

  Classes are numbered in sorted name order; a file directly in the root has no class.
  """
  root = os.path.abspath(os.path.expanduser(path))
  first = [os.path.relpath(f, root).split(os.sep)[0] for f in files]
  loose = [f for f, part in zip(files, first) if part == os.path.basename(f)]
  if loose:
    raise errors.DataError(f"config.data.labels='subfolders': {len(loose)} image files lie "
                           f"directly in {root} (e.g. {os.path.basename(loose[0])}), not in a "
                           f"class subfolder; move them into one folder per class")
  names = sorted(set(first))
  index = {name: i for i, name in enumerate(names)}
  return np.array([index[part] for part in first], np.int32), names


def _labels(spec: DataSpec, paths: list[str] | None) -> np.ndarray | None:
  """The folder's class labels when `spec.labels == 'subfolders'`, checked against
  `spec.num_classes`; None otherwise."""
  if spec.kind != "folder" or spec.labels != "subfolders":
    return None
  labels, names = folder_classes(spec.arg, paths)
  counts = np.bincount(labels, minlength=len(names))
  logging.info("%s: %d classes: %s", spec.source, len(names),
               ", ".join(f"{i} {n!r} ({c} files)" for i, (n, c) in enumerate(zip(names, counts))))
  if spec.num_classes and len(names) > spec.num_classes:
    raise errors.DataError(f"config.model.num_classes={spec.num_classes} is invalid: {spec.source} "
                           f"has {len(names)} class subfolders ({', '.join(names)}); set "
                           f"model.num_classes={len(names)}")
  return labels


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


def _processor(spec: DataSpec):
  return functools.partial(tf_ops.preprocess, target=spec.image_size, policy=spec.resize,
                           channels=spec.channels, background=spec.background)


def _loader(spec: DataSpec, paths: list[str] | None):
  """index -> decoded image: a file of `paths`, or a rendered builtin example."""
  min_size = tf_ops.stored_size(spec.image_size, spec.resize)
  if spec.kind == "folder":
    return tf_ops.file_loader(paths, min_size)
  render = builtin.get_renderer(spec.arg)
  return tf_ops.numpy_loader(lambda i: render(builtin.DATA_SEED, i, *min_size), 3)


def _warn_skipped(spec: DataSpec, skipped: list[str], total: int) -> None:
  if not skipped:
    return
  root = os.path.abspath(os.path.expanduser(spec.arg))
  names = [os.path.relpath(p, root) for p in skipped]
  shown = ", ".join(names[:20]) + (f", ... and {len(names) - 20} more" if len(names) > 20 else "")
  logging.warning("%s: skipped %d of %d image files that could not be decoded: %s",
                  spec.source, len(skipped), total, shown)


def _decode_all(spec: DataSpec, paths: list[str] | None, keep: bool):
  """Decodes and preprocesses every example once, in parallel.

  Returns:
    (list of stored uint8 images, or None if not `keep`; indices that decoded).
  """
  num = len(paths) if paths is not None else spec.builtin_size
  ds = tf_ops.map_indices(tf.data.Dataset.range(num), _loader(spec, paths), _processor(spec))
  images, kept = [], []
  for index, image in tf_ops.materialize(ds, skip_errors=spec.kind == "folder"):
    kept.append(index)
    if keep:
      images.append(image)
  if paths is not None:
    kept_set = set(kept)
    _warn_skipped(spec, [p for i, p in enumerate(paths) if i not in kept_set], num)
    if not kept:
      raise errors.DataError(f"{spec.source}: none of the {num} image files could be decoded")
  return (images if keep else None), kept


def _cache_name(spec: DataSpec, paths: list[str] | None) -> str:
  files = None
  if paths is not None:
    files = [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
  key = store_lib.fingerprint(
      source=spec.source if spec.kind == "builtin" else "folder", files=files,
      labels=spec.labels if spec.kind == "folder" else "none",
      builtin_size=spec.builtin_size if spec.kind == "builtin" else None,
      size=spec.image_size, policy=spec.resize, channels=spec.channels,
      background=spec.background, version=_PREPROCESS_VERSION)
  return f"{spec.kind}-{key}"


def build_store(spec: DataSpec) -> store_lib.ImageStore:
  """The decoded dataset of a folder or builtin source, from the disk cache if present."""
  paths = list_images(spec.arg) if spec.kind == "folder" else None
  on_disk = spec.cache not in ("memory", "none")
  if on_disk:
    name = _cache_name(spec, paths)
    cached = store_lib.load(spec.cache, name)
    if cached is not None:
      if paths is not None:
        _warn_skipped(spec, list(cached.skipped), len(paths))
      return cached
  images, kept = _decode_all(spec, paths, keep=True)
  skipped = [] if paths is None else sorted(set(paths) - {paths[i] for i in kept})
  labels = _labels(spec, paths)
  result = store_lib.from_images(images, labels=None if labels is None else labels[kept],
                                 skipped=skipped)
  if on_disk:
    store_lib.save(result, spec.cache, name)
    result = store_lib.load(spec.cache, name)
  return result


def _finish(spec: DataSpec, images, positions: np.ndarray, step: int) -> np.ndarray:
  """Crop, flip and normalise, then box-downsample to the size of step's stage."""
  out = order.finish(images, positions, seed=spec.seed, target=spec.image_size,
                     random_crop=spec.resize == "random_crop", flip=spec.flip)
  return order.downsample(out, spec.stage_size(order.span(step, spec.stages)[2]))


def stored_batches(spec: DataSpec, store: store_lib.ImageStore, start_step: int,
                   process_index: int, process_count: int) -> Iterator[Batch]:
  """Local batches gathered from a decoded store, from global batch `start_step` on."""
  for step in itertools.count(start_step):
    pos = order.local_positions(step, spec.stages, process_index, process_count)
    idx = order.example_indices(pos, len(store), spec.seed)
    batch = {"image": _finish(spec, store.take(idx), pos, step)}
    if store.labels is not None:
      batch["label"] = store.labels[idx]
    yield batch


def _decoded_batches(spec: DataSpec, start_step: int, process_index: int,
                     process_count: int) -> Batches:
  """Like `stored_batches`, but decoding the examples of every batch again (cache='none')."""
  paths = list_images(spec.arg) if spec.kind == "folder" else None
  labels, skipped = None, ()
  if paths is not None:  # Find the decodable files first: the order is over those.
    _, kept = _decode_all(spec, paths, keep=False)
    skipped = tuple(sorted(set(paths) - {paths[i] for i in kept}))
    paths = [paths[i] for i in kept]
    labels = _labels(spec, paths)
  num = len(paths) if paths is not None else spec.builtin_size
  positions = functools.partial(order.local_positions, stages=spec.stages,
                                process_index=process_index, process_count=process_count)

  def indices():
    for step in itertools.count(start_step):
      yield from order.example_indices(positions(step), num, spec.seed)

  ds = tf_ops.map_indices(tf_ops.index_stream(indices), _loader(spec, paths), _processor(spec))
  examples = ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()

  def batches():
    for step in itertools.count(start_step):
      pos = positions(step)
      pairs = [next(examples) for _ in pos]
      batch = {"image": _finish(spec, [image for _, image in pairs], pos, step)}
      if labels is not None:
        batch["label"] = labels[np.array([int(i) for i, _ in pairs], np.int64)]
      yield batch
  return Batches(batches(), num, skipped)


def _tfds_batches(spec: DataSpec, start_step: int, process_index: int,
                  process_count: int) -> Iterator[Batch]:
  """Local batches of a TFDS split: cache, per-epoch seeded shuffle, repeat, skip."""
  from jaxgan.data import tfds_source  # pylint: disable=g-import-not-at-top
  ds, has_labels = tfds_source.local_examples(
      spec.arg, data_dir=spec.tfds_data_dir, image_key=spec.tfds_image_key,
      process_index=process_index, process_count=process_count)
  if spec.num_classes and not has_labels:
    raise errors.DataError(f"config.model.num_classes={spec.num_classes} is invalid: {spec.source} "
                           f"has no integer 'label' feature; use num_classes=0 for unlabelled data")
  process = _processor(spec)
  fn = tf.autograph.experimental.do_not_convert(lambda ex: {**ex, "image": process(ex["image"])})
  ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if spec.cache == "memory":
    ds = ds.cache()
  elif spec.cache != "none":
    os.makedirs(spec.cache, exist_ok=True)
    key = store_lib.fingerprint(source=spec.source, data_dir=spec.tfds_data_dir,
                                size=spec.image_size, policy=spec.resize, channels=spec.channels,
                                background=spec.background, version=_PREPROCESS_VERSION)
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
      batch = {"image": _finish(spec, images, pos, step)}
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
  hide_gpus_from_tf()
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
  spec = dataclasses.replace(spec, flip=False, batch_size=batch,
                             stages=((0, batch, spec.image_size),))
  if spec.kind == "tfds":
    key = store_lib.fingerprint(source=spec.source, data_dir=spec.tfds_data_dir,
                                size=spec.image_size, policy=spec.resize,
                                channels=spec.channels, background=spec.background,
                                version=_PREPROCESS_VERSION)
  else:
    if spec.kind == "builtin":
      builtin.get_renderer(spec.arg)
    paths = list_images(spec.arg) if spec.kind == "folder" else None
    key = _cache_name(spec, paths)

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
