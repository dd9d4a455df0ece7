"""Pictures of a run: image grids, PNG files, the GIF of sample grids, the loss plot.

Images come in as float arrays in [-1, 1] (the generator's and the pipeline's range),
[N, H, W, C] with C = 1 or 3, and leave as uint8 PNG/GIF files.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

# Frames of samples.gif are scaled down to at most this many pixels on their long side:
# a 8x8 grid of 128x128 images is ~1000 pixels wide, and 40 such frames make a GIF of
# tens of MB that viewers play slowly.
GIF_MAX_SIDE = 640
# The loss curves of the hobby project: D on reals, D on fakes, D total, G.
LOSS_CURVES = (("loss/d_real", "D real"), ("loss/d_fake", "D fake"), ("loss/d", "D total"),
               ("loss/g", "G"))


def to_uint8(images: np.ndarray) -> np.ndarray:
  """[-1, 1] floats -> uint8 [0, 255], rounding to nearest (the pipeline's inverse)."""
  images = np.nan_to_num(np.asarray(images, np.float32))  # A diverged G shows grey, not noise.
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def upscale(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Nearest-neighbour upscaling of [N, h, w, C] to `size` (integer multiples of h and w);
  the images unchanged when they already have that size. Works on numpy and on jax arrays
  (also inside jit: the factors come from the static shape)."""
  n, h, w, c = images.shape
  if (h, w) == tuple(size):
    return images
  fy, fx = size[0] // h, size[1] // w
  if fy * h != size[0] or fx * w != size[1]:
    raise ValueError(f"cannot upscale {h}x{w} images to {size[0]}x{size[1]}: expected "
                     f"integer factors")
  return images.repeat(fy, axis=1).repeat(fx, axis=2)


def grid_shape(num: int, nrow: int | None = None) -> tuple[int, int]:
  """(rows, columns) of a grid of `num` images with `nrow` images per row (default: square)."""
  cols = nrow or math.ceil(math.sqrt(num))
  return math.ceil(num / cols), cols


def make_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2,
              pad_value: int = 255) -> np.ndarray:
  """Tiles images into one picture.

  Args:
    images: [N, H, W, C] floats in [-1, 1] (or uint8), C in (1, 3).
    nrow: images per row; default: ceil(sqrt(N)).
    padding: pixels between images and around the border.
    pad_value: the grey level of the padding.

  Returns:
    uint8 [rows * (H + padding) + padding, cols * (W + padding) + padding, C].
  """
  images = np.asarray(images)
  if images.dtype != np.uint8:
    images = to_uint8(images)
  n, h, w, c = images.shape
  rows, cols = grid_shape(n, nrow)
  out = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value,
                np.uint8)
  for i, image in enumerate(images):
    y, x = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
    out[y:y + h, x:x + w] = image
  return out


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
  """Writes one uint8 [H, W, C] image (or a float [-1, 1] one) as PNG; returns the path."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = to_uint8(image)
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(tmp, format="PNG")
  tmp.replace(path)  # Never a half-written PNG, also when the run is killed.
  return path


def save_grid(images: np.ndarray, path: str | os.PathLike, nrow: int | None = None) -> Path:
  """`make_grid` then `save_png`; returns the path."""
  return save_png(make_grid(images, nrow), path)


def _captioned(path: Path, caption: str) -> Image.Image:
  frame = Image.open(path).convert("RGB")
  scale = min(1.0, GIF_MAX_SIDE / max(frame.size))
  if scale < 1.0:
    frame = frame.resize((round(frame.width * scale), round(frame.height * scale)),
                         Image.Resampling.LANCZOS)
  out = Image.new("RGB", (frame.width, frame.height + 14), (255, 255, 255))
  out.paste(frame, (0, 0))
  ImageDraw.Draw(out).text((2, frame.height + 1), caption, fill=(0, 0, 0))
  return out


def write_gif(grids: Sequence[tuple[int, str | os.PathLike]], path: str | os.PathLike,
              duration_ms: int = 200) -> Path | None:
  """An animated GIF with one frame per sample grid, captioned with its step.

  The caption also keeps consecutive frames distinct, so no frame is merged away.

  Args:
    grids: (step, PNG path) pairs, in order.
    path: the GIF to write.
    duration_ms: display time of each frame; the last one is held 5 times longer.

  Returns:
    The path, or None when there is no grid.
  """
  if not grids:
    return None
  frames = [_captioned(Path(p), f"step {step}") for step, p in grids]
  durations = [duration_ms] * (len(frames) - 1) + [duration_ms * 5]
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp")
  frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                 duration=durations, disposal=1)
  tmp.replace(path)
  return path


def plot_losses(records: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path | None:
  """Plots the D real, D fake, D total and G losses of metrics.jsonl records against step.

  Args:
    records: dicts with 'step' and the `LOSS_CURVES` keys (missing or null values skipped).
    path: the PNG to write.

  Returns:
    The path, or None when there is no record.
  """
  if not records:
    return None
  import matplotlib  # pylint: disable=g-import-not-at-top  (only the plot needs it)
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
  for key, label in LOSS_CURVES:
    points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    if points:
      steps, values = zip(*points)
      ax.plot(steps, values, label=label, linewidth=1.2, marker="." if len(points) < 30 else None)
  ax.set_xlabel("step")
  ax.set_ylabel("loss")
  ax.set_title("GAN losses")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp")
  fig.savefig(tmp, format="png")
  plt.close(fig)
  tmp.replace(path)
  return path
