r"""Side-by-side timing of jaxgan's step and the PyTorch reference, alternating, in one run.

  python benchmarks/compare_torch.py --torch_python /path/to/torch-venv/bin/python \
      [--rounds 2] [--batch 32] [--dtype float32] [--steps 5] [--json_out cmp.json]

Each round runs, one after the other in fresh processes: jaxgan (`python -m jaxgan.benchmark`
on configs/dcgan128.py), PyTorch eager and torch.compile (../shared/bench/torch_dcgan.py,
the same architecture and 1 D + 2 G update schedule). Alternating keeps a busy machine
from favouring one side. Prints the median step time of each over all rounds and the
ratios jaxgan / torch. PyTorch is never imported here: it runs from its own interpreter.
On a GPU machine add --device cuda (and --dtype bfloat16 for autocast on the torch side).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_SCRIPT = ROOT.parent / "shared" / "bench" / "torch_dcgan.py"


def _json_lines(cmd: list[str], env=None) -> list[dict]:
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
  return [json.loads(l[5:]) for l in proc.stdout.splitlines() if l.startswith("JSON ")]


def run_jaxgan(args, malloc: str = "auto") -> dict:
  cmd = [sys.executable, "-m", "jaxgan.benchmark", "--config", "configs/dcgan128.py",
         f"--config.train.batch_size={args.batch}", f"--config.model.dtype={args.dtype}",
         f"--steps={args.steps}", "--warmup=2"]
  return _json_lines(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT), JAXGAN_MALLOC=malloc))[-1]


def run_torch(args, mode: str) -> dict:
  cmd = [args.torch_python, str(TORCH_SCRIPT), "--model", "128", "--mode", mode,
         "--batch", str(args.batch), "--steps", str(args.steps), "--dtype", args.dtype]
  if args.device:
    cmd += ["--device", args.device]
  return _json_lines(cmd)[-1]


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--torch_python", required=True, help="python of a venv with torch installed")
  ap.add_argument("--rounds", type=int, default=2)
  ap.add_argument("--batch", type=int, default=32)
  ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  ap.add_argument("--steps", type=int, default=5, help="timed steps per process")
  ap.add_argument("--modes", default="jaxgan,eager,compile",
                  help="any of jaxgan, jaxgan-system (glibc's default allocation, see "
                  "jaxgan/hostmem.py), eager, compile")
  ap.add_argument("--device", default="", help="torch device (default: cuda if available)")
  ap.add_argument("--json_out", default="")
  args = ap.parse_args()
  modes = args.modes.split(",")
  runs = {m: [] for m in modes}
  for r in range(args.rounds):
    for mode in modes:
      if mode in ("jaxgan", "jaxgan-system"):
        res = run_jaxgan(args, malloc="system" if mode == "jaxgan-system" else "auto")
      else:
        res = run_torch(args, mode)
      runs[mode].append(res)
      print(f"round {r + 1} {mode:8s} median {res['median_s']:.4f} s/step "
            f"(min {res['min_s']:.4f}, max {res['max_s']:.4f})", flush=True)
  med = {m: statistics.median(x["median_s"] for x in runs[m]) for m in modes}
  device = runs[modes[0]][0].get("device_kind") or runs[modes[0]][0].get("device")
  print(f"\n| impl | s/step (median of {args.rounds} rounds) | images/s | jaxgan / impl |")
  print("|---|---|---|---|")
  for m in modes:
    ratio = med["jaxgan"] / med[m] if "jaxgan" in med else float("nan")
    print(f"| {m} | {med[m]:.3f} | {args.batch / med[m]:.2f} | {ratio:.2f} |")
  print(f"\n(batch {args.batch}, {args.dtype}, device {device}, load average {os.getloadavg()[0]:.2f})")
  if args.json_out:
    Path(args.json_out).write_text(json.dumps({"median_s": med, "runs": runs}, indent=1))


if __name__ == "__main__":
  main()
