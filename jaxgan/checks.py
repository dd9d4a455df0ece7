"""Validation helpers for config sections: each part of jaxgan checks its own section with
these (families: `model`, data: `data`, the step: `train`/`optim`, ...), and
`jaxgan.training.assemble.validate` calls every part's check before anything compiles.

Every helper raises `ConfigError` naming the field, the bad value and what is allowed.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from jaxgan import errors

ConfigError = errors.ConfigError


def fail(field: str, value: Any, allowed: str) -> None:
  """Raises ConfigError for `config.FIELD=value`, saying what is allowed."""
  raise ConfigError(f"config.{field}={value!r} is invalid: {allowed}")


def get(config, field: str) -> Any:
  """`config.a.b.c` for field 'a.b.c'."""
  for part in field.split("."):
    config = config[part]
  return config


def check_choice(config, field: str, choices: Sequence[str]) -> None:
  """ConfigError unless `config.FIELD` ('a.b.c') is one of `choices`."""
  value = get(config, field)
  if value not in choices:
    fail(field, value, f"expected one of {', '.join(map(repr, choices))}")


def check_positive(config, field: str) -> None:
  """ConfigError unless `config.FIELD` is a number > 0 (not a bool)."""
  value = get(config, field)
  if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
    fail(field, value, "expected a positive number")


def check_option_names(field: str, options, allowed: Iterable[str], what: str) -> None:
  """ConfigError for the first key of the ConfigDict `options` (at `config.FIELD`) that is
  not in `allowed`; `what` names the thing whose options they are (in the message)."""
  allowed = tuple(allowed)
  for key in options.keys():
    if key not in allowed:
      fail(f"{field}.{key}", options[key], f"not an option of {what}; its options are "
           f"{', '.join(sorted(allowed))}")
