"""Procedurally generated image datasets that need no download and no files.

`shapes`: colourful abstract compositions (a two-colour gradient background, then 3 to 8
anti-aliased circles, rotated rectangles and brush strokes, alpha-blended). Geometry is
defined in units of the short side, so one (seed, index) pair gives the same picture at
any requested size, and every pixel is a pure function of (seed, index, height, width).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from jaxgan import errors

# The content of a builtin dataset is fixed (it is data, not a training choice): changing
# config.seed changes the order and the augmentations, not the pictures.
DATA_SEED = 0

Renderer = Callable[[int, int, int, int], np.ndarray]


def _vivid_colour(rng: np.random.Generator) -> np.ndarray:
  """A saturated RGB colour in [0, 1] from a random hue (HSV with high S and V)."""
  hue = rng.random()
  sat = rng.uniform(0.55, 1.0)
  val = rng.uniform(0.6, 1.0)
  k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
  return (val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray, float]:
  """Pixel-centre coordinates in short-side units, and pixels per unit."""
  scale = float(min(height, width))
  y = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / scale
  x = (np.arange(width, dtype=np.float32)[None, :] + 0.5) / scale
  return y, x, scale


def _coverage(signed_dist: np.ndarray, pixels_per_unit: float) -> np.ndarray:
  """Anti-aliased coverage in [0, 1] of a shape, given the signed distance inside it."""
  return np.clip(signed_dist * pixels_per_unit + 0.5, 0.0, 1.0)


def _segment_distance(y, x, p0, p1) -> np.ndarray:
  """Distance from every pixel to the segment p0-p1 ((y, x) tuples of floats)."""
  dy, dx = p1[0] - p0[0], p1[1] - p0[1]
  t = np.clip(((y - p0[0]) * dy + (x - p0[1]) * dx) / max(dy * dy + dx * dx, 1e-9), 0.0, 1.0)
  return np.hypot(y - (p0[0] + t * dy), x - (p0[1] + t * dx))


def _shape(kind: int, rng: np.random.Generator, extent) -> tuple[Callable, np.ndarray]:
  """A random circle (0), rotated rectangle (1) or brush stroke (2).

  Returns:
    (signed_distance(y, x), bounding box [y0, y1, x0, x1] in short-side units).
  """
  cy, cx = rng.uniform(0.0, extent[0]), rng.uniform(0.0, extent[1])
  if kind == 0:
    radius = rng.uniform(0.05, 0.35)
    box = np.array([cy - radius, cy + radius, cx - radius, cx + radius])
    return lambda y, x: radius - np.hypot(y - cy, x - cx), box
  if kind == 1:
    half_h, half_w, angle = rng.uniform(0.04, 0.3), rng.uniform(0.04, 0.3), rng.uniform(0, np.pi)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    reach = np.hypot(half_h, half_w)
    box = np.array([cy - reach, cy + reach, cx - reach, cx + reach])

    def rect(y, x):
      ly, lx = (y - cy) * c + (x - cx) * s, (x - cx) * c - (y - cy) * s
      return np.minimum(half_h - np.abs(ly), half_w - np.abs(lx))
    return rect, box
  # A stroke: a polyline of 2-3 segments with a round brush.
  width = rng.uniform(0.01, 0.05)
  points = [(cy, cx)]
  for _ in range(rng.integers(2, 4)):
    angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.5)
    points.append((points[-1][0] + length * np.sin(angle), points[-1][1] + length * np.cos(angle)))
  pts = np.array(points)
  box = np.array([pts[:, 0].min() - width, pts[:, 0].max() + width,
                  pts[:, 1].min() - width, pts[:, 1].max() + width])

  def stroke(y, x):
    dist = [_segment_distance(y, x, a, b) for a, b in zip(points[:-1], points[1:])]
    return width - np.minimum.reduce(dist)
  return stroke, box


def render_shapes(seed: int, index: int, height: int, width: int) -> np.ndarray:
  """Renders example `index` of the `shapes` dataset.

  Args:
    seed: the dataset seed (`DATA_SEED` in pipelines).
    index: the example number, >= 0.
    height: output height in pixels.
    width: output width in pixels.

  Returns:
    uint8 array [height, width, 3].
  """
  rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index)])
  y, x, ppu = _grid(height, width)
  extent = (height / ppu, width / ppu)
  # Background: a linear gradient between two colours at a random angle.
  angle = rng.uniform(0, 2 * np.pi)
  proj = y * np.sin(angle) + x * np.cos(angle)
  t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
  c0, c1 = _vivid_colour(rng), _vivid_colour(rng)
  img = (c0 * (1.0 - t[..., None]) + c1 * t[..., None]).astype(np.float32)
  for _ in range(rng.integers(3, 9)):
    kind = int(rng.integers(0, 3))
    colour, alpha = _vivid_colour(rng), np.float32(rng.uniform(0.6, 1.0))
    dist_fn, box = _shape(kind, rng, extent)
    # Only the pixels in the bounding box (plus one for the anti-aliased edge) are touched.
    y0, x0 = (max(int(np.floor(b * ppu)) - 1, 0) for b in box[[0, 2]])
    y1, x1 = (min(int(np.ceil(b * ppu)) + 1, n) for b, n in zip(box[[1, 3]], (height, width)))
    if y0 >= y1 or x0 >= x1:
      continue
    cover = alpha * _coverage(dist_fn(y[y0:y1], x[:, x0:x1]), ppu)[..., None]
    patch = img[y0:y1, x0:x1]
    img[y0:y1, x0:x1] = patch * (1.0 - cover) + colour * cover
  return np.round(img * 255.0).astype(np.uint8)


BUILTINS: dict[str, Renderer] = {"shapes": render_shapes}


def get_renderer(name: str) -> Renderer:
  """The renderer of builtin dataset `name`; ValueError listing the choices if unknown."""
  if name not in BUILTINS:
    raise errors.ConfigError(f"unknown builtin dataset {name!r}; available: "
                             f"{', '.join(repr(n) for n in sorted(BUILTINS))} (as 'builtin:NAME')")
  return BUILTINS[name]
