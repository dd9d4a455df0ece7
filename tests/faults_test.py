"""Fault injection: what a hostile user or a bad disk does to a run, and what jaxgan answers."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxgan import checkpointing
from jaxgan import jsonl_writer
from jaxgan import lock
from jaxgan import sampling
from jaxgan import workdir as workdir_lib
from jaxgan.training import loop
from tests.conftest import (REPO, TEST_XLA_FLAGS, TINY_CONFIG, load_config, run_main,
                            subprocess_env)


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


def _wrong_values(checkpoint):
  """Every array reads back without error but is not what was saved: no saved checksum
  matches (flipped bytes of the compressed array files may instead make them unreadable,
  or miss the arrays a partial load reads, depending on the files' layout)."""
  path = checkpoint / "checksums" / "metadata"
  saved = json.loads(path.read_text())
  path.write_text(json.dumps({name: {**e, "sha256": "0" * 64} for name, e in saved.items()}))


def _truncate(path):
  path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


# What is done to a checkpoint (its folder).
CORRUPTIONS = {
    "wrong_values": _wrong_values,
    "flip": lambda ckpt: _flip(_data_file(ckpt)),  # 400 bytes
    "truncate": lambda ckpt: _truncate(_data_file(ckpt)),
    "delete": lambda ckpt: _data_file(ckpt).unlink(),
    "empty_metadata": lambda ckpt: (ckpt / "state" / "_METADATA").write_text(""),
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
  CORRUPTIONS[mode](wd.checkpoints / "6")
  with caplog.at_level(logging.INFO):
    state = loop.train_and_evaluate(_tiny(8), str(wd.root))
  assert f"checkpoint 6 in {wd.checkpoints} " in caplog.text
  # Arrays that read without error but differ: the checksums catch them. Flipped bytes
  # are caught by one or the other.
  checksum = "differs from its saved checksum" in caplog.text
  unreadable = "cannot be read" in caplog.text
  assert checksum or unreadable, caplog.text
  assert checksum == (mode == "wrong_values") or mode == "flip", caplog.text
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
  for path in (wd.checkpoints / "6" / "state").rglob("*"):  # every array's bytes
    if path.is_file() and path.parent.name == "d":
      _flip(path, every=997)
  with pytest.raises(checkpointing.CorruptCheckpointError, match="checkpoint 6 in .* (is "
                     "corrupt|cannot be read)"):
    sampling.load_generator(wd.root)
  assert sampling.load_generator(wd.root, step=4).step == 4  # the others still load
  manager = checkpointing.create_manager(wd.checkpoints, read_only=True)
  assert checkpointing.newest_verified(manager) == 4
  manager.close()


def test_every_checkpoint_corrupt_stops_the_run_saying_so(six_steps, tmp_path):
  base, _ = six_steps
  wd = workdir_lib.Workdir(shutil.copytree(base, tmp_path / "run"))
  for step in (2, 4, 6):
    CORRUPTIONS["empty_metadata"](wd.checkpoints / str(step))
  with pytest.raises(checkpointing.CorruptCheckpointError, match="every checkpoint in .* failed"):
    loop.train_and_evaluate(_tiny(8), str(wd.root))
  assert not any(p.name.isdigit() for p in wd.checkpoints.iterdir())  # all set aside


# ---- one error style on the command line -------------------------------------------------

def _empty_folder(tmp_path):
  (tmp_path / "empty").mkdir(exist_ok=True)
  (tmp_path / "empty" / "notes.txt").write_text("no image here")
  return tmp_path / "empty"


def _file_in_the_way(tmp_path):
  (tmp_path / "file").write_text("x")
  return tmp_path / "file" / "run"


MAIN = ("-m", "jaxgan.main", f"--config={TINY_CONFIG}")
# (name, argv after python, extra environment, exit status, what the one line says). {tmp}
# is the test's folder, {run} a trained workdir, {corrupt} a copy of it with its checkpoint 6
# corrupted, {empty} a folder without images, {file} a workdir path below a file.
CLI_ERRORS = [
    ("no config", ("-m", "jaxgan.main", "--workdir={tmp}/r"), {}, 2, "--config is required"),
    ("missing config file", ("-m", "jaxgan.main", "--config=nope.py", "--workdir={tmp}/r"), {},
     2, "--config=nope.py: no such file"),
    ("unknown field", (*MAIN, "--workdir={tmp}/r", "--config.train.lossx=hinge"), {}, 2,
     "--config.train.lossx: no such config field; did you mean train.loss"),
    ("bad field type", (*MAIN, "--workdir={tmp}/r", "--config.train.batch_size=abc"), {}, 2,
     "flag --config.train.batch_size=abc"),
    ("bad field value", (*MAIN, "--workdir={tmp}/r", "--config.train.loss=bogus"), {}, 1,
     "config.train.loss='bogus' is invalid: expected one of"),
    ("builtin size 0", (*MAIN, "--workdir={tmp}/r", "--config.data.builtin_size=0"), {}, 1,
     "config.data.builtin_size=0"),
    ("folder without images", (*MAIN, "--workdir={tmp}/r", "--config.data.source=folder:{empty}"),
     {}, 1, "no images"),
    ("batch over devices", (*MAIN, "--workdir={tmp}/r", "--config.train.batch_size=7"),
     {"XLA_FLAGS": f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count=2"}, 1,
     "config.train.batch_size=7 does not divide by the 2 devices"),
    ("unwritable workdir", (*MAIN, "--workdir={file}"), {}, 1, "cannot be written"),
    ("sample: missing workdir", ("-m", "jaxgan.sample", "--workdir={tmp}/none"), {}, 2,
     "--workdir={tmp}/none: no such directory"),
    ("sample: no checkpoint", ("-m", "jaxgan.sample", "--workdir={empty}"), {}, 1,
     "no checkpoints folder"),
    ("sample: missing step", ("-m", "jaxgan.sample", "--workdir={run}", "--step=99"), {}, 1,
     "no checkpoint 99"),
    ("sample: negative truncation", ("-m", "jaxgan.sample", "--workdir={run}",
                                     "--truncation=-1"), {}, 2, "truncation=-1.0"),
    ("sample: no images", ("-m", "jaxgan.sample", "--workdir={run}", "--num=0"), {}, 2,
     "--num=0: expected a whole number >= 1"),
    ("sample: corrupt checkpoint", ("-m", "jaxgan.sample", "--workdir={corrupt}"), {}, 1,
     "checkpoint 6 in {corrupt}/checkpoints "),
    ("evaluate: corrupt checkpoint", ("-m", "jaxgan.evaluate", "--workdir={corrupt}",
                                      "--network=random", "--num=8"), {}, 1,
     "checkpoint 6 in {corrupt}/checkpoints "),
    ("evaluate: bad step", ("-m", "jaxgan.evaluate", "--workdir={run}", "--step=x"), {}, 2,
     "--step='x': expected a step number or 'best'"),
    ("report: missing workdir", ("-m", "jaxgan.report", "--workdir={tmp}/none"), {}, 2,
     "no such directory"),
]


@pytest.mark.parametrize("name,argv,env,status,message", CLI_ERRORS, ids=[c[0] for c in CLI_ERRORS])
def test_every_expected_failure_is_one_line_without_a_traceback(
    trained_workdir, tmp_path, name, argv, env, status, message):
  del name
  paths = {"tmp": tmp_path, "run": trained_workdir, "empty": _empty_folder(tmp_path),
           "file": _file_in_the_way(tmp_path), "corrupt": tmp_path / "corrupt"}
  if "{corrupt}" in " ".join(argv):
    shutil.copytree(trained_workdir, paths["corrupt"])
    _wrong_values(paths["corrupt"] / "checkpoints" / "6")
  argv = [a.format(**paths) for a in argv]
  proc = subprocess.run([sys.executable, *argv], cwd=REPO, env={**subprocess_env(), **env},
                        capture_output=True, text=True, timeout=300, check=False)
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert proc.returncode == status, proc.stderr[-3000:]
  assert len(errors) == 1 and message.format(**paths) in errors[0], proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  assert proc.stderr.rstrip().endswith(errors[0])  # the last line: nothing after it


def test_jaxgan_debug_shows_the_traceback(tmp_path):
  proc = subprocess.run([sys.executable, *MAIN, f"--workdir={tmp_path}/r",
                         "--config.train.loss=bogus"], cwd=REPO,
                        env={**subprocess_env(), "JAXGAN_DEBUG": "1"}, capture_output=True,
                        text=True, timeout=300, check=False)
  assert proc.returncode == 1 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_the_second_ctrl_c_aborts_at_once_and_the_next_run_resumes(tmp_path):
  workdir = tmp_path / "run"
  proc = subprocess.Popen(
      [sys.executable, *MAIN, f"--workdir={workdir}", "--config.train.num_steps=100000",
       "--config.checkpoint_every=20", "--config.log_every=1000"], cwd=REPO,
      env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  for line in proc.stderr:
    if "Training from step" in line:
      break
  time.sleep(1.0)
  proc.send_signal(signal.SIGINT)
  for line in proc.stderr:  # the first: the loop stops and saves
    if "saving its checkpoint, then stopping (Ctrl-C again aborts at once)" in line:
      break
  proc.send_signal(signal.SIGINT)
  start = time.monotonic()
  assert proc.wait(timeout=10) == -signal.SIGINT  # the second: killed, not a clean exit
  assert time.monotonic() - start < 2
  again = run_main(workdir, "--config.train.num_steps=45", "--config.checkpoint_every=20")
  assert again.returncode == 0, again.stderr[-3000:]
