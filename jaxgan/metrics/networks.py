"""Feature networks for the sample-quality metrics, by name.

A network maps images (NHWC float32 in [-1, 1], any size, 1 or 3 channels) to
{'pool': [N, D] features (FID, KID, precision/recall), 'logits': [N, K] class logits
(Inception Score)}. Built-in:

  'inception'  the FID Inception-v3 (`jaxgan.metrics.inception`), weights from the
               pytorch-fid file (`weights`: its path or URL; '' searches the usual places)
  'random'     a small convolutional network with seeded random weights (`weights`: the
               seed, default 0): 64-d features, 10 logits. For tests and for trying the
               metrics pipeline without the Inception file; its numbers are comparable only
               with themselves.

Another network (a domain classifier for grayscale sketches, a network whose weights you
have) plugs in with `register_network(name, build)`, where `build(weights: str)` returns a
`FeatureNetwork`; configs and the command line then name it (`network=NAME`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.metrics import inception


@dataclasses.dataclass(frozen=True)
class FeatureNetwork:
  """A feature extractor for the metrics.

  Attributes:
    name: the registry name.
    apply: (variables, images [N, H, W, C] in [-1, 1]) -> {'pool': [N, D], and 'logits':
      [N, K] when the network classifies}; pure, jit-able.
    variables: its weights.
    fingerprint: names the weights exactly (e.g. the file's sha256): part of the key of the
      cached reference statistics, so that features of other weights are never mixed.
  """
  name: str
  apply: Callable[[Any, jax.Array], dict[str, jax.Array]]
  variables: Any
  fingerprint: str


def _inception(weights: str) -> FeatureNetwork:
  variables = inception.load_weights(weights)
  return FeatureNetwork("inception", inception.FIDInception().apply, variables,
                        f"fid-inception-{inception.WEIGHTS_SHA256[:16]}")


class RandomFeatures(nn.Module):
  """Three strided convolutions on 32x32 RGB, global average pool (64-d) and 10 logits."""

  @nn.compact
  def __call__(self, images):
    x = inception.resize(images, 32)  # RGB, 32x32, as the Inception's input is brought to 299
    for features in (16, 32, 64):
      x = nn.relu(nn.Conv(features, (3, 3), (2, 2), precision=jax.lax.Precision.HIGHEST)(x))
    pool = jnp.mean(x, axis=(1, 2))
    return {"pool": pool, "logits": nn.Dense(10, precision=jax.lax.Precision.HIGHEST)(pool)}


def _random(weights: str) -> FeatureNetwork:
  try:
    seed = int(weights or 0)
  except ValueError:
    raise ValueError(f"weights={weights!r} is invalid for network 'random': expected its "
                     f"integer seed") from None
  module = RandomFeatures()
  variables = module.init(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))
  return FeatureNetwork("random", module.apply, variables, f"random-{seed}")


NETWORKS: dict[str, Callable[[str], FeatureNetwork]] = {
    "inception": _inception,
    "random": _random,
}


def register_network(name: str, build: Callable[[str], FeatureNetwork]) -> None:
  """Adds a feature network that `network=NAME` can name; `build(weights)` makes it."""
  NETWORKS[name] = build


def build(name: str, weights: str = "") -> FeatureNetwork:
  """The network `name` with `weights` (what a weights string means is the network's)."""
  if name not in NETWORKS:
    raise ValueError(f"network={name!r} is unknown: expected one of "
                     f"{', '.join(map(repr, sorted(NETWORKS)))} (or one added with "
                     f"jaxgan.metrics.networks.register_network)")
  return NETWORKS[name](weights)
