"""The deterministic example order and per-example augmentation, in numpy.

The data stream is an infinite sequence of global positions 0, 1, 2, ...; global batch k
holds positions [k*B, (k+1)*B), and process p of P takes the contiguous slice
[k*B + p*B/P, k*B + (p+1)*B/P). When the batch size changes during the run (a growing
model's stages, `DataSpec.stages`), batch k starts where batch k-1 ended (`span`). Every
random choice is a pure function of the seed and a position, so batch k can be produced
without producing batches 0..k-1 (O(1) resume), and the global batch is the same for any
number of processes.

Random-access sources (folder, builtin) map position q to example
permutation(seed, q // N)[q % N]: a fresh shuffle every epoch.
"""

from __future__ import annotations

import functools

import numpy as np

# Streams of the counter-based hash, one per independent random choice of an example.
_FLIP, _CROP_Y, _CROP_X = 1, 2, 3
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def span(step: int, stages) -> tuple[int, int, int]:
  """Where global batch `step` lies in the stream of a run with `stages`.

  Args:
    step: the global batch number, >= 0.
    stages: ((first step, global batch size, ...), ...) in step order, the first at step 0.

  Returns:
    (the position of the batch's first example, its size, the index of its stage).
  """
  offset = 0
  for i, (start, size, *_) in enumerate(stages):
    end = stages[i + 1][0] if i + 1 < len(stages) else None
    if end is None or step < end:
      return offset + (step - start) * size, size, i
    offset += (end - start) * size
  raise ValueError(f"no stages: {stages!r}")


def local_positions(step: int, stages, process_index: int, process_count: int) -> np.ndarray:
  """Global positions of this process's slice of global batch `step`.

  Args:
    step: the global batch number, >= 0.
    stages: the global batch size B (divisible by process_count), or a run's stages as
      `span` takes them.
    process_index: this process, in [0, process_count).
    process_count: number of processes P.

  Returns:
    int64 array [B / P].
  """
  if isinstance(stages, (int, np.integer)):
    stages = ((0, int(stages)),)
  first, size, _ = span(step, stages)
  local = size // process_count
  return first + process_index * local + np.arange(local, dtype=np.int64)


def downsample(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Box-filters float images [n, H, W, C] to `size` (H and W multiples of it): the mean
  of each (H/h) x (W/w) block, which ProGAN's repeated 2x2 averaging gives."""
  n, h, w, c = images.shape
  if (h, w) == tuple(size):
    return images
  fy, fx = h // size[0], w // size[1]
  if fy * size[0] != h or fx * size[1] != w:
    raise ValueError(f"cannot box-downsample {h}x{w} images to {size[0]}x{size[1]}: "
                     f"expected integer factors")
  return images.reshape(n, size[0], fy, size[1], fx, c).mean(axis=(2, 4), dtype=np.float32)


@functools.lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed & 0xFFFFFFFF, epoch]).permutation(n)


def example_indices(positions: np.ndarray, num_examples: int, seed: int) -> np.ndarray:
  """Example index of each global position: a new permutation of range(N) every epoch.

  Args:
    positions: int64 global positions.
    num_examples: N, the dataset size.
    seed: the pipeline seed.

  Returns:
    int64 array of indices in [0, N), the shape of `positions`.
  """
  epochs, offsets = np.divmod(np.asarray(positions, np.int64), num_examples)
  out = np.empty_like(offsets)
  for epoch in np.unique(epochs):
    sel = epochs == epoch
    out[sel] = _permutation(int(seed), int(epoch), int(num_examples))[offsets[sel]]
  return out


def _splitmix64(x: np.ndarray) -> np.ndarray:
  """The splitmix64 finaliser: a strong 64-bit mixing function (wrapping arithmetic)."""
  with np.errstate(over="ignore"):
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return x ^ (x >> np.uint64(31))


def uniform(seed: int, positions: np.ndarray, stream: int) -> np.ndarray:
  """Counter-based uniform floats in [0, 1), a pure function of (seed, position, stream).

  Args:
    seed: the pipeline seed.
    positions: int64 global positions.
    stream: which independent random choice (one per augmentation).

  Returns:
    float64 array, the shape of `positions`.
  """
  key = _splitmix64(np.uint64((seed & 0xFFFFFFFF) << 8 | stream))
  bits = _splitmix64(np.asarray(positions, np.int64).astype(np.uint64) ^ key)
  return (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def crop_offsets(seed: int, positions: np.ndarray, sizes: np.ndarray,
                 target: tuple[int, int]) -> np.ndarray:
  """Top-left corner of each example's crop window.

  Args:
    seed: the pipeline seed.
    positions: int64 global positions [n].
    sizes: int array [n, 2] of stored (height, width), each >= target.
    target: the output (height, width).

  Returns:
    int64 array [n, 2] of (y, x) offsets, uniform over the valid range.
  """
  slack = np.asarray(sizes, np.int64) - np.asarray(target, np.int64) + 1
  u = np.stack([uniform(seed, positions, _CROP_Y), uniform(seed, positions, _CROP_X)], -1)
  return np.minimum((u * slack).astype(np.int64), slack - 1)


def flips(seed: int, positions: np.ndarray) -> np.ndarray:
  """Whether each example is flipped horizontally (probability 1/2)."""
  return uniform(seed, positions, _FLIP) < 0.5


def to_float(images: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1] (x / 127.5 - 1)."""
  out = images.astype(np.float32)
  out *= np.float32(1 / 127.5)
  out -= np.float32(1.0)
  return out


def finish(images, positions: np.ndarray, *, seed: int, target: tuple[int, int],
           random_crop: bool, flip: bool) -> np.ndarray:
  """Crops, flips and normalises one local batch of stored images.

  Args:
    images: a uint8 array [n, h, w, C] of stored images, or a list of n uint8 arrays
      [h_i, w_i, C] (stored sizes differ under the random_crop policy).
    positions: int64 global positions [n] of the examples.
    seed: the pipeline seed.
    target: the output (height, width).
    random_crop: take a random target-size window (else images are already the target).
    flip: randomly flip horizontally.

  Returns:
    float32 array [n, height, width, C] in [-1, 1].
  """
  th, tw = target
  if random_crop:
    sizes = np.array([im.shape[:2] for im in images])
    offsets = crop_offsets(seed, positions, sizes, target)
    images = np.stack([im[y:y + th, x:x + tw] for im, (y, x) in zip(images, offsets)])
  else:  # A copy only if flipped in place below: to_float copies anyway.
    images = np.array(images) if flip else np.asarray(images)
  if flip:
    sel = flips(seed, positions)
    images[sel] = images[sel, :, ::-1]
  return to_float(images)
