"""Model families by name, and construction of (generator, discriminator) from a config."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from jaxgan.models import dcgan

MODELS = {"dcgan": (dcgan.Generator, dcgan.Discriminator)}


def create_models(config: ml_collections.ConfigDict, *, bn_axis_name: str | None = None):
  """Returns (generator, discriminator) Flax modules for `config.model`.

  Args:
    config: the full config (the image size and channels come from `config.data`).
    bn_axis_name: mesh axis over which BatchNorm statistics are averaged in training
      (synchronised BatchNorm); None keeps them per device.
  """
  m = config.model
  if m.name not in MODELS:
    raise ValueError(f"config.model.name={m.name!r} is invalid: expected one of {sorted(MODELS)}")
  gen_cls, disc_cls = MODELS[m.name]
  dtype = jnp.dtype(m.dtype)
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
