"""The order stage: which example at which position, in numpy.

The data stream is an infinite sequence of global positions 0, 1, 2, ...; global batch k
holds positions [k*B, (k+1)*B), and process p of P takes the contiguous slice
[k*B + p*B/P, k*B + (p+1)*B/P). When the batch size changes during the run (a growing
model's stages, `DataSpec.stages`), batch k starts where batch k-1 ended (`span`). Every
random choice is a pure function of the seed and a position, so batch k can be produced
without producing batches 0..k-1 (O(1) resume), and the global batch is the same for any
number of processes.

Random-access sources (folder, builtin) map position q to example
permutation(seed, q // N)[q % N]: a fresh shuffle every epoch. The finish stage draws its
crops and flips from per-position random numbers (`jaxgan.data.finish.uniform`).
"""

from __future__ import annotations

import functools

import numpy as np



def span(step: int, stages) -> tuple[int, int, int]:
  """Where global batch `step` lies in the stream of a run with `stages`.

  Args:
    step: the global batch number, >= 0.
    stages: ((first step, global batch size, ...), ...) in step order, the first at step 0.

  Returns:
    (the position of the batch's first example, its size, the index of its stage).
  """
  offset = 0
  for i, (start, size, *_) in enumerate(stages):
    end = stages[i + 1][0] if i + 1 < len(stages) else None
    if end is None or step < end:
      return offset + (step - start) * size, size, i
    offset += (end - start) * size
  raise ValueError(f"no stages: {stages!r}")


def local_positions(step: int, stages, process_index: int, process_count: int) -> np.ndarray:
  """Global positions of this process's slice of global batch `step`.

  Args:
    step: the global batch number, >= 0.
    stages: the global batch size B (divisible by process_count), or a run's stages as
      `span` takes them.
    process_index: this process, in [0, process_count).
    process_count: number of processes P.

  Returns:
    int64 array [B / P].
  """
  if isinstance(stages, (int, np.integer)):
    stages = ((0, int(stages)),)
  first, size, _ = span(step, stages)
  local = size // process_count
  return first + process_index * local + np.arange(local, dtype=np.int64)


@functools.lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed & 0xFFFFFFFF, epoch]).permutation(n)


def example_indices(positions: np.ndarray, num_examples: int, seed: int) -> np.ndarray:
  """Example index of each global position: a new permutation of range(N) every epoch.

  Args:
    positions: int64 global positions.
    num_examples: N, the dataset size.
    seed: the pipeline seed.

  Returns:
    int64 array of indices in [0, N), the shape of `positions`.
  """
  epochs, offsets = np.divmod(np.asarray(positions, np.int64), num_examples)
  out = np.empty_like(offsets)
  for epoch in np.unique(epochs):
    sel = epochs == epoch
    out[sel] = _permutation(int(seed), int(epoch), int(num_examples))[offsets[sel]]
  return out
