"""The TensorFlow ops of the decode stage: decode, orient, composite, channels, resize.

Used only by `jaxgan.data.decode`. Every op works eagerly and inside `tf.data` (the tests
run both). Images stay uint8 until `finish.finish` turns a batch into float32, so caches
hold 1 byte per value.

Resize policies (`config.data.resize`, `spec.RESIZE_POLICIES`), for a target (h, w):
  'resize':      plain resize to exactly (h, w); the aspect ratio may change (e.g. 200x180).
  'center_crop': scale so the image just covers (h, w), keeping its aspect ratio, then
                 crop the centre.
  'random_crop': scale so the image just covers (ceil(h*s), ceil(w*s)), s = RANDOM_CROP_SCALE,
                 keeping its aspect ratio; that image is stored, and each time it is drawn a
                 random (h, w) window is cut from it (in `finish.finish`). The margin gives square
                 images a random translation too, as in DCGAN's "load 143, crop 128".
All resizing is bilinear with antialiasing. Large JPEGs are decoded at 1/2, 1/4 or 1/8
scale (libjpeg's DCT scaling) when that still covers the stored size.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

RANDOM_CROP_SCALE = 1.125


def stored_size(target: Sequence[int], policy: str) -> tuple[int, int]:
  """The smallest size a stored image covers: the target, or the random-crop margin."""
  h, w = (int(s) for s in target)
  if policy == "random_crop":
    return math.ceil(h * RANDOM_CROP_SCALE), math.ceil(w * RANDOM_CROP_SCALE)
  return h, w


def exif_orientation(data: bytes) -> int:
  """The EXIF orientation (1-8; 1: as stored) of a JPEG file's bytes, 1 without one.

  Reads the APP1 'Exif' segment's first IFD for tag 0x0112, as cameras write it; anything
  unreadable counts as 1 (the decoder reports a truly corrupt file). `data` may also be the
  0-d array that tf.numpy_function passes eagerly."""
  data = data.item() if isinstance(data, np.ndarray) else bytes(data)
  if data[:2] != b"\xff\xd8":
    return 1
  pos = 2
  while pos + 4 <= len(data) and data[pos] == 0xFF:
    marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
    if marker in (0xD9, 0xDA):  # end of image, start of scan: no more metadata
      return 1
    segment = data[pos + 4:pos + 2 + length]
    if marker == 0xE1 and segment[:6] == b"Exif\x00\x00":
      tiff = segment[6:]
      order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
      if order is None or len(tiff) < 8:
        return 1
      ifd = int.from_bytes(tiff[4:8], order)
      if ifd + 2 > len(tiff):
        return 1
      for i in range(int.from_bytes(tiff[ifd:ifd + 2], order)):
        entry = tiff[ifd + 2 + 12 * i:ifd + 14 + 12 * i]
        if len(entry) == 12 and int.from_bytes(entry[:2], order) == 0x0112:
          value = int.from_bytes(entry[8:10], order)
          return value if 1 <= value <= 8 else 1
      return 1
    pos += 2 + length
  return 1


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
  """The stored pixels [H, W, C] turned upright by EXIF `orientation` (as Pillow's
  ImageOps.exif_transpose does): 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90
  clockwise, 7 transverse, 8 rotate 90 counter-clockwise."""
  t = lambda x: tf.transpose(x, [1, 0, 2])
  branches = [lambda: image, lambda: image, lambda: image[:, ::-1],
              lambda: image[::-1, ::-1], lambda: image[::-1], lambda: t(image),
              lambda: tf.image.rot90(image, 3), lambda: t(image[::-1, ::-1]),
              lambda: tf.image.rot90(image, 1)]
  return tf.switch_case(tf.clip_by_value(orientation, 0, 8), branches)


def decode(contents: tf.Tensor, min_size: Sequence[int]) -> tf.Tensor:
  """Decodes a JPEG, PNG, GIF (first frame), BMP or WebP file; raises on a corrupt file.
  A JPEG's EXIF orientation is applied (`orient`), so a portrait photo stays upright.

  Args:
    contents: a scalar string tensor, the file's bytes.
    min_size: (height, width) that the decoded image must still cover when a JPEG is
      decoded at reduced scale.

  Returns:
    uint8 [H, W, C] with C in 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).
  """
  min_h, min_w = (int(s) for s in min_size)

  def jpeg(ratio: int) -> Callable[[], tf.Tensor]:
    return lambda: tf.io.decode_jpeg(contents, ratio=ratio)

  def scaled_jpeg():
    orientation = tf.numpy_function(lambda b: np.int32(exif_orientation(b)), [contents],
                                    tf.int32, stateful=False)
    orientation.set_shape([])
    shape = tf.io.extract_jpeg_shape(contents)
    upright = tf.cond(orientation >= 5, lambda: tf.stack([shape[1], shape[0]]),
                      lambda: shape[:2])  # 5-8 swap the stored height and width
    ratios = tf.constant([1, 2, 4, 8])
    fits = tf.logical_and(upright[0] // ratios >= min_h, upright[1] // ratios >= min_w)
    branch = tf.reduce_max(tf.where(fits, tf.range(4), 0))
    return orient(tf.switch_case(branch, [jpeg(r) for r in (1, 2, 4, 8)]), orientation)

  def other():
    return tf.io.decode_image(contents, expand_animations=False, dtype=tf.uint8)

  image = tf.cond(tf.io.is_jpeg(contents), scaled_jpeg, other)
  image.set_shape([None, None, None])
  return image


def to_rgb(image: tf.Tensor, background: Sequence[int]) -> tf.Tensor:
  """Gray, gray + alpha, RGB or RGBA uint8 -> RGB uint8, alpha composited onto `background`."""
  c = tf.shape(image)[-1]
  rgb = tf.cond(c < 3, lambda: tf.image.grayscale_to_rgb(image[..., :1]), lambda: image[..., :3])
  has_alpha = tf.logical_or(tf.equal(c, 2), tf.equal(c, 4))

  def composite():
    alpha = tf.cast(image[..., -1:], tf.float32) / 255.0
    bg = tf.constant(background, tf.float32, shape=[1, 1, 3])
    out = tf.cast(rgb, tf.float32) * alpha + bg * (1.0 - alpha)
    return tf.cast(tf.round(out), tf.uint8)

  return tf.cond(has_alpha, composite, lambda: rgb)


def to_channels(rgb: tf.Tensor, channels: int) -> tf.Tensor:
  """RGB uint8 -> `channels` (3: unchanged, 1: luma) uint8."""
  if channels == 3:
    return rgb
  gray = tf.image.rgb_to_grayscale(tf.cast(rgb, tf.float32))
  return tf.cast(tf.clip_by_value(tf.round(gray), 0.0, 255.0), tf.uint8)


def _resize_to(image: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
  """Antialiased bilinear resize of uint8 `image` to `size`; a no-op at the same size."""
  def resize():
    out = tf.image.resize(image, size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)
  same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
  return tf.cond(same, lambda: image, resize)


def cover_size(shape: tf.Tensor, target: Sequence[int]) -> tf.Tensor:
  """The (height, width) of `shape` scaled, aspect kept, to just cover `target`."""
  hw = tf.cast(shape[:2], tf.float64)
  tgt = tf.constant(target, tf.float64)
  scale = tf.reduce_max(tgt / hw)
  return tf.cast(tf.maximum(tf.round(hw * scale), tgt), tf.int32)


def resize(image: tf.Tensor, target: Sequence[int], policy: str) -> tf.Tensor:
  """Resizes uint8 `image` [H, W, C] to its stored form under `policy` (see module doc).

  Returns:
    uint8 [h, w, C] for 'resize' and 'center_crop'; [>= ceil(h*s), >= ceil(w*s), C] for
    'random_crop'.
  """
  target = stored_size(target, policy)
  if policy == "resize":
    return _resize_to(image, tf.constant(target, tf.int32))
  covered = _resize_to(image, cover_size(tf.shape(image), target))
  if policy == "random_crop":
    return covered
  h, w = target
  top = (tf.shape(covered)[0] - h) // 2
  left = (tf.shape(covered)[1] - w) // 2
  return covered[top:top + h, left:left + w]


def preprocess(image: tf.Tensor, *, target: Sequence[int], policy: str, channels: int,
               background: Sequence[int]) -> tf.Tensor:
  """Decoded image (1-4 channels) -> stored uint8 form: composite, channels, resize."""
  return resize(to_channels(to_rgb(image, background), channels), target, policy)
