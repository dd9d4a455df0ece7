"""Sizes and paddings of strided convolutions, shared by the families and the kernels."""

from __future__ import annotations

from typing import Sequence


def conv_out_size(size: int, stride: int) -> int:
  """Output size of a SAME-padded strided convolution."""
  return -(-size // stride)


def size_chain(size: int, strides: Sequence[int]) -> list[int]:
  """Sizes after each SAME-padded conv of `strides`, starting with `size`."""
  sizes = [size]
  for s in strides:
    sizes.append(conv_out_size(sizes[-1], s))
  return sizes


def transpose_padding(in_size: int, out_size: int, kernel: int, stride: int) -> tuple[int, int]:
  """(low, high) padding of `lax.conv_transpose` mapping in_size -> out_size.

  It is the adjoint of a SAME-padded convolution from out_size to in_size, which
  requires in_size == ceil(out_size / stride).
  """
  if in_size != -(-out_size // stride):
    raise ValueError(f"a stride-{stride} transposed convolution maps {in_size} to "
                     f"{(in_size - 1) * stride + 1}..{in_size * stride}, not {out_size}")
  total = max((in_size - 1) * stride + kernel - out_size, 0)
  pad_lo = total // 2  # SAME pads the smaller half first
  return kernel - 1 - pad_lo, out_size - (in_size - 1) * stride - 1 + pad_lo
