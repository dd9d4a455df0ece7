"""Kill -9 soak: a tiny run killed with SIGKILL at random moments, restarted each time, must
end bit-identical to an uninterrupted run, with exactly one metrics line per step.

    PYTHONPATH=. python benchmarks/soak_kill.py --kills 30 --steps 600

Each start is killed after a uniform random delay in [0, --max_delay] seconds from its
launch, so the kills land in start-up, restore, compiling, training and the checkpoint
saves (checkpoint_every=1: a save in flight at almost every moment). After the kills the
run is completed. Printed: where each kill landed (the last step in metrics.jsonl), then
whether the final parameters' fingerprint equals the uninterrupted run's, and whether
metrics.jsonl has each step 1..steps exactly once with the same losses.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = ("--config.checkpoint_every=1", "--config.log_every=1", "--config.sample_every=1000",
             "--config.max_to_keep=2", "--config.report_every_secs=0")


def command(workdir: Path, steps: int) -> list[str]:
  return [sys.executable, "-m", "jaxgan.main", f"--config={REPO / 'configs' / 'tiny.py'}",
          f"--workdir={workdir}", f"--config.train.num_steps={steps}", *OVERRIDES]


def env() -> dict[str, str]:
  out = dict(os.environ)
  out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), out.get("PYTHONPATH")]))
  return out


def finish(workdir: Path, steps: int) -> str:
  """Runs to the end; returns the final state fingerprint from the log."""
  proc = subprocess.run(command(workdir, steps), cwd=REPO, env=env(), capture_output=True,
                        text=True, check=False)
  if proc.returncode:
    sys.exit(f"the run failed:\n{proc.stderr[-3000:]}")
  return re.findall(r"state fingerprint (\w+)", proc.stderr)[-1]


def records(workdir: Path) -> list[dict]:
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return []
  return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def losses(rows: list[dict]) -> list[dict]:
  return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--kills", type=int, default=30)
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--max_delay", type=float, default=25.0)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  rng = random.Random(args.seed)
  root = Path(tempfile.mkdtemp(prefix="jaxgan-soak-"))
  t = time.perf_counter()
  reference = finish(root / "reference", args.steps)
  want = losses(records(root / "reference"))
  print(f"uninterrupted run: {args.steps} steps in {time.perf_counter() - t:.1f} s, "
        f"fingerprint {reference}")
  workdir = root / "killed"
  landed = []
  for i in range(args.kills):
    delay = rng.uniform(0.0, args.max_delay)
    proc = subprocess.Popen(command(workdir, args.steps), cwd=REPO, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    done = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows = records(workdir)
    last = rows[-1]["step"] if rows else 0
    landed.append(last)
    print(f"kill {i + 1:2d} after {delay:5.2f} s: metrics up to step {last}"
          + (" (the run had already ended)" if done else ""))
    if done:
      break
  final = finish(workdir, args.steps)
  got = losses(records(workdir))
  steps = [r["step"] for r in got]
  print(f"kills: {len(landed)}; steps reached at the kills: {landed}")
  print(f"final fingerprint {final}: {'equal' if final == reference else 'DIFFERENT'} to the "
        f"uninterrupted run's")
  print(f"metrics.jsonl: {len(steps)} lines, steps 1..{args.steps} each once: "
        f"{steps == list(range(1, args.steps + 1))}; losses equal to the uninterrupted run's: "
        f"{got == want}")
  corrupt = list((workdir / "checkpoints_corrupt").glob("*"))
  print(f"checkpoints set aside as corrupt: {len(corrupt)}")
  ok = final == reference and steps == list(range(1, args.steps + 1)) and got == want
  sys.exit(0 if ok else 1)


if __name__ == "__main__":
  main()
