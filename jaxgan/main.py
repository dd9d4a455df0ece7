r"""The main training job.

  python -m jaxgan.main --config configs/dcgan128.py --workdir runs/dcgan128 \
      [--config.data.source=folder:/my/paintings] [--config.train.num_steps=5000]

`--config` is a Python file with `get_config()` (configs/); `--config.FIELD=VALUE` overrides
one field. Running the same command again resumes from the workdir's latest checkpoint.
SIGTERM or Ctrl-C saves a checkpoint of the current step and exits with status 0.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
  # Before JAX starts its CPU threads: glibc's allocator setting (jaxgan/hostmem.py); it
  # may restart the process once with glibc's transparent-huge-page tunable.
  from jaxgan import hostmem
  _HOST_MALLOC = hostmem.configure(reexec=True)
else:
  _HOST_MALLOC = None

import jax  # noqa: E402  (after the allocator set-up above)
from absl import app, flags, logging
from ml_collections import config_flags

from jaxgan import distributed
from jaxgan.training import loop

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file with get_config(), e.g. configs/dcgan128.py.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and samples go.")
_XLA_CACHE = flags.DEFINE_string(
    "xla_cache_dir", "~/.cache/jaxgan/xla",
    "Persistent cache of compiled programs, so that a resumed run starts without compiling "
    "again; '' disables it. JAX_COMPILATION_CACHE_DIR, when set, takes precedence.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", "", "Multi-process runs: 'host:port' of process 0. Not needed under "
    "SLURM or on Cloud TPU pods, where JAX finds it (see jaxgan/distributed.py).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Multi-process runs: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "Multi-process runs: this process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if _XLA_CACHE.value and not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(_XLA_CACHE.value))
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  logging.info("JAX %s, %s backend, %d devices on %d processes.", jax.__version__,
               jax.default_backend(), jax.device_count(), jax.process_count())
  if _HOST_MALLOC:
    logging.info("Host memory: %s.", _HOST_MALLOC)
  # Expected failures (jaxgan.errors) end the run in one line: jaxgan.cli.run.
  loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  from jaxgan import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, __name__, __doc__, required=("config", "workdir"))
