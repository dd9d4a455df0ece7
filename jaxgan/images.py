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
from PIL import Image, ImageDraw, ImageFont

# Grids for people (the PNGs, samples.gif, TensorBoard) are nearest-upscaled by an integer
# factor until their long side has at least this many pixels: a 16x16 model's 8x8 grid is
# 146 px wide at its native size.
DISPLAY_MIN_SIDE = 512
# Frames of samples.gif are scaled down to at most this many pixels on their long side:
# a 8x8 grid of 128x128 images is ~1000 pixels wide, and 40 such frames make a GIF of
# tens of MB that viewers play slowly.
GIF_MAX_SIDE = 640
# The caption under each GIF frame: a TrueType font of this many pixels.
CAPTION_SIZE = 18
# The panels of losses.png: (title, y label, log scale, (key, label) pairs). A key ending in
# '/' stands for every recorded key under it. Scalars no panel names (a regularizer's value,
# ADA's p, a family's state) go to a last panel, each evaluator's metric (eval/...) to its own;
# the perf/ rates are left out. A panel with no value recorded is not drawn.
PLOT_PANELS = (
    ("GAN losses", "loss", False, (("loss/d_real", "D real"), ("loss/d_fake", "D fake"),
                                   ("loss/d", "D total"), ("loss/g", "G"))),
    ("D logits (batch means)", "logit", False, (("d/real", "D(real)"), ("d/fake", "D(fake)"))),
    ("gradient norms", "global L2 norm", True, (("grad_norm/d", "D"), ("grad_norm/g", "G"))),
)


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


def display_factor(num: int, size: tuple[int, int], nrow: int | None = None, padding: int = 2,
                   min_side: int = DISPLAY_MIN_SIDE) -> int:
  """The smallest integer factor k >= 1 by which to upscale `num` images of `size` (h, w) so
  that their grid (`nrow` per row, `padding` pixels apart) is at least `min_side` pixels on
  its long side."""
  rows, cols = grid_shape(num, nrow)
  k = 1
  while max(rows * (size[0] * k + padding), cols * (size[1] * k + padding)) + padding < min_side:
    k += 1
  return k


def make_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2,
              pad_value: int = 255, min_side: int = DISPLAY_MIN_SIDE) -> np.ndarray:
  """Tiles images into one picture, each upscaled (nearest) by `display_factor` so that the
  grid is readable.

  Args:
    images: [N, H, W, C] floats in [-1, 1] (or uint8), C in (1, 3).
    nrow: images per row; default: ceil(sqrt(N)).
    padding: pixels between images and around the border.
    pad_value: the grey level of the padding.
    min_side: the least long side of the grid in pixels; 0 keeps the images' native size.

  Returns:
    uint8 [rows * (k*H + padding) + padding, cols * (k*W + padding) + padding, C].
  """
  images = np.asarray(images)
  if images.dtype != np.uint8:
    images = to_uint8(images)
  n, h, w, c = images.shape
  k = display_factor(n, (h, w), nrow, padding, min_side)
  images, h, w = upscale(images, (h * k, w * k)), h * k, w * k
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


def caption_font(size: int = CAPTION_SIZE) -> ImageFont.ImageFont:
  """Pillow's own TrueType font (no font file needed) at `size` pixels."""
  return ImageFont.load_default(size=size)


def fit(image: Image.Image, max_side: int) -> Image.Image:
  """`image` scaled down (Lanczos) to at most `max_side` pixels on its long side; as it is
  when it already fits."""
  scale = min(1.0, max_side / max(image.size))
  if scale == 1.0:
    return image
  return image.resize((round(image.width * scale), round(image.height * scale)),
                      Image.Resampling.LANCZOS)


def captioned(path: str | os.PathLike, caption: str, max_side: int = GIF_MAX_SIDE
              ) -> Image.Image:
  """The PNG at `path` as RGB, `fit` to `max_side`, with `caption` on a white strip below
  (a frame of samples.gif)."""
  frame = fit(Image.open(path).convert("RGB"), max_side)
  font = caption_font()
  strip = CAPTION_SIZE + 10
  out = Image.new("RGB", (frame.width, frame.height + strip), (255, 255, 255))
  out.paste(frame, (0, 0))
  ImageDraw.Draw(out).text((6, frame.height + strip // 2), caption, fill=(0, 0, 0), font=font,
                           anchor="lm")
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
  frames = [captioned(p, f"step {step:,}") for step, p in grids]
  durations = [duration_ms] * (len(frames) - 1) + [duration_ms * 5]
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp")
  frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                 duration=durations, disposal=1)
  tmp.replace(path)
  return path


def smooth(values: Sequence[float], weight: float | None = None) -> np.ndarray:
  """TensorBoard's smoothing: a debiased exponential moving average. The default weight
  grows with the number of points (1 - 5/n, at most 0.9), so a short run is barely smoothed
  and a long one averages over about ten points."""
  values = np.asarray(values, np.float64)
  if weight is None:
    weight = float(np.clip(1.0 - 5.0 / max(len(values), 1), 0.0, 0.9))
  out, mean = np.empty_like(values), 0.0
  for i, v in enumerate(values):
    mean = weight * mean + (1.0 - weight) * v
    out[i] = mean / (1.0 - weight ** (i + 1)) if weight else v
  return out


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
  points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
  return tuple(map(list, zip(*points))) if points else ([], [])


def plot_panels(records: Sequence[dict[str, Any]]) -> list[tuple[str, str, bool, list]]:
  """The panels of `plot_losses` that have data: (title, y label, log scale, [(key, label)]).
  See PLOT_PANELS; then one panel of the scalars no panel names and one per eval metric
  (its '_std' companion drawn as a band)."""
  keys = sorted({k for r in records for k, v in r.items() if k != "step" and v is not None})
  panels, named = [], set()
  for title, ylabel, log, curves in PLOT_PANELS:
    named.update(key for key, _ in curves)
    present = [(key, label) for key, label in curves if key in keys]
    if present:
      panels.append((title, ylabel, log, present))
  other = [(k, k) for k in keys if k not in named and not k.startswith(("perf/", "eval/"))]
  if other:
    panels.append(("other scalars", "", False, other))
  for k in keys:
    if k.startswith("eval/") and not (k.endswith("_std") and k[:-4] in keys):
      panels.append((k, k.split("/")[-1], False, [(k, k)]))
  return panels


def loss_figure(records: Sequence[dict[str, Any]]):
  """The training curves of metrics.jsonl records as a matplotlib Figure (None without
  data), one panel per `plot_panels` entry: the raw values faint, their `smooth`ed line
  over them (an eval metric: its points, no smoothing). A notebook displays it inline."""
  panels = plot_panels(records) if records else []
  if not panels:
    return None
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top  (only plots need it)

  cols = 1 if len(panels) == 1 else 2
  rows = math.ceil(len(panels) / cols)
  fig = Figure(figsize=(6.5 * cols, 3.6 * rows), dpi=100)
  axes = fig.subplots(rows, cols, squeeze=False)
  for ax, (title, ylabel, log, curves) in zip(axes.flat, panels):
    for key, label in curves:
      steps, values = _series(records, key)
      if key.startswith("eval/"):
        ax.plot(steps, values, marker="o", linewidth=1.2, label=label)
        lo_hi = _series(records, key + "_std")
        if lo_hi[0] == steps:
          std = np.asarray(lo_hi[1])
          ax.fill_between(steps, np.asarray(values) - std, np.asarray(values) + std, alpha=0.2)
        continue
      few = len(values) < 30
      (raw,) = ax.plot(steps, values, linewidth=1.0, alpha=0.3 if not few else 0.9,
                       marker="." if few else None, label=None if not few else label)
      if not few:
        ax.plot(steps, smooth(values), linewidth=1.5, color=raw.get_color(), label=label)
    if log and all(v > 0 for key, _ in curves for v in _series(records, key)[1]):
      ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel or curves[0][1] if len(curves) == 1 else ylabel)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
      ax.legend(fontsize="small")
  for ax in list(axes.flat)[len(panels):]:
    ax.set_visible(False)
  fig.tight_layout()
  return fig


def plot_losses(records: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path | None:
  """`loss_figure` of metrics.jsonl records as a PNG at `path`; returns it, or None when
  there is nothing to plot."""
  fig = loss_figure(records)
  if fig is None:
    return None
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp")
  fig.savefig(tmp, format="png")
  tmp.replace(path)
  return path
