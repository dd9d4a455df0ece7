"""Periodic actions of the training loop, each on its own schedule.

The loop (`jaxgan.training.loop`) runs the compiled step and then every action whose
`Schedule` is due; at the end (num_steps, or a signal) it calls each action's `finish`.
An action sees the loop through a `Context` (the state, the step, the metrics accumulated
since the last log, the checkpoint manager, the writer). The default actions are

  LogMetrics   the first steps, every `log_every` steps or `log_every_secs`, and the last:
               reads the device metrics, stops on NaN/Inf, writes scalars and the progress line
  SampleGrid   every `sample_every` steps: the grid of fixed seeds (every class, when conditional)
  Checkpoint   every `checkpoint_every` steps and at the end; never of a non-finite state
  Report       every `report_every_secs`: rewrites WORKDIR/report.html (jaxgan.report)

and one evaluator per entry of `config.evals` (name -> {type, every, options}), built
from EVALUATORS, as big_vision builds its evaluators: 'samples' (an extra grid) and
'metrics' (FID, KID, IS, precision/recall: jaxgan.metrics.evaluation). Adding an action does not mean
editing the loop: `train_and_evaluate(..., actions=[...])` takes more, and
`register_evaluator` adds a type that configs can name. The schedule follows clu's
`periodic_actions` convention (every_steps, every_secs, on_steps).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterable, NamedTuple

import jax
import ml_collections
import numpy as np
from absl import logging

from jaxgan import checkpointing
from jaxgan import config as config_lib
from jaxgan import images as images_lib
from jaxgan import sampling
from jaxgan import sharding


@dataclasses.dataclass
class Schedule:
  """When an action runs: every `every_steps` steps, when `every_secs` have passed since it
  last ran, on the steps of `on_steps`, or on the first `first` steps of the run."""
  every_steps: int | None = None
  every_secs: float | None = None
  on_steps: frozenset[int] = frozenset()
  first: int = 0
  _start: int | None = None
  _last_time: float = dataclasses.field(default_factory=time.perf_counter)

  def start(self, step: int) -> None:
    self._start, self._last_time = step, time.perf_counter()

  def due(self, step: int) -> bool:
    now = time.perf_counter()
    due = ((self.every_steps and step % self.every_steps == 0) or step in self.on_steps
           or (self._start is not None and step - self._start <= self.first)
           or (self.every_secs and now - self._last_time >= self.every_secs))
    if due:
      self._last_time = now
    return bool(due)


@dataclasses.dataclass
class Context:
  """What the actions read and write of the loop."""
  config: ml_collections.ConfigDict
  wd: Any  # jaxgan.workdir.Workdir
  mesh: jax.sharding.Mesh
  gan: Any  # jaxgan.families.GAN
  manager: Any  # orbax.checkpoint.CheckpointManager
  writer: Any  # clu MetricWriter
  lead: bool  # process 0 writes the files
  start: int
  state: Any = None
  step: int = 0
  data_step: int = 0  # the input pipeline's position
  acc: Any = None  # metrics summed on the device since the last log (by the loop)
  last_saved: int | None = None
  stage: Any = None  # the jaxgan.families.Stage of the current step; `gan` is its networks
  started: float = 0.0  # time.perf_counter() when the first step was dispatched
  clock: tuple[int, float] = (0, 0.0)  # (step, time) the current stage's rate counts from


class Action:
  """Base of a periodic action: `schedule`; `begin(ctx)` before the first step, `__call__(ctx)`
  after each step it is due, `finish(ctx)` at the end (num_steps or a signal)."""
  schedule: Schedule

  def begin(self, ctx: Context) -> None:
    del ctx

  def __call__(self, ctx: Context) -> None:
    raise NotImplementedError

  def finish(self, ctx: Context) -> None:
    del ctx


def host(tree):
  """Host copy of replicated arrays. In a multi-process run a replicated array spans
  other processes' devices too, so `jax.device_get` cannot read it whole; every replica
  holds the same value, so this process reads its first local one."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array)
                      else x, tree)


# ---- sample grids ------------------------------------------------------------------------

class SampleGrid(Action):
  """A grid from fixed latents (seeds 0..num-1; per class when conditional), written to
  `path(step)` and to TensorBoard as `tag`, with one compiled generator per stage. A
  growing model's images are upscaled (nearest) to config.data.image_size, so every grid
  of a run has one size and the GIF's frames line up."""

  def __init__(self, ctx: Context, *, every: int, num: int, truncation: float | None = None,
               ema: bool = True, tag: str = "samples",
               path: Callable[[int], Any] | None = None):
    seeds, labels, self._nrow = sampling.grid_inputs(num, ctx.gan.num_classes)
    z = sampling.latents(seeds, ctx.gan.latent_dim, truncation)
    replicated = sharding.replicated(ctx.mesh)
    self._z = jax.device_put(z, replicated)
    self._labels = None if labels is None else jax.device_put(np.asarray(labels, np.int32),
                                                              replicated)
    self._ema, self._tag = ema, tag
    self._path = path or ctx.wd.sample_grid
    self._every, self.schedule = every, Schedule(every_steps=every)

  def write(self, ctx: Context) -> None:
    """Every process runs the generator (one SPMD program); only the lead writes."""
    state = ctx.state
    params = state.g.params if (state.g_ema is None or not self._ema) else state.g_ema
    images = sampling.forward(ctx.gan, state.g.variables(params), self._z, self._labels,
                              state.extra.get("family"))
    if not ctx.lead:
      return
    images = images_lib.upscale(host(images), tuple(ctx.config.data.image_size))
    grid = images_lib.make_grid(images, self._nrow)
    images_lib.save_png(grid, self._path(ctx.step))
    ctx.writer.write_images(ctx.step, {self._tag: grid[None]})

  def begin(self, ctx: Context) -> None:
    # The grid of the starting point (step 0 of a new run, or a resumed step on the schedule).
    if ctx.step % self._every == 0 and not self._path(ctx.step).exists():
      self.write(ctx)

  def __call__(self, ctx: Context) -> None:
    self.write(ctx)

  def finish(self, ctx: Context) -> None:
    # The final grid, when num_steps is off the schedule.
    if ctx.step == ctx.config.train.num_steps and ctx.step % self._every:
      self.write(ctx)


# ---- checkpoints -------------------------------------------------------------------------

class Checkpoint(Action):
  """Saves every `every` steps and at the end, after checking for NaN/Inf."""

  def __init__(self, every: int, check: Callable[[Context], None]):
    self.schedule, self._check = Schedule(every_steps=every), check

  def save(self, ctx: Context) -> None:
    self._check(ctx)
    if checkpointing.save(ctx.manager, ctx.step, ctx.state, ctx.data_step, ctx.config):
      logging.info("Saving the checkpoint of step %d (asynchronously).", ctx.step)
    ctx.last_saved = ctx.step

  def __call__(self, ctx: Context) -> None:
    self.save(ctx)

  def finish(self, ctx: Context) -> None:
    if ctx.step != ctx.last_saved:
      self.save(ctx)


# ---- the report page ---------------------------------------------------------------------

def write_report(wd, replot: bool = True) -> bool:
  """jaxgan.report.write(wd); whether it was written. A failure is logged, never raised
  (the run goes on)."""
  from jaxgan import report  # pylint: disable=g-import-not-at-top
  try:
    report.write(wd, replot=replot)
    return True
  except Exception as e:  # pylint: disable=broad-except  (a page must not stop a run)
    logging.warning("Could not write %s: %s: %s", wd.report, type(e).__name__, e)
    return False


class Report(Action):
  """Rewrites WORKDIR/report.html every `every_secs` (0: never; the loop writes it at the
  end), from the workdir's files: metrics, grids, the memorisation check, the config."""

  def __init__(self, every_secs: float):
    self.schedule = Schedule(every_secs=every_secs or None)

  def __call__(self, ctx: Context) -> None:
    if ctx.lead:
      ctx.writer.flush()
      write_report(ctx.wd)


# ---- evaluators from config.evals ---------------------------------------------------------

def _samples_evaluator(ctx: Context, name: str, spec: ml_collections.ConfigDict) -> Action:
  """type 'samples': an extra grid, e.g. truncated, or of the trained (not EMA) weights.
  Options: num (default config.num_samples), truncation (None), ema (True). Written to
  WORKDIR/samples/NAME/step_NNNNNNN.png and TensorBoard 'samples/NAME'."""
  directory = ctx.wd.samples / name
  return SampleGrid(ctx, every=spec.every, num=spec.get("num", ctx.config.num_samples),
                    truncation=spec.get("truncation", None), ema=spec.get("ema", True),
                    tag=f"samples/{name}", path=lambda step: directory / f"step_{step:07d}.png")


def _metrics_evaluator(ctx: Context, name: str, spec: ml_collections.ConfigDict) -> Action:
  """type 'metrics': FID, KID, Inception Score, precision/recall of generated images against
  the training data (jaxgan.metrics.evaluation.MetricsEvaluator, which lists the options)."""
  from jaxgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
  return evaluation.MetricsEvaluator(ctx, name, spec)


def _check_metrics(config: ml_collections.ConfigDict, name: str,
                   spec: ml_collections.ConfigDict) -> None:
  from jaxgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
  evaluation.check_options(config, name, spec)


class Evaluator(NamedTuple):
  """An evaluator type: `build(ctx, name, spec) -> Action`, the option names it takes besides
  type and every (None: `check` checks the names), and `check(config, name, spec)`, which
  raises ConfigError for a bad option."""
  build: Callable[..., Action]
  options: tuple[str, ...] | None = ()
  check: Callable[..., None] | None = None


EVALUATORS: dict[str, Evaluator] = {
    "samples": Evaluator(_samples_evaluator, ("num", "truncation", "ema")),
    "metrics": Evaluator(_metrics_evaluator, None, _check_metrics),
}


def register_evaluator(name: str, build: Callable[..., Action],
                       options: Iterable[str] | None = (),
                       check: Callable[..., None] | None = None):
  """Adds an evaluator type that `config.evals` entries can name."""
  EVALUATORS[name] = Evaluator(build, None if options is None else tuple(options), check)


def check_option_names(name: str, spec: ml_collections.ConfigDict, options: Iterable[str]) -> None:
  """ConfigError for a key of config.evals.NAME that is not type, every or one of `options`."""
  allowed = {"type", "every", *options}
  for key in spec.keys():
    if key not in allowed:
      config_lib.fail(f"evals.{name}.{key}", spec[key], f"not an option of evaluator type "
                      f"{spec.type!r}; its options are {', '.join(sorted(allowed))}")


def validate_evals(config: ml_collections.ConfigDict) -> None:
  """ConfigError for an entry of config.evals with an unknown type, option or schedule."""
  for name, spec in config.evals.items():
    field = f"evals.{name}"
    if not isinstance(spec, ml_collections.ConfigDict) or "type" not in spec:
      config_lib.fail(field, spec, f"expected a ConfigDict with 'type' (one of "
                      f"{', '.join(map(repr, sorted(EVALUATORS)))}) and 'every'")
    config_lib.check_choice(config, f"{field}.type", tuple(sorted(EVALUATORS)))
    if "every" not in spec:
      config_lib.fail(field, spec.to_dict(), "expected an 'every' (steps between runs)")
    config_lib.check_positive(config, f"{field}.every")
    evaluator = EVALUATORS[spec.type]
    if evaluator.options is not None:
      check_option_names(name, spec, evaluator.options)
    if evaluator.check is not None:
      evaluator.check(config, name, spec)


def evaluators(ctx: Context) -> list[Action]:
  """One action per entry of `config.evals`."""
  return [EVALUATORS[spec.type].build(ctx, name, spec)
          for name, spec in ctx.config.evals.items()]
