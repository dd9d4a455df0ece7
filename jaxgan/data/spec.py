"""What the input pipeline reads: a frozen `DataSpec` from config.data and the stages that
the caller hands down, and `validate`, the checks of the data section (no TensorFlow).

The resize policies (RESIZE_POLICIES) are described in `jaxgan.data.tf_ops`, which scales
and crops at decode time; `jaxgan.data.finish` cuts random_crop's window.
"""

from __future__ import annotations

import dataclasses
import os

from jaxgan import checks
from jaxgan import errors

SOURCE_KINDS = ("builtin", "folder", "tfds")
RESIZE_POLICIES = ("center_crop", "random_crop", "resize")
LABELS = ("none", "subfolders")  # config.data.labels

# ((first step, global images per batch, (height, width)), ...): the spans of a run's steps.
Stages = tuple[tuple[int, int, tuple[int, int]], ...]


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """Everything the pipeline reads from the config (see `jaxgan.config` for the fields).

  Attributes:
    kind: 'builtin', 'folder' or 'tfds'.
    arg: what follows 'KIND:' in config.data.source (a name, a path, 'NAME[:SPLIT]').
    batch_size: global images per batch (train.batch_size * train.d_steps, of the first
      stage when there are several).
    stages: ((first step, global images per batch, (height, width)), ...): the batch size
      and image size of each span of steps; one span unless the model grows (the caller
      computes them from its family's stages). Images are box-downsampled from
      `image_size` to a stage's size.
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


def validate(config) -> None:
  """Raises ConfigError for the first invalid field of config.data (and for
  model.num_classes > 0 without labelled data); returns None if all are valid."""
  size = config.data.image_size
  if len(size) != 2 or any(int(s) < 1 for s in size):
    checks.fail("data.image_size", tuple(size), "expected (height, width), both positive")
  if config.data.channels not in (1, 3):
    checks.fail("data.channels", config.data.channels, "expected 1 (grayscale) or 3 (RGB)")
  checks.check_choice(config, "data.resize", RESIZE_POLICIES)
  checks.check_choice(config, "data.labels", LABELS)
  background = tuple(config.data.background)
  if len(background) != 3 or not all(0 <= int(c) <= 255 for c in background):
    checks.fail("data.background", background, "expected RGB in 0..255")
  source = config.data.source
  if not any(source.startswith(p) for p in ("builtin:", "folder:", "tfds:")):
    checks.fail("data.source", source,
                "expected 'builtin:NAME', 'folder:PATH' or 'tfds:NAME[:SPLIT]'")
  if source.startswith("folder:"):
    path = os.path.abspath(os.path.expanduser(source[len("folder:"):]))
    if not os.path.isdir(path):
      what = "is not a directory" if os.path.exists(path) else "does not exist"
      checks.fail("data.source", source, f"{path} {what}; expected 'folder:PATH' with PATH "
                  f"a directory of images")
  if source.startswith("builtin:") and config.data.builtin_size < 1:
    checks.fail("data.builtin_size", config.data.builtin_size, "expected >= 1")
  if config.data.labels == "subfolders" and not source.startswith("folder:"):
    checks.fail("data.labels", config.data.labels, f"'subfolders' needs a 'folder:PATH' "
                f"source, not {source!r} (TFDS sources bring their own 'label' feature)")
  num_classes = config.model.num_classes
  if (num_classes > 0 and source.startswith(("folder:", "builtin:"))
      and config.data.labels == "none"):
    checks.fail("model.num_classes", num_classes,
                f"a class-conditional model needs labelled data, and data.source={source!r} "
                f"with data.labels='none' has none; use a folder with one subfolder per class "
                f"and data.labels='subfolders', a TFDS dataset with a 'label' feature, or "
                f"num_classes=0")


def from_config(config, stages: Stages | None = None) -> DataSpec:
  """Checks (`validate`) and reads the data fields of `config`.

  Args:
    config: the full ConfigDict (config.data, config.seed, config.train.batch_size and
      d_steps, config.model.num_classes are read).
    stages: ((first step, global images per batch, (height, width)), ...) of the run, in
      step order, the first at step 0, as the caller computes them from its family's stages;
      None: one stage, (0, train.batch_size * train.d_steps, data.image_size), which is
      what a family that does not grow gives.

  Returns:
    The DataSpec.
  """
  validate(config)
  d = config.data
  kind, arg = parse_source(d.source)
  size = tuple(int(s) for s in d.image_size)
  background = tuple(int(c) for c in d.background)
  if stages is None:
    stages = ((0, int(config.train.batch_size) * int(config.train.d_steps), size),)
  stages = tuple((int(start), int(batch), tuple(int(s) for s in hw))
                 for start, batch, hw in stages)
  return DataSpec(kind=kind, arg=arg, image_size=size, channels=int(d.channels),
                  resize=d.resize, background=background, flip=bool(d.flip),
                  shuffle_buffer=int(d.shuffle_buffer), cache=str(d.cache),
                  tfds_data_dir=str(d.tfds_data_dir), tfds_image_key=str(d.tfds_image_key),
                  builtin_size=int(d.builtin_size), prefetch=int(d.prefetch),
                  seed=int(config.seed), batch_size=stages[0][1], stages=stages,
                  labels=str(d.get("labels", "none")),
                  num_classes=int(config.model.get("num_classes", 0)))
