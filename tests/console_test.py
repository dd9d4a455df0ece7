"""The console of a tiny run as a new user sees it: the start-up summary, the compiling
notice, progress lines that fit 100 columns, and an ETA that holds from the first steps."""

import re
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, TINY_CONFIG, subprocess_env


# It times the run against its own ETA, so it runs alone (README: the second pytest command).
@pytest.mark.serial
def test_console_summary_progress_width_and_eta(tmp_path):
  folder = tmp_path / "images"
  folder.mkdir()
  rng = np.random.default_rng(0)
  for i in range(24):
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
  (folder / "broken.png").write_bytes(b"not a png")
  cmd = [sys.executable, "-m", "jaxgan.main", f"--config={TINY_CONFIG}",
         f"--workdir={tmp_path / 'run'}", f"--config.data.source=folder:{folder}",
         "--config.train.num_steps=150", "--config.train.batch_size=32", "--config.log_every=25",
         "--config.sample_every=1000", "--config.checkpoint_every=1000"]
  proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  lines = []  # (seconds since start, line), read as they come
  start = time.perf_counter()
  for line in proc.stdout:
    lines.append((time.perf_counter() - start, line.rstrip("\n")))
  assert proc.wait(timeout=300) == 0, "\n".join(l for _, l in lines[-30:])
  text = [l for _, l in lines]
  assert not any("libtpu" in l for l in text)  # the platform probe's INFO line is silenced
  data = next(l for l in text if "Data: folder:" in l)
  assert "24 images (1 files skipped), 16x16 RGB; 150 steps, 4,800 images = 200.0 epochs" in data
  model = next(l for l in text if "Model: dcgan" in l)
  assert re.search(r"G [\d,]+ parameters, D [\d,]+$", model)
  assert any(l.endswith("Compiling the training step...") for l in text)
  assert not any("!!python" in l or "&id00" in l for l in text)  # no YAML dump of the config
  progress = [(t, l) for t, l in lines if re.search(r" step \d+/150 ", l)]
  assert [int(re.search(r"step (\d+)/", l).group(1)) for _, l in progress] == [
      1, 2, 3, 4, 5, 25, 50, 75, 100, 125, 150]
  assert all(len(l) <= 100 for _, l in progress), max(progress, key=lambda x: len(x[1]))
  assert "100.0%" in progress[-1][1]
  # After step 5, the ETA is within a factor of 2 of the time the remaining steps took.
  at5, line5 = progress[4]
  eta = re.search(r"ETA (?:(\d+)m )?(\d+)s", line5)
  eta_s = int(eta.group(1) or 0) * 60 + int(eta.group(2))
  actual = progress[-1][0] - at5
  assert actual / 2 <= max(eta_s, 0.5) <= 2 * actual + 1, (line5, actual)
