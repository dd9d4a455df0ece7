"""Evaluators: the actions that `config.evals` names (name -> {type, every, options}),
built from EVALUATORS as big_vision builds its evaluators:

  samples   an extra sample grid (e.g. truncated, or of the trained rather than EMA weights)
  metrics   FID, KID, Inception Score, precision/recall of generated images against the
            training data, on the mesh (`MetricsEvaluator`, over the pure functions of
            `jaxgan.metrics.evaluation`); optionally keeps the best checkpoint

`register_evaluator` adds a type that configs can name; `validate(config)` checks
config.evals before anything compiles.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Iterable, NamedTuple

import ml_collections
import numpy as np
from absl import logging

from jaxgan import checkpointing
from jaxgan import checks
from jaxgan.metrics import evaluation
from jaxgan.metrics import inception
from jaxgan.metrics import networks as networks_lib
from jaxgan.training import actions


def _samples_evaluator(ctx: actions.Context, name: str,
                       spec: ml_collections.ConfigDict) -> actions.Action:
  """type 'samples': an extra grid, e.g. truncated, or of the trained (not EMA) weights.
  Options: num (default config.num_samples), truncation (None), ema (True). Written to
  WORKDIR/samples/NAME/step_NNNNNNN.png and TensorBoard 'samples/NAME'."""
  directory = ctx.wd.samples / name
  return actions.SampleGrid(ctx, every=spec.every, num=spec.get("num", ctx.config.num_samples),
                            truncation=spec.get("truncation", None), ema=spec.get("ema", True),
                            tag=f"samples/{name}",
                            path=lambda step: directory / f"step_{step:07d}.png")


# ---- type 'metrics': FID, KID, IS, precision/recall (jaxgan.metrics.evaluation) ----------

def check_metrics_options(config: ml_collections.ConfigDict, name: str,
                          spec: ml_collections.ConfigDict) -> None:
  """ConfigError for a bad option of a 'metrics' entry of config.evals."""
  checks.check_option_names(f"evals.{name}", spec, ("type", "every", *evaluation.DEFAULTS),
                            f"evaluator type {spec.type!r}")
  field, o = f"evals.{name}", evaluation.options(spec)
  try:
    metrics = evaluation.parse_metrics(o["metrics"])
  except ValueError:
    checks.fail(f"{field}.metrics", o["metrics"], f"expected a comma-separated list of "
                f"{', '.join(evaluation.METRICS)}")
  for option in ("num", "batch"):
    if not isinstance(o[option], int) or isinstance(o[option], bool) or o[option] < 2:
      checks.fail(f"{field}.{option}", o[option], "expected a whole number >= 2")
  if not isinstance(o["ref_num"], int) or o["ref_num"] < 0 or o["ref_num"] == 1:
    checks.fail(f"{field}.ref_num", o["ref_num"], "expected 0 (as many as num) or a whole "
                "number >= 2")
  if o["network"] not in networks_lib.NETWORKS:
    checks.fail(f"{field}.network", o["network"], f"expected one of "
                f"{', '.join(map(repr, sorted(networks_lib.NETWORKS)))}")
  if o["network"] == "inception" and not str(o["weights"]).startswith(("http://", "https://")):
    try:
      inception.find_weights(o["weights"])
    except FileNotFoundError as e:
      checks.fail(f"{field}.weights", o["weights"], str(e))
  produced = {v for m in metrics for v in evaluation.METRICS[m]}
  if o["keep_best"] and o["keep_best"] not in produced & set(evaluation.BEST):
    checks.fail(f"{field}.keep_best", o["keep_best"], f"expected '' (keep none) or one of "
                f"the values these metrics give: "
                f"{', '.join(map(repr, sorted(produced & set(evaluation.BEST))))}")
  keeping = sorted(n for n, e in config.evals.items()
                   if e.get("type") == "metrics" and evaluation.options(e)["keep_best"])
  if o["keep_best"] and len(keeping) > 1:
    checks.fail(f"{field}.keep_best", o["keep_best"], f"one best checkpoint per run: the "
                f"'metrics' entries {', '.join(keeping)} all keep one; set keep_best='' "
                f"in all but one")


class MetricsEvaluator(actions.Action):
  """Every `every` steps (and at the end of the run): `num` images from the generator (EMA
  when there is one and `ema`), scored against the reference features of the training
  data; writes `eval/VALUE` (for the entry named 'metrics'; else `eval/NAME/VALUE`) to
  metrics.jsonl and TensorBoard. With `keep_best`, the checkpoint of the best value so far
  is kept in WORKDIR/best/ (its value and step in WORKDIR/best.json), apart from the
  rolling checkpoints and never deleted by max_to_keep; a resumed run keeps it until a
  better one comes."""

  def __init__(self, ctx: actions.Context, name: str, spec: ml_collections.ConfigDict):
    o = evaluation.options(spec)
    self._name, self._metrics = name, evaluation.parse_metrics(o["metrics"])
    self._num, self._ref_num = int(o["num"]), int(o["ref_num"] or o["num"])
    self._ema, self._cache_dir = bool(o["ema"]), o["cache_dir"] or None
    self._prefix = "eval" if name == "metrics" else f"eval/{name}"
    self._every, self.schedule = spec.every, actions.Schedule(every_steps=spec.every)
    self._embed = evaluation.Embedder(networks_lib.build(o["network"], o["weights"]), ctx.mesh,
                                      o["batch"])
    self._real = None
    self._keep = o["keep_best"] or None
    self._best = None
    self._manager = None
    if self._keep:
      self._manager = checkpointing.create_manager(ctx.wd.best, max_to_keep=None)

  def begin(self, ctx: actions.Context) -> None:
    if self._keep and ctx.wd.best_json.exists():
      record = json.loads(ctx.wd.best_json.read_text())
      if record.get("value_name") == self._keep and record.get("step") in set(
          self._manager.all_steps()):
        self._best = record
        logging.info("Best %s so far: %.6g at step %d (%s).", self._keep, record["value"],
                     record["step"], ctx.wd.best)

  def evaluate(self, ctx: actions.Context) -> dict[str, float]:
    t = time.perf_counter()
    if self._real is None:
      self._real = evaluation.reference_features(ctx.config, self._embed, self._ref_num, self._cache_dir)
    state = ctx.state
    params = state.g_ema if (self._ema and state.g_ema is not None) else state.g.params
    fake = evaluation.generated_features(ctx.gan, state.g.variables(params), state.extra.get("family"),
                              self._embed, self._num, tuple(ctx.config.data.image_size))
    values = evaluation.compute_scores(self._metrics, self._real, fake)
    ctx.writer.write_scalars(ctx.step, {f"{self._prefix}/{k}": v for k, v in values.items()})
    ctx.writer.flush()
    logging.info("%s", f"Step {ctx.step} {self._name} ({self._num} generated vs "
                 f"{len(self._real['pool'])} real images, {time.perf_counter() - t:.1f} s): "
                 + " | ".join(evaluation.format_scores(values)))
    if self._keep:
      self._keep_if_best(ctx, values[self._keep])
    return values

  def _keep_if_best(self, ctx: actions.Context, value: float) -> None:
    lower = evaluation.BEST[self._keep]
    if not np.isfinite(value) or (self._best is not None and (
        value >= self._best["value"] if lower else value <= self._best["value"])):
      return
    if ctx.step not in self._manager.all_steps():
      checkpointing.save(self._manager, ctx.step, ctx.state, ctx.data_step, ctx.config)
      self._manager.wait_until_finished()
    self._best = {"value_name": self._keep, "value": float(value), "step": ctx.step,
                  "evaluator": self._name}
    if ctx.lead:
      tmp = ctx.wd.best_json.with_name(ctx.wd.best_json.name + ".tmp")
      tmp.write_text(json.dumps(self._best, indent=2) + "\n")
      tmp.replace(ctx.wd.best_json)
    for step in self._manager.all_steps():
      if step != ctx.step:
        self._manager.delete(step)
    logging.info("New best %s %.6g at step %d: its checkpoint is in %s.", self._keep, value,
                 ctx.step, ctx.wd.best)

  def __call__(self, ctx: actions.Context) -> None:
    self.evaluate(ctx)

  def finish(self, ctx: actions.Context) -> None:
    try:
      if ctx.step == ctx.config.train.num_steps and ctx.step % self._every:
        self.evaluate(ctx)
    finally:
      if self._manager is not None:
        self._manager.wait_until_finished()
        self._manager.close()


class Evaluator(NamedTuple):
  """An evaluator type: `build(ctx, name, spec) -> Action`, the option names it takes besides
  type and every (None: `check` checks the names), and `check(config, name, spec)`, which
  raises ConfigError for a bad option."""
  build: Callable[..., actions.Action]
  options: tuple[str, ...] | None = ()
  check: Callable[..., None] | None = None


EVALUATORS: dict[str, Evaluator] = {
    "samples": Evaluator(_samples_evaluator, ("num", "truncation", "ema")),
    "metrics": Evaluator(MetricsEvaluator, None, check_metrics_options),
}


def register_evaluator(name: str, build: Callable[..., actions.Action],
                       options: Iterable[str] | None = (),
                       check: Callable[..., None] | None = None):
  """Adds an evaluator type that `config.evals` entries can name."""
  EVALUATORS[name] = Evaluator(build, None if options is None else tuple(options), check)


def validate(config: ml_collections.ConfigDict) -> None:
  """ConfigError for an entry of config.evals with an unknown type, option or schedule."""
  for name, spec in config.evals.items():
    field = f"evals.{name}"
    if not isinstance(spec, ml_collections.ConfigDict) or "type" not in spec:
      checks.fail(field, spec, f"expected a ConfigDict with 'type' (one of "
                  f"{', '.join(map(repr, sorted(EVALUATORS)))}) and 'every'")
    checks.check_choice(config, f"{field}.type", tuple(sorted(EVALUATORS)))
    if "every" not in spec:
      checks.fail(field, spec.to_dict(), "expected an 'every' (steps between runs)")
    checks.check_positive(config, f"{field}.every")
    evaluator = EVALUATORS[spec.type]
    if evaluator.options is not None:
      checks.check_option_names(field, spec, ("type", "every", *evaluator.options),
                                f"evaluator type {spec.type!r}")
    if evaluator.check is not None:
      evaluator.check(config, name, spec)


def evaluators(ctx: actions.Context) -> list[actions.Action]:
  """One action per entry of `config.evals`."""
  return [EVALUATORS[spec.type].build(ctx, name, spec)
          for name, spec in ctx.config.evals.items()]
