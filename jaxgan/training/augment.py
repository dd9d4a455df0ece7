"""Differentiable augmentation of every image D sees: DiffAugment and adaptive augmentation (ADA).

`config.augment.policy` names the ops (comma-separated, applied in this order):

  flip         horizontal flip                                        (ADA's xflip)
  rotate90     counter-clockwise rotation by k * 90 degrees, k uniform in {1, 2, 3};
               non-square images by 180 degrees only, so that the shape stays (ADA's rotate90)
  translation  shift by an integer offset of up to 1/8 of each side (rounded), both axes
               drawn independently, zero-padded                      (DiffAugment, ADA's xint)
  color        brightness + (u - 0.5), saturation * 2u about the pixel's channel mean,
               contrast * (u + 0.5) about the image mean, u ~ U[0, 1) each (DiffAugment)
  cutout       zeroes a rectangle of half of each side (rounded), its centre uniform over
               the image (up to one past the edge for an even size, as DiffAugment draws
               it), clipped at the borders                            (DiffAugment)

Each op is applied to each image independently with probability p (`probability`, or
ADA's adaptive p), its parameters drawn per image; at p = 0 the output is the input,
exactly. Every op is a function of the image that gradients flow through (translation,
flips, rotations and cutout move or mask pixels; colour is affine), so the G update's
gradients reach G through the augmentation, as DiffAugment requires.

The random draws are made for the whole global batch from one key (`uniform` is the
step's global-rows sampler) and each device keeps its rows, so an augmentation does not
depend on how many devices share the batch.

ADA (Karras et al. 2020): p starts at 0 and every `ada_interval` steps moves by
sign(r_t - ada_target) * (images seen in the interval) / (ada_kimg * 1000), clipped to
[0, ada_max], where r_t = E[sign(D(augmented real))] over the interval: D overconfident
on reals (r_t above the target) raises p. With ada_kimg = 500, p can rise from 0 to 1 in
500k images. The state {p, rt_sum, rt_count} lives in GANState.extra['augment'].

Of ADA's 18 ops this includes the pixel blitting ones (xflip, rotate90, integer
translation, as zero-padded shifts) and brightness, contrast and saturation, plus
DiffAugment's cutout; left out are the geometric ones that resample (isotropic and
anisotropic scaling, arbitrary rotation, fractional translation: they need ADA's
wavelet-filtered upsampling to avoid leaking), luma flip and hue rotation, and the
image-space filtering and noise ops.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from jaxgan import checks

Array = jax.Array
OPS = ("flip", "rotate90", "translation", "color", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def default_uniform(key: Array, shape: tuple[int, ...]) -> Array:
  return jax.random.uniform(key, shape)


def _per_image(mask: Array, new: Array, old: Array) -> Array:
  return jnp.where(mask.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)


def draw(key: Array, shape: tuple[int, ...], policy: tuple[str, ...], p: Array | float,
         uniform: Callable[[Array, tuple[int, ...]], Array] = default_uniform) -> dict[str, Array]:
  """The per-image parameters of `policy` for images of `shape` [N, H, W, C]: for each op
  a boolean `apply` [N] (true with probability p) and its random parameters."""
  n, h, w = shape[:3]
  keys = iter(jax.random.split(key, 16))
  out: dict[str, Array] = {}
  p = jnp.asarray(p, jnp.float32)

  def applies(name: str) -> None:
    out[f"{name}/apply"] = uniform(next(keys), (n,)) < p

  def integers(low: int, high: int) -> Array:  # uniform in [low, high]
    u = uniform(next(keys), (n,))
    return jnp.minimum(low + jnp.floor(u * (high - low + 1)).astype(jnp.int32), high)

  for op in policy:
    if op == "flip":
      applies("flip")
    elif op == "rotate90":
      applies("rotate90")
      out["rotate90/k"] = integers(1, 3) if h == w else jnp.full((n,), 2, jnp.int32)
    elif op == "translation":
      applies("translation")
      sy, sx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
      out["translation/dy"], out["translation/dx"] = integers(-sy, sy), integers(-sx, sx)
    elif op == "color":
      for part in ("brightness", "saturation", "contrast"):
        applies(part)
        out[f"{part}/u"] = uniform(next(keys), (n,))
    elif op == "cutout":
      applies("cutout")
      sy, sx = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
      out["cutout/cy"], out["cutout/cx"] = integers(0, h - sy % 2), integers(0, w - sx % 2)
    else:
      raise ValueError(f"augmentation op {op!r} is unknown: expected one of {', '.join(OPS)}")
  return out


def _shift(x: Array, dy: Array, dx: Array) -> Array:
  """out[i, j] = x[i - dy, j - dx] (zero outside): image content moves by (+dy, +dx)."""
  n, h, w = x.shape[:3]
  rows = jnp.arange(h)[None, :] - dy[:, None]  # [N, H]
  cols = jnp.arange(w)[None, :] - dx[:, None]
  valid = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])
  rows, cols = jnp.clip(rows, 0, h - 1), jnp.clip(cols, 0, w - 1)
  batch = jnp.arange(n)[:, None, None]
  out = x[batch, rows[:, :, None], cols[:, None, :]]
  return out * valid[..., None].astype(x.dtype)


def _rotate(x: Array, k: Array) -> Array:
  """Each image rotated counter-clockwise by k[i] * 90 degrees (k in {1, 2, 3})."""
  r2 = x[:, ::-1, ::-1]
  if x.shape[1] != x.shape[2]:
    return r2
  r1 = jnp.rot90(x, 1, axes=(1, 2))
  r3 = jnp.rot90(x, 3, axes=(1, 2))
  return _per_image(k == 1, r1, _per_image(k == 2, r2, r3))


def apply(x: Array, params: dict[str, Array], policy: tuple[str, ...]) -> Array:
  """The images `x` [N, H, W, C] augmented by `params` (from `draw`)."""
  n, h, w = x.shape[:3]
  for op in policy:
    if op == "flip":
      x = _per_image(params["flip/apply"], x[:, :, ::-1], x)
    elif op == "rotate90":
      x = _per_image(params["rotate90/apply"], _rotate(x, params["rotate90/k"]), x)
    elif op == "translation":
      moved = _shift(x, params["translation/dy"], params["translation/dx"])
      x = _per_image(params["translation/apply"], moved, x)
    elif op == "color":
      u = lambda name: params[f"{name}/u"].reshape(n, 1, 1, 1).astype(x.dtype)  # noqa: E731
      x = _per_image(params["brightness/apply"], x + (u("brightness") - 0.5), x)
      mean_c = jnp.mean(x, axis=3, keepdims=True)
      x = _per_image(params["saturation/apply"], (x - mean_c) * (u("saturation") * 2) + mean_c,
                     x)
      mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
      x = _per_image(params["contrast/apply"], (x - mean) * (u("contrast") + 0.5) + mean, x)
    elif op == "cutout":
      sy, sx = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
      top = params["cutout/cy"] - sy // 2
      left = params["cutout/cx"] - sx // 2
      rows, cols = jnp.arange(h)[None, :], jnp.arange(w)[None, :]
      in_rows = (rows >= top[:, None]) & (rows < top[:, None] + sy)
      in_cols = (cols >= left[:, None]) & (cols < left[:, None] + sx)
      keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
      x = _per_image(params["cutout/apply"], x * keep[..., None].astype(x.dtype), x)
  return x


def augment(x: Array, key: Array, p: Array | float, policy: tuple[str, ...],
            uniform: Callable[[Array, tuple[int, ...]], Array] = default_uniform) -> Array:
  """`apply(x, draw(key, x.shape, policy, p, uniform), policy)`: pure and differentiable."""
  return apply(x, draw(key, x.shape, policy, p, uniform), policy)


# ---- config and ADA -------------------------------------------------------------------------

def parse_policy(policy: str) -> tuple[str, ...]:
  """'color,translation,cutout' -> its ops; ValueError naming an unknown one."""
  ops = tuple(o.strip() for o in str(policy).split(",") if o.strip())
  bad = [o for o in ops if o not in OPS]
  if bad:
    raise ValueError(f"unknown augmentation op {bad[0]!r}: expected a comma-separated list "
                     f"of {', '.join(OPS)}")
  return ops


def validate(config: ml_collections.ConfigDict) -> None:
  """ConfigError for a bad config.augment field (defined in `jaxgan.config`)."""
  a = config.augment
  try:
    ops = parse_policy(a.policy)
  except ValueError:
    checks.fail("augment.policy", a.policy, f"expected '' (no augmentation) or a "
                f"comma-separated list of {', '.join(OPS)}")
  if not 0.0 <= a.probability <= 1.0:
    checks.fail("augment.probability", a.probability, "expected a probability in [0, 1]")
  if a.ada and not ops:
    checks.fail("augment.ada", a.ada, "adaptive augmentation needs ops: set augment.policy, "
                "e.g. 'flip,rotate90,translation,color,cutout'")
  if not 0.0 < a.ada_target < 1.0:
    checks.fail("augment.ada_target", a.ada_target, "expected a target r_t in (0, 1)")
  if not isinstance(a.ada_interval, int) or a.ada_interval < 1:
    checks.fail("augment.ada_interval", a.ada_interval, "expected a whole number of steps >= 1")
  checks.check_positive(config, "augment.ada_kimg")
  if not 0.0 < a.ada_max <= 1.0:
    checks.fail("augment.ada_max", a.ada_max, "expected a cap in (0, 1]")


def init_state(config: ml_collections.ConfigDict) -> dict[str, Array] | None:
  """GANState.extra['augment']: {p, rt_sum, rt_count}; None without augmentation."""
  a = config.augment
  if not parse_policy(a.policy):
    return None
  p = 0.0 if a.ada else float(a.probability)
  return {"p": jnp.asarray(p, jnp.float32), "rt_sum": jnp.zeros((), jnp.float32),
          "rt_count": jnp.zeros((), jnp.int32)}


def ada_update(state: dict[str, Array], real_sign: Array, images: int, *, target: float,
               interval: int, kimg: float, p_max: float) -> tuple[dict[str, Array], Array]:
  """One step of ADA's controller.

  Args:
    state: {p, rt_sum, rt_count}.
    real_sign: E[sign(D(augmented real))] of this step (over the global batch).
    images: real images D saw this step (the global batch times d_steps).
    target, interval, kimg, p_max: config.augment's ada_target, ada_interval, ada_kimg,
      ada_max.

  Returns:
    (the new state, r_t so far in this interval). Every `interval` steps p moves by
    sign(r_t - target) * images * interval / (kimg * 1000), within [0, p_max].
  """
  rt_sum = state["rt_sum"] + real_sign
  count = state["rt_count"] + 1
  rt = rt_sum / count
  due = count >= interval
  step = jnp.sign(rt - target) * (images * interval) / (kimg * 1000.0)
  p = jnp.where(due, jnp.clip(state["p"] + step, 0.0, p_max), state["p"])
  zero = jnp.zeros_like
  return {"p": p.astype(jnp.float32), "rt_sum": jnp.where(due, zero(rt_sum), rt_sum),
          "rt_count": jnp.where(due, zero(count), count)}, rt


class Options(NamedTuple):
  """The static augmentation choices of the step (`options(config)`)."""
  policy: tuple[str, ...]
  ada: bool = False
  target: float = 0.6
  interval: int = 4
  kimg: float = 500.0
  p_max: float = 1.0


def options(config: ml_collections.ConfigDict) -> Options | None:
  """The step's augmentation options; None without augmentation."""
  a = config.augment
  policy = parse_policy(a.policy)
  if not policy:
    return None
  return Options(policy, bool(a.ada), float(a.ada_target), int(a.ada_interval),
                 float(a.ada_kimg), float(a.ada_max))
