"""Run in a subprocess with simulated CPU devices by tests/multidevice_test.py.

Prints one JSON line: for each variant, the max absolute difference between the parameters
after N steps on all devices and on one device with the same global batch, noise and data.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import families, sharding
from jaxgan.training import state as state_lib
from jaxgan.training import step as steps
from tests.helpers import tiny_config

# A bias right before BatchNorm has an analytically zero gradient; Adam would turn its
# rounding noise into lr-sized steps, so the BatchNorm variants go without biases (as
# Radford's DCGAN does).
NO_BIAS = {"model.generator.use_bias": False, "model.discriminator.use_bias": False}
VARIANTS = {
    "no_batchnorm": {"model.generator.norm": "layer", "model.discriminator.norm": "none"},
    "sync_batchnorm": {"train.sync_batchnorm": True, **NO_BIAS},
    "per_device_batchnorm": NO_BIAS,
    # Class-conditional: fake labels are drawn for the global batch like the noise.
    "conditional": {"model.num_classes": 3, "model.generator.norm": "layer",
                    "model.discriminator.norm": "none"},
    # Every augmentation op, drawn per image for the global batch, and ADA's p (adjusted
    # every step from the r_t of all devices).
    "augment_ada": {"model.generator.norm": "layer", "model.discriminator.norm": "none",
                    "augment.policy": "flip,rotate90,translation,color,cutout",
                    "augment.ada": True, "augment.ada_interval": 1, "augment.ada_kimg": 0.05},
}


def train(config, devices, num_steps, images):
  mesh = sharding.make_mesh(devices)
  gan = families.build(config)
  state = jax.device_put(state_lib.create_state(config, gan),
                         sharding.replicated(mesh))
  batch = {"image": images}
  if gan.conditional:
    batch["label"] = jnp.arange(len(images), dtype=jnp.int32) % gan.num_classes
  batch = jax.device_put(batch, sharding.batch_sharding(mesh))
  step = steps.make_train_step(config, mesh)
  for _ in range(num_steps):
    state, metrics = step(state, batch)
    # Block on every step: queuing collective steps on simulated CPU devices can abort
    # with XLA's "Termination timeout for all reduce" (PITFALLS.md).
    jax.block_until_ready(metrics)
  return jax.device_get((state.g.params, state.d.params, state.g.collections, state.d.collections,
                         state.extra.get("augment")))


def max_abs_diff(a, b):
  return max(float(np.abs(x - y).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def generated_features(config, devices):
  """Inception-style features of 24 generated images, embedded on a mesh of `devices`."""
  from jaxgan.metrics import evaluation, networks  # pylint: disable=g-import-not-at-top
  mesh = sharding.make_mesh(devices)
  gan = families.build(config)
  state = jax.device_put(state_lib.create_state(config, gan), sharding.replicated(mesh))
  embed = evaluation.Embedder(networks.build("random"), mesh, batch=8)
  return evaluation.generated_features(gan, state.g.variables(state.g.params), None, embed,
                                       24, tuple(config.data.image_size))


def main(num_steps):
  out = {"devices": jax.device_count()}
  config = tiny_config()
  many, one = generated_features(config, jax.devices()), generated_features(config, jax.devices()[:1])
  out["metrics_features"] = max_abs_diff([many["pool"], many["logits"]], [one["pool"], one["logits"]])
  images = jax.random.uniform(jax.random.key(3), (8, 16, 16, 3), minval=-1, maxval=1)
  for name, overrides in VARIANTS.items():
    config = tiny_config(**{"train.g_steps": 2, **overrides})
    many = train(config, jax.devices(), num_steps, images)
    one = train(config, jax.devices()[:1], num_steps, images)
    out[name] = {"params": max_abs_diff(many[:2], one[:2]),
                 "finite": bool(all(np.isfinite(x).all() for x in jax.tree.leaves(many)))}
    if many[4] is not None:
      out[name]["p"] = [float(many[4]["p"]), float(one[4]["p"])]
  print("RESULT " + json.dumps(out))


if __name__ == "__main__":
  main(int(sys.argv[1]))
