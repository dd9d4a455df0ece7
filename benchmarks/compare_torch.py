r"""Side-by-side timing of jaxgan's step and the PyTorch reference, alternating, in one run.

  python benchmarks/compare_torch.py --torch_python /path/to/torch-venv/bin/python \
      [--rounds 2] [--batch 32[,256]] [--dtype float32[,bfloat16]] [--steps 5] [--json_out cmp.json]

For each batch size and dtype, each round runs, one after the other in fresh processes:
jaxgan (`python -m jaxgan.benchmark` on configs/dcgan128.py), PyTorch eager and
torch.compile (../shared/bench/torch_dcgan.py, the same architecture and 1 D + 2 G update
schedule; bfloat16 is autocast there). Alternating keeps a busy machine from favouring one
side. Prints the median step time of each over all rounds, the ratios jaxgan / torch, and
jaxgan's MFU (of the measured matmul peak in that dtype) and projected full-run time.
PyTorch is never imported here: it runs from its own interpreter.

The whole GPU comparison of issue 6 is one command:
  python benchmarks/compare_torch.py --torch_python python --device cuda --batch 32,256 \
      --dtype float32,bfloat16 --rounds 3 --steps 20 --json_out gpu.json
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


def run_jaxgan(args, batch: int, dtype: str, malloc: str = "auto") -> dict:
  cmd = [sys.executable, "-m", "jaxgan.benchmark", "--config", "configs/dcgan128.py",
         f"--config.train.batch_size={batch}", f"--config.model.dtype={dtype}",
         f"--steps={args.steps}", "--warmup=2", *args.jaxgan_flag]
  return _json_lines(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT), JAXGAN_MALLOC=malloc))[-1]


def run_torch(args, batch: int, dtype: str, mode: str) -> dict:
  cmd = [args.torch_python, str(TORCH_SCRIPT), "--model", "128", "--mode", mode,
         "--batch", str(batch), "--steps", str(args.steps), "--dtype", dtype]
  if args.device:
    cmd += ["--device", args.device]
  return _json_lines(cmd)[-1]


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--torch_python", required=True, help="python of a venv with torch installed")
  ap.add_argument("--rounds", type=int, default=2)
  ap.add_argument("--batch", default="32", help="batch sizes, comma-separated")
  ap.add_argument("--dtype", default="float32", help="float32 and/or bfloat16, comma-separated")
  ap.add_argument("--steps", type=int, default=5, help="timed steps per process")
  ap.add_argument("--modes", default="jaxgan,eager,compile",
                  help="any of jaxgan, jaxgan-system (glibc's default allocation, see "
                  "jaxgan/hostmem.py), eager, compile")
  ap.add_argument("--device", default="", help="torch device (default: cuda if available)")
  ap.add_argument("--json_out", default="")
  ap.add_argument("--jaxgan_flag", action="append", default=[],
                  help="extra flag for jaxgan.benchmark (repeatable), e.g. a --config.x=y override")
  args = ap.parse_args()
  modes = args.modes.split(",")
  bad = [m for m in modes if m not in MODES]
  if bad:
    ap.error(f"--modes: {bad} not in {list(MODES)}")
  dtypes = args.dtype.split(",")
  if any(d not in ("float32", "bfloat16") for d in dtypes):
    ap.error(f"--dtype={args.dtype!r}: each must be float32 or bfloat16")
  combos = [(int(b), d) for b in args.batch.split(",") for d in dtypes]
  results = [compare(args, batch, dtype, modes) for batch, dtype in combos]
  print(f"\n| batch | dtype | impl | s/step (median of {args.rounds} rounds) | images/s "
        "| jaxgan / impl |")
  print("|---|---|---|---|---|---|")
  for res in results:
    med = res["median_s"]
    for m in modes:
      ratio = med["jaxgan"] / med[m] if "jaxgan" in med else float("nan")
      print(f"| {res['batch']} | {res['dtype']} | {m} | {med[m]:.4f} | "
            f"{res['batch'] / med[m]:.1f} | {ratio:.2f} |")
  for res in results:
    if "jaxgan" in res["runs"]:
      j, med = res["runs"]["jaxgan"][-1], res["median_s"]["jaxgan"]
      peak = j.get("matmul_peak_tflops")
      mfu = "n/a" if peak is None else (
          f"{100 * j['flops_per_step'] / med / 1e12 / peak:.1f}% of a {peak:.3g} TFLOP/s matmul")
      print(f"jaxgan batch {res['batch']} {res['dtype']}: MFU {mfu}; {j['num_steps']} steps "
            f"projected at {med * j['num_steps'] / 60:.1f} min")
  device = results[0]["device"]
  print(f"\n(device {device}, load average {os.getloadavg()[0]:.2f})")
  if args.json_out:
    Path(args.json_out).write_text(json.dumps(results, indent=1))


MODES = ("jaxgan", "jaxgan-system", "eager", "compile")


def compare(args, batch: int, dtype: str, modes: list[str]) -> dict:
  """`args.rounds` alternating rounds of `modes` at one batch size and dtype."""
  runs = {m: [] for m in modes}
  for r in range(args.rounds):
    for mode in modes:
      if mode in ("jaxgan", "jaxgan-system"):
        res = run_jaxgan(args, batch, dtype, malloc="system" if mode == "jaxgan-system" else "auto")
      else:
        res = run_torch(args, batch, dtype, mode)
      runs[mode].append(res)
      print(f"batch {batch} {dtype} round {r + 1} {mode:8s} median {res['median_s']:.4f} s/step "
            f"(min {res['min_s']:.4f}, max {res['max_s']:.4f})", flush=True)
  med = {m: statistics.median(x["median_s"] for x in runs[m]) for m in modes}
  device = runs[modes[0]][0].get("device_kind") or runs[modes[0]][0].get("device")
  return dict(batch=batch, dtype=dtype, device=device, median_s=med, runs=runs)


if __name__ == "__main__":
  main()
