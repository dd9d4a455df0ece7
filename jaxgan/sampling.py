"""Sampling from a trained generator: load it from a workdir, draw latents from seeds,
truncate them, interpolate between them, and save PNGs and grids.

    gen = sampling.load_generator("runs/dcgan128")           # latest checkpoint, EMA if any
    images = sampling.sample(gen, seeds=range(64))           # [64, H, W, C] in [-1, 1]
    images_lib.save_grid(images, "samples.png", nrow=8)
    z = sampling.latents([3, 7], gen.config.model.latent_dim)
    strip = sampling.generate(gen, sampling.interpolate(z[0], z[1], 10))
    # A class-conditional generator: one row per class, the same seeds in every row.
    seeds, labels, nrow = sampling.class_grid(range(8), classes=[0, 3, 7])
    images = sampling.sample(gen, seeds, labels=labels)

A seed names one latent vector: seed s is `truncated_normal(key(s), -t, t)` of the latent
size (t = infinity without truncation), so the training grids (seeds 0..num_samples-1) can
be reproduced from any checkpoint, and the same seed under a smaller truncation moves
monotonically towards the mean image.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgan import checkpointing
from jaxgan import families
from jaxgan import images as images_lib
from jaxgan import workdir as workdir_lib


class LoadedGenerator(NamedTuple):
  """A generator restored from a checkpoint.

  Attributes:
    gan: the family's networks (`gan.generate(variables, z, labels, train=False)`).
    variables: G's Flax variables: {'params', and its other collections}.
    config: the config the checkpoint was written with.
    step: the checkpoint's training step.
    ema: whether `variables['params']` are the EMA parameters.
    extra: the family's extra state at that step (ProGAN: its resolution level and fade
      alpha), or None; `gan` is the networks of the checkpoint's stage (a growing model
      samples at the resolution it had reached).
  """
  gan: families.GAN
  variables: dict[str, Any]
  config: ml_collections.ConfigDict
  step: int
  ema: bool
  extra: Any = None


def load_generator(workdir: str | os.PathLike, step: int | None = None,
                   ema: bool = True, best: bool = False) -> LoadedGenerator:
  """Loads the generator of a workdir's checkpoint, without D, the optimizers or the data.

  Args:
    workdir: a training run's workdir.
    step: the checkpoint; default the latest.
    ema: use the EMA parameters when the run kept them (config.train.ema_decay > 0).
    best: load from WORKDIR/best/, the checkpoint of the best metric value (config.evals
      'metrics' with keep_best; WORKDIR/best.json names it), instead of the rolling ones.

  Returns:
    The LoadedGenerator.
  """
  wd = workdir_lib.Workdir(workdir)
  if best and not wd.best.is_dir():
    raise FileNotFoundError(f"{wd.best} does not exist: the run kept no best checkpoint "
                            f"(config.evals needs a 'metrics' entry with keep_best)")
  arrays, config_dict, step = checkpointing.restore_generator(
      wd.best if best else wd.checkpoints, step)
  config = workdir_lib.upgrade_config(ml_collections.ConfigDict(config_dict))
  gan = families.build(config)  # Module definitions only; nothing of D is initialised.
  stages = families.stages(config)
  gan = gan.at(stages[families.stage_index(stages, step)])
  use_ema = ema and "g_ema" in arrays
  params = arrays["g_ema"] if use_ema else arrays["params"]
  return LoadedGenerator(gan, {"params": params, **arrays["collections"]}, config, step,
                         use_ema, arrays.get("extra"))


def latents(seeds: Sequence[int], latent_dim: int, truncation: float | None = None) -> jax.Array:
  """One latent vector per seed, [len(seeds), latent_dim] float32.

  Args:
    seeds: non-negative integers; seed s always gives the same vector.
    latent_dim: the generator's latent size.
    truncation: None for a standard normal; t > 0 for a normal truncated to [-t, t]
      (the truncation trick: smaller t, more typical and less varied images).
  """
  if truncation is not None and not truncation > 0:
    raise ValueError(f"truncation={truncation!r}: expected a positive threshold or None")
  bound = jnp.inf if truncation is None else float(truncation)
  keys = jax.vmap(jax.random.key)(jnp.asarray(list(seeds), jnp.uint32))
  draw = lambda k: jax.random.truncated_normal(k, -bound, bound, (latent_dim,), jnp.float32)  # noqa: E731
  return jax.vmap(draw)(keys)


def slerp(z0: jax.Array, z1: jax.Array, t: jax.Array | float) -> jax.Array:
  """Spherical interpolation from z0 (t=0) to z1 (t=1); linear when they are parallel.

  Args:
    z0, z1: [D] latent vectors.
    t: a scalar or [T] fractions.

  Returns:
    [D] for a scalar t, else [T, D].
  """
  t = jnp.asarray(t, jnp.float32)
  z0, z1 = jnp.asarray(z0, jnp.float32), jnp.asarray(z1, jnp.float32)
  cos = jnp.dot(z0, z1) / (jnp.linalg.norm(z0) * jnp.linalg.norm(z1))
  omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
  so = jnp.sin(omega)
  tt = t[..., None]
  safe = jnp.where(so < 1e-6, 1.0, so)
  spherical = (jnp.sin((1.0 - tt) * omega) * z0 + jnp.sin(tt * omega) * z1) / safe
  return jnp.where(so < 1e-6, (1.0 - tt) * z0 + tt * z1, spherical)


def interpolate(z0: jax.Array, z1: jax.Array, num: int) -> jax.Array:
  """`num` latents along the great circle from z0 to z1, both ends included: [num, D]."""
  return slerp(z0, z1, jnp.linspace(0.0, 1.0, num))


@functools.partial(jax.jit, static_argnums=0)
def forward(gan: families.GAN, variables, z: jax.Array, labels: jax.Array | None = None,
            extra=None) -> jax.Array:
  """`gan.generate(variables, z, labels, train=False, extra=extra)`, compiled once per GAN
  and shape (`extra`: the family's part of the state's extra, e.g. ProGAN's fade alpha)."""
  return gan.generate(variables, z, labels, train=False, extra=extra)[0]


def check_labels(gan: families.GAN, labels: Sequence[int] | None, num: int) -> np.ndarray | None:
  """`labels` as int32 [num], checked against the generator; ValueError naming the problem."""
  if not gan.conditional:
    if labels is not None:
      raise ValueError("labels were given, but this generator is unconditional "
                       "(model.num_classes=0)")
    return None
  if labels is None:
    raise ValueError(f"this generator is class-conditional ({gan.num_classes} classes): "
                     f"give one label per image (e.g. sampling.class_grid, --labels)")
  labels = np.asarray(list(labels), np.int32).reshape(-1)
  if len(labels) != num:
    raise ValueError(f"{len(labels)} labels for {num} images: expected one per image")
  bad = labels[(labels < 0) | (labels >= gan.num_classes)]
  if bad.size:
    raise ValueError(f"label {int(bad[0])} is out of range: this generator has classes "
                     f"0..{gan.num_classes - 1}")
  return labels


def generate(gen: LoadedGenerator, z: jax.Array, labels: Sequence[int] | None = None,
             batch_size: int = 64) -> np.ndarray:
  """Images of latents `z` [N, D] (and classes `labels` [N] when conditional) in eval mode:
  numpy [N, H, W, C] float32 in [-1, 1] (a growing model's: at its current resolution).

  Runs in batches of `batch_size` (the last one padded), so one compilation serves any N.
  """
  z = np.asarray(z, np.float32)
  n = len(z)
  labels = check_labels(gen.gan, labels, n)
  batch_size = min(batch_size, n)
  pad = -n % batch_size
  padded = np.concatenate([z, np.zeros((pad, z.shape[1]), np.float32)])
  if labels is not None:
    labels = np.concatenate([labels, np.zeros((pad,), np.int32)])
  out = [np.asarray(forward(gen.gan, gen.variables, padded[i:i + batch_size],
                            None if labels is None else labels[i:i + batch_size], gen.extra))
         for i in range(0, len(padded), batch_size)]
  return np.concatenate(out)[:n]


def sample(gen: LoadedGenerator, seeds: Sequence[int], truncation: float | None = None,
           labels: Sequence[int] | None = None) -> np.ndarray:
  """Images of `seeds` (with one class per seed when the generator is conditional):
  numpy [len(seeds), H, W, C] float32 in [-1, 1]."""
  return generate(gen, latents(seeds, gen.config.model.latent_dim, truncation), labels)


def class_grid(seeds: Sequence[int], classes: Sequence[int]) -> tuple[list[int], list[int], int]:
  """A per-class grid: one row per class, the same `seeds` in every row.

  Returns:
    (seeds, labels, images per row) for `sample` and `images.save_grid(..., nrow)`.
  """
  seeds, classes = list(seeds), list(classes)
  return seeds * len(classes), [c for c in classes for _ in seeds], len(seeds)


def grid_inputs(num: int, num_classes: int) -> tuple[list[int], list[int] | None, int | None]:
  """The training grids' (seeds, labels, nrow): seeds 0..num-1, or for a conditional
  model every class as a row of the same num // num_classes seeds (at least one)."""
  if not num_classes:
    return list(range(num)), None, None
  return class_grid(range(max(1, num // num_classes)), range(num_classes))


def truncation_sweep(gen: LoadedGenerator, seeds: Sequence[int],
                     truncations: Sequence[float | None],
                     labels: Sequence[int] | None = None) -> np.ndarray:
  """Rows of the same seeds under each truncation: [len(truncations) * len(seeds), H, W, C]."""
  return np.concatenate([sample(gen, seeds, t, labels) for t in truncations])


def save_images(images: np.ndarray, directory: str | os.PathLike,
                names: Sequence[str] | None = None) -> list[Path]:
  """One PNG per image in `directory` (NAME.png; default 0000.png, 0001.png, ...)."""
  width = max(4, int(math.log10(max(len(images), 1))) + 1)
  names = names or [f"{i:0{width}d}" for i in range(len(images))]
  return [images_lib.save_png(im, Path(directory) / f"{name}.png")
          for im, name in zip(images, names)]
