"""Orbax checkpoints of the training state: save, restore with a shape check, and a
generator-only load for sampling.

A checkpoint (WORKDIR/checkpoints/STEP/) holds two items:
  'state'   arrays only (no code, no pickles): the whole GANState as the nested dicts of
            `flax.serialization.to_state_dict`, with no field list kept here:
              g, d:   {'params', 'opt_state', 'collections', 'step'} of each TrainState
              g_ema:  the EMA generator parameters (only when config.train.ema_decay > 0)
              rng:    the state's PRNG key as uint32 key data (every key leaf is saved so)
              step:   training steps done
              extra:  the extra part (a family's, an augmentation's, a regularizer's state)
            and data_step, the input pipeline position (`DataIterator.step`).
  'config'  the config the checkpoint was written with, as JSON.
  'checksums'  the SHA-256, shape and dtype of every array of 'state', as JSON, written with
            it (by process 0, from its replica) and checked on every restore, with the
            finiteness of every float array: a checkpoint whose bytes changed on disk (a bad
            disk, a copy gone wrong, a hand edit) fails with CorruptCheckpointError naming
            the arrays, as does one that cannot be read (a truncated or deleted file, empty
            metadata). `restore_newest_valid` then falls back to the newest checkpoint that
            passes, and `newest_verified` names it.
Checkpoints written before the family interface (G's and D's BatchNorm state under
'batch_stats', no 'extra') are read too.
Saves are asynchronous: `save` returns once the arrays are copied off the devices and the
files are written in the background (`wait` blocks until they are).
"""

from __future__ import annotations

import hashlib
import logging as std_logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from jaxgan import errors

STATE, CONFIG, CHECKSUMS = "state", "config", "checksums"
PyTree = Any
# The training state (`jaxgan.training.state.GANState`): any flax struct of arrays whose
# `to_state_dict` is the saved tree; nothing here depends on its fields.
GANState = Any


CheckpointMismatchError = errors.CheckpointMismatchError
CorruptCheckpointError = errors.CorruptCheckpointError


def create_manager(directory: str | os.PathLike, *, max_to_keep: int | None = None,
                   read_only: bool = False) -> ocp.CheckpointManager:
  """A CheckpointManager over `directory` with asynchronous saves.

  Args:
    directory: the checkpoints folder (created unless `read_only`).
    max_to_keep: checkpoints kept; older ones are deleted after each save.
    read_only: open existing checkpoints only (sampling); saves are skipped.
  """
  options = ocp.CheckpointManagerOptions(
      max_to_keep=None if read_only else max_to_keep, save_interval_steps=0 if read_only else 1,
      enable_async_checkpointing=True, read_only=read_only, create=not read_only,
      cleanup_tmp_directories=not read_only)
  handlers = {STATE: ocp.PyTreeCheckpointHandler(), CONFIG: ocp.JsonCheckpointHandler(),
              CHECKSUMS: ocp.JsonCheckpointHandler()}
  absl_logger = std_logging.getLogger("absl")
  quiet = _DropReadOnlyNotice()
  absl_logger.addFilter(quiet)  # Orbax warns that a read-only manager is read-only.
  try:
    return ocp.CheckpointManager(Path(directory).absolute(), options=options,
                                 item_handlers=handlers)
  finally:
    absl_logger.removeFilter(quiet)


class _DropReadOnlyNotice(std_logging.Filter):

  def filter(self, record: std_logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Given directory is read only")


def _is_key(x) -> bool:
  return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _drop_none(tree):
  if isinstance(tree, dict):
    return {k: _drop_none(v) for k, v in tree.items() if v is not None}
  return tree


def state_to_tree(state: GANState, data_step: int) -> dict[str, PyTree]:
  """The arrays of `state` (and the pipeline position) as the nested dict that is saved."""
  tree = _drop_none(flax.serialization.to_state_dict(state))
  # PRNG keys as their raw data; a TrainState made outside jit counts its steps in a Python
  # int, saved as int32 as jit makes it.
  tree = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x)
                      else x if hasattr(x, "shape") else jnp.asarray(x), tree)
  tree["data_step"] = np.asarray(data_step, np.int64)
  return tree


def tree_to_state(tree: dict[str, PyTree], like: GANState) -> tuple[GANState, int]:
  """Inverse of `state_to_tree`: (state, data_step), with `like`'s optimizers and key types."""
  tree = dict(tree)
  data_step = int(tree.pop("data_step"))
  template = flax.serialization.to_state_dict(like)
  tree = {**{k: None for k, v in template.items() if v is None}, **tree}  # g_ema without EMA
  rewrap = lambda t, x: (jax.random.wrap_key_data(x, impl=jax.random.key_impl(t))  # noqa: E731
                         if _is_key(t) else x)
  tree = jax.tree.map(rewrap, template, tree)
  return flax.serialization.from_state_dict(like, tree), data_step


def _is_legacy(meta: PyTree) -> bool:
  """A checkpoint of the layout before the family interface (g/batch_stats, no extra)."""
  return "batch_stats" in meta["g"] and "collections" not in meta["g"]


def _to_legacy(tree: PyTree) -> PyTree:
  """The current layout -> the legacy one: collections['batch_stats'] as batch_stats."""
  out = {k: v for k, v in tree.items() if k != "extra"}
  for net in ("g", "d"):
    net_tree = dict(tree[net])
    collections = net_tree.pop("collections")
    if set(collections) - {"batch_stats"}:
      raise CheckpointMismatchError(
          f"the checkpoint has the layout of jaxgan before model families (BatchNorm state "
          f"only), but this config's {net} has the collections {sorted(collections)}")
    net_tree["batch_stats"] = collections.get("batch_stats", {})
    out[net] = net_tree
  return out


def _from_legacy(tree: PyTree, like_tree: PyTree) -> PyTree:
  out = dict(tree)
  for net in ("g", "d"):
    net_tree = dict(tree[net])
    stats = net_tree.pop("batch_stats")
    net_tree["collections"] = {"batch_stats": stats} if "batch_stats" in like_tree[net][
        "collections"] else {}
    out[net] = net_tree
  out["extra"] = like_tree["extra"]
  return out


def save(manager: ocp.CheckpointManager, step: int, state: GANState, data_step: int,
         config: ml_collections.ConfigDict) -> bool:
  """Starts an asynchronous save of `state` as checkpoint `step`.

  Returns:
    False when checkpoint `step` already exists (nothing is written), else True.
  """
  if step in manager.all_steps():
    return False
  tree = state_to_tree(state, data_step)
  args = ocp.args.Composite(**{STATE: ocp.args.PyTreeSave(tree),
                               CONFIG: ocp.args.JsonSave(config.to_dict()),
                               CHECKSUMS: ocp.args.JsonSave(checksums(tree))})
  manager.save(step, args=args)
  return True


# ---- integrity ---------------------------------------------------------------------------

def _leaf_name(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _host_array(x) -> np.ndarray:
  """This process's copy of a (replicated) leaf."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    x = x.addressable_data(0)
  return np.ascontiguousarray(np.asarray(x))


def checksums(tree: PyTree) -> dict[str, dict[str, Any]]:
  """'g/params/...' -> {'sha256', 'shape', 'dtype'} of every array of a `state_to_tree` tree."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    array = _host_array(leaf)
    out[_leaf_name(path)] = {"sha256": hashlib.sha256(array.tobytes()).hexdigest(),
                             "shape": list(array.shape), "dtype": array.dtype.name}
  return out


def problems(tree: PyTree, saved: dict[str, dict[str, Any]] | None) -> list[str]:
  """What is wrong with restored arrays: a checksum, shape or dtype other than `saved`'s
  (None: a checkpoint written before checksums, not compared), or a NaN/Inf. Arrays of
  `saved` that `tree` leaves out (a partial restore) are not compared."""
  found = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    name, array = _leaf_name(path), _host_array(leaf)
    if saved is not None:
      want = saved.get(name)
      if want is None:
        found.append(f"{name} has no saved checksum")
      elif (list(array.shape), array.dtype.name) != (want["shape"], want["dtype"]):
        found.append(f"{name} is {list(array.shape)} {array.dtype.name}, saved as "
                     f"{want['shape']} {want['dtype']}")
      elif hashlib.sha256(array.tobytes()).hexdigest() != want["sha256"]:
        found.append(f"{name} differs from its saved checksum")
    if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
      found.append(f"{name} has NaN or Inf")
  return found


def _saved_checksums(manager: ocp.CheckpointManager, step: int) -> dict | None:
  if not (Path(manager.directory) / str(step) / CHECKSUMS).is_dir():
    return None  # written before checksums
  return manager.restore(step, args=ocp.args.Composite(
      **{CHECKSUMS: ocp.args.JsonRestore()}))[CHECKSUMS]


def _check(manager: ocp.CheckpointManager, step: int, tree: PyTree) -> None:
  found = problems(tree, _saved_checksums(manager, step))
  if found:
    shown = "; ".join(found[:4]) + (f"; and {len(found) - 4} more" if len(found) > 4 else "")
    raise CorruptCheckpointError(f"checkpoint {step} in {manager.directory} is corrupt: {shown}")


def _read_error(step: int, directory, error: Exception) -> CorruptCheckpointError:
  text = " ".join(str(error).split())
  return CorruptCheckpointError(f"checkpoint {step} in {directory} cannot be read: "
                                f"{type(error).__name__}: {text[:300]}")


def verify(manager: ocp.CheckpointManager, step: int) -> None:
  """Reads checkpoint `step` whole (shapes from its metadata: no model is built) and checks
  it; CorruptCheckpointError when it fails."""
  try:
    meta = _state_metadata(manager, step)
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), meta,
                          is_leaf=lambda x: hasattr(x, "shape"))
    tree = manager.restore(step, args=ocp.args.Composite(**{STATE: ocp.args.PyTreeRestore(
        target, restore_args=ocp.checkpoint_utils.construct_restore_args(target))}))[STATE]
  except CorruptCheckpointError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (any read failure is corruption here)
    raise _read_error(step, manager.directory, e) from e
  _check(manager, step, tree)


def newest_verified(manager: ocp.CheckpointManager) -> int | None:
  """The newest checkpoint that passes `verify` (saves in flight finished first), or None."""
  manager.wait_until_finished()
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      verify(manager, step)
      return step
    except CorruptCheckpointError:
      continue
  return None


def set_aside(manager: ocp.CheckpointManager, step: int, where: str | os.PathLike) -> Path:
  """Moves checkpoint `step` out of the manager's directory into `where` (kept for a look,
  never deleted), so that training can write that step again; returns its new path."""
  target = Path(where) / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
  target.parent.mkdir(parents=True, exist_ok=True)
  shutil.move(str(Path(manager.directory) / str(step)), str(target))
  manager.reload()
  return target


def _abstract(tree: PyTree) -> PyTree:
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _shapes(tree: PyTree) -> dict[str, tuple[tuple[int, ...], str]]:
  """'a/b/c' -> (shape, dtype name) of every array-like leaf."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))
  return {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path):
          (tuple(leaf.shape), np.dtype(leaf.dtype).name) for path, leaf in leaves}


def _state_metadata(manager: ocp.CheckpointManager, step: int) -> PyTree:
  metadata = manager.item_metadata(step)[STATE]
  return getattr(metadata, "tree", metadata)


def check_compatible(manager: ocp.CheckpointManager, step: int, tree: PyTree) -> None:
  """Raises CheckpointMismatchError naming every entry whose shape or dtype differs.

  Args:
    manager: the manager of the checkpoints.
    step: the checkpoint to compare.
    tree: the arrays (or ShapeDtypeStructs) the current config makes, as `state_to_tree`.
  """
  saved, current = _shapes(_state_metadata(manager, step)), _shapes(tree)
  lines = []
  # A top-level entry only one side has (g_ema when EMA was switched) is one line.
  for name in sorted({k.split("/")[0] for k in saved} ^ {k.split("/")[0] for k in current}):
    where = "the checkpoint but not in this config" if any(
        k.split("/")[0] == name for k in saved) else "this config but not in the checkpoint"
    lines.append(f"{name} is in {where}")
  # Parameters first: they say best what changed; their optimizer states follow.
  order = lambda k: ("/params/" not in f"/{k}/" and not k.startswith("g_ema"), k)  # noqa: E731
  for key in sorted(set(saved) | set(current), key=order):
    if key.split("/")[0] in {l.split()[0] for l in lines}:
      continue
    if key not in current:
      lines.append(f"{key} is in the checkpoint but not in this config")
    elif key not in saved:
      lines.append(f"{key} is in this config but not in the checkpoint")
    elif saved[key] != current[key]:
      (s_shape, s_dtype), (c_shape, c_dtype) = saved[key], current[key]
      lines.append(f"{key} is {s_shape} {s_dtype} there but {c_shape} {c_dtype} in this config")
  if lines:
    shown = lines[:8] + ([f"... and {len(lines) - 8} more"] if len(lines) > 8 else [])
    raise CheckpointMismatchError(
        f"checkpoint at step {step} in {manager.directory} was written by a different model or "
        f"optimizer than this config makes:\n  "
        + "\n  ".join(shown) + "\nResume with the config it was written with (config.json in the "
        "workdir) or train in a new workdir.")


def restore(manager: ocp.CheckpointManager, like: GANState, step: int | None = None
            ) -> tuple[GANState, int, int]:
  """Restores checkpoint `step` (default: the latest) into the shapes and shardings of `like`.

  Args:
    manager: the manager of the checkpoints.
    like: a freshly initialised state of the current config, placed as the restored one
      should be (its values are not used).
    step: the checkpoint; default the latest.

  Returns:
    (state, data_step, step).

  Raises:
    FileNotFoundError: there is no checkpoint.
    CheckpointMismatchError: the checkpoint's shapes differ from `like`'s.
    CorruptCheckpointError: it cannot be read, or fails its checksums or finiteness.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {manager.directory}")
  current = state_to_tree(like, 0)
  try:
    legacy = _is_legacy(_state_metadata(manager, step))
  except Exception as e:  # pylint: disable=broad-except  (unreadable metadata is corruption)
    raise _read_error(step, manager.directory, e) from e
  target = _abstract(_to_legacy(current) if legacy else current)
  check_compatible(manager, step, target)
  restore_args = ocp.checkpoint_utils.construct_restore_args(target)
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        **{STATE: ocp.args.PyTreeRestore(target, restore_args=restore_args)}))[STATE]
  except Exception as e:  # pylint: disable=broad-except  (any read failure is corruption here)
    raise _read_error(step, manager.directory, e) from e
  _check(manager, step, restored)
  if legacy:
    restored = _from_legacy(restored, current)
  state, data_step = tree_to_state(restored, like)
  return state, data_step, step


def restore_generator(directory: str | os.PathLike, step: int | None = None
                      ) -> tuple[dict[str, PyTree], dict[str, Any], int]:
  """Restores only the generator's arrays of a checkpoint, onto the first local device.

  Nothing of the discriminator or the optimizers is read; the shapes come from the
  checkpoint's metadata, so no model is built.

  Args:
    directory: the checkpoints folder (WORKDIR/checkpoints).
    step: the checkpoint; default the latest.

  Returns:
    ({'params', 'collections', and 'g_ema' when the run had EMA, 'extra' when the family
    keeps extra state (the state's extra['family'])}, the checkpoint's config as a dict,
    step).

  Raises:
    FileNotFoundError: no such checkpoint.
    CorruptCheckpointError: it cannot be read, or the generator's arrays fail their
      checksums or are not finite.
  """
  if not Path(directory).is_dir():
    raise FileNotFoundError(f"no checkpoints folder {directory}")
  manager = create_manager(directory, read_only=True)
  try:
    step = manager.latest_step() if step is None else step
    if step is None or step not in manager.all_steps():
      raise FileNotFoundError(f"no checkpoint {'' if step is None else step} in {directory} "
                              f"(it has {list(manager.all_steps())})")
    try:
      meta = _state_metadata(manager, step)
      collections = "batch_stats" if _is_legacy(meta) else "collections"
      wanted = {"g": {"params": meta["g"]["params"], collections: meta["g"][collections]}}
      if "g_ema" in meta:
        wanted["g_ema"] = meta["g_ema"]
      if isinstance(meta.get("extra"), dict) and "family" in meta["extra"]:
        wanted["extra"] = {"family": meta["extra"]["family"]}  # e.g. ProGAN's level and alpha
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            wanted, is_leaf=lambda x: hasattr(x, "shape"))
      restored = manager.restore(step, args=ocp.args.Composite(**{
          STATE: ocp.args.PyTreeRestore(
              target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
              partial_restore=True),
          CONFIG: ocp.args.JsonRestore()}))
    except Exception as e:  # pylint: disable=broad-except  (any read failure is corruption)
      raise _read_error(step, directory, e) from e
    _check(manager, step, restored[STATE])
  finally:
    manager.close()
  arrays = dict(restored[STATE]["g"])
  if collections == "batch_stats":
    stats = arrays.pop("batch_stats")
    arrays["collections"] = {"batch_stats": stats} if stats else {}
  if "g_ema" in restored[STATE]:
    arrays["g_ema"] = restored[STATE]["g_ema"]
  if "extra" in restored[STATE]:
    arrays["extra"] = restored[STATE]["extra"]["family"]
  return arrays, restored[CONFIG], step
