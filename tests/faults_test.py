"""Fault injection: what a hostile user or a bad disk does to a run, and what jaxgan answers."""

import json
import os
import subprocess
import sys

from jaxgan import jsonl_writer
from jaxgan import workdir as workdir_lib
from tests.conftest import REPO, subprocess_env


def _steps(path):
  return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def test_metrics_survive_a_deleted_or_rotated_file(tmp_path):
  path = tmp_path / "metrics.jsonl"
  writer = jsonl_writer.JsonlWriter(path)
  writer.write_scalars(1, {"loss/d": 1.0})
  path.unlink()  # deleted while the run holds it open
  writer.write_scalars(2, {"loss/d": 2.0})
  assert _steps(path) == [2]
  path.rename(tmp_path / "metrics.jsonl.1")  # rotated
  writer.write_scalars(3, {"loss/d": float("nan")})
  assert _steps(path) == [3] and _steps(tmp_path / "metrics.jsonl.1") == [2]
  assert json.loads(path.read_text())["loss/d"] is None
  writer.write_scalars(4, {"loss/d": 4.0})  # the same file again: appended, readable at once
  assert _steps(path) == [3, 4]
  writer.close()


def test_the_summary_claims_only_what_it_wrote(tmp_path):
  wd = workdir_lib.Workdir(tmp_path)
  assert workdir_lib.write_summary(wd) == []  # nothing to plot or animate
  assert not wd.loss_plot.exists() and not wd.gif.exists()
  with wd.metrics.open("w") as f:
    f.write(json.dumps({"step": 1, "loss/d": 1.0}) + "\n")
  assert workdir_lib.write_summary(wd) == [wd.loss_plot]
  base = [sys.executable, "-m", "jaxgan.sample", "--summary"]
  for workdir, message in ((tmp_path / "missing", "no such directory"),
                           (tmp_path / "empty", "no metrics.jsonl records and no sample grids")):
    os.makedirs(tmp_path / "empty", exist_ok=True)
    proc = subprocess.run(base + [f"--workdir={workdir}"], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
    assert "Wrote" not in proc.stderr
