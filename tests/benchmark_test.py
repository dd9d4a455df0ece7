"""Smoke test of the step benchmark on a tiny config: a well-formed table row and JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config.data.image_size=(16,16)", "--config.model.latent_dim=8",
        "--config.model.generator.base_features=16", "--config.model.generator.features=(8,)",
        "--config.model.generator.strides=(2,2)", "--config.model.generator.kernel_size=3",
        "--config.model.discriminator.features=(8,16)", "--config.model.discriminator.strides=(2,2)",
        "--config.model.discriminator.kernel_size=3", "--config.data.builtin_size=32"]


def test_benchmark_sweep_prints_table_and_json(tmp_path):
  out = tmp_path / "bench.json"
  cmd = [sys.executable, "-m", "jaxgan.benchmark", "--config", "configs/dcgan128.py", *TINY,
         "--steps=2", "--warmup=1", "--sweep", "--batches=4,8", "--dtypes=float32,bfloat16",
         f"--json_out={out}"]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [l for l in proc.stdout.splitlines() if " img/s " in l]
  records = [json.loads(l[5:]) for l in proc.stdout.splitlines() if l.startswith("JSON ")]
  assert len(rows) == len(records) == 4
  assert [(r["batch"], r["dtype"]) for r in records] == [
      (4, "float32"), (4, "bfloat16"), (8, "float32"), (8, "bfloat16")]
  for r in records:
    assert r["backend"] == "cpu" and r["compile_s"] > 0 and r["flops_per_step"] > 0
    assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
    assert r["images_per_s"] == r["batch"] / r["median_s"]
    assert r["peak_memory_mib"] > 0 and r["input_wait_fraction"] is None
    assert r["host_page_faults_per_step"] >= 0 and r["host_malloc"]
  assert json.loads(out.read_text()) == records


def test_benchmark_with_the_input_pipeline_reports_input_wait(tmp_path):
  cmd = [sys.executable, "-m", "jaxgan.benchmark", "--config", "configs/dcgan128.py", *TINY,
         "--config.train.batch_size=4", "--steps=3", "--warmup=1", "--with_pipeline"]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("JSON "))[5:])
  assert 0.0 <= record["input_wait_fraction"] < 1.0
