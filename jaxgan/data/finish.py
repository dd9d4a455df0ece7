"""The finish stage: stored uint8 images -> a batch of float32 images, in numpy.

Each example of a batch is cropped (the random_crop policy's random window), randomly
flipped, turned into float32 in [-1, 1], then box-downsampled to the size of the batch's
stage. Every random choice comes from `uniform` at the example's global position, so
a batch is the same however it was reached (resumed, another process count).
"""

from __future__ import annotations

import numpy as np

from jaxgan.data.spec import DataSpec

# Streams of the counter-based hash, one per independent random choice of an example
# (the flip, the crop's y and x).
FLIP, CROP_Y, CROP_X = 1, 2, 3
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


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
  u = np.stack([uniform(seed, positions, CROP_Y),
                uniform(seed, positions, CROP_X)], -1)
  return np.minimum((u * slack).astype(np.int64), slack - 1)


def flips(seed: int, positions: np.ndarray) -> np.ndarray:
  """Whether each example is flipped horizontally (probability 1/2)."""
  return uniform(seed, positions, FLIP) < 0.5


def to_float(images: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1] (x / 127.5 - 1)."""
  out = images.astype(np.float32)
  out *= np.float32(1 / 127.5)
  out -= np.float32(1.0)
  return out


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


def finish_batch(spec: DataSpec, images, positions: np.ndarray,
                 size: tuple[int, int]) -> np.ndarray:
  """`finish` under `spec`, then box-downsampled to `size`, the batch's stage's.

  Args:
    spec: the data spec.
    images: the batch's stored images (as `finish` takes them).
    positions: int64 global positions of the examples (`order.local_positions`).
    size: the (height, width) of the batch's stage (`spec.stage_size`).

  Returns:
    float32 array [n, h, w, C] in [-1, 1], (h, w) the stage's size.
  """
  out = finish(images, positions, seed=spec.seed, target=spec.image_size,
               random_crop=spec.resize == "random_crop", flip=spec.flip)
  return downsample(out, size)
