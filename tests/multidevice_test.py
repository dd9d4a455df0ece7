"""Data parallelism on 4 simulated CPU devices equals one device with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_XLA_FLAGS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_four_devices_match_one_device():
  env = dict(os.environ, XLA_FLAGS=f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
  proc = subprocess.run([sys.executable, "-m", "tests.multidevice_worker", "3"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
  result = json.loads(line[len("RESULT "):])
  assert result["devices"] == 4
  # Without BatchNorm, and with BatchNorm statistics synchronised over the data axis,
  # 4 devices x 2 images compute what 1 device x 8 images does, up to float32 reduction order
  # (parameters are O(0.1)).
  assert result["no_batchnorm"]["params"] < 1e-6
  assert result["sync_batchnorm"]["params"] < 1e-6
  assert result["conditional"]["params"] < 1e-6
  # The augmentation draws per image for the global batch, so 4 devices augment as 1 does;
  # ADA's p follows the r_t of the whole batch (it moved: 3 steps of 8 images, 50 per unit).
  assert result["augment_ada"]["params"] < 1e-6
  p_many, p_one = result["augment_ada"]["p"]
  assert p_many == p_one
  # The metrics' generator + feature network, sharded over 4 devices, gives the features
  # of one device.
  assert result["metrics_features"] < 1e-5
  # Per-device BatchNorm normalises each device's 2 images by their own statistics: it runs,
  # and the parameters part from the single-device run by far more than rounding.
  assert result["per_device_batchnorm"]["finite"]
  assert result["per_device_batchnorm"]["params"] > 1e-4
