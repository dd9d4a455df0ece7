"""The training loop: restore or init the state, compile the step, run it and the actions.

`train_and_evaluate(config, workdir)` builds the family's networks and the state, restores
it when the workdir has a checkpoint (see `jaxgan.checkpointing`), compiles the step once
and runs it to `config.train.num_steps`; after each step every due action of
`jaxgan.training.actions` runs (real grid, log, sample grids, checkpoint, evaluators),
writing what `jaxgan.workdir` describes. What the console shows is jaxgan.training.console's.

The hot loop keeps everything on the devices: metrics are summed by a small jitted
function, and the host reads them only on logging steps (the first few steps, every
`log_every` steps, and when `log_every_secs` have passed). The host waits for step k-1
after dispatching step k (no transfer, and the device never idles): at most two steps are in
flight, so a signal is answered within two steps and the host cannot queue hundreds of steps
ahead. Sample grids and checkpoints read the state on their steps.

Non-finite values stop the run, and no checkpoint holds them (jaxgan.training.finite).
SIGTERM and SIGINT (Ctrl-C) let the steps in flight finish, save a checkpoint of the step
reached and return normally; a second Ctrl-C aborts (jaxgan.training.guards).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging
from clu import metric_writers
from jax.experimental import multihost_utils

from jaxgan import checkpointing
from jaxgan import errors
from jaxgan import families
from jaxgan import hostmem
from jaxgan import input_pipeline
from jaxgan import jsonl_writer
from jaxgan import sharding
from jaxgan import workdir as workdir_lib
from jaxgan.training import actions as actions_lib
from jaxgan.training import assemble
from jaxgan.training import console
from jaxgan.training import evaluators
from jaxgan.training import finite
from jaxgan.training import guards
from jaxgan.training import state as state_lib
from jaxgan.training import step as step_lib

NonFiniteError = errors.NonFiniteError


def default_actions(ctx: actions_lib.Context) -> list[actions_lib.Action]:
  """Real grid, log, sample grid, checkpoint and report (in that order on a shared step),
  then the evaluators."""
  config = ctx.config
  return [actions_lib.RealGrid(config.num_samples),
          console.LogMetrics(config, families.stages(config)),
          actions_lib.SampleGrid(ctx, every=config.sample_every, num=config.num_samples),
          actions_lib.Checkpoint(config.checkpoint_every, finite.check_finite),
          actions_lib.Report(config.report_every_secs),
          *evaluators.evaluators(ctx)]


def _restore_or_init(config, wd, manager, state, lead: bool):
  """(state, data_step): the newest checkpoint's that passes its checks, or `state` and 0
  when there is none. A checkpoint that fails (jaxgan.checkpointing.CorruptCheckpointError)
  is reported, moved by process 0 to WORKDIR/checkpoints_corrupt/ (so that its step can be
  written again) and the next older one is tried; when every one fails, the run stops."""
  if manager.latest_step() is None:
    logging.info("No checkpoint in %s: starting from step 0.", wd.checkpoints)
    return state, 0
  failed = []
  while manager.latest_step() is not None:
    try:
      restored, data_step, step = checkpointing.restore(manager, state)
      break
    except checkpointing.CorruptCheckpointError as e:
      bad = manager.latest_step()
      failed.append(str(e))
      if lead:
        where = checkpointing.set_aside(manager, bad, wd.corrupt_checkpoints)
        logging.warning("%s. Moved it to %s; trying the next older checkpoint.", e, where)
      if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"jaxgan set aside checkpoint {bad}")
        manager.reload()
  else:
    raise checkpointing.CorruptCheckpointError(
        f"every checkpoint in {wd.checkpoints} failed its checks (moved to "
        f"{wd.corrupt_checkpoints}): {' | '.join(failed)}. Run again to start from step 0, "
        f"or restore the checkpoints from a backup")
  logging.info("Resuming from the checkpoint of step %d in %s%s.", step, wd.checkpoints,
               f" (it passed its checks; {len(failed)} newer failed)" if failed else "")
  if wd.config_json.exists():
    changes = workdir_lib.config_changes(workdir_lib.load_config(wd).to_dict(), config.to_dict())
    for change in changes:
      logging.warning("Config changed since the last run: %s", change)
  return restored, data_step


def _strong_types(state: state_lib.GANState) -> state_lib.GANState:
  """Drops weak types (TrainState counts steps from a Python 0), as a restored state has none,
  so that a fresh and a resumed run compile the same step (and hit the compilation cache)."""
  def strong(x):
    dtype = jnp.asarray(x).dtype
    return x if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) else jnp.asarray(x, dtype)
  return jax.tree.map(strong, state)


def init_state(config, gan: families.GAN, mesh) -> state_lib.GANState:
  """A fresh state, replicated; jitted (one compilation instead of one per init op)."""
  def init():
    return _strong_types(state_lib.create_state(config, gan))
  return jax.jit(init, out_shardings=sharding.replicated(mesh))()


def batch_shapes(config, gan: families.GAN, mesh, stage: families.Stage | None = None
                 ) -> dict[str, jax.ShapeDtypeStruct]:
  """The global batch the step of `stage` (default: the first) takes: images, and labels
  when the GAN is conditional."""
  stage = families.stages(config)[0] if stage is None else stage
  n, place = stage.batch_size * config.train.d_steps, sharding.batch_sharding(mesh)
  shapes = {"image": jax.ShapeDtypeStruct((n, *gan.image_shape), jnp.float32, sharding=place)}
  if gan.conditional:
    shapes["label"] = jax.ShapeDtypeStruct((n,), jnp.int32, sharding=place)
  return shapes


def _compile_step(config, gan, mesh, state, stage: families.Stage):
  what = f"the training step of stage {stage.name}" if stage.name else "the training step"
  logging.info("Compiling %s...", what)
  t = time.perf_counter()
  compiled = step_lib.make_train_step(config, mesh, gan=gan).lower(
      state, batch_shapes(config, gan, mesh, stage)).compile()
  logging.info("Compiled %s in %.1f s.", what, time.perf_counter() - t)
  hostmem.release_free()  # the compiler's temporaries (jaxgan/hostmem.py)
  return compiled


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       actions: Sequence[Any] = ()) -> state_lib.GANState:
  """Trains `config` in `workdir`, resuming from the workdir's latest checkpoint.

  Args:
    config: the full config (validated here, before anything is compiled).
    workdir: where config, checkpoints, metrics and images go (see `jaxgan.workdir`).
    actions: more periodic actions, each `fn(ctx) -> Action` (run after the defaults).

  Returns:
    The state at the last step reached (num_steps, or where a signal stopped the run).

  Raises:
    jaxgan.errors.ConfigError: an invalid config value.
    jaxgan.checkpointing.CheckpointMismatchError: the workdir's checkpoint has other shapes.
    NonFiniteError: a NaN or Inf appeared; no checkpoint of it was written.
    jaxgan.lock.WorkdirLocked: another live run holds the workdir.
  """
  assemble.validate(config)
  wd = workdir_lib.Workdir(workdir)
  lead = jax.process_index() == 0
  mesh = sharding.make_mesh()
  stages = assemble.stages(config, mesh)
  gan = families.build(config)
  with guards.workdir_lock(wd, lead), guards.StopSignal() as stop:
    state = init_state(config, gan, mesh)
    hostmem.release_init_programs()
    manager = checkpointing.create_manager(wd.checkpoints, max_to_keep=config.max_to_keep)
    try:
      state, data_step = _restore_or_init(config, wd, manager, state, lead)
      start = int(sharding.host(state.step))
      if gan.check_extra is not None and "family" in state.extra:
        gan.check_extra(sharding.host(state.extra["family"]), start)
      if lead:
        workdir_lib.save_config(config, wd)
        workdir_lib.truncate_metrics(wd.metrics, start)
      if start >= config.train.num_steps:
        logging.info("Step %d >= train.num_steps=%d: nothing to train; state fingerprint %s.",
                     start, config.train.num_steps, console.state_fingerprint(state))
        return state
      writer = (metric_writers.MultiWriter([
          metric_writers.SummaryWriter(str(wd.tensorboard)), jsonl_writer.JsonlWriter(wd.metrics)])
                if lead else metric_writers.MultiWriter([]))
      writer.write_hparams(workdir_lib.hparams(config.to_dict()))
      it = input_pipeline.create_iterator(config, sharding=sharding.batch_sharding(mesh),
                                          start_step=data_step,
                                          stages=assemble.data_stages(config, stages))
      console.log_startup(config, state, mesh, stages, it.num_examples, it.skipped, wd)
      try:
        stage = stages[families.stage_index(stages, start)]
        ctx = actions_lib.Context(config, wd, mesh, gan.at(stage), manager, writer, lead, start,
                                  state=state, step=start, data_step=data_step,
                                  last_saved=manager.latest_step(), stage=stage)
        run_actions = default_actions(ctx) + [make(ctx) for make in actions]
        state, step = _loop(ctx, run_actions, it, stop, gan, stages)
      finally:
        it.close()
        writer.close()
    finally:
      manager.wait_until_finished()
      manager.close()
  if stop.signum is not None:
    stop.log_stopped(step)
    if lead:
      actions_lib.write_report(wd)
  elif lead:
    written = workdir_lib.write_summary(wd)
    if actions_lib.write_report(wd, replot=False):
      written.insert(0, wd.report)
    logging.info("Done: %d steps.%s", step, f" Wrote {', '.join(map(str, written))}."
                 if written else "")
  return state


def _loop(ctx: actions_lib.Context, run_actions: list[actions_lib.Action],
          it: input_pipeline.DataIterator, stop: guards.StopSignal, gan: families.GAN,
          stages: Sequence[families.Stage]):
  """Runs steps from `ctx.start` until num_steps or a signal; returns (state, step).

  One program is compiled per stage, when its first step comes; `ctx.gan` and `ctx.stage`
  follow the stage (the sample grids show its resolution)."""
  config, wd = ctx.config, ctx.wd
  index = families.stage_index(stages, ctx.start)
  compiled = _compile_step(config, ctx.gan, ctx.mesh, ctx.state, ctx.stage)
  num_steps, previous = config.train.num_steps, None
  for action in run_actions:
    action.schedule.start(ctx.start)
    action.begin(ctx)
  # Simulated CPU devices: queuing collective steps can abort with XLA's "Termination timeout
  # for all reduce" (docs/pitfalls.md); waiting for each step before the next avoided it.
  block_each_step = jax.default_backend() == "cpu" and jax.device_count() > 1
  logging.info("Training from step %d to %d; workdir %s.", ctx.start, num_steps, wd.root)
  ctx.started = time.perf_counter()
  ctx.clock = (ctx.step, ctx.started)

  while ctx.step < num_steps and stop.signum is None:
    if index + 1 < len(stages) and ctx.step >= stages[index + 1].start:
      index = families.stage_index(stages, ctx.step)
      ctx.stage, ctx.gan = stages[index], gan.at(stages[index])
      logging.info("Step %d: stage %s.", ctx.step, ctx.stage.name or index)
      compiled = _compile_step(config, ctx.gan, ctx.mesh, ctx.state, ctx.stage)
      ctx.clock = (ctx.step, time.perf_counter())  # a new stage: a new rate
    ctx.batch = next(it)
    ctx.state, metrics = compiled(ctx.state, step_lib.step_batch(ctx.batch, ctx.gan))
    ctx.step, ctx.data_step = ctx.step + 1, it.step
    ctx.acc = console.accumulate(ctx.acc, metrics, ctx.step)
    if block_each_step:
      jax.block_until_ready(metrics)
    elif previous is not None:
      jax.block_until_ready(previous)  # Step step-1; step is already queued behind it.
    previous = metrics
    for action in run_actions:
      if action.schedule.due(ctx.step):
        action(ctx)
  if stop.signum is not None:
    stop.log_stopping(ctx.step)
  for action in run_actions:
    action.finish(ctx)
  logging.info("Step %d; state fingerprint %s.", ctx.step, console.state_fingerprint(ctx.state))
  return ctx.state, ctx.step

