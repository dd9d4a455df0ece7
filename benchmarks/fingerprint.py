r"""Parameter fingerprints after a few training steps, to show that a change keeps training
bit-identical.

  python benchmarks/fingerprint.py dcgan128 keras150 faces200x180 faces200x180:6 \
      pokemon64 radford64 sngan128 dcgan512 tiny

For each config (NAME or NAME:ARG of configs/), trains `--steps` steps at `--batch` on one
device on a fixed uniform-noise batch and prints the SHA-256 (16 hex digits) of G's and D's
parameters, their other collections and the EMA parameters, in tree order. Equal digests
before and after a change mean bit-identical training on this machine.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
from pathlib import Path
import time

import jax
import numpy as np

from jaxgan import config as config_lib
from jaxgan import families
from jaxgan import sharding
from jaxgan.training import assemble
from jaxgan.training import state as state_lib
from jaxgan.training import step as step_lib

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def load_config(name: str):
  base, _, arg = name.partition(":")
  spec = importlib.util.spec_from_file_location(f"configs_{base}", CONFIGS / f"{base}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def fingerprint(config, steps: int) -> str:
  """SHA-256 prefix of the state's networks after `steps` steps on a fixed batch."""
  assemble.validate(config)
  mesh = sharding.make_mesh(jax.devices()[:1])
  gan = families.build(config)
  state = state_lib.create_state(config, gan)
  n = config_lib.images_per_step(config)
  x = np.random.default_rng(0).uniform(-1, 1, (n, *gan.image_shape)).astype(np.float32)
  batch = {"image": x}
  if gan.conditional:
    batch["label"] = (np.arange(n) % gan.num_classes).astype(np.int32)
  batch = jax.device_put(batch, sharding.batch_sharding(mesh))
  step = step_lib.make_train_step(config, mesh, gan=gan)
  for _ in range(steps):
    state, _ = step(state, batch)
  # The order of the fingerprint before the family interface: G, D params, G, D state, EMA.
  tree = (state.g.params, state.d.params, state.g.collections.get("batch_stats", {}),
          state.d.collections.get("batch_stats", {}), state.g_ema)
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(tree)):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()[:16]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("configs", nargs="+", help="NAME or NAME:ARG of configs/")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--batch", type=int, default=4, help="train.batch_size override")
  args = parser.parse_args()
  for name in args.configs:
    config = load_config(name)
    config.train.batch_size = args.batch
    t = time.perf_counter()
    print(f"{name:16s} {fingerprint(config, args.steps)}  ({time.perf_counter() - t:.0f} s)",
          flush=True)


if __name__ == "__main__":
  main()
