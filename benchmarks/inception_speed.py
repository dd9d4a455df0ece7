"""Seconds to embed images with the FID Inception-v3 on this machine's devices.

    python benchmarks/inception_speed.py                     # batch 64, 4 timed batches
    python benchmarks/inception_speed.py --batch 200 --batches 10 --size 128

Runs the FID Inception (jaxgan/metrics/inception.py) on random images of --size (resized
to 299x299 in the program, as the metrics do), with seeded random weights: the speed does
not depend on the weights, so the pytorch-fid file is not needed. Reports the compile
time, images/s, the projected seconds for 10,000 images (FID10k) and 50,000 (FID50k), the
FLOPs per image from XLA's cost analysis, and the achieved FLOP/s. The batch is split over
all devices.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import sharding
from jaxgan.metrics import evaluation, inception, networks


def random_inception() -> networks.FeatureNetwork:
  """The FID Inception with normal(0, 0.05) weights (positive BatchNorm variances)."""
  shapes = inception.variable_shapes()
  keys = iter(jax.random.split(jax.random.key(0), len(jax.tree.leaves(shapes))))
  variables = jax.tree.map(lambda s: jax.random.normal(next(keys), s.shape) * 0.05, shapes)
  variables["batch_stats"] = jax.tree.map(lambda v: jnp.abs(v) + 1.0, variables["batch_stats"])
  return networks.FeatureNetwork("inception", inception.FIDInception().apply, variables,
                                 "random")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--batches", type=int, default=4, help="timed batches")
  parser.add_argument("--size", type=int, default=128, help="input side before the resize")
  args = parser.parse_args()
  mesh = sharding.make_mesh()
  embed = evaluation.Embedder(random_inception(), mesh, args.batch)
  images = np.random.default_rng(0).uniform(-1, 1, (embed.batch, args.size, args.size, 3)
                                            ).astype(np.float32)
  placed = embed.place(images)
  t = time.perf_counter()
  compiled = jax.jit(embed.network.apply).lower(embed.variables, placed).compile()
  compile_s = time.perf_counter() - t
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  flops = float(cost.get("flops", float("nan"))) / embed.batch
  embed.images(images)  # warm-up (compiles the Embedder's own program)
  times = []
  for _ in range(args.batches):
    t = time.perf_counter()
    embed.images(images)
    times.append(time.perf_counter() - t)
  per_image = statistics.median(times) / embed.batch
  result = {"backend": jax.default_backend(), "devices": jax.device_count(),
            "device": jax.devices()[0].device_kind, "batch": embed.batch, "input": args.size,
            "compile_s": round(compile_s, 2), "images_per_s": round(1 / per_image, 2),
            "s_10k": round(10_000 * per_image, 1), "s_50k": round(50_000 * per_image, 1),
            "gflops_per_image": round(flops / 1e9, 2),
            "achieved_tflops": round(flops / per_image / 1e12, 3),
            "batch_s": [round(x, 3) for x in times]}
  print(json.dumps(result))


if __name__ == "__main__":
  main()
