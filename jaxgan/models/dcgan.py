"""The configurable DCGAN family: one generator and one discriminator that express the
hobby and paper DCGANs by configuration alone (configs/ has one file per architecture).

Generator: latent -> projection to a base map (Dense + reshape, or a transposed conv
from a 1x1 latent) -> [optional norm + act] -> hidden transposed convs (norm, act,
dropout) -> output transposed conv -> tanh. The base size is derived from the image
size by dividing through the strides (rounding up, as SAME convolutions do), and each
transposed conv produces exactly the size the mirrored discriminator conv consumed, so
odd and non-square sizes (150x150, 200x180) come out exactly.

Discriminator: strided SAME convs (norm, act, dropout) -> flatten -> Dense(1). It
returns one float32 logit per image; the sigmoid, if any, lives in the loss.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.config import size_chain
from jaxgan.models import layers

Array = jax.Array


class Generator(nn.Module):
  """DCGAN generator. `__call__(z, train)` maps [B, latent] to [B, H, W, C] in [-1, 1]."""
  image_size: tuple[int, int]
  channels: int = 3
  project: str = "dense"
  base_features: int = 256
  project_norm_act: bool = False
  features: Sequence[int] = (128, 64)
  strides: Sequence[int] = (2, 2, 1)
  kernel_size: int = 5
  norm: str = "batch"
  activation: str = "relu"
  leaky_alpha: float = 0.2
  dropout: float = 0.0
  init_scheme: str = "default"
  use_bias: bool = True
  dtype: Any = jnp.float32
  upsample_impl: str = "auto"
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, z: Array, train: bool = True) -> Array:
    # Sizes from the image back to the base map: the output layer undoes strides[-1] first.
    heights = size_chain(self.image_size[0], self.strides[::-1])
    widths = size_chain(self.image_size[1], self.strides[::-1])
    h0, w0, c0 = heights[-1], widths[-1], self.base_features
    kinit = layers.kernel_init(self.init_scheme)
    block = lambda x, layer, **kw: layers.block(  # noqa: E731
        x, layer, train=train, init=self.init_scheme, dtype=self.dtype,
        bn_axis_name=self.bn_axis_name, alpha=self.leaky_alpha, **kw)
    z = z.astype(self.dtype)
    if self.project == "dense":
      proj = layers.Dense(h0 * w0 * c0, use_bias=self.use_bias, kernel_init=kinit, dtype=self.dtype)
    else:  # A transposed conv from a 1x1 latent to (h0, w0): a dense map with per-channel bias.
      proj = _LatentProjection((h0, w0), c0, self.use_bias, kinit, self.dtype)
    spectral = "spectral" if self.norm == "spectral" else "none"
    x = block(z, proj, norm=spectral, act=None).reshape(z.shape[0], h0, w0, c0)
    if self.project_norm_act:  # Spectral norm already wrapped the projection.
      x = block(x, lambda y: y, norm="none" if self.norm == "spectral" else self.norm,
                act=self.activation)
    n = len(self.features)
    for i, f in enumerate(self.features):
      up = layers.ConvTranspose(f, self.kernel_size, (self.strides[i],) * 2,
                                (heights[n - i], widths[n - i]), use_bias=self.use_bias,
                                kernel_init=kinit, dtype=self.dtype, impl=self.upsample_impl)
      x = block(x, up, norm=self.norm, act=self.activation, dropout=self.dropout)
    out = layers.ConvTranspose(self.channels, self.kernel_size, (self.strides[-1],) * 2,
                               tuple(self.image_size), use_bias=self.use_bias, kernel_init=kinit,
                               dtype=self.dtype, impl=self.upsample_impl)
    x = block(x, out, norm=spectral, act="tanh")
    return x.astype(jnp.float32)


class _LatentProjection(nn.Module):
  """Radford's first layer: ConvTranspose(k=base, VALID) on a 1x1 latent, as an einsum."""
  size: tuple[int, int]
  features: int
  use_bias: bool
  kernel_init: Any
  dtype: Any

  @nn.compact
  def __call__(self, z: Array) -> Array:
    kernel = self.param("kernel", self.kernel_init, (*self.size, z.shape[-1], self.features),
                        jnp.float32)
    x = jnp.einsum("bn,hwnc->bhwc", z, kernel.astype(self.dtype))
    if self.use_bias:
      x = x + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
    return x.reshape(z.shape[0], -1)


class Discriminator(nn.Module):
  """DCGAN discriminator. `__call__(x, train)` maps [B, H, W, C] to [B] float32 logits."""
  features: Sequence[int] = (64, 128)
  strides: Sequence[int] = (4, 2)
  kernel_size: int = 5
  norm: str = "batch"
  first_layer_norm: bool = True
  activation: str = "leaky_relu"
  leaky_alpha: float = 0.2
  dropout: float = 0.0
  init_scheme: str = "default"
  use_bias: bool = True
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: Array, train: bool = True) -> Array:
    kinit = layers.kernel_init(self.init_scheme)
    x = x.astype(self.dtype)
    for i, (f, s) in enumerate(zip(self.features, self.strides)):
      conv = nn.Conv(f, (self.kernel_size,) * 2, (s, s), padding="SAME", use_bias=self.use_bias,
                     kernel_init=kinit, dtype=self.dtype)
      norm = self.norm if (i > 0 or self.first_layer_norm or self.norm == "spectral") else "none"
      x = layers.block(x, conv, train=train, norm=norm, act=self.activation,
                       alpha=self.leaky_alpha, dropout=self.dropout, init=self.init_scheme,
                       dtype=self.dtype, bn_axis_name=self.bn_axis_name)
    x = x.reshape(x.shape[0], -1)
    head = layers.Dense(1, use_bias=self.use_bias, kernel_init=kinit, dtype=self.dtype)
    x = layers.block(x, head, train=train, norm="spectral" if self.norm == "spectral" else "none")
    return x[:, 0].astype(jnp.float32)
