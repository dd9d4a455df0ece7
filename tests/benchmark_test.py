"""Smoke tests of the step benchmark and the side-by-side harness on a tiny config: a
well-formed table and JSON (never a timed assertion)."""

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config.data.image_size=(16,16)", "--config.model.latent_dim=8",
        "--config.model.generator.base_features=16", "--config.model.generator.features=(8,)",
        "--config.model.generator.strides=(2,2)", "--config.model.generator.kernel_size=3",
        "--config.model.discriminator.features=(8,16)", "--config.model.discriminator.strides=(2,2)",
        "--config.model.discriminator.kernel_size=3", "--config.data.builtin_size=32"]


@pytest.mark.slow
def test_benchmark_sweep_prints_table_and_json(tmp_path):
  out = tmp_path / "bench.json"
  cmd = [sys.executable, "-m", "jaxgan.benchmark", "--config", "configs/dcgan128.py", *TINY,
         "--steps=2", "--warmup=1", "--sweep", "--batches=4", "--dtypes=float32,bfloat16",
         f"--json_out={out}"]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [l for l in proc.stdout.splitlines() if " img/s " in l]
  records = [json.loads(l[5:]) for l in proc.stdout.splitlines() if l.startswith("JSON ")]
  assert len(rows) == len(records) == 2
  assert [(r["batch"], r["dtype"]) for r in records] == [(4, "float32"), (4, "bfloat16")]
  for r in records:
    assert r["backend"] == "cpu" and r["compile_s"] > 0 and r["flops_per_step"] > 0
    assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
    assert r["images_per_s"] == r["batch"] / r["median_s"]
    assert r["peak_memory_mib"] > 0 and r["input_wait_fraction"] is None
    assert r["host_page_faults_per_step"] >= 0 and r["host_malloc"]
    assert r["matmul_peak_tflops"] > 0
    assert r["mfu"] == pytest.approx(r["tflops_per_s"] / r["matmul_peak_tflops"])
    assert r["num_steps"] == 20_000 and r["projected_run_s"] == 20_000 * r["median_s"]
  assert all("% of a " in row and "20000 steps in " in row for row in rows)
  assert json.loads(out.read_text()) == records


def test_benchmark_without_the_peak_measurement_has_no_mfu():
  cmd = [sys.executable, "-m", "jaxgan.benchmark", "--config", "configs/dcgan128.py", *TINY,
         "--config.train.batch_size=4", "--config.train.num_steps=90", "--steps=1",
         "--warmup=0", "--peak_size=-1"]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("JSON "))[5:])
  assert record["matmul_peak_tflops"] is None and record["mfu"] is None
  assert record["projected_run_s"] == 90 * record["median_s"]


# Stands in for PyTorch's interpreter: compare_torch runs `python torch_dcgan.py --model M
# --mode M --batch B --dtype D [--fresh_g_noise] ...`; this prints what torch_dcgan.py
# prints, with a step time of batch / 1000 s for eager and batch / 2000 s for compile, 10%
# more with fresh G noise, and a peak RSS of 100 MiB.
FAKE_TORCH = """\
import json, sys
fresh = "--fresh_g_noise" in sys.argv
args = [x for x in sys.argv[2:] if x != "--fresh_g_noise"]
a = dict(zip(args[::2], args[1::2]))
b = int(a["--batch"]); s = b / (1000 if a["--mode"] == "eager" else 2000) * (1.1 if fresh else 1)
print("JSON " + json.dumps(dict(impl="torch-" + a["--mode"], dtype=a["--dtype"], batch=b,
      model=a["--model"], fresh_g_noise=fresh, median_s=s, min_s=s, max_s=s, device="cpu",
      peak_rss_mib=100.0)))
"""


def _fake_torch(tmp_path):
  fake = tmp_path / "fake_python"
  fake.write_text(f"#!{sys.executable}\n" + textwrap.dedent(FAKE_TORCH))
  fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
  return fake


def test_compare_torch_tables_every_dtype_and_schedule(tmp_path):
  out = tmp_path / "cmp.json"
  cmd = [sys.executable, "benchmarks/compare_torch.py",
         "--torch_python", str(_fake_torch(tmp_path)), "--model", "32", "--schedule", "reuse,fresh", "--batch", "4",
         "--dtype", "float32,bfloat16", "--rounds", "1", "--steps", "1",
         "--modes", "jaxgan,eager,compile", f"--json_out={out}", "--device", "cpu",
         *[f"--jaxgan_flag={f}" for f in TINY + ["--peak_size=256"]]]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads(out.read_text())
  assert [(r["schedule"], r["dtype"]) for r in results] == [
      ("reuse", "float32"), ("reuse", "bfloat16"), ("fresh", "float32"), ("fresh", "bfloat16")]
  for r in results:
    slower = 1.1 if r["schedule"] == "fresh" else 1  # the same schedule reached torch
    assert r["median_s"]["eager"] == r["batch"] / 1000 * slower
    assert r["median_s"]["compile"] == r["batch"] / 2000 * slower
    jax_run = r["runs"]["jaxgan"][0]
    assert (jax_run["batch"], jax_run["dtype"]) == (r["batch"], r["dtype"])
    assert r["runs"]["eager"][0]["dtype"] == r["dtype"] and r["runs"]["eager"][0]["model"] == "32"
    jax_s = r["median_s"]["jaxgan"]
    assert jax_s == jax_run["median_s"] > 0
    for mode, s in r["median_s"].items():
      peak = jax_run["peak_memory_mib"] if mode == "jaxgan" else 100.0
      row = (f"| 32 | {r['schedule']} | {r['batch']} | {r['dtype']} | {mode} | {s:.4f} | "
             f"{r['batch'] / s:.1f} | {jax_s / s:.2f} | {peak:.0f} |")
      assert row in proc.stdout
    assert f"jaxgan 32 {r['schedule']} batch {r['batch']} {r['dtype']}: " in proc.stdout
  # The reuse schedule runs one G forward fewer: XLA counts fewer FLOPs.
  flops = {r["schedule"]: r["runs"]["jaxgan"][0]["flops_per_step"] for r in results}
  assert flops["reuse"] < flops["fresh"]


def test_compare_torch_skips_what_the_peer_lacks(tmp_path):
  proc = subprocess.run([sys.executable, "benchmarks/compare_torch.py", "--torch_python",
                         str(_fake_torch(tmp_path)), "--model", "128", "--schedule", "reuse"],
                        cwd=ROOT, capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stderr
  assert "skipping model 128 with the reuse schedule" in proc.stdout


def test_compare_torch_rejects_a_bad_dtype():
  proc = subprocess.run([sys.executable, "benchmarks/compare_torch.py", "--torch_python", "x",
                         "--dtype", "float16"], cwd=ROOT, capture_output=True, text=True)
  assert proc.returncode == 2 and "float16" in proc.stderr and "bfloat16" in proc.stderr


def test_benchmark_with_the_input_pipeline_reports_input_wait(tmp_path):
  cmd = [sys.executable, "-m", "jaxgan.benchmark", "--config", "configs/dcgan128.py", *TINY,
         "--config.train.batch_size=4", "--steps=3", "--warmup=1", "--with_pipeline"]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("JSON "))[5:])
  assert 0.0 <= record["input_wait_fraction"] < 1.0
