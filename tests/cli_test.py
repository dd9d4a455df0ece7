"""--help of every command: exit 0, its flags, and the config fields with defaults and meanings."""

import subprocess
import sys

import ml_collections

from jaxgan import config as config_lib
from jaxgan import families
from tests.conftest import REPO, subprocess_env

COMMANDS = ("main", "sample", "benchmark", "evaluate")


def _leaves(tree, prefix=""):
  for key, value in tree.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


def test_every_config_field_has_a_meaning():
  for family in families.FAMILIES:
    docs = config_lib.field_docs(family)
    fields = list(_leaves(config_lib.default_config(family)))
    undocumented = [f for f in fields if not docs.get(f)]
    assert not undocumented, f"fields of family {family!r} without a comment in the schema"
  docs = config_lib.field_docs()
  assert docs["data.source"] == "'builtin:NAME', 'folder:PATH' or 'tfds:NAME[:SPLIT]'."
  # Constants named in a comment are spelled out.
  assert docs["model.generator.norm"].startswith("one of 'batch'")


def test_help_of_every_command_exits_0_and_lists_the_config_fields():
  procs = {name: subprocess.Popen([sys.executable, "-m", f"jaxgan.{name}", "--help"], cwd=REPO,
                                  env=subprocess_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
           for name in COMMANDS}
  outputs = {name: proc.communicate(timeout=300) for name, proc in procs.items()}
  for name, proc in procs.items():
    out, err = outputs[name]
    assert proc.returncode == 0, (name, err[-2000:])
    lines = out.splitlines()
    assert max(len(l) for l in lines) <= 100, name
    assert "Flags:" in lines and "  data.source = 'builtin:shapes'" in lines, name
    at = lines.index("  train.batch_size = 32")
    assert lines[at + 1].strip() == "global batch of one D or G update", name
    assert "  model.fade_images = 800000" in lines, name  # the ProGAN family's own fields
  main = outputs["main"][0]
  assert "  --config (required)" in main and "(default: 'None')" not in main
  assert "  --workdir (required)" in outputs["sample"][0]
  assert "  --metrics (default: 'fid,kid,is,pr')" in outputs["evaluate"][0]
