r"""Step times of two checkouts of jaxgan side by side, alternating, on the same machine.

  git worktree add /tmp/jaxgan_old HEAD~1
  python benchmarks/ab_checkouts.py --old /tmp/jaxgan_old --new . --configs dcgan128,radford32

Each round runs `python -m jaxgan.benchmark --config configs/NAME.py` (a synthetic batch, no
TensorFlow) once with the old checkout first on the path and once with the new one, the
order alternating from round to round, and reads the median seconds per step from its
`JSON` line. Prints each round's pair and, per config, the medians over the rounds and
their ratio new / old. Both checkouts use the configs/ file of `--new`, with the old code.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys


def step_time(root: Path, config: Path, steps: int, extra: list[str]) -> float:
  """Median seconds per step of `config` with the jaxgan of `root`."""
  env = {**os.environ, "PYTHONPATH": str(root)}
  out = subprocess.run(
      [sys.executable, "-m", "jaxgan.benchmark", f"--config={config}", f"--steps={steps}",
       *extra], cwd="/tmp", env=env, capture_output=True, text=True, check=False)
  lines = [line for line in out.stdout.splitlines() if line.startswith("JSON ")]
  if out.returncode or not lines:
    raise RuntimeError(f"jaxgan.benchmark of {root} failed ({out.returncode}):\n"
                       f"{out.stderr[-3000:]}")
  return float(json.loads(lines[-1][5:])["median_s"])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--old", required=True, help="the old checkout's root")
  parser.add_argument("--new", default=".", help="the new checkout's root")
  parser.add_argument("--configs", default="dcgan128,radford32", help="names of configs/")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10, help="timed steps per run")
  parser.add_argument("extra", nargs="*", help="more flags for jaxgan.benchmark (after --)")
  args = parser.parse_args()
  old, new = Path(args.old).resolve(), Path(args.new).resolve()
  for name in args.configs.split(","):
    config = new / "configs" / f"{name}.py"
    times = {"old": [], "new": []}
    for r in range(args.rounds):
      order = ("old", "new") if r % 2 == 0 else ("new", "old")
      for side in order:
        times[side].append(step_time(old if side == "old" else new, config, args.steps,
                                     args.extra))
      print(f"{name} round {r + 1} ({' first, '.join(order)} second): old "
            f"{times['old'][-1]:.4f} s, new {times['new'][-1]:.4f} s, new/old "
            f"{times['new'][-1] / times['old'][-1]:.3f}", flush=True)
    o, n = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"{name}: median s/step old {o:.4f}, new {n:.4f}, new/old {n / o:.3f} "
          f"({args.rounds} rounds)", flush=True)


if __name__ == "__main__":
  main()
