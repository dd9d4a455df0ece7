"""The input pipeline's view of a config: a frozen, validated `DataSpec` (no TensorFlow)."""

from __future__ import annotations

import dataclasses

from jaxgan import config as config_lib
from jaxgan import errors

SOURCE_KINDS = ("builtin", "folder", "tfds")


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """Everything the pipeline reads from the config (see `jaxgan.config` for the fields).

  Attributes:
    kind: 'builtin', 'folder' or 'tfds'.
    arg: what follows 'KIND:' in config.data.source (a name, a path, 'NAME[:SPLIT]').
    batch_size: global images per batch, `config_lib.images_per_step(config)` (of the
      first stage when there are several).
    stages: ((first step, global images per batch, (height, width)), ...): the batch size
      and image size of each span of steps (`jaxgan.families.Stage`); one span unless the
      model grows. Images are box-downsampled from `image_size` to a stage's size.
    labels: 'none' or 'subfolders' (config.data.labels).
    num_classes: config.model.num_classes; labels must lie in [0, num_classes).
  """
  kind: str
  arg: str
  image_size: tuple[int, int]
  channels: int
  resize: str
  background: tuple[int, int, int]
  flip: bool
  shuffle_buffer: int
  cache: str
  tfds_data_dir: str
  tfds_image_key: str
  builtin_size: int
  prefetch: int
  seed: int
  batch_size: int
  labels: str = "none"
  num_classes: int = 0
  stages: tuple = ()

  def stage_size(self, index: int) -> tuple[int, int]:
    return tuple(self.stages[index][2]) if self.stages else self.image_size

  @property
  def source(self) -> str:
    return f"{self.kind}:{self.arg}"


def parse_source(source: str) -> tuple[str, str]:
  """'KIND:ARG' -> (kind, arg); ValueError naming the valid forms otherwise."""
  kind, sep, arg = str(source).partition(":")
  if not sep or kind not in SOURCE_KINDS or not arg:
    raise errors.ConfigError(f"config.data.source={source!r} is invalid: expected 'builtin:NAME', "
                             f"'folder:PATH' or 'tfds:NAME[:SPLIT]'")
  return kind, arg


def from_config(config) -> DataSpec:
  """Reads and checks the data fields of `config`.

  Args:
    config: the full ConfigDict (config.data, config.seed and config.train are read).

  Returns:
    The DataSpec.
  """
  d = config.data
  kind, arg = parse_source(d.source)
  if d.channels not in (1, 3):
    raise errors.ConfigError(f"config.data.channels={d.channels!r} is invalid: expected 1 or 3")
  if d.resize not in config_lib.RESIZE_POLICIES:
    raise errors.ConfigError(f"config.data.resize={d.resize!r} is invalid: expected one of "
                             f"{config_lib.RESIZE_POLICIES}")
  size = tuple(int(s) for s in d.image_size)
  if len(size) != 2 or min(size) < 1:
    raise errors.ConfigError(f"config.data.image_size={tuple(d.image_size)!r}: expected "
                             f"(height, width)")
  background = tuple(int(c) for c in d.background)
  if len(background) != 3 or not all(0 <= c <= 255 for c in background):
    raise errors.ConfigError(f"config.data.background={tuple(d.background)!r}: expected RGB in "
                             f"0..255")
  if d.get("labels", "none") not in config_lib.LABELS:
    raise errors.ConfigError(f"config.data.labels={d.labels!r} is invalid: expected one of "
                             f"{config_lib.LABELS}")
  from jaxgan import families  # pylint: disable=g-import-not-at-top
  d_steps = int(config.train.d_steps)
  stages = tuple((s.start, s.batch_size * d_steps, tuple(s.image_shape[:2]))
                 for s in families.stages(config))
  if kind == "builtin" and d.builtin_size < 1:
    raise errors.ConfigError(f"config.data.builtin_size={d.builtin_size!r}: expected >= 1")
  return DataSpec(kind=kind, arg=arg, image_size=size, channels=int(d.channels),
                  resize=d.resize, background=background, flip=bool(d.flip),
                  shuffle_buffer=int(d.shuffle_buffer), cache=str(d.cache),
                  tfds_data_dir=str(d.tfds_data_dir), tfds_image_key=str(d.tfds_image_key),
                  builtin_size=int(d.builtin_size), prefetch=int(d.prefetch),
                  seed=int(config.seed), batch_size=stages[0][1], stages=stages,
                  labels=str(d.get("labels", "none")),
                  num_classes=int(config.model.get("num_classes", 0)))
