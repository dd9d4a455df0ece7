r"""Side-by-side timing of jaxgan's step and the PyTorch reference, alternating, in one run.

  python benchmarks/compare_torch.py --torch_python /path/to/torch-venv/bin/python \
      [--model 128,64,32] [--schedule fresh,reuse] [--rounds 3] [--batch 32[,256]] \
      [--dtype float32[,bfloat16]] [--steps 5] [--json_out cmp.json]

Models (../shared/bench/torch_dcgan.py's architectures, and jaxgan's config of each):
  128  configs/dcgan128.py   1 D + 2 G updates, batch 32 by default
  64   configs/radford64.py  1 D + 1 G update, batch 64 by default (the config trains at 128)
  32   configs/radford32.py  1 D + 1 G update, batch 64
G-noise schedules (the same on both sides): 'fresh', every G update draws new noise
(`train.g_update_fakes=fresh`, torch_dcgan.py --fresh_g_noise), and 'reuse', the G update
uses the D update's fakes (`train.g_update_fakes=reuse`; torch_dcgan.py's default for 64
and 32). torch_dcgan.py's 128 model has only the fresh schedule, so (128, reuse) is skipped.

For each model, schedule, batch size and dtype, each round runs, one after the other in
fresh processes: jaxgan (`python -m jaxgan.benchmark`), PyTorch eager and torch.compile
(bfloat16 is autocast there). Alternating keeps a busy machine from favouring one side.
Prints the median step time of each over all rounds, the ratios jaxgan / torch, each
side's peak memory (resident set on CPU, allocated device memory on GPU), jaxgan's MFU (of
the measured matmul peak in that dtype) and the projected full-run time. PyTorch is never
imported here: it runs from its own interpreter.

The whole CPU table of docs/performance.md is one command:
  python benchmarks/compare_torch.py --torch_python /work/torchvenv/bin/python \
      --model 128,64,32 --schedule fresh,reuse --rounds 3 --steps 5 --json_out cpu.json
The GPU table (float32 and bfloat16, batch 64 and 256):
  python benchmarks/compare_torch.py --torch_python python --device cuda --model 128,64,32 \
      --schedule fresh,reuse --batch 64,256 --dtype float32,bfloat16 --rounds 3 --steps 20 \
      --json_out gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
TORCH_SCRIPT = ROOT.parent / "shared" / "bench" / "torch_dcgan.py"


def _json_lines(cmd: list[str], env=None) -> list[dict]:
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
  return [json.loads(l[5:]) for l in proc.stdout.splitlines() if l.startswith("JSON ")]


MODELS = {  # torch_dcgan.py --model: (jaxgan config, default batch)
    "128": ("configs/dcgan128.py", 32),
    "64": ("configs/radford64.py", 64),
    "32": ("configs/radford32.py", 64),
}
SCHEDULES = ("fresh", "reuse")


class Case(NamedTuple):
  model: str
  schedule: str
  batch: int
  dtype: str


def run_jaxgan(args, case: Case, malloc: str = "") -> dict:
  cmd = [sys.executable, "-m", "jaxgan.benchmark", "--config", MODELS[case.model][0],
         f"--config.train.batch_size={case.batch}", f"--config.model.dtype={case.dtype}",
         f"--config.train.g_update_fakes={case.schedule}",
         f"--steps={args.steps}", "--warmup=2", *args.jaxgan_flag]
  # malloc '': jaxgan's default allocator setting (jaxgan/hostmem.py).
  return _json_lines(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT), JAXGAN_MALLOC=malloc))[-1]


def run_torch(args, case: Case, mode: str) -> dict:
  cmd = [args.torch_python, str(TORCH_SCRIPT), "--model", case.model, "--mode", mode,
         "--batch", str(case.batch), "--steps", str(args.steps), "--dtype", case.dtype]
  if case.schedule == "fresh" and case.model != "128":
    cmd.append("--fresh_g_noise")
  if args.device:
    cmd += ["--device", args.device]
  return _json_lines(cmd)[-1]


def peak_mib(res: dict) -> float:
  """A run's peak memory: device memory where measured, else the resident set."""
  for key in ("peak_gpu_mib", "peak_rss_mib", "peak_memory_mib"):
    if key in res:
      return res[key]
  return float("nan")


def cases(args, parser) -> list[Case]:
  models, schedules = args.model.split(","), args.schedule.split(",")
  for name, values, allowed in (("--model", models, MODELS), ("--schedule", schedules, SCHEDULES)):
    bad = [v for v in values if v not in allowed]
    if bad:
      parser.error(f"{name}: {bad} not in {list(allowed)}")
  dtypes = args.dtype.split(",")
  if any(d not in ("float32", "bfloat16") for d in dtypes):
    parser.error(f"--dtype={args.dtype!r}: each must be float32 or bfloat16")
  out = []
  for m in models:
    batches = [int(b) for b in args.batch.split(",")] if args.batch else [MODELS[m][1]]
    for sched in schedules:
      if m == "128" and sched == "reuse":
        print("skipping model 128 with the reuse schedule: torch_dcgan.py's 128 model draws "
              "fresh noise for both G updates", flush=True)
        continue
      out += [Case(m, sched, b, d) for b in batches for d in dtypes]
  return out


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--torch_python", required=True, help="python of a venv with torch installed")
  ap.add_argument("--model", default="128", help="any of 128, 64, 32, comma-separated")
  ap.add_argument("--schedule", default="fresh",
                  help="G-noise schedules, comma-separated: fresh and/or reuse")
  ap.add_argument("--rounds", type=int, default=3)
  ap.add_argument("--batch", default="", help="batch sizes, comma-separated (default: the "
                  "model's: 32 for 128, 64 for 64 and 32)")
  ap.add_argument("--dtype", default="float32", help="float32 and/or bfloat16, comma-separated")
  ap.add_argument("--steps", type=int, default=5, help="timed steps per process")
  ap.add_argument("--modes", default="jaxgan,eager,compile",
                  help="any of jaxgan, jaxgan-keep (glibc keeps freed memory, "
                  "JAXGAN_MALLOC=keep, see jaxgan/hostmem.py), eager, compile")
  ap.add_argument("--device", default="", help="torch device (default: cuda if available)")
  ap.add_argument("--json_out", default="")
  ap.add_argument("--jaxgan_flag", action="append", default=[],
                  help="extra flag for jaxgan.benchmark (repeatable), e.g. a --config.x=y override")
  args = ap.parse_args()
  modes = args.modes.split(",")
  bad = [m for m in modes if m not in MODES]
  if bad:
    ap.error(f"--modes: {bad} not in {list(MODES)}")
  results = []
  for case in cases(args, ap):
    results.append(compare(args, case, modes))
    if args.json_out:  # after every case: an interrupted run keeps what it measured
      Path(args.json_out).write_text(json.dumps(results, indent=1))
  print(f"\n| model | G noise | batch | dtype | impl | s/step (median of {args.rounds} rounds) "
        "| images/s | jaxgan / impl | peak MiB |")
  print("|---|---|---|---|---|---|---|---|---|")
  for res in results:
    med = res["median_s"]
    for m in modes:
      ratio = med["jaxgan"] / med[m] if "jaxgan" in med else float("nan")
      peak = max(peak_mib(r) for r in res["runs"][m])
      print(f"| {res['model']} | {res['schedule']} | {res['batch']} | {res['dtype']} | {m} "
            f"| {med[m]:.4f} | {res['batch'] / med[m]:.1f} | {ratio:.2f} | {peak:.0f} |")
  for res in results:
    if "jaxgan" in res["runs"]:
      j, med = res["runs"]["jaxgan"][-1], res["median_s"]["jaxgan"]
      peak = j.get("matmul_peak_tflops")
      mfu = "n/a" if peak is None else (
          f"{100 * j['flops_per_step'] / med / 1e12 / peak:.1f}% of a {peak:.3g} TFLOP/s matmul")
      print(f"jaxgan {res['model']} {res['schedule']} batch {res['batch']} {res['dtype']}: "
            f"{j['flops_per_step'] / 1e9:.1f} GFLOP/step, MFU {mfu}; {j['num_steps']} steps "
            f"projected at {med * j['num_steps'] / 60:.1f} min")
  device = results[0]["device"] if results else "none"
  print(f"\n(device {device}, load average {os.getloadavg()[0]:.2f})")


MODES = ("jaxgan", "jaxgan-keep", "eager", "compile")


def compare(args, case: Case, modes: list[str]) -> dict:
  """`args.rounds` alternating rounds of `modes` on one case."""
  runs = {m: [] for m in modes}
  for r in range(args.rounds):
    for mode in modes:
      if mode in ("jaxgan", "jaxgan-keep"):
        res = run_jaxgan(args, case, malloc="keep" if mode == "jaxgan-keep" else "")
      else:
        res = run_torch(args, case, mode)
      runs[mode].append(res)
      print(f"model {case.model} {case.schedule} batch {case.batch} {case.dtype} round {r + 1} "
            f"{mode:8s} median {res['median_s']:.4f} s/step (min {res['min_s']:.4f}, "
            f"max {res['max_s']:.4f}), peak {peak_mib(res):.0f} MiB", flush=True)
  med = {m: statistics.median(x["median_s"] for x in runs[m]) for m in modes}
  device = runs[modes[0]][0].get("device_kind") or runs[modes[0]][0].get("device")
  return dict(case._asdict(), device=device, median_s=med, runs=runs)


if __name__ == "__main__":
  main()
