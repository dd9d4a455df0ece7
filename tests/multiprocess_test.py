"""Two real processes on this machine (coordinator on 127.0.0.1, gloo CPU collectives) run the
real main job: they agree on the parameters, only process 0 writes, and the checkpoint they
wrote together restores in a single-process run."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jaxgan.workdir import Workdir

ROOT = Path(__file__).resolve().parents[1]
FINGERPRINT = re.compile(r"Step (\d+); state fingerprint ([0-9a-f]+)")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _main_cmd(workdir, *extra):
  return [sys.executable, "-m", "jaxgan.main", "--config", str(ROOT / "configs" / "tiny.py"),
          f"--workdir={workdir}", "--xla_cache_dir=", "--config.train.num_steps=4",
          "--config.checkpoint_every=2", "--config.sample_every=2", "--config.log_every=1", *extra]


@pytest.mark.slow
def test_two_processes_train_together_and_the_checkpoint_restores_in_one(tmp_path):
  workdir = tmp_path / "run"
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
  env.pop("XLA_FLAGS", None)  # one CPU device per process: a 2-device mesh over 2 processes
  port = _free_port()
  procs = [subprocess.Popen(
      _main_cmd(workdir, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                f"--process_id={i}"),
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)]
  logs = [p.communicate(timeout=600)[0] for p in procs]
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-4000:]
  assert "process 0 of 2" in logs[0] and "process 1 of 2" in logs[1]
  assert "mesh {'data': 2}; global batch 8 = 4 per device" in logs[0]
  prints = [FINGERPRINT.findall(log) for log in logs]
  assert prints[0] == prints[1] and prints[0][-1][0] == "4", prints

  # Only process 0 wrote: one TensorBoard file, each step once in metrics.jsonl, one grid set.
  assert len(list((workdir / "tensorboard").glob("events.out.tfevents.*"))) == 1
  steps = [json.loads(l)["step"] for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert sorted(set(steps)) == steps == [1, 2, 3, 4]
  wd = Workdir(workdir)
  assert sorted(wd.samples.glob("*.png")) == [wd.sample_grid(s) for s in (0, 2, 4)]

  # The two processes' checkpoint restores in a single process, which trains on from it.
  single = subprocess.run(_main_cmd(workdir, "--config.train.num_steps=5"), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
  assert single.returncode == 0, single.stderr[-4000:]
  assert "Resuming from the checkpoint of step 4" in single.stderr
  assert "process 0 of 1" in single.stderr
  assert FINGERPRINT.findall(single.stderr)[-1][0] == "5"
