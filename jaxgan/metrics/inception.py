"""The FID Inception-v3 in Flax: the network behind the standard FID, KID and Inception Score.

This is the TensorFlow graph of 2015-12-05 that Heusel et al.'s FID code uses, as ported
to PyTorch by pytorch-fid (`pytorch_fid.inception.fid_inception_v3`): torchvision's
Inception-v3 layout with 1008 classes, no auxiliary head, and the FID-specific blocks

  Mixed_5b..5d, 6b..6e, 7b   the average pool of the pool branch ignores the zero padding
                             (TensorFlow's average pool; `count_include_pad=False`)
  Mixed_7c                   a max pool (not an average pool) in the pool branch

Every conv is conv (no bias) + BatchNorm (eps 1e-3, running statistics) + ReLU. Inputs are
NHWC images in [-1, 1] of any size: they are resized bilinearly (half-pixel centres, no
antialiasing, as `F.interpolate(..., mode='bilinear', align_corners=False)`) to 299x299;
grayscale is repeated to RGB. The outputs are

  'pool'    [N, 2048] the final average pool (pool3): FID, KID, precision/recall
  'logits'  [N, 1008] fc(pool): softmax gives the class probabilities of the Inception Score

Weights: the pytorch-fid file `pt_inception-2015-12-05-6726825d.pth` (WEIGHTS_FILE, from
WEIGHTS_URL), read by `jaxgan.metrics.torch_state` without torch and mapped by
`variables_from_state_dict`; `load_weights` checks its sha256 first. Convolutions run at
`Precision.HIGHEST` (no TF32 or bfloat16 passes on accelerators): FID is sensitive to them.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.metrics import torch_state

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               + WEIGHTS_FILE)
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
WEIGHTS_BYTES = 95_628_359
INPUT_SIZE = 299
NUM_CLASSES = 1008
POOL_FEATURES = 2048
_HIGHEST = jax.lax.Precision.HIGHEST


def _pairs(x) -> tuple[int, int]:
  return (x, x) if isinstance(x, int) else tuple(x)


class BasicConv(nn.Module):
  """torchvision's BasicConv2d: conv without bias, BatchNorm (eps 1e-3), ReLU."""
  features: int
  kernel: Any = 1
  strides: Any = 1
  padding: Any = 0

  @nn.compact
  def __call__(self, x):
    ph, pw = _pairs(self.padding)
    x = nn.Conv(self.features, _pairs(self.kernel), _pairs(self.strides),
                padding=((ph, ph), (pw, pw)), use_bias=False, precision=_HIGHEST,
                name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg_pool_same(x):
  """3x3 stride-1 average pool over the unpadded window (TensorFlow's SAME average)."""
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x, strides: int, padding: int = 0):
  p = ((padding, padding), (padding, padding))
  return nn.max_pool(x, (3, 3), (strides, strides), p)


class InceptionA(nn.Module):
  """Mixed_5b..5d (FIDInceptionA)."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, name="branch1x1")(x)
    b5 = BasicConv(48, name="branch5x5_1")(x)
    b5 = BasicConv(64, 5, padding=2, name="branch5x5_2")(b5)
    b3 = BasicConv(64, name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, 3, padding=1, name="branch3x3dbl_2")(b3)
    b3 = BasicConv(96, 3, padding=1, name="branch3x3dbl_3")(b3)
    bp = BasicConv(self.pool_features, name="branch_pool")(_avg_pool_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: 35x35 -> 17x17."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, 3, strides=2, name="branch3x3")(x)
    bd = BasicConv(64, name="branch3x3dbl_1")(x)
    bd = BasicConv(96, 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = BasicConv(96, 3, strides=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool(x, 2)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..6e (FIDInceptionC): factorised 7x7 convolutions."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = BasicConv(192, name="branch1x1")(x)
    b7 = BasicConv(c7, name="branch7x7_1")(x)
    b7 = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv(c7, name="branch7x7dbl_1")(x)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv(192, name="branch_pool")(_avg_pool_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: 17x17 -> 8x8."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(192, name="branch3x3_1")(x)
    b3 = BasicConv(320, 3, strides=2, name="branch3x3_2")(b3)
    b7 = BasicConv(192, name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv(192, 3, strides=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool(x, 2)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (FIDInceptionE_1: padding-free average pool) and Mixed_7c (FIDInceptionE_2:
  max pool)."""
  pool: str  # 'avg' or 'max'

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(320, name="branch1x1")(x)
    b3 = BasicConv(384, name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], -1)
    bd = BasicConv(448, name="branch3x3dbl_1")(x)
    bd = BasicConv(384, 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)],
                         -1)
    pooled = _avg_pool_same(x) if self.pool == "avg" else _max_pool(x, 1, padding=1)
    bp = BasicConv(192, name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


def resize(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """[N, H, W, C] -> [N, size, size, 3]: bilinear with half-pixel centres and no
  antialiasing (torch's `interpolate(bilinear, align_corners=False)`), grayscale to RGB."""
  images = jnp.asarray(images, jnp.float32)
  if images.shape[-1] == 1:
    images = jnp.repeat(images, 3, axis=-1)
  if images.shape[1:3] != (size, size):
    images = jax.image.resize(images, (images.shape[0], size, size, images.shape[-1]),
                              "bilinear", antialias=False)
  return images


class FIDInception(nn.Module):
  """The FID Inception-v3: images in [-1, 1] -> {'pool': [N, 2048], 'logits': [N, 1008]}."""

  @nn.compact
  def __call__(self, images):
    x = resize(images)
    x = BasicConv(32, 3, strides=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, 3, name="Conv2d_2a_3x3")(x)
    x = BasicConv(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
    x = _max_pool(x, 2)
    x = BasicConv(80, name="Conv2d_3b_1x1")(x)
    x = BasicConv(192, 3, name="Conv2d_4a_3x3")(x)
    x = _max_pool(x, 2)
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
      x = InceptionC(c7, name=name)(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE("avg", name="Mixed_7b")(x)
    x = InceptionE("max", name="Mixed_7c")(x)
    pool = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(NUM_CLASSES, precision=_HIGHEST, name="fc")(pool)
    return {"pool": pool, "logits": logits}


def variable_shapes() -> dict[str, Any]:
  """The shapes of the network's variables ({'params', 'batch_stats'}), without computing."""
  return jax.eval_shape(FIDInception().init, jax.random.key(0),
                        jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))


# ---- weights -------------------------------------------------------------------------------

# The last part of a torch name -> (Flax collection, leaf name, layout change).
_LEAVES: dict[str, tuple[str, str, Callable[[np.ndarray], np.ndarray]]] = {
    "conv.weight": ("params", "kernel", lambda w: w.transpose(2, 3, 1, 0)),  # OIHW -> HWIO
    "bn.weight": ("params", "scale", lambda w: w),
    "bn.bias": ("params", "bias", lambda w: w),
    "bn.running_mean": ("batch_stats", "mean", lambda w: w),
    "bn.running_var": ("batch_stats", "var", lambda w: w),
}
_FC = {"fc.weight": ("kernel", lambda w: w.T), "fc.bias": ("bias", lambda w: w)}


def _flax_path(name: str) -> tuple[str, tuple[str, ...], Callable] | None:
  """'Mixed_5b.branch1x1.conv.weight' -> ('params', ('Mixed_5b', 'branch1x1', 'conv',
  'kernel'), transpose); None for a tensor the port has no use for (BatchNorm's
  num_batches_tracked)."""
  if name.endswith(".num_batches_tracked"):
    return None
  if name in _FC:
    leaf, fn = _FC[name]
    return "params", ("fc", leaf), fn
  for suffix, (collection, leaf, fn) in _LEAVES.items():
    if name.endswith("." + suffix):
      modules = name[:-len(suffix) - 1].split(".")
      return collection, (*modules, suffix.split(".")[0], leaf), fn
  raise KeyError(name)


def variables_from_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
  """The Flax variables of FIDInception from a pytorch-fid Inception state dict.

  Every tensor is mapped (conv weights OIHW -> HWIO, fc weights transposed, BatchNorm
  weight/bias/running statistics to scale/bias/mean/var) and every variable of the port
  must be filled, with the shape the port expects.

  Raises:
    ValueError: naming the tensors that are not part of the FID Inception, the variables
      the state dict leaves empty, or a tensor of the wrong shape.
  """
  expected = jax.tree_util.tree_flatten_with_path(variable_shapes())[0]
  expected = {tuple(k.key for k in path): leaf.shape for path, leaf in expected}
  out, unknown = {}, []
  for name, value in state_dict.items():
    try:
      target = _flax_path(name)
    except KeyError:
      unknown.append(name)
      continue
    if target is None:
      continue
    collection, path, fn = target
    value = fn(np.asarray(value, np.float32))
    key = (collection, *path)
    if key not in expected:
      unknown.append(name)
      continue
    if value.shape != expected[key]:
      raise ValueError(f"tensor {name} has shape {value.shape} (after the layout change) but "
                       f"the FID Inception expects {expected[key]}")
    out[key] = value
  missing = sorted("/".join(k) for k in set(expected) - set(out))
  if unknown or missing:
    parts = []
    if unknown:
      parts.append(f"{len(unknown)} tensors that are not part of it ({', '.join(unknown[:5])}"
                   f"{', ...' if len(unknown) > 5 else ''})")
    if missing:
      parts.append(f"no value for {len(missing)} of its variables ({', '.join(missing[:5])}"
                   f"{', ...' if len(missing) > 5 else ''})")
    raise ValueError("this state dict is not the FID Inception's (pytorch-fid's "
                     f"{WEIGHTS_FILE}): it has " + " and ".join(parts))
  variables: dict[str, Any] = {}
  for key, value in out.items():
    node = variables
    for part in key[:-1]:
      node = node.setdefault(part, {})
    node[key[-1]] = value
  return variables


def sha256(path: str | os.PathLike) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def default_weight_paths() -> list[Path]:
  """Where `find_weights` looks: $JAXGAN_INCEPTION_WEIGHTS, jaxgan's cache
  (~/.cache/jaxgan or $XDG_CACHE_HOME/jaxgan) and torch hub's, where pytorch-fid keeps it."""
  cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
  paths = [Path(os.environ["JAXGAN_INCEPTION_WEIGHTS"])] if os.environ.get(
      "JAXGAN_INCEPTION_WEIGHTS") else []
  torch_home = Path(os.environ.get("TORCH_HOME", cache / "torch"))
  return paths + [cache / "jaxgan" / WEIGHTS_FILE, torch_home / "hub" / "checkpoints" / WEIGHTS_FILE]


def find_weights(weights: str = "") -> Path:
  """The weights file to use: `weights` (a path, or an http(s) URL to download into
  jaxgan's cache), else the first of `default_weight_paths` that exists.

  Raises:
    FileNotFoundError: naming the file, where it was looked for and where to get it.
  """
  if weights.startswith(("http://", "https://")):
    target = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jaxgan" / (
        weights.rsplit("/", 1)[-1] or WEIGHTS_FILE)
    if not target.exists():
      target.parent.mkdir(parents=True, exist_ok=True)
      tmp = target.with_name(target.name + ".part")
      urllib.request.urlretrieve(weights, tmp)  # noqa: S310  (a URL the user passed)
      tmp.replace(target)
    return target
  candidates = [Path(weights).expanduser()] if weights else default_weight_paths()
  for path in candidates:
    if path.is_file():
      return path
  raise FileNotFoundError(
      f"the FID Inception weights {WEIGHTS_FILE} were not found (looked in "
      f"{', '.join(map(str, candidates))}); download it from {WEIGHTS_URL} (sha256 "
      f"{WEIGHTS_SHA256}) and pass its path (--weights, or weights= in config.evals), put it "
      f"in {default_weight_paths()[-2]}, or pass the URL itself to download it")


def load_weights(weights: str = "", *, check_hash: bool = True) -> dict[str, Any]:
  """The Flax variables from the pytorch-fid weights file (see `find_weights`), after a
  sha256 check against WEIGHTS_SHA256.

  Raises:
    FileNotFoundError: the file is not found.
    ValueError: the file's sha256 differs (named with the expected one and the URL).
  """
  path = find_weights(weights)
  if check_hash:
    digest = sha256(path)
    if digest != WEIGHTS_SHA256:
      raise ValueError(
          f"{path} has sha256 {digest}, but the FID Inception weights {WEIGHTS_FILE} have "
          f"{WEIGHTS_SHA256} ({WEIGHTS_BYTES:,} bytes); download it again from {WEIGHTS_URL}")
  return variables_from_state_dict(torch_state.load_state_dict(path))
