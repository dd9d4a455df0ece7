"""TFDS datasets as a per-process stream of (image, label) examples.

Each process reads its own part of the split (`tfds.even_splits`, equal sizes), so the
files are sharded, not replicated; the global batch is the concatenation of the processes'
local batches.
"""

from __future__ import annotations

import re

import tensorflow as tf
import tensorflow_datasets as tfds

from jaxgan import errors

# NAME[/CONFIG][:VERSION][:SPLIT]; a version is three dotted numbers or '*'.
_SPEC = re.compile(r"^(?P<name>[\w/.-]+?(?::[\d*]+\.[\d*]+\.[\d*]+)?)(?::(?P<split>.+))?$")


def parse_spec(spec: str) -> tuple[str, str]:
  """'NAME[:SPLIT]' -> (name, split); the split defaults to 'train'.

  The name may carry a config and a version ('celeb_a/align:2.0.1'); the split may carry
  slicing ('train[:80%]').
  """
  match = _SPEC.match(spec)
  if not match or not match.group("name"):
    raise errors.ConfigError(f"invalid TFDS source 'tfds:{spec}': expected 'tfds:NAME[:SPLIT]'")
  return match.group("name"), match.group("split") or "train"


def feature_keys(features, image_key: str = "") -> tuple[str, str | None]:
  """The image feature (named, or the only/'image' Image feature) and the 'label' key.

  Args:
    features: the builder's top-level `tfds.features.FeaturesDict`.
    image_key: the configured key, '' to find it.

  Returns:
    (image key, 'label' if the dataset has an integer 'label' feature else None).
  """
  names = list(features.keys())
  if image_key:
    if image_key not in features:
      raise ValueError(f"config.data.tfds_image_key={image_key!r} is not a feature; "
                       f"features: {names}")
  else:
    images = [k for k in names if isinstance(features[k], tfds.features.Image)]
    if len(images) > 1 and "image" in images:
      images = ["image"]
    if len(images) != 1:
      raise ValueError(f"cannot choose the image feature among {images or names}; set "
                       f"config.data.tfds_image_key")
    image_key = images[0]
  label = features["label"] if "label" in features else None
  has_label = isinstance(label, tfds.features.Tensor) and tf.as_dtype(label.dtype).is_integer
  return image_key, "label" if has_label else None


def local_examples(spec: str, *, data_dir: str, image_key: str, process_index: int,
                   process_count: int) -> tuple[tf.data.Dataset, bool]:
  """This process's examples of a TFDS split, in a fixed order.

  Args:
    spec: 'NAME[:SPLIT]'.
    data_dir: the TFDS data directory, '' for the default.
    image_key: the image feature, '' to find it.
    process_index: this process.
    process_count: number of processes.

  Returns:
    (dataset of {'image': uint8 [H, W, C], 'label': int32 (if any)}, whether it has labels).
  """
  name, split = parse_spec(spec)
  builder = tfds.builder(name, data_dir=data_dir or None)
  image_key, label_key = feature_keys(builder.info.features, image_key)
  if not builder.is_prepared():
    if process_count > 1:
      raise ValueError(f"TFDS dataset {name!r} is not prepared in {builder.data_dir}; with "
                       f"{process_count} processes prepare it first (`tfds build {name}`)")
    builder.download_and_prepare()
  if process_count > 1:
    split = tfds.even_splits(split, n=process_count, drop_remainder=True)[process_index]
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          read_config=tfds.ReadConfig(try_autocache=False))

  def select(ex):
    out = {"image": ex[image_key]}
    if label_key:
      out["label"] = tf.cast(ex[label_key], tf.int32)
    return out

  return ds.map(select, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), bool(label_key)
