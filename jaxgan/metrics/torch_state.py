"""A reader of PyTorch state-dict files (`torch.save(model.state_dict())`) without torch.

Reads both formats torch writes: the zip archive (torch >= 1.6: `ARCHIVE/data.pkl` with
one `ARCHIVE/data/KEY` file per storage) and the legacy stream (a magic-number pickle,
protocol and system info pickles, the object pickle, the storage keys, then each
storage's element count and bytes). Tensors become numpy arrays with their shape, strides
and storage offset applied (views of one storage are copied out separately).

The unpickler is restricted: it builds only OrderedDicts, tensors, parameters and
storages, and refuses any other global by name, so a file cannot run code.

    arrays = load_state_dict("pt_inception-2015-12-05-6726825d.pth")  # {name: np.ndarray}
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from typing import Any

import ml_dtypes
import numpy as np

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
  def __init__(self, name: str):
    self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Tensor:
  """A tensor waiting for its storage's bytes (the legacy format stores them after)."""

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

  def to_numpy(self, storages: dict[str, np.ndarray]) -> np.ndarray:
    key, dtype, view_offset = self.storage
    flat = storages[key]
    if flat.dtype != dtype:
      flat = flat.view(dtype)
    flat = flat[view_offset + self.offset:]
    if not self.size:
      return np.array(flat[0])
    needed = 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride))
    if needed > len(flat):
      raise ValueError(f"a tensor of shape {self.size} and strides {self.stride} reads past "
                       f"the end of its storage ({len(flat)} elements)")
    view = np.lib.stride_tricks.as_strided(
        flat, self.size, tuple(s * flat.itemsize for s in self.stride), writeable=False)
    return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  del unused  # requires_grad, backward hooks, metadata
  return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
  del requires_grad, backward_hooks, unused
  return data


_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):

  def __init__(self, file, storage_of):
    super().__init__(file)
    self._storage_of = storage_of

  def find_class(self, module: str, name: str):
    if (module, name) in _GLOBALS:
      return _GLOBALS[(module, name)]
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a state dict (only "
                                 f"tensors, parameters and OrderedDicts are read)")

  def persistent_load(self, pid):
    return self._storage_of(pid)


def _storage_ref(pid, sizes: dict[str, tuple[np.dtype, int]]):
  """('storage', type, key, location, numel[, view_metadata]) -> (key, dtype, offset)."""
  if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
    raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
  storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
  dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else np.dtype(np.uint8)
  sizes.setdefault(key, (dtype, numel))
  view = pid[5] if len(pid) > 5 else None
  return key, dtype, (int(view[1]) if view else 0)


def _resolve(obj, storages):
  if isinstance(obj, _Tensor):
    return obj.to_numpy(storages)
  if isinstance(obj, dict):
    return {k: _resolve(v, storages) for k, v in obj.items()}
  return obj


def _load_zip(path) -> Any:
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"{path} is a zip file but not a torch archive (no single data.pkl)")
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = "little"
    if f"{prefix}byteorder" in names:
      byteorder = archive.read(f"{prefix}byteorder").decode().strip()
    sizes: dict[str, tuple[np.dtype, int]] = {}
    with archive.open(pickles[0]) as f:
      obj = _Unpickler(f, lambda pid: _storage_ref(pid, sizes)).load()
    storages = {}
    for key, (dtype, numel) in sizes.items():
      raw = archive.read(f"{prefix}data/{key}")
      dt = dtype.newbyteorder("<" if byteorder == "little" else ">")
      storages[key] = np.frombuffer(raw, dt, count=numel).astype(dtype, copy=False)
  return _resolve(obj, storages)


def _load_legacy(path) -> Any:
  with open(path, "rb") as f:
    refuse = lambda pid: (_ for _ in ()).throw(pickle.UnpicklingError("no storages here"))  # noqa: E731
    magic = _Unpickler(f, refuse).load()
    if magic != _LEGACY_MAGIC:
      raise ValueError(f"{path} is neither a torch zip archive nor a legacy torch file")
    _Unpickler(f, refuse).load()  # protocol version
    _Unpickler(f, refuse).load()  # system info (byte order, type sizes)
    sizes: dict[str, tuple[np.dtype, int]] = {}
    obj = _Unpickler(f, lambda pid: _storage_ref(pid, sizes)).load()
    keys = _Unpickler(f, refuse).load()
    storages = {}
    for key in keys:
      dtype, _ = sizes[str(key)]
      (numel,) = struct.unpack("<q", f.read(8))
      raw = f.read(numel * dtype.itemsize)
      if len(raw) != numel * dtype.itemsize:
        raise ValueError(f"{path} is truncated (storage {key} has {len(raw)} of "
                         f"{numel * dtype.itemsize} bytes)")
      storages[str(key)] = np.frombuffer(raw, dtype)
  return _resolve(obj, storages)


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """{name: numpy array} of a torch state-dict file (zip or legacy format).

  Raises:
    ValueError: the file is not a torch file, is truncated, or holds no dict of tensors.
    pickle.UnpicklingError: the file holds objects other than tensors and dicts.
  """
  path = os.fspath(path)
  obj = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
  if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
    raise ValueError(f"{path} does not hold a state dict of tensors")
  return dict(obj)
