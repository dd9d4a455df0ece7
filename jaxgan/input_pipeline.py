"""The input pipeline: config.data -> batches of images on the devices, as global arrays.

    it = create_iterator(config, start_step=restored_step)
    batch = next(it)   # {'image': jax.Array [B, H, W, C] float32 in [-1, 1], ('label': [B])}
    ckpt['data_step'] = it.step
    it.close()

B is train.batch_size * train.d_steps (global). A growing model (ProGAN) has stages with
their own batch size and resolution, which the caller computes from its family and hands
down (`stages=`, see `jaxgan.data.spec.from_config`): batch k then has the size of the
stage of step k, and its images are box-downsampled to that stage's size. Images are always
float32 in [-1, 1] (x / 127.5 - 1), also when `config.model.dtype` is 'bfloat16': the
model casts.

Sources (`config.data.source`):
  'folder:PATH'       every .jpg/.jpeg/.png/.webp/.bmp/.gif under PATH, recursively (GIF: the
                      first frame). RGBA is composited onto `config.data.background`, grayscale
                      is expanded to RGB (or kept, with `channels=1`). Files that fail to decode
                      are skipped with one warning naming them; other files are ignored.
                      With `data.labels='subfolders'` each image's 'label' is the index of its
                      first-level subfolder in sorted name order (`folder.folder_classes`).
  'tfds:NAME[:SPLIT]' a TFDS dataset (split 'train' by default; `tfds_data_dir`); the image
                      feature is found, or named by `tfds_image_key`; 'label' is carried.
  'builtin:NAME'      a procedurally generated dataset (`jaxgan.data.builtin`: 'shapes'),
                      `builtin_size` examples, no files or network needed.
Labels are checked against `config.model.num_classes` (a label outside [0, num_classes)
raises ValueError naming it). Then: resize by `config.data.resize` (see `jaxgan.data.tf_ops`),
an optional random flip, and an infinite stream with a fresh shuffle every epoch. The
stages, one module each in `jaxgan.data`: spec -> list (folder | builtin | tfds_source) ->
decode -> store -> order -> finish -> batches (which composes them).

Determinism and resume: with the same seed the same batches come in the same order, and
the position is one int, `DataIterator.step`. `create_iterator(config, start_step=k)` yields
exactly the batches k, k+1, ... that an uninterrupted run yields. Folder and builtin
sources draw every batch as a pure function of (seed, k) (`jaxgan.data.order`), so resuming
is O(1) and the global batch does not depend on the number of processes; their epoch order
is a permutation, so `shuffle_buffer` applies to TFDS only. Every process decodes the whole
folder/builtin dataset and takes its slice of each global batch. TFDS streams are sharded
by process (each reads its part of the split, so its global batch depends on the number of
processes) and resume by skipping k local batches, which re-reads that much data.

Caching (`config.data.cache`): 'memory' keeps decoded, resized uint8 images in RAM after
the first pass; a directory path keeps them there (reused by later runs with the same
files and preprocessing); 'none' decodes again for every batch (a folder is still read
once at creation to find the files that decode, so that the order is fixed).

TensorFlow is imported only when a pipeline is created, never by importing this module.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

import jax
import numpy as np

from jaxgan.data import spec as spec_lib

Batch = dict[str, Any]


def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  index = jax.process_index() if process_index is None else int(process_index)
  count = jax.process_count() if process_count is None else int(process_count)
  if not 0 <= index < count:
    raise ValueError(f"process_index={index} is not in [0, process_count={count})")
  return index, count


def host_iterator(config, *, start_step: int = 0, process_index: int | None = None,
                  process_count: int | None = None,
                  stages: spec_lib.Stages | None = None) -> Iterator[Batch]:
  """This process's batches as numpy arrays, without device placement.

  Args:
    config: the full config (config.data, config.seed, config.train are read).
    start_step: the first global batch to produce (the resume position).
    process_index: this process; defaults to `jax.process_index()`.
    process_count: number of processes; defaults to `jax.process_count()`.
    stages: ((first step, global images per batch, (height, width)), ...) of a model that
      grows; None: one stage (see `jaxgan.data.spec.from_config`).

  Returns:
    An infinite iterator of {'image': float32 [B/P, H, W, C] in [-1, 1]} (+ 'label' int32
    [B/P] when the source has labels): this process's contiguous slice of each global batch.
  """
  spec = spec_lib.from_config(config, stages)
  index, count = _processes(process_index, process_count)
  for _, size, _ in spec.stages:
    if size % count:
      raise ValueError(f"the global batch of {size} images (train.batch_size * "
                       f"train.d_steps, or a stage's batch) does not divide by the {count} "
                       f"processes")
  if start_step < 0:
    raise ValueError(f"start_step={start_step} must be >= 0")
  from jaxgan.data import batches  # pylint: disable=g-import-not-at-top  (TensorFlow)
  return batches.host_batches(spec, int(start_step), index, count)


def load_examples(config, num: int, *, start_step: int = 0, process_index: int | None = None,
                  process_count: int | None = None,
                  stages: spec_lib.Stages | None = None) -> Batch:
  """The first `num` examples of this process's stream from `start_step`, as numpy arrays.

  For a grid of real images, or tests. Same arguments as `host_iterator`.

  Returns:
    {'image': float32 [num, H, W, C] in [-1, 1]} (+ 'label' [num]).
  """
  batches = host_iterator(config, start_step=start_step, process_index=process_index,
                          process_count=process_count, stages=stages)
  parts, have = [], 0
  while have < num:
    parts.append(next(batches))
    have += len(parts[-1]["image"])
  batches.close()
  return {k: np.concatenate([p[k] for p in parts])[:num] for k in parts[0]}


def reference_set(config, num: int, batch: int, *, stages: spec_lib.Stages | None = None):
  """The real images of `config.data` that metrics compare against (see
  `jaxgan.data.batches.reference_set`): (key of the data and its preprocessing, `open()` ->
  (iterator of float32 [batch, H, W, C] numpy batches in [-1, 1] at config.data.image_size,
  number of images)). `stages` as for `host_iterator` (a reference set is at full size)."""
  from jaxgan.data import batches  # pylint: disable=g-import-not-at-top  (TensorFlow)
  return batches.reference_set(spec_lib.from_config(config, stages), int(num), int(batch))


def default_sharding() -> jax.sharding.NamedSharding:
  """Batch sharding along a 1-D mesh named 'data' over all devices."""
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",),
                           axis_types=(jax.sharding.AxisType.Auto,))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))


def to_global(batch: Batch, sharding: jax.sharding.NamedSharding) -> Batch:
  """Local numpy batch -> global jax.Arrays (leading axis split over the processes)."""
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


class _Failure:
  """An exception raised in the prefetch thread, re-raised by `__next__`."""

  def __init__(self, error: BaseException):
    self.error = error


def _put(out: queue.Queue, stop: threading.Event, item) -> bool:
  """Puts `item` unless `stop` is set first; returns whether it was put."""
  while not stop.is_set():
    try:
      out.put(item, timeout=0.05)
      return True
    except queue.Full:
      pass
  return False


def _produce(batches: Iterator[Batch], place: Callable[[Batch], Batch], out: queue.Queue,
             stop: threading.Event) -> None:
  """The prefetch thread: places batches in order until stopped (holds no DataIterator)."""
  try:
    for batch in batches:
      if not _put(out, stop, place(batch)):
        return
    _put(out, stop, _Failure(StopIteration()))
  except BaseException as e:  # pylint: disable=broad-except  (re-raised by __next__)
    _put(out, stop, _Failure(e))


class DataIterator:
  """An iterator of global device batches that knows its position (`step`).

  With `prefetch > 0`, one background thread keeps that many placed batches ready while
  the training step runs; one thread and a FIFO queue keep the order deterministic.
  Call `close()` (or use it as a context manager) to stop the thread.
  """

  def __init__(self, batches: Iterator[Batch], place: Callable[[Batch], Batch], *,
               start_step: int = 0, prefetch: int = 2):
    """Creates the iterator (use `create_iterator`).

    Args:
      batches: host batches, the first being global batch `start_step`.
      place: host batch -> device batch.
      start_step: position of the first batch.
      prefetch: batches placed ahead of the consumer; 0 places them on demand.
    """
    self._batches, self._place = batches, place
    # The dataset, when the source tells (jaxgan.data.batches.Batches).
    self.num_examples = getattr(batches, "num_examples", None)
    self.skipped = tuple(getattr(batches, "skipped", ()))
    self._step = int(start_step)
    self._closed = False
    self._failure = None
    self._thread = None
    self._stop = threading.Event()
    if prefetch > 0:
      self._queue = queue.Queue(maxsize=prefetch)
      self._thread = threading.Thread(target=_produce, name="jaxgan-prefetch", daemon=True,
                                      args=(batches, place, self._queue, self._stop))
      self._thread.start()

  @property
  def step(self) -> int:
    """Number of batches yielded so far, counted from step 0: the resume position."""
    return self._step

  def __iter__(self) -> DataIterator:
    return self

  def __next__(self) -> Batch:
    if self._closed:
      raise RuntimeError("next() on a closed DataIterator")
    if self._failure is not None:  # The thread has ended; repeat its error.
      raise self._failure.error
    if self._thread is None:
      item = self._place(next(self._batches))
    else:
      item = self._queue.get()
      if isinstance(item, _Failure):
        self._failure = item
        raise item.error
    self._step += 1
    return item

  def close(self) -> None:
    """Stops the prefetch thread and releases the source. Idempotent."""
    if self._closed:
      return
    self._closed = True
    if self._thread is not None:
      self._stop.set()
      self._thread.join()
    if hasattr(self._batches, "close"):
      self._batches.close()

  def __del__(self):
    self._stop.set()  # Let an abandoned prefetch thread end.

  def __enter__(self) -> DataIterator:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def create_iterator(config, *, sharding: jax.sharding.NamedSharding | None = None,
                    start_step: int = 0,
                    stages: spec_lib.Stages | None = None) -> DataIterator:
  """The training data: global batches on the devices, from batch `start_step` on.

  Args:
    config: the full config (config.data, config.seed, config.train are read).
    sharding: how a batch is placed; default `default_sharding()` (split along 'data').
    start_step: the resume position, a previous `DataIterator.step`.
    stages: ((first step, global images per batch, (height, width)), ...) of a model that
      grows, computed by the caller from its family's stages; None: one stage.

  Returns:
    A DataIterator of {'image': jax.Array float32 [B, H, W, C] in [-1, 1]} (+ 'label' int32
    [B] when the source has labels), B = train.batch_size * train.d_steps (or the batch
    of step k's stage).
  """
  sharding = sharding or default_sharding()
  batches = host_iterator(config, start_step=start_step, stages=stages)
  return DataIterator(batches, lambda b: to_global(b, sharding), start_step=start_step,
                      prefetch=config.data.prefetch)
