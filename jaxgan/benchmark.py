r"""Benchmark of the compiled GAN step on synthetic data (no TensorFlow needed).

  python -m jaxgan.benchmark --config configs/dcgan128.py [--config.train.batch_size=64]
  python -m jaxgan.benchmark --config configs/dcgan128.py --sweep --batches=32,256 \
      --dtypes=float32,bfloat16 --json_out=bench.json

Prints, per configuration: backend and device kind, compile time, median/min/max seconds
per step over --steps timed steps after --warmup steps, images per second, XLA's FLOPs
per step, achieved TFLOP/s and peak memory (device memory stats where the backend has
them, else the process's peak RSS), the host's minor page faults per step (see
jaxgan/hostmem.py), the device's measured matrix-multiply peak in the step's dtype and the
step's fraction of it (MFU: XLA's FLOPs over that peak), the projected time of the
config's full run (train.num_steps x the median step), with --with_pipeline the fraction
of the time spent waiting for input from the real pipeline, then one line starting with
`JSON`. Without --with_pipeline it runs on a synthetic batch and needs no TensorFlow.

A growing family (ProGAN) runs one program per stage (resolution): --stages times every
stage at its own batch size, one row each (compile time, seconds per step, the stage's
steps and their projected time), then the number of compiled programs and the projected
time of the whole run (the sum over the stages of steps x median step):

  python -m jaxgan.benchmark --config configs/progan256.py --stages
"""

from __future__ import annotations

import functools
import json
import resource
import statistics
import time
from typing import Any

if __name__ == "__main__":
  from jaxgan import hostmem  # before JAX starts its threads: see jaxgan/hostmem.py
  _HOST_MALLOC = hostmem.configure(reexec=True)
else:
  _HOST_MALLOC = None

import jax  # noqa: E402  (after the allocator set-up above)
import jax.numpy as jnp
import ml_collections
from absl import app, flags
from ml_collections import config_flags

from jaxgan import families
from jaxgan import hostmem
from jaxgan import input_pipeline
from jaxgan import sharding
from jaxgan.kernels import cpu as cpu_kernels
from jaxgan.training import assemble
from jaxgan.training import state as state_lib
from jaxgan.training import step as step_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=False)
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
_SWEEP = flags.DEFINE_bool("sweep", False, "Sweep --batches x --dtypes and print a table.")
_BATCHES = flags.DEFINE_list("batches", ["32", "256"], "Batch sizes of the sweep.")
_DTYPES = flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Dtypes of the sweep.")
_JSON_OUT = flags.DEFINE_string("json_out", "", "Also write the results to this JSON file.")
_PEAK_SIZE = flags.DEFINE_integer(
    "peak_size", 0, "n of the n x n x n matmul that measures the device's peak (0: 8192 on "
    "accelerators, 2048 on CPU; negative: skip it).")
_STAGES = flags.DEFINE_bool(
    "stages", False, "Time every stage of a growing family (one compiled program each) and "
    "project the whole run from them.")
_PIPELINE = flags.DEFINE_bool(
    "with_pipeline", False, "Feed the step from the real input pipeline (config.data) and "
    "report the fraction of time spent waiting for input (needs TensorFlow).")


def _peak_memory_mib() -> tuple[float, str]:
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20, "device"
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "host_rss"


@functools.lru_cache
def matmul_peak_tflops(dtype: str, n: int = 0, repeats: int = 10,
                       budget_s: float = 3.0) -> float:
  """The device's measured matrix-multiply rate in TFLOP/s: the fastest of `repeats`
  [n, n] x [n, n] products in `dtype` with float32 accumulation, as the step's dots run
  (n = 0: 8192 on accelerators, 2048 on CPU); fewer repeats if they exceed `budget_s`.
  Measured once per process and dtype (a sweep's rows of one dtype share it)."""
  n = n or (2048 if jax.default_backend() == "cpu" else 8192)
  ka, kb = jax.random.split(jax.random.key(0))
  a = jax.random.normal(ka, (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(kb, (n, n), jnp.float32).astype(dtype)
  matmul = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
  jax.block_until_ready(matmul(a, b))
  best, start = float("inf"), time.perf_counter()
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(matmul(a, b))
    best = min(best, time.perf_counter() - t)
    if time.perf_counter() - start > budget_s:
      break
  return 2 * n**3 / best / 1e12


def step_flops(config, mesh, gan, state, batch) -> float:
  """XLA's FLOP count of the step, from an unsliced trace (`kernels.cpu.tap_budget`: the
  cost analysis counts the body of a loop once), before optimization: within 0.2% of the
  compiled program's count for dcgan128 and radford32."""
  with cpu_kernels.tap_budget(0):
    lowered = step_lib.make_train_step(config, mesh, gan=gan).lower(state, batch)
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float((cost or {}).get("flops", 0.0))


def benchmark_step(config: ml_collections.ConfigDict, *, num_steps: int = 10,
                   warmup: int = 2, with_pipeline: bool = False,
                   peak_size: int = 0, stage: int = 0) -> dict[str, Any]:
  """Compiles and times the training step of `config` (of its stage `stage`).

  Args:
    config: the config whose step is timed.
    num_steps: timed steps.
    warmup: untimed steps after compilation.
    with_pipeline: feed real batches from `jaxgan.input_pipeline` (TensorFlow) instead
      of one synthetic batch, and measure the time spent waiting for them.
    peak_size: n of `matmul_peak_tflops` (0: by backend; negative: not measured, and
      the peak and MFU are None).
    stage: the index of the stage in `families.stages(config)` (0 for a family that does
      not grow); its batch size and image shape are timed.

  Returns:
    A dict of the figures (see the module docstring).
  """
  if num_steps < 1 or warmup < 0:
    raise ValueError(f"num_steps={num_steps} must be >= 1 and warmup={warmup} >= 0")
  assemble.validate(config)
  stages = families.stages(config)
  if not 0 <= stage < len(stages):
    raise ValueError(f"stage={stage}: config has stages 0..{len(stages) - 1}")
  this = stages[stage]
  end = stages[stage + 1].start if stage + 1 < len(stages) else config.train.num_steps
  mesh = sharding.make_mesh()
  sharding.check_batch_divides(this.batch_size, mesh)
  full = families.build(config)
  gan = full.at(this)
  state = jax.device_put(state_lib.create_state(config, full), sharding.replicated(mesh))
  if full.extra_update is not None:  # The family's extra state of the stage's first step.
    family = full.extra_update(state.extra["family"], jnp.int32(this.start - 1))
    state = state.replace(extra={**state.extra, "family": family})
  hostmem.release_init_programs()  # the eager init's cached programs, as jaxgan.main
  n = this.batch_size * config.train.d_steps
  images = jax.random.uniform(jax.random.key(1), (n, *gan.image_shape), jnp.float32, -1.0, 1.0)
  batch = {"image": images}
  if gan.conditional:
    batch["label"] = jax.random.randint(jax.random.key(2), (n,), 0, gan.num_classes, jnp.int32)
  batch = jax.device_put(batch, sharding.batch_sharding(mesh))

  t0 = time.perf_counter()
  compiled = step_lib.make_train_step(config, mesh, gan=gan).lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  flops = step_flops(config, mesh, gan, state, batch)
  hostmem.release_free()  # the compiler's temporaries, as jaxgan.main

  data = None
  if with_pipeline:
    data = input_pipeline.create_iterator(config, sharding=sharding.batch_sharding(mesh),
                                          start_step=this.start,
                                          stages=assemble.data_stages(config, stages))
  pipeline_batch = lambda: {k: v for k, v in next(data).items() if k in batch}  # noqa: E731
  next_batch = (lambda: batch) if data is None else pipeline_batch  # noqa: E731

  for _ in range(warmup):
    state, _ = compiled(state, next_batch())
  jax.block_until_ready(state)
  times, waits = [], []
  faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(num_steps):
    t = time.perf_counter()
    b = next_batch()
    waits.append(time.perf_counter() - t)
    state, metrics = compiled(state, b)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t)
  faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / num_steps
  if data is not None:
    data.close()
  med = statistics.median(times)
  peak, peak_kind = _peak_memory_mib()
  mm_peak = None if peak_size < 0 else matmul_peak_tflops(config.model.dtype, peak_size)
  dev = jax.devices()[0]
  return dict(
      backend=jax.default_backend(), device_kind=dev.device_kind, num_devices=jax.device_count(),
      image_size=list(gan.image_shape[:2]), batch=this.batch_size,
      stage=stage, stage_name=this.name, stage_steps=max(end - this.start, 0),
      dtype=config.model.dtype, d_steps=config.train.d_steps, g_steps=config.train.g_steps,
      upsample_impl=config.model.upsample_impl, compile_s=compile_s, median_s=med,
      min_s=min(times), max_s=max(times), images_per_s=n / med,
      flops_per_step=flops, tflops_per_s=flops / med / 1e12, matmul_peak_tflops=mm_peak,
      mfu=None if mm_peak is None else flops / med / 1e12 / mm_peak,
      num_steps=config.train.num_steps, projected_run_s=config.train.num_steps * med,
      projected_stage_s=max(end - this.start, 0) * med,
      peak_memory_mib=peak,
      peak_memory_kind=peak_kind, host_page_faults_per_step=faults,
      host_malloc=_HOST_MALLOC or "as the calling process set it",
      input_wait_fraction=sum(waits) / sum(times) if with_pipeline else None,
      losses=[float(metrics["loss/d"]), float(metrics["loss/g"])])


def benchmark_stages(config: ml_collections.ConfigDict, **kwargs) -> list[dict[str, Any]]:
  """`benchmark_step` of every stage of `config` (keyword arguments as there)."""
  return [benchmark_step(config, stage=i, **kwargs) for i in range(len(families.stages(config)))]


def format_stages(rows: list[dict[str, Any]]) -> str:
  """The summary of a --stages run: programs, compile time and the projected run."""
  total = sum(r["projected_stage_s"] for r in rows)
  compile_s = sum(r["compile_s"] for r in rows)
  return (f"{len(rows)} compiled training programs (one per stage), {compile_s:.1f} s of "
          f"compilation; {sum(r['stage_steps'] for r in rows)} steps projected at "
          f"{_duration(total)} ({total / 3600:.1f} h) on {rows[0]['device_kind']}")


def _duration(seconds: float) -> str:
  minutes, secs = divmod(round(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def format_row(r: dict[str, Any]) -> str:
  stage = (f"stage {r['stage_name']:>9} ({r['stage_steps']} steps in "
           f"{_duration(r['projected_stage_s'])})  " if r.get("stage_name") else "")
  return (stage +
          f"{r['backend']:>4} {r['device_kind'][:18]:<18} batch {r['batch']:>4} {r['dtype']:<8} "
          f"compile {r['compile_s']:6.1f} s  step {r['median_s']:8.4f} s "
          f"(min {r['min_s']:.4f}, max {r['max_s']:.4f})  {r['images_per_s']:9.1f} img/s  "
          f"{r['flops_per_step'] / 1e9:8.1f} GFLOP/step  {r['tflops_per_s']:7.3f} TFLOP/s  "
          + ("" if r["mfu"] is None else
             f"= {100 * r['mfu']:.1f}% of a {r['matmul_peak_tflops']:.3f} TFLOP/s matmul  ")
          + f"{r['num_steps']} steps in {_duration(r['projected_run_s'])}  "
          f"peak {r['peak_memory_mib']:8.0f} MiB ({r['peak_memory_kind']})  "
          f"{r['host_page_faults_per_step']:8.0f} page faults/step"
          + ("" if r["input_wait_fraction"] is None else
             f"  input wait {100 * r['input_wait_fraction']:.1f}%"))


def main(argv):
  del argv
  config = _CONFIG.value
  if config is None:
    raise app.UsageError("--config is required, e.g. --config configs/dcgan128.py")
  results = []
  if _STAGES.value:
    results = benchmark_stages(config, num_steps=_STEPS.value, warmup=_WARMUP.value,
                               with_pipeline=_PIPELINE.value, peak_size=_PEAK_SIZE.value)
    for r in results:
      print(format_row(r), flush=True)
      print("JSON " + json.dumps(r), flush=True)
    print(format_stages(results), flush=True)
    if _JSON_OUT.value:
      with open(_JSON_OUT.value, "w") as f:
        json.dump(results, f, indent=1)
    return
  runs = [(int(b), d) for b in _BATCHES.value for d in _DTYPES.value] if _SWEEP.value else [None]
  for run in runs:
    cfg = ml_collections.ConfigDict(config.to_dict())
    if run is not None:
      cfg.train.batch_size, cfg.model.dtype = run
    r = benchmark_step(cfg, num_steps=_STEPS.value, warmup=_WARMUP.value,
                       with_pipeline=_PIPELINE.value, peak_size=_PEAK_SIZE.value)
    results.append(r)
    print(format_row(r), flush=True)
    print("JSON " + json.dumps(r), flush=True)
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  from jaxgan import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, __name__, __doc__, required=("config",))
