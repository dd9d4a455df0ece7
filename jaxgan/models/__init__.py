"""Model families by name, and construction of (generator, discriminator) from a config."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from jaxgan.models import dcgan
from jaxgan.sharding import DATA_AXIS

MODELS = {"dcgan": (dcgan.Generator, dcgan.Discriminator)}


def create_models(config: ml_collections.ConfigDict):
  """Returns (generator, discriminator) Flax modules for `config.model`.

  The image size and channels come from `config.data`. With `config.train.sync_batchnorm`
  BatchNorm statistics are averaged over the mesh's data axis in training mode (the step
  runs under shard_map); otherwise each device normalises by its own slice.
  """
  m = config.model
  if m.name not in MODELS:
    raise ValueError(f"config.model.name={m.name!r} is invalid: expected one of {sorted(MODELS)}")
  gen_cls, disc_cls = MODELS[m.name]
  dtype = jnp.dtype(m.dtype)
  bn_axis_name = DATA_AXIS if config.train.sync_batchnorm else None
  g, d = m.generator, m.discriminator
  gen = gen_cls(
      image_size=tuple(config.data.image_size), channels=config.data.channels,
      project=g.project, base_features=g.base_features, project_norm_act=g.project_norm_act,
      features=tuple(g.features), strides=tuple(g.strides), kernel_size=g.kernel_size,
      norm=g.norm, activation=g.activation, leaky_alpha=g.leaky_alpha, dropout=g.dropout,
      init_scheme=g.init, use_bias=g.use_bias, dtype=dtype, upsample_impl=m.upsample_impl,
      bn_axis_name=bn_axis_name)
  disc = disc_cls(
      features=tuple(d.features), strides=tuple(d.strides), kernel_size=d.kernel_size,
      norm=d.norm, first_layer_norm=d.first_layer_norm, activation=d.activation,
      leaky_alpha=d.leaky_alpha, dropout=d.dropout, init_scheme=d.init, use_bias=d.use_bias,
      dtype=dtype, bn_axis_name=bn_axis_name)
  return gen, disc
