"""Config as data: `jaxgan.config` holds defaults and docs and imports no part it describes;
each part checks its own section, and `assemble.validate` runs every check."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from jaxgan import config as config_lib
from jaxgan import errors
from jaxgan import families
from jaxgan import kernels
from jaxgan.data import spec as data_spec
from jaxgan.training import assemble
from jaxgan.training import augment
from jaxgan.training import losses
from jaxgan.training import regularizers
from jaxgan.training import step


def test_config_imports_only_the_family_registry_and_errors():
  tree = ast.parse(Path(config_lib.__file__).read_text())
  imported = {node.module + "." + a.name if node.module == "jaxgan" else node.module
              for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
              for a in node.names}
  assert {m for m in imported if m.startswith("jaxgan")} == {"jaxgan.errors", "jaxgan.families"}


@pytest.mark.parametrize("field, choices", [
    ("model.dtype", families.DTYPES),
    ("model.upsample_impl", kernels.UPSAMPLE_IMPLS),
    ("data.resize", data_spec.RESIZE_POLICIES),
    ("data.labels", data_spec.LABELS),
    ("train.g_update_fakes", step.G_UPDATE_FAKES),
    ("train.loss", tuple(losses.LOSSES)),
    ("train.penalty", tuple(regularizers.PENALTIES)),
    ("augment.policy", augment.OPS),
])
def test_field_docs_name_every_choice_the_check_allows(field, choices):
  doc = config_lib.field_docs()[field]
  missing = [c for c in choices if repr(c) not in doc]
  assert not missing, f"the doc of {field} ({doc!r}) does not name {missing}"


@pytest.mark.parametrize("field, value", [
    ("model.latent_dim", 0),                  # families.validate_shared
    ("model.generator.kernel_size", 0),       # the family's own check
    ("data.channels", 2),                     # jaxgan.data.spec.validate
    ("data.builtin_size", 0),
    ("train.label_smoothing", 1.5),           # jaxgan.training.step.validate
    ("optim.d_lr", -1.0),
    ("augment.probability", 2.0),             # jaxgan.training.augment.validate
    ("log_every_secs", -1.0),                 # jaxgan.training.actions.validate
    ("num_samples", 0),
])
def test_assemble_validate_runs_every_sections_check(field, value):
  config = config_lib.default_config()
  assemble.validate(config)
  section, _, leaf = field.rpartition(".")
  target = config
  for part in filter(None, section.split(".")):
    target = target[part]
  target[leaf] = value
  with pytest.raises(errors.ConfigError, match=rf"config\.{field}={value!r} is invalid"):
    assemble.validate(config)


def test_a_bad_evals_entry_is_refused():
  config = config_lib.default_config()
  config.evals.grid = {"type": "samples", "every": 10, "colour": "red"}
  with pytest.raises(errors.ConfigError, match=r"config\.evals\.grid\.colour='red' is invalid: "
                     r"not an option of evaluator type 'samples'"):
    assemble.validate(config)
