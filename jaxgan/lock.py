"""One live run per workdir: WORKDIR/lock.

    held = lock.Lock(workdir).acquire()   # WorkdirLocked when another live run holds it
    try:
      train(...)
    finally:
      held.release()

The lock is a file holding the owner's pid, host, the run's start time and command, kept
open with an exclusive `fcntl.flock` for the whole run. The kernel drops a flock when its
process dies however it dies (kill -9 included), so on the same host a lock whose file is
there but not flocked is stale: it is taken over, with a warning naming the run that left
it. The file is removed when the run ends.

On storage shared between hosts, a flock may not reach the other host; a lock file written
on another host that is not flocked here is therefore never taken over: the message says
how to proceed (stop that run, or delete the file when it is known to be gone). A
multi-process run takes the lock once, in process 0 (the only one that writes the workdir).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from absl import logging

from jaxgan import errors

LOCK_NAME = "lock"


WorkdirLocked = errors.WorkdirLocked


def _describe(info: dict[str, Any]) -> str:
  started = info.get("started")
  when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
  return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started {when}"


def _read(path: Path) -> dict[str, Any]:
  try:
    return json.loads(path.read_text() or "{}")
  except (OSError, ValueError):
    return {}


class Lock:
  """A held workdir lock (see the module doc); `release()` ends it."""

  def __init__(self, workdir: str | os.PathLike):
    self.path = Path(workdir) / LOCK_NAME
    self._fd: int | None = None

  def acquire(self) -> "Lock":
    """Takes the lock, taking over a stale one with a warning; WorkdirLocked otherwise."""
    self.path.parent.mkdir(parents=True, exist_ok=True)
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        os.close(fd)
        info = _read(self.path)
        raise WorkdirLocked(
            f"workdir {self.path.parent} is in use by another run ({_describe(info)}; "
            f"{self.path}): wait for it to end, stop it (SIGTERM saves its checkpoint), or "
            f"give this run another --workdir") from None
      try:  # Still the file at the path (not one a releasing run just removed)?
        same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
      except FileNotFoundError:
        same = False
      if same:
        break
      os.close(fd)
    info = _read(self.path)
    host = socket.gethostname()
    if info and info.get("host") not in (None, host):
      fcntl.flock(fd, fcntl.LOCK_UN)
      os.close(fd)
      raise WorkdirLocked(
          f"workdir {self.path.parent} is locked by a run on another host ({_describe(info)}; "
          f"{self.path}), which this host cannot see: if that run is gone, delete "
          f"{self.path} and run again; else wait for it, or give this run another --workdir")
    if info:
      logging.warning("Took over the lock of a run that ended without releasing it (%s; it "
                      "was killed or crashed): %s.", _describe(info), self.path)
    mine = {"pid": os.getpid(), "host": host, "started": time.time(),
            "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(mine) + "\n").encode(), 0)
    os.fsync(fd)
    self._fd = fd
    return self

  def release(self) -> None:
    """Removes the file (while still holding the flock, so no other run sees it half-gone)."""
    if self._fd is None:
      return
    try:
      if _read(self.path).get("pid") == os.getpid():
        self.path.unlink(missing_ok=True)
    finally:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None
