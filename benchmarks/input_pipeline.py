"""Images per second delivered by the input pipeline from an image folder.

    python benchmarks/input_pipeline.py                       # wikiart 128x128, batch 32
    python benchmarks/input_pipeline.py --path DIR --size 64 --batch 64 --epochs 4

Reports, for `folder:PATH` at the given size:
  first epoch  create the iterator (decode + resize every file into the memory cache) and
               draw one epoch of batches: the cost a run pays once;
  cached       later epochs of host (numpy) batches, gathered from the cache;
  on device    later epochs of global jax.Array batches, with the prefetch thread;
  no cache     cache='none': every batch decoded again (one epoch).
TensorFlow's import is timed separately. The host is shared on small machines: compare
figures from one run, and note what else was running.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import time

import numpy as np

from jaxgan import config as config_lib
from jaxgan import input_pipeline
from jaxgan.data import folder

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared/data/art/wikiart_abstract_224"


def _config(path: str, size: int, batch: int, cache: str):
  c = config_lib.default_config()
  c.data.source = f"folder:{path}"
  c.data.image_size = (size, size)
  c.data.cache = cache
  c.train.batch_size = batch
  c.train.d_steps = 1
  return c


def _rate(images: int, seconds: float) -> str:
  return f"{images / seconds:10.0f} img/s  ({images} images in {seconds:.2f} s)"


def _drain(iterator, num_batches: int, on_device: bool = False) -> None:
  for _ in range(num_batches):
    batch = next(iterator)
  if on_device:
    batch["image"].block_until_ready()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--path", default=str(DEFAULT_PATH), help="folder of images")
  parser.add_argument("--size", type=int, default=128, help="square output size")
  parser.add_argument("--batch", type=int, default=32, help="global batch size")
  parser.add_argument("--epochs", type=int, default=3, help="cached epochs to time")
  parser.add_argument("--skip-nocache", action="store_true", help="skip the cache='none' run")
  args = parser.parse_args()

  t = time.perf_counter()
  import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  print(f"import tensorflow: {time.perf_counter() - t:.2f} s; cpus: {os.cpu_count()}; "
        f"load average: {os.getloadavg()[0]:.2f}")

  n = len(folder.list_images(args.path))
  per_epoch = -(-n // args.batch)
  print(f"{args.path}: {n} files, {args.size}x{args.size}, batch {args.batch}, "
        f"{per_epoch} batches per epoch")
  config = _config(args.path, args.size, args.batch, "memory")

  t = time.perf_counter()
  host = input_pipeline.host_iterator(config)
  built = time.perf_counter() - t
  _drain(host, per_epoch)
  first = time.perf_counter() - t
  print(f"first epoch (decode):  {_rate(per_epoch * args.batch, first)}; "
        f"cache built in {built:.2f} s")

  t = time.perf_counter()
  _drain(host, per_epoch * args.epochs)
  cached = per_epoch * args.epochs * args.batch
  print(f"cached, host numpy:    {_rate(cached, time.perf_counter() - t)}")
  host.close()

  with input_pipeline.create_iterator(config) as device:
    _drain(device, per_epoch, on_device=True)  # decode + warm-up
    t = time.perf_counter()
    _drain(device, per_epoch * args.epochs, on_device=True)
    print(f"cached, on device:     {_rate(cached, time.perf_counter() - t)}")

  if not args.skip_nocache:
    nocache = input_pipeline.host_iterator(_config(args.path, args.size, args.batch, "none"))
    t = time.perf_counter()
    _drain(nocache, per_epoch)
    print(f"no cache (decode):     {_rate(per_epoch * args.batch, time.perf_counter() - t)} "
          f"(after a validation pass)")
    nocache.close()
  step_rate = 10.0
  print(f"A 128x128 training step on this 2-core CPU takes ~{step_rate:.0f} img/s (32 images "
        f"in 2-5 s); the cached pipeline must deliver >= {20 * step_rate:.0f} img/s.")


if __name__ == "__main__":
  np.set_printoptions(precision=3)
  main()
