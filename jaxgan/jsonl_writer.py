"""A clu MetricWriter that appends scalars to a JSON-lines file (WORKDIR/metrics.jsonl).

One object per step, {"step": 50, "loss/d": 1.2, ...}, so that losses can be plotted
without TensorBoard (`jaxgan.workdir.read_metrics` reads them back).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from clu.metric_writers import interface


class JsonlWriter(interface.MetricWriter):
  """A clu MetricWriter appending scalars to a JSON-lines file, one object per step.

  Everything else (images, texts, histograms, ...) is ignored: the file is for plotting
  losses without TensorBoard. Non-finite values are written as null. Each record is
  written and flushed whole; when the file was deleted, moved or replaced since it was
  opened (a log rotation, a user tidying up), it is opened again by its path, so no later
  record goes to a file nobody can read.
  """

  def __init__(self, path: str | os.PathLike):
    self._path = Path(path)
    self._file = None
    self._open()

  def _open(self) -> None:
    if self._file is not None:
      self._file.close()
    self._path.parent.mkdir(parents=True, exist_ok=True)
    self._file = open(self._path, "a", encoding="utf-8")  # pylint: disable=consider-using-with

  def _still_there(self) -> bool:
    try:
      on_disk, ours = os.stat(self._path), os.fstat(self._file.fileno())
    except OSError:
      return False
    return (on_disk.st_dev, on_disk.st_ino) == (ours.st_dev, ours.st_ino)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    record = {"step": int(step)}
    for k, v in sorted(scalars.items()):
      v = float(v)
      record[k] = v if math.isfinite(v) else None
    if not self._still_there():
      self._open()
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()

  def write_summaries(self, step, values, metadata=None) -> None:
    pass

  def write_images(self, step, images) -> None:
    pass

  def write_videos(self, step, videos) -> None:
    pass

  def write_audios(self, step, audios, *, sample_rate) -> None:
    pass

  def write_texts(self, step, texts) -> None:
    pass

  def write_histograms(self, step, arrays, num_buckets=None) -> None:
    pass

  def write_hparams(self, hparams) -> None:
    pass

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    if not self._file.closed:
      self._file.close()
