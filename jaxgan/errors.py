"""Expected failures: what the command-line tools report as one line, `error: <message>`,
with exit status 1 (`jaxgan.cli.run`; 2 for bad usage), and without a traceback unless
JAXGAN_DEBUG=1. They are defined here, where importing them costs nothing (no JAX, no
TensorFlow), so that a tool can catch them before it has imported the code that raises
them; each module that raises one imports it from here (config.ConfigError, ...).

Anything else that escapes a tool is a bug and keeps its traceback.
"""


class ConfigError(ValueError):
  """An invalid config value, raised before any compilation (jaxgan.config)."""


class DataError(ValueError):
  """A data source that cannot give a batch: a missing or empty folder, no decodable image,
  a batch that does not split over the devices (jaxgan.data, jaxgan.sharding)."""


class CheckpointMismatchError(ValueError):
  """The checkpoint's arrays do not have the shapes the current config makes
  (jaxgan.checkpointing)."""


class CorruptCheckpointError(RuntimeError):
  """A checkpoint that cannot be read, or whose arrays differ from their saved checksums
  or are not finite (jaxgan.checkpointing)."""


class NonFiniteError(RuntimeError):
  """A loss, gradient norm or state value became NaN or Inf; training stopped
  (jaxgan.training.loop)."""


class WorkdirError(RuntimeError):
  """A workdir that cannot be used: another live run holds it (jaxgan.lock), or it cannot
  be written."""


class WorkdirLocked(WorkdirError):
  """Another live run holds the workdir (jaxgan.lock)."""


# What `jaxgan.cli.run` reports in one line (FileNotFoundError: a missing workdir, checkpoint
# or file named on the command line).
EXPECTED = (ConfigError, DataError, CheckpointMismatchError, CorruptCheckpointError,
            NonFiniteError, WorkdirError, FileNotFoundError)
