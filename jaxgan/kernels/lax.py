"""XLA's own transposed convolution: the reference every other formulation equals, and the
one GPU and TPU runs use ('lax')."""

from __future__ import annotations

from typing import Sequence

import jax

from jaxgan.kernels.geometry import transpose_padding

Array = jax.Array
_DN = ("NHWC", "HWIO", "NHWC")


def conv_transpose_lax(x: Array, kernel: Array, strides: Sequence[int],
                       out_size: Sequence[int]) -> Array:
  """The reference: `lax.conv_transpose` with the padding of `transpose_padding`."""
  pads = [transpose_padding(n, o, k, s)
          for n, o, k, s in zip(x.shape[1:3], out_size, kernel.shape[:2], strides)]
  return jax.lax.conv_transpose(x, kernel, tuple(strides), pads, dimension_numbers=_DN,
                                transpose_kernel=False)
