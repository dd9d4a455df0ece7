"""What a training run's workdir holds, where, and how it is written and read back.

    WORKDIR/
      config.py            the resolved config as a config file (--config WORKDIR/config.py reruns it)
      config.json          the same config as JSON (read by jaxgan.sampling)
      checkpoints/STEP/    Orbax checkpoints: arrays of the whole state, their checksums, the config
      checkpoints_corrupt/STEP-TIME/  a checkpoint that failed its checks on restore, set aside
      best/STEP/           the checkpoint of the best metric value so far (config.evals type
                           'metrics' with keep_best), never deleted by max_to_keep
      best.json            that value, its name and step: {"value_name": "fid", "value": ..., "step": ...}
      metrics.jsonl        JSON objects of scalars by step: {"step": 50, "loss/d": ..., ...},
                           and the evaluators' ({"step": 500, "eval/fid": ...})
      tensorboard/         TensorBoard event files: scalars, sample grids, the real grid, the
                           config as hparams
      real.png             a grid of training images, written at the start
      samples/step_NNNNNNN.png  a grid from fixed noise (seeds 0..num_samples-1) every sample_every steps
      losses.png           the training curves: losses, D logits, gradient norms, other scalars
                           and the eval metrics (jaxgan.images.plot_losses)
      samples.gif          the sample grids as an animation, one frame per grid
      nearest.png, .json   the memorisation check: samples beside their nearest training images
                           (python -m jaxgan.sample --nearest K, or jaxgan.report)
      report.html          the training report, one self-contained page (jaxgan.report)
      lock                 while a run is going: its pid, host and start (jaxgan.lock)

`losses.png` and `samples.gif` are written at the end of training (losses.png also with each
report.html) and on demand by
`python -m jaxgan.sample --workdir WORKDIR --summary`.
"""

from __future__ import annotations

import json
import os
import pprint
import re
from pathlib import Path
from typing import Any, Mapping

import ml_collections

from jaxgan import images

_SAMPLE_RE = re.compile(r"^step_(\d+)\.png$")


class Workdir:
  """The paths of a workdir (see the module docstring)."""

  def __init__(self, root: str | os.PathLike):
    self.root = Path(root)

  def __repr__(self) -> str:
    return f"Workdir({str(self.root)!r})"

  config_py = property(lambda self: self.root / "config.py")
  config_json = property(lambda self: self.root / "config.json")
  checkpoints = property(lambda self: self.root / "checkpoints")
  corrupt_checkpoints = property(lambda self: self.root / "checkpoints_corrupt")
  best = property(lambda self: self.root / "best")
  best_json = property(lambda self: self.root / "best.json")
  metrics = property(lambda self: self.root / "metrics.jsonl")
  tensorboard = property(lambda self: self.root / "tensorboard")
  samples = property(lambda self: self.root / "samples")
  real_grid = property(lambda self: self.root / "real.png")
  loss_plot = property(lambda self: self.root / "losses.png")
  gif = property(lambda self: self.root / "samples.gif")
  nearest_grid = property(lambda self: self.root / "nearest.png")
  nearest_json = property(lambda self: self.root / "nearest.json")
  report = property(lambda self: self.root / "report.html")

  def sample_grid(self, step: int) -> Path:
    """The sample grid of `step`."""
    return self.samples / f"step_{step:07d}.png"

  def sample_grids(self) -> list[tuple[int, Path]]:
    """(step, path) of every sample grid in the workdir, by step."""
    if not self.samples.is_dir():
      return []
    found = ((_SAMPLE_RE.match(p.name), p) for p in self.samples.iterdir())
    return sorted((int(m.group(1)), p) for m, p in found if m)


def save_config(config: ml_collections.ConfigDict, workdir: Workdir) -> None:
  """Writes the resolved config as `config.json` and as a loadable `config.py`."""
  workdir.root.mkdir(parents=True, exist_ok=True)
  as_dict = config.to_dict()
  _write_atomic(workdir.config_json, json.dumps(as_dict, indent=2, sort_keys=True) + "\n")
  _write_atomic(workdir.config_py, (
      '"""The resolved config of this run (written by jaxgan.training.loop; edits are not read back).\n\n'
      "Rerun with:\n"
      f"  python -m jaxgan.main --config {workdir.config_py} --workdir {workdir.root}\n"
      '"""\n\n'
      "import ml_collections\n\n\n"
      "def get_config():\n"
      f"  return ml_collections.ConfigDict({pprint.pformat(as_dict, indent=1, width=96)})\n"))


def load_config(workdir: Workdir) -> ml_collections.ConfigDict:
  """The config saved in `workdir` (lists where the original had tuples)."""
  if not workdir.config_json.exists():
    raise FileNotFoundError(f"{workdir.config_json} does not exist: is {workdir.root} the "
                            f"workdir of a training run?")
  return upgrade_config(ml_collections.ConfigDict(json.loads(workdir.config_json.read_text())))


def upgrade_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A saved config with the fields added since it was written, at their defaults.

  Configs written before model families name the family `model.name`; it becomes
  `model.family`. Fields the saved config has keep their saved values.
  """
  from jaxgan import config as config_lib  # pylint: disable=g-import-not-at-top  (fast start: JAX)
  saved = config.to_dict()
  model = saved.get("model", {})
  if "family" not in model and "name" in model:
    model["family"] = model.pop("name")
  merged = config_lib.default_config(model.get("family", "dcgan")).to_dict()

  def merge(into: dict, new: Mapping[str, Any]) -> None:
    for k, v in new.items():
      if isinstance(v, Mapping) and isinstance(into.get(k), dict):
        merge(into[k], v)
      else:
        into[k] = v
  merge(merged, saved)
  return ml_collections.ConfigDict(merged)


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
  """(field, old value, new value) of the leaves that differ, by field; '<absent>' for a
  field one side lacks. Values as JSON has them (tuples become lists)."""
  flat_old, flat_new = flatten(json.loads(json.dumps(old))), flatten(json.loads(json.dumps(new)))
  return [(k, flat_old.get(k, "<absent>"), flat_new.get(k, "<absent>"))
          for k in sorted(set(flat_old) | set(flat_new)) if flat_old.get(k) != flat_new.get(k)]


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """Human-readable 'field: old -> new' lines for the leaves that differ."""
  return [f"{k}: {a!r} -> {b!r}" for k, a, b in config_diff(old, new)]


def hparams(config: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
  """The config's leaves as TensorBoard hparams ('train.batch_size': 64, ...): numbers, bools
  and strings as they are, anything else (a tuple, None) as its repr."""
  flat = flatten(json.loads(json.dumps(dict(config))))
  return {k: v if isinstance(v, (bool, int, float, str)) else repr(v) for k, v in flat.items()}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a.b': 1}."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _write_atomic(path: Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  tmp.replace(path)


# ---- metrics.jsonl ----------------------------------------------------------------------

def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
  """The records of a metrics.jsonl file, by step; the records of one step (the losses and an
  evaluator's values) are merged, a later value of the same name winning."""
  path = Path(path)
  if not path.exists():
    return []
  by_step = {}
  for line in path.read_text(encoding="utf-8").splitlines():
    if line.strip():
      record = json.loads(line)
      by_step.setdefault(record["step"], {}).update(record)
  return [by_step[s] for s in sorted(by_step)]


def truncate_metrics(path: str | os.PathLike, after_step: int) -> None:
  """Drops the records of steps > `after_step` (written by a run that did not save them).

  A resumed run starts from its last checkpoint; records a killed run logged after that
  checkpoint would otherwise appear twice.
  """
  path = Path(path)
  if not path.exists():
    return
  lines = path.read_text(encoding="utf-8").splitlines()
  kept = [l for l in lines if l.strip() and json.loads(l)["step"] <= after_step]
  if len(kept) != len([l for l in lines if l.strip()]):
    _write_atomic(path, "".join(l + "\n" for l in kept))


def write_summary(workdir: Workdir) -> list[Path]:
  """(Re)writes losses.png from metrics.jsonl and samples.gif from the sample grids; returns
  the files written (none when there are no metrics and no grids)."""
  records = read_metrics(workdir.metrics) if workdir.metrics.exists() else []
  written = [images.plot_losses(records, workdir.loss_plot),
             images.write_gif(workdir.sample_grids(), workdir.gif)]
  return [p for p in written if p is not None]
