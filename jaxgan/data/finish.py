"""The finish stage: stored uint8 images -> a batch of float32 images, in numpy.

Each example of a batch is cropped (the random_crop policy's random window), randomly
flipped, turned into float32 in [-1, 1], then box-downsampled to the size of the batch's
stage. Every random choice comes from `order.uniform` at the example's global position, so
a batch is the same however it was reached (resumed, another process count).
"""

from __future__ import annotations

import numpy as np

from jaxgan.data import order
from jaxgan.data.spec import DataSpec


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
  u = np.stack([order.uniform(seed, positions, order.CROP_Y),
                order.uniform(seed, positions, order.CROP_X)], -1)
  return np.minimum((u * slack).astype(np.int64), slack - 1)


def flips(seed: int, positions: np.ndarray) -> np.ndarray:
  """Whether each example is flipped horizontally (probability 1/2)."""
  return order.uniform(seed, positions, order.FLIP) < 0.5


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


def finish_batch(spec: DataSpec, images, positions: np.ndarray, step: int) -> np.ndarray:
  """`finish` under `spec`, then box-downsampled to the size of global batch `step`'s stage.

  Args:
    spec: the data spec.
    images: the batch's stored images (as `finish` takes them).
    positions: int64 global positions of the examples (`order.local_positions`).
    step: the global batch number.

  Returns:
    float32 array [n, h, w, C] in [-1, 1], (h, w) the stage's size.
  """
  out = finish(images, positions, seed=spec.seed, target=spec.image_size,
               random_crop=spec.resize == "random_crop", flip=spec.flip)
  return downsample(out, spec.stage_size(order.span(step, spec.stages)[2]))
