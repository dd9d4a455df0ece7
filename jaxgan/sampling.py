"""Sampling from a trained generator: load it from a workdir, draw latents from seeds,
truncate them, interpolate between them, and save PNGs and grids.

    gen = sampling.load_generator("runs/dcgan128")           # latest checkpoint, EMA if any
    images = sampling.sample(gen, seeds=range(64))           # [64, H, W, C] in [-1, 1]
    images_lib.save_grid(images, "samples.png", nrow=8)
    z = sampling.latents([3, 7], gen.config.model.latent_dim)
    strip = sampling.generate(gen, sampling.interpolate(z[0], z[1], 10))

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
from jaxgan import images as images_lib
from jaxgan import workdir as workdir_lib
from jaxgan.models import create_models


class LoadedGenerator(NamedTuple):
  """A generator restored from a checkpoint.

  Attributes:
    module: the Flax generator module.
    variables: {'params', 'batch_stats'} for `module.apply(variables, z, train=False)`.
    config: the config the checkpoint was written with.
    step: the checkpoint's training step.
    ema: whether `variables['params']` are the EMA parameters.
  """
  module: Any
  variables: dict[str, Any]
  config: ml_collections.ConfigDict
  step: int
  ema: bool


def load_generator(workdir: str | os.PathLike, step: int | None = None,
                   ema: bool = True) -> LoadedGenerator:
  """Loads the generator of a workdir's checkpoint, without D, the optimizers or the data.

  Args:
    workdir: a training run's workdir.
    step: the checkpoint; default the latest.
    ema: use the EMA parameters when the run kept them (config.train.ema_decay > 0).

  Returns:
    The LoadedGenerator.
  """
  wd = workdir_lib.Workdir(workdir)
  arrays, config_dict, step = checkpointing.restore_generator(wd.checkpoints, step)
  config = ml_collections.ConfigDict(config_dict)
  module, _ = create_models(config)  # Module definitions only; nothing of D is initialised.
  use_ema = ema and "g_ema" in arrays
  params = arrays["g_ema"] if use_ema else arrays["params"]
  return LoadedGenerator(module, {"params": params, "batch_stats": arrays["batch_stats"]},
                         config, step, use_ema)


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
def forward(module, variables, z: jax.Array) -> jax.Array:
  """`module.apply(variables, z, train=False)`, compiled once per module and shape."""
  return module.apply(variables, z, train=False)


def generate(gen: LoadedGenerator, z: jax.Array, batch_size: int = 64) -> np.ndarray:
  """Images of latents `z` [N, D] in eval mode: numpy [N, H, W, C] float32 in [-1, 1].

  Runs in batches of `batch_size` (the last one padded), so one compilation serves any N.
  """
  z = np.asarray(z, np.float32)
  n = len(z)
  batch_size = min(batch_size, n)
  padded = np.concatenate([z, np.zeros((-n % batch_size, z.shape[1]), np.float32)])
  out = [np.asarray(forward(gen.module, gen.variables, padded[i:i + batch_size]))
         for i in range(0, len(padded), batch_size)]
  return np.concatenate(out)[:n]


def sample(gen: LoadedGenerator, seeds: Sequence[int],
           truncation: float | None = None) -> np.ndarray:
  """Images of `seeds`: numpy [len(seeds), H, W, C] float32 in [-1, 1]."""
  return generate(gen, latents(seeds, gen.config.model.latent_dim, truncation))


def truncation_sweep(gen: LoadedGenerator, seeds: Sequence[int],
                     truncations: Sequence[float | None]) -> np.ndarray:
  """Rows of the same seeds under each truncation: [len(truncations) * len(seeds), H, W, C]."""
  return np.concatenate([sample(gen, seeds, t) for t in truncations])


def save_images(images: np.ndarray, directory: str | os.PathLike,
                names: Sequence[str] | None = None) -> list[Path]:
  """One PNG per image in `directory` (NAME.png; default 0000.png, 0001.png, ...)."""
  width = max(4, int(math.log10(max(len(images), 1))) + 1)
  names = names or [f"{i:0{width}d}" for i in range(len(images))]
  return [images_lib.save_png(im, Path(directory) / f"{name}.png")
          for im, name in zip(images, names)]
