"""Shared test fixtures: the tiny config, a workdir trained by the real entry point.

Compiled programs are cached on disk for the whole session (also for subprocesses), so
the several short training runs of the tests compile the tiny step once.
"""

import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile

# Before JAX is imported anywhere: a session-wide persistent compilation cache (removed at
# the end unless JAX_COMPILATION_CACHE_DIR was given).
_CACHE_DIR = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _CACHE_DIR = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxgan-xla-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# The tests check behaviour, not speed, and most of their time is XLA compiling tiny
# programs: LLVM at -O0 compiles them about 30% faster (docs/pitfalls.md). Kept for the
# subprocesses; a test that sets XLA_FLAGS itself appends to TEST_XLA_FLAGS.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
if "XLA_FLAGS" not in os.environ:
  os.environ["XLA_FLAGS"] = TEST_XLA_FLAGS

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny.py"
# The run of the `trained_workdir` fixture: python -m jaxgan.main with these overrides.
TRAINED_STEPS = 6
TRAINED_OVERRIDES = (f"--config.train.num_steps={TRAINED_STEPS}", "--config.sample_every=2",
                     "--config.checkpoint_every=4", "--config.log_every=2",
                     "--config.train.ema_decay=0.9")


def load_config(path=TINY_CONFIG):
  """`get_config()` of a config file, like --config does."""
  from jaxgan import config as config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.load_file(path)


def subprocess_env():
  """The environment for `python -m jaxgan...` from the repository root."""
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
  return env


def run_main(workdir, *overrides, timeout=300, config=TINY_CONFIG):
  """Runs the real entry point to completion; returns the CompletedProcess."""
  cmd = [sys.executable, "-m", "jaxgan.main", f"--config={config}", f"--workdir={workdir}",
         *overrides]
  return subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                        timeout=timeout, check=False)


@pytest.fixture
def tiny_config():
  """A fresh copy of configs/tiny.py's config."""
  return load_config()


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory):
  """A workdir written by `python -m jaxgan.main` on the tiny config (6 steps, EMA on)."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  proc = run_main(workdir, *TRAINED_OVERRIDES)
  assert proc.returncode == 0, proc.stderr[-5000:]
  return workdir


def pytest_collection_modifyitems(items):
  """Slow tests first (a stable sort), so that parallel workers do not end on one of them."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_unconfigure(config):
  del config
  if _CACHE_DIR is not None:
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)
