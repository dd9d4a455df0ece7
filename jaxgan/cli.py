"""What the command-line tools share: `--help` that exits 0 and lists the config fields, one
error style, and a console with a short prefix.

absl's own --help exits with status 1 and, with required flags, prints "(default: 'None')"
for them; `run(main)` answers --help / -h itself: the module's docstring, its flags (the
required ones marked), and every config field with its default and meaning
(`jaxgan.config.describe_fields`), then exits 0.

Every expected failure ends a tool with one line on stderr, `error: <message>`, and exit
status 2 for bad usage (a flag, an unknown config field, a missing config file, an
app.UsageError) or 1 for the rest (`jaxgan.errors.EXPECTED`: a bad config value, bad data,
a bad or locked workdir, a corrupt checkpoint, NaN). JAXGAN_DEBUG=1 raises them with their
tracebacks instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import logging as std_logging
import os
import sys
import textwrap
from typing import Callable, NoReturn, Sequence

from absl import app, flags

from jaxgan import errors
from jaxgan import workdir

HELP_ARGS = ("--help", "-h", "--helpshort", "--helpfull", "-?")


def help_text(module_name: str, doc: str, required: Sequence[str] = (), width: int = 100) -> str:
  """The usage text of the tool `module_name` (its flags from absl's registry)."""
  lines = [doc.strip(), "", "Flags:"]
  for flag in sorted(flags.FLAGS.get_key_flags_for_module(sys.modules[module_name]),
                     key=lambda f: f.name):
    if flag.name in required:
      head = f"  --{flag.name} (required)"
    elif flag.default is None or flag.default == "":
      head = f"  --{flag.name}"
    else:
      head = f"  --{flag.name} (default: {flag.default_as_str})"
    lines.append(head)
    lines += textwrap.wrap(flag.help or "", width, initial_indent="      ",
                           subsequent_indent="      ")
  from jaxgan import config as config_lib  # pylint: disable=g-import-not-at-top  (fast start: JAX)
  return "\n".join(lines) + "\n\n" + config_lib.describe_fields(width) + "\n"


LOG_FORMAT = "%(levelname).1s %(asctime)s %(message)s"  # 'I 19:31:46 step 5/30 ...'


def quiet_console() -> None:
  """A short log prefix (level letter and time: 11 columns instead of absl's ~50 with the
  date, thread id and file), and no INFO lines from JAX's platform probe ("Unable to
  initialize backend 'tpu'" on every machine without one), and no INFO lines from Orbax (a
  dozen per checkpoint save or restore)."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.get_absl_handler().setFormatter(std_logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
  std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)
  absl_logging.get_absl_handler().addFilter(_DropOrbaxInfo())


class _DropOrbaxInfo(std_logging.Filter):
  """Drops Orbax's INFO records (a dozen lines per save or restore); its warnings pass."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.WARNING
            or f"{os.sep}orbax{os.sep}" not in record.pathname)


DEBUG_ENV = "JAXGAN_DEBUG"
USAGE, FAILURE = 2, 1  # exit statuses


def _debug() -> bool:
  return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def fail(message: object, status: int) -> NoReturn:
  """Ends the tool: `error: <message>` on one line of stderr, exit `status`."""
  sys.stdout.flush()
  sys.stderr.write(f"error: {' '.join(str(message).split())}\n")
  sys.stderr.flush()
  sys.exit(status)


def _config_path(argv: Sequence[str]) -> str | None:
  """The --config file of a command line, or None."""
  argv = list(argv)
  path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if path is None and "--config" in argv[:-1]:
    path = argv[argv.index("--config") + 1]
  return path


def unknown_config_fields(argv: Sequence[str]) -> str | None:
  """The message for --config.FIELD overrides that name no field of the --config file's
  config (with the closest field names), or None when every override names a field."""
  path = _config_path(argv)
  if path is None:
    return None
  from jaxgan import config as config_lib  # pylint: disable=g-import-not-at-top  (fast start: JAX)
  try:
    fields = list(workdir.flatten(config_lib.load_file(path).to_dict()))
  except Exception:  # pylint: disable=broad-except  (the file's own error is reported instead)
    return None
  known = set(fields) | {f.rsplit(".", 1)[0] for f in fields if "." in f}
  bad = []
  for arg in argv:
    if arg.startswith("--config."):
      name = arg[len("--config."):].split("=", 1)[0]
      if name not in known:
        close = difflib.get_close_matches(name, fields, n=3, cutoff=0.6) or \
            difflib.get_close_matches(name.rsplit(".", 1)[-1], fields, n=3, cutoff=0.6)
        bad.append(f"--config.{name}: no such config field" + (
            f"; did you mean {' or '.join(close)}?" if close else ""))
  if not bad:
    return None
  return "; ".join(bad) + " (--help lists every field)"


def parse_flags(argv: Sequence[str]) -> list[str]:
  """absl's flag parsing, its failures as `fail(..., USAGE)` lines."""
  try:
    rest = flags.FLAGS(list(argv))
    if "config" in flags.FLAGS and flags.FLAGS["config"].present:
      flags.FLAGS.config.to_dict()  # ml_collections defers a config file's load error to here
    return rest
  except Exception as e:  # pylint: disable=broad-except  (flags, config files, overrides)
    if _debug():
      raise
    unknown = unknown_config_fields(argv)
    if unknown:
      fail(unknown, USAGE)
    path = _config_path(argv)
    if isinstance(e, OSError) and path and not os.path.isfile(path):
      fail(f"--config={path}: no such file", USAGE)
    if isinstance(e, (flags.Error, OSError, SyntaxError, AttributeError, KeyError)):
      fail(e, USAGE)
    raise


def guard(main: Callable) -> Callable:
  """`main` with its expected failures reported by `fail`."""
  def guarded(argv):
    try:
      return main(argv)
    except app.UsageError as e:
      if _debug():
        raise
      fail(e, USAGE)
    except errors.EXPECTED as e:
      if _debug():
        raise
      fail(e, FAILURE)
    except PermissionError as e:
      if _debug():
        raise
      fail(f"{e.filename or ''}: permission denied ({e.strerror}): run where this user may "
           f"write, or fix the permissions", FAILURE)
  return guarded


def run(main: Callable, module_name: str, doc: str, required: Sequence[str] = ()) -> None:
  """`app.run(main)` with `quiet_console`, --help answered by `help_text` (exit 0), and the
  one-line error style (`parse_flags`, `guard`)."""
  if any(arg in HELP_ARGS for arg in sys.argv[1:]):
    sys.stdout.write(help_text(module_name, doc, required))
    sys.exit(0)
  quiet_console()
  for name in required:
    if not any(a == f"--{name}" or a.startswith(f"--{name}=") for a in sys.argv[1:]):
      fail(f"--{name} is required (--help lists the flags)", USAGE)
  app.run(guard(main), flags_parser=parse_flags)
