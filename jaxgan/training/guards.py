"""What a run holds while it trains: its workdir's lock and the stop signals.

`workdir_lock` keeps a second run out of the workdir (jaxgan.lock; every process of a
multi-process run learns whether process 0 got it). `StopSignal` turns SIGTERM and SIGINT
(Ctrl-C) into a flag the loop reads between steps, so that the run saves a checkpoint of the
step reached and returns; a second signal aborts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from jaxgan import errors
from jaxgan import lock as lock_lib


class StopSignal:
  """Sets `.signum` on SIGTERM or SIGINT while active (main thread only); no I/O in the handler.

  After the first signal that signal's default action is back, so a second Ctrl-C (or
  SIGTERM) ends the process at once, from the kernel, even while the main thread waits in
  C code (a step, a checkpoint write): a half-written checkpoint is an uncommitted
  temporary folder that the next run removes, and the earlier ones are intact.
  """

  def __init__(self):
    self.signum = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    self.signum = signum
    signal.signal(signum, signal.SIG_DFL)

  def __enter__(self) -> StopSignal:
    if threading.current_thread() is threading.main_thread():
      for s in (signal.SIGTERM, signal.SIGINT):
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)

  def log_stopping(self, step: int) -> None:
    """The warning when the loop has seen the signal, before the last checkpoint."""
    logging.warning("%s at step %d: saving its checkpoint, then stopping (%s again aborts at "
                    "once).", signal.Signals(self.signum).name, step,
                    "Ctrl-C" if self.signum == signal.SIGINT else "the signal")

  def log_stopped(self, step: int) -> None:
    """The warning when the run has stopped, its checkpoint saved."""
    logging.warning("Stopped by %s at step %d; its checkpoint is saved. Run the same command "
                    "to resume.", signal.Signals(self.signum).name, step)


@contextlib.contextmanager
def workdir_lock(wd, lead: bool):
  """WORKDIR/lock for the run (jaxgan.lock), taken by process 0; in a multi-process run
  every process learns whether it was, so that all stop together when it was not."""
  try:
    held = lock_lib.Lock(wd.root).acquire() if lead else None
    error = None
  except lock_lib.WorkdirLocked as e:
    held, error = None, e
  except OSError as e:  # read-only, a file in the way, no space, ...
    held, error = None, errors.WorkdirError(
        f"workdir {wd.root} cannot be written ({e.strerror or e}: {e.filename or wd.root}): "
        f"give a --workdir where this user may create files")
  if jax.process_count() > 1:
    ok = multihost_utils.broadcast_one_to_all(np.int32(error is None))
    if not ok and error is None:
      error = lock_lib.WorkdirLocked(f"process 0 could not lock workdir {wd.root} (its log "
                                     f"names the run that holds it)")
  if error is not None:
    raise error
  try:
    yield
  finally:
    if held is not None:
      held.release()
