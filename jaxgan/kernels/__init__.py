"""Backend-specific formulations of layers, chosen once by backend.

    k = kernels.select("auto")  # on CPU: col2im transposed convs, matmul bias gradients, ...
    y = k.conv_transpose(x, kernel, strides, out_size); y = k.add_bias(y, bias)

GPU and TPU runs ('auto' off the CPU) use XLA's own transposed convolution, convolution
and a plain bias add. Every formulation equals the plain one (tests/layers_test.py).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax

from jaxgan.kernels import cpu
from jaxgan.kernels.lax import conv_transpose_lax

UPSAMPLE_IMPLS = ("auto", "col2im", "lax")


class Kernels(NamedTuple):
  conv_transpose: Callable  # (x, kernel, strides, out_size) -> y
  add_bias: Callable  # (y, bias) -> y + bias
  conv: Callable = jax.lax.conv_general_dilated  # flax.linen.Conv's conv_general_dilated


def _plain_add(y, bias):
  return y + bias


@functools.lru_cache(maxsize=None)
def select(impl: str = "auto", backend: str | None = None) -> Kernels:
  """The kernels for `impl` ('auto', 'col2im' or 'lax') on `backend` (default: JAX's).

  'auto' is 'col2im' on CPU and 'lax' elsewhere; 'col2im' brings the CPU bias gradient and
  the strided convolution with space-to-depth and Winograd formulations (`cpu.conv`) too.
  """
  if impl not in UPSAMPLE_IMPLS:
    raise ValueError(f"config.model.upsample_impl={impl!r} is invalid: expected one of "
                     f"{', '.join(map(repr, UPSAMPLE_IMPLS))}")
  if impl == "auto":
    impl = "col2im" if (backend or jax.default_backend()) == "cpu" else "lax"
  if impl == "col2im":
    return Kernels(cpu.conv_transpose, cpu.add_bias, cpu.conv)
  return Kernels(conv_transpose_lax, _plain_add)
