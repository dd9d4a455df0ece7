"""Fault injection: what a hostile user or a bad disk does to a run, and what jaxgan answers."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxgan import checkpointing
from jaxgan import jsonl_writer
from jaxgan import lock
from jaxgan import sampling
from jaxgan import workdir as workdir_lib
from jaxgan.training import loop
from tests.conftest import REPO, TINY_CONFIG, load_config, run_main, subprocess_env


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


# ---- the workdir lock ----------------------------------------------------------------------

def test_a_lock_held_by_a_live_process_refuses_and_a_killed_ones_is_taken_over(tmp_path,
                                                                               caplog):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time\nfrom jaxgan import lock\n"
       f"lock.Lock({str(tmp_path)!r}).acquire()\nprint('held', flush=True)\ntime.sleep(120)"],
      cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(lock.WorkdirLocked, match=rf"in use by another run \(pid {holder.pid} "
                       rf"on host {socket.gethostname()}"):
      lock.Lock(tmp_path).acquire()
  finally:
    holder.kill()  # SIGKILL: the run cannot release its lock
    holder.wait()
  assert (tmp_path / "lock").exists()
  with caplog.at_level(logging.WARNING):
    held = lock.Lock(tmp_path).acquire()
  assert f"pid {holder.pid}" in caplog.text and "ended without releasing it" in caplog.text
  assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
  held.release()
  assert not (tmp_path / "lock").exists()


def test_a_lock_from_another_host_is_not_taken_over(tmp_path):
  (tmp_path / "lock").write_text(json.dumps({"pid": 1234, "host": "elsewhere", "started": 0}))
  with pytest.raises(lock.WorkdirLocked, match="on another host.*pid 1234 on host elsewhere.*"
                     "if that run is gone, delete"):
    lock.Lock(tmp_path).acquire()
  assert (tmp_path / "lock").exists()


def test_a_second_run_on_a_live_workdir_stops_at_once_and_the_first_goes_on(tmp_path):
  workdir = tmp_path / "run"
  first = subprocess.Popen(
      [sys.executable, "-m", "jaxgan.main", f"--config={TINY_CONFIG}", f"--workdir={workdir}",
       "--config.train.num_steps=100000", "--config.checkpoint_every=5",
       "--config.log_every=1000"], cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE, text=True)
  try:
    for line in first.stderr:
      if "Training from step" in line:
        break
    second = run_main(workdir, "--config.train.num_steps=10")
    assert second.returncode == 1
    assert (f"is in use by another run (pid {first.pid} on host {socket.gethostname()}"
            in second.stderr)
    assert "Traceback" not in second.stderr and first.poll() is None
  finally:
    first.send_signal(signal.SIGTERM)
    _, rest = first.communicate(timeout=120)
  assert first.returncode == 0, rest[-3000:]
  assert "Stopped by SIGTERM" in rest and not (workdir / "lock").exists()
  assert checkpointing.create_manager(workdir / "checkpoints", read_only=True).latest_step()


# ---- checkpoint integrity ----------------------------------------------------------------

def _tiny(num_steps):
  config = load_config()
  config.train.num_steps, config.checkpoint_every, config.log_every = num_steps, 2, 1
  config.sample_every, config.report_every_secs = 100, 0
  return config


def _params(state):
  return [np.asarray(x) for x in jax.tree.leaves((state.g.params, state.d.params))]


def _data_file(checkpoint):
  """The largest file of a checkpoint's arrays."""
  return max((p for p in (checkpoint / "state").rglob("*") if p.is_file()),
             key=lambda p: p.stat().st_size)


def _flip(path, every=None):
  data = bytearray(path.read_bytes())
  spots = range(0, len(data), every) if every else range(len(data) // 2, len(data) // 2 + 400)
  for i in spots:
    data[i] ^= 0xFF
  path.write_bytes(bytes(data))


# What is done to a checkpoint's largest data file ('empty_metadata': to state/_METADATA).
CORRUPTIONS = {
    "flip": _flip,  # 400 bytes in the middle: read without error, wrong values
    "truncate": lambda path: path.write_bytes(path.read_bytes()[:path.stat().st_size // 2]),
    "delete": lambda path: path.unlink(),
    "empty_metadata": None,
}


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory):
  """A tiny run to step 6 (checkpoints 2, 4, 6) and the parameters of an uninterrupted run
  to step 8."""
  base = tmp_path_factory.mktemp("six") / "run"
  loop.train_and_evaluate(_tiny(6), str(base))
  reference = loop.train_and_evaluate(_tiny(8), str(tmp_path_factory.mktemp("eight") / "run"))
  return base, _params(reference)


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(CORRUPTIONS))
def test_a_corrupt_checkpoint_is_set_aside_and_the_run_resumes_from_the_one_before(
    six_steps, tmp_path, caplog, mode):
  base, reference = six_steps
  wd = workdir_lib.Workdir(shutil.copytree(base, tmp_path / "run"))
  target = _data_file(wd.checkpoints / "6")
  if mode == "empty_metadata":
    (wd.checkpoints / "6" / "state" / "_METADATA").write_text("")
  else:
    CORRUPTIONS[mode](target)
  with caplog.at_level(logging.INFO):
    state = loop.train_and_evaluate(_tiny(8), str(wd.root))
  assert f"checkpoint 6 in {wd.checkpoints} " in caplog.text
  # Flipped bytes read without error: the checksums catch them.
  assert ("differs from its saved checksum" in caplog.text) == (mode == "flip"), caplog.text
  assert "Resuming from the checkpoint of step 4" in caplog.text and "1 newer failed" in caplog.text
  assert [p.name.split("-")[0] for p in wd.corrupt_checkpoints.iterdir()] == ["6"]
  # Bit-identical to the uninterrupted run, with one metrics line per step.
  for a, b in zip(_params(state), reference, strict=True):
    np.testing.assert_array_equal(a, b)
  assert _steps(wd.metrics) == list(range(1, 9))
  assert sorted(int(p.name) for p in wd.checkpoints.iterdir() if p.name.isdigit()) == [4, 6, 8]


def test_sampling_refuses_a_corrupt_checkpoint_in_one_line(six_steps, tmp_path):
  base, _ = six_steps
  wd = workdir_lib.Workdir(shutil.copytree(base, tmp_path / "run"))
  _flip(_data_file(wd.checkpoints / "6"), every=997)
  with pytest.raises(checkpointing.CorruptCheckpointError, match="checkpoint 6 in .* is "
                     "(corrupt|cannot be read)"):
    sampling.load_generator(wd.root)
  assert sampling.load_generator(wd.root, step=4).step == 4  # the others still load
  manager = checkpointing.create_manager(wd.checkpoints, read_only=True)
  assert checkpointing.newest_verified(manager) == 4
  manager.close()


def test_every_checkpoint_corrupt_stops_the_run_saying_so(six_steps, tmp_path):
  base, _ = six_steps
  wd = workdir_lib.Workdir(shutil.copytree(base, tmp_path / "run"))
  for step in (2, 4, 6):
    (wd.checkpoints / str(step) / "state" / "_METADATA").write_text("")
  with pytest.raises(checkpointing.CorruptCheckpointError, match="every checkpoint in .* failed"):
    loop.train_and_evaluate(_tiny(8), str(wd.root))
  assert not any(p.name.isdigit() for p in wd.checkpoints.iterdir())  # all set aside
