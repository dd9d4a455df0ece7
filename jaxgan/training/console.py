"""What the console shows of a run, and the scalars written with it.

Before compiling, the loop logs `startup_summary` (the data, the devices, the parameter
counts, the config's changes) and `small_data_warning` (`log_startup`). On logging steps
`LogMetrics` writes the scalars (TensorBoard and metrics.jsonl) and one progress line of at
most PROGRESS_WIDTH columns: step, time elapsed, rate, ETA (`remaining_seconds`), losses and
the family's state. At the end the loop logs `state_fingerprint`.

The metrics stay on the devices between logs: the loop adds each step's to an accumulator
(`accumulate`, a small jitted function), which also records the first step with a
non-finite metric for the NaN guard (jaxgan.training.finite).
"""

from __future__ import annotations

import functools
import hashlib
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxgan import config as config_lib
from jaxgan import distributed
from jaxgan import families
from jaxgan import sharding
from jaxgan import workdir as workdir_lib
from jaxgan.training import actions as actions_lib
from jaxgan.training import finite
from jaxgan.training import state as state_lib

Metrics = dict[str, jax.Array]
# Every step is logged at first, so that progress shows before the first `log_every`.
LOG_FIRST_STEPS = 5
# Console width of a progress line: 100 columns less the log prefix of jaxgan.cli.
PROGRESS_WIDTH = 89
# A dataset of fewer than this many batches gets a warning at the start.
SMALL_DATA_BATCHES = 4


# ---- metrics on the device ----------------------------------------------------------------

def _empty_accumulator(metrics: Metrics) -> dict[str, Any]:
  zeros = lambda: jax.tree.map(jnp.zeros_like, metrics)  # noqa: E731  (two buffers: both donated)
  return {"sum": zeros(), "count": jnp.zeros((), jnp.int32),
          "bad_step": jnp.full((), -1, jnp.int32), "bad": zeros()}


@functools.partial(jax.jit, donate_argnums=0)
def _accumulate(acc: dict[str, Any], metrics: Metrics, step: jax.Array) -> dict[str, Any]:
  """Adds a step's metrics to the sums and records the first step with a non-finite metric."""
  all_finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(metrics)]))
  first_bad = (acc["bad_step"] < 0) & ~all_finite
  return {"sum": jax.tree.map(jnp.add, acc["sum"], metrics), "count": acc["count"] + 1,
          "bad_step": jnp.where(first_bad, step, acc["bad_step"]),
          "bad": jax.tree.map(lambda b, m: jnp.where(first_bad, m, b), acc["bad"], metrics)}


def accumulate(acc: dict[str, Any] | None, metrics: Metrics, step: int) -> dict[str, Any]:
  """`acc` (None: a fresh one) plus the metrics of `step`, on the device (`acc` is donated):
  their sums and count, and the first step with a non-finite metric and its metrics."""
  return _accumulate(_empty_accumulator(metrics) if acc is None else acc, metrics, step)


# ---- progress ----------------------------------------------------------------------------

def format_duration(seconds: float) -> str:
  """'2d 03h', '3h 12m', '4m 05s' or '12s'."""
  if not np.isfinite(seconds):
    return "?"
  s = int(round(seconds))
  d, h, m = s // 86400, s // 3600 % 24, s // 60 % 60
  if d:
    return f"{d}d {h:02d}h"
  if h:
    return f"{h}h {m:02d}m"
  return f"{m}m {s % 60:02d}s" if m else f"{s}s"


def format_rate(steps_per_s: float) -> str:
  """'2.41 steps/s' or '7.28 s/step'."""
  if not steps_per_s > 0:
    return "? steps/s"
  return f"{steps_per_s:.3g} steps/s" if steps_per_s >= 1 else f"{1 / steps_per_s:.3g} s/step"


def format_progress(step: int, num_steps: int, elapsed_s: float, steps_per_s: float,
                    eta_s: float, metrics: dict[str, float], where: str = "",
                    width: int = 100) -> str:
  """One console line of at most `width` characters: step and percentage, time elapsed,
  the rate, the time remaining, D's and G's losses, and the family's state (`where`; when
  the line is too long the elapsed time goes first, then `where` is shortened); every metric
  (images/s too) is in metrics.jsonl and TensorBoard."""
  losses = " ".join(f"{label} {metrics[key]:.3g}" for key, label in
                    (("loss/d", "D"), ("loss/g", "G")) if key in metrics)
  parts = [f"step {step}/{num_steps} {100 * step / num_steps:.1f}%", format_duration(elapsed_s),
           format_rate(steps_per_s), f"ETA {format_duration(eta_s)}", losses]
  line = " | ".join(p for p in parts if p)
  if where and len(line) + 3 + len(where) > width:  # the family's state before the elapsed time
    line = " | ".join(p for i, p in enumerate(parts) if p and i != 1)
  if where:
    room = width - len(line) - 3
    if room >= 8:
      line += " | " + (where if len(where) <= room else where[:room - 3] + "...")
  return line[:width]


def remaining_seconds(step: int, num_steps: int, steps_per_s: float,
                      stages: Sequence[families.Stage]) -> float:
  """Seconds to num_steps at `steps_per_s`, the rate of the current stage; a later stage's
  steps are weighted by its images x pixels per step relative to the current one's (a
  growing model's steps get slower), an estimate until that stage is measured."""
  if not steps_per_s > 0:
    return float("inf")
  index = families.stage_index(stages, step)
  cost = lambda s: s.batch_size * s.image_shape[0] * s.image_shape[1]  # noqa: E731
  ends = [s.start for s in stages[1:]] + [num_steps]
  weighted = 0.0
  for i in range(index, len(stages)):
    first = step if i == index else stages[i].start
    weighted += max(0, ends[i] - first) * cost(stages[i]) / cost(stages[index])
  return weighted / steps_per_s


class LogMetrics(actions_lib.Action):
  """Reads the metrics accumulated on the device, stops on NaN/Inf, writes the scalars and
  the progress line: on the first LOG_FIRST_STEPS steps, every `log_every` steps, when
  `log_every_secs` have passed, and on the last step.

  The console's rate is the mean since the end of the current stage's first step
  (`ctx.clock`, set by the loop after compiling; the first step's one-time start-up is left
  out), so the ETA holds from the first steps; TensorBoard's perf/steps_per_sec is the rate
  since the previous log. Lines fit PROGRESS_WIDTH columns after jaxgan.cli's log prefix."""

  def __init__(self, config: ml_collections.ConfigDict, stages: Sequence[families.Stage]):
    self._config, self._stages = config, stages
    self._last = None
    self.schedule = actions_lib.Schedule(
        every_steps=config.log_every, every_secs=config.log_every_secs or None,
        on_steps=frozenset({config.train.num_steps}), first=LOG_FIRST_STEPS)

  def __call__(self, ctx: actions_lib.Context) -> None:
    config = self._config
    acc_host = sharding.host(ctx.acc)  # Blocks until the step is done: the times below are its end.
    finite.raise_if_bad(acc_host, ctx.step, ctx.manager)
    now = time.perf_counter()
    clock_step, clock_time = ctx.clock
    if ctx.step == clock_step + 1:
      # The first step of a program also pays its one-time start-up: the rate counts from
      # its end (its own rate until the next log).
      ctx.clock = (ctx.step, now)
    last_step, last_time = self._last if self._last and self._last[0] >= clock_step else (
        clock_step, clock_time)
    self._last = (ctx.step, now)
    recent = (ctx.step - last_step) / max(now - last_time, 1e-9)
    since = ctx.clock if ctx.step > ctx.clock[0] else (clock_step, clock_time)
    mean = (ctx.step - since[0]) / max(now - since[1], 1e-9)
    means = {k: float(v) / int(acc_host["count"]) for k, v in acc_host["sum"].items()}
    images = ctx.stage.batch_size * config.train.d_steps
    extra = sharding.host(ctx.state.extra.get("family", {}))
    family = {f"family/{k}": float(v) for k, v in extra.items() if np.ndim(v) == 0}
    ctx.writer.write_scalars(ctx.step, {**means, **family, "perf/steps_per_sec": recent,
                                        "perf/images_per_sec": recent * images})
    ctx.writer.flush()
    eta = remaining_seconds(ctx.step, config.train.num_steps, mean, self._stages)
    logging.info("%s", format_progress(ctx.step, config.train.num_steps, now - ctx.started,
                                       mean, eta, means, ctx.gan.describe(extra),
                                       width=PROGRESS_WIDTH))
    ctx.acc = None


# ---- start-up ----------------------------------------------------------------------------

def _num_params(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def small_data_warning(num_examples: int | None, batch_size: int) -> str | None:
  """The start-up warning for a dataset smaller than a batch, or than SMALL_DATA_BATCHES."""
  if not num_examples or num_examples >= SMALL_DATA_BATCHES * batch_size:
    return None
  if num_examples < batch_size:
    return (f"Data: {num_examples:,} images, fewer than one batch of {batch_size}: every batch "
            f"repeats each image about {batch_size / num_examples:.1f} times; a smaller "
            f"train.batch_size or more images is better")
  return (f"Data: only {num_examples:,} images, fewer than {SMALL_DATA_BATCHES} batches of "
          f"{batch_size}: D can memorise them quickly; DiffAugment or ADA helps (README: "
          f"'Few images')")


def startup_summary(config, state: state_lib.GANState, mesh, stages: Sequence[families.Stage],
                    num_examples: int | None, skipped: Sequence[str], wd) -> list[str]:
  """The few lines the console shows before compiling: the data (images found, skipped,
  resolution, epochs the run makes), the devices and mesh, the parameter counts, and the
  config as its changes from the family's defaults (the full config: WORKDIR/config.py)."""
  h, w = config.data.image_size
  colour = "RGB" if config.data.channels == 3 else "grayscale"
  ends = [s.start for s in stages[1:]] + [config.train.num_steps]
  images = sum(s.batch_size * config.train.d_steps * max(0, end - s.start)
               for s, end in zip(stages, ends))
  if num_examples:
    found = f"{num_examples:,} images" + (f" ({len(skipped)} files skipped)" if skipped
                                          else " (none skipped)")
    epochs = f"{images / num_examples:,.1f} epochs"
  else:
    found, epochs = "size unknown", "? epochs"
  lines = [
      f"Data: {config.data.source}: {found}, {h}x{w} {colour}; {config.train.num_steps:,} "
      f"steps, {images:,} images = {epochs}",
      f"Devices: {distributed.topology(mesh, config.train.batch_size)}",
      f"Model: {config.model.family}; G {_num_params(state.g.params):,} parameters, "
      f"D {_num_params(state.d.params):,}"]
  pairs = [f"{field}={new!r}" for field, _, new in workdir_lib.config_diff(
      config_lib.default_config(config.model.family).to_dict(), config.to_dict())]
  lines.append(f"Config: {len(pairs)} changes from the {config.model.family} defaults "
               f"(all fields: {wd.config_py}):")
  row = "  "
  for pair in pairs:
    if len(row) + len(pair) + 2 > 100 and row.strip():
      lines.append(row.rstrip(", "))
      row = "  "
    row += pair + ", "
  if row.strip():
    lines.append(row.rstrip(", "))
  return lines


def log_startup(config, state: state_lib.GANState, mesh, stages: Sequence[families.Stage],
                num_examples: int | None, skipped: Sequence[str], wd) -> None:
  """Logs `startup_summary` and, for a small dataset, `small_data_warning`."""
  for line in startup_summary(config, state, mesh, stages, num_examples, skipped, wd):
    logging.info("%s", line)
  small = small_data_warning(num_examples, stages[0].batch_size)
  if small:
    logging.warning("%s", small)


def state_fingerprint(state: state_lib.GANState) -> str:
  """SHA-256 of this process's replica of G's and D's parameters (the processes of a
  multi-process run must agree on it)."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(sharding.host((state.g.params, state.d.params))):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()[:16]
