"""What the command-line tools share: `--help` that exits 0 and lists the config fields, and
a console with a short prefix.

absl's own --help exits with status 1 and, with required flags, prints "(default: 'None')"
for them; `run(main)` answers --help / -h itself: the module's docstring, its flags (the
required ones marked), and every config field with its default and meaning
(`jaxgan.config.describe_fields`), then exits 0.
"""

from __future__ import annotations

import logging as std_logging
import sys
import textwrap
from typing import Callable, Sequence

from absl import app, flags

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
  from jaxgan import config as config_lib  # pylint: disable=g-import-not-at-top
  return "\n".join(lines) + "\n\n" + config_lib.describe_fields(width) + "\n"


LOG_FORMAT = "%(levelname).1s %(asctime)s %(message)s"  # 'I 19:31:46 step 5/30 ...'


def quiet_console() -> None:
  """A short log prefix (level letter and time: 11 columns instead of absl's ~50 with the
  date, thread id and file), and no INFO lines from JAX's platform probe ("Unable to
  initialize backend 'tpu'" on every machine without one)."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.get_absl_handler().setFormatter(std_logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
  std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)


def run(main: Callable, module_name: str, doc: str, required: Sequence[str] = ()) -> None:
  """`app.run(main)` with `quiet_console`, and --help answered by `help_text` (exit 0)."""
  if any(arg in HELP_ARGS for arg in sys.argv[1:]):
    sys.stdout.write(help_text(module_name, doc, required))
    sys.exit(0)
  quiet_console()
  app.run(main)
