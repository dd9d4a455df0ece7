"""Tests of jaxgan.input_pipeline and jaxgan.data: sources, preprocessing, order, resume."""

import functools
import io
import logging
import os
from pathlib import Path
import subprocess
import sys
import threading

import jax
import numpy as np
from PIL import Image, ImageOps
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from jaxgan import config as config_lib
from jaxgan import input_pipeline
from jaxgan.data import batches as batches_lib
from jaxgan.data import builtin
from jaxgan.data import decode
from jaxgan.data import finish
from jaxgan.data import folder as folder_lib
from jaxgan.data import order
from jaxgan.data import spec as spec_lib
from jaxgan.data import tf_ops

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BACKGROUND = (10, 200, 30)
NUM_GOOD_FILES = 9


def make_config(source="builtin:shapes", *, size=(16, 16), batch=8, **data):
  c = config_lib.default_config()
  c.seed = 3
  c.train.batch_size = batch
  c.data.source = source
  c.data.image_size = size
  c.data.builtin_size = 24
  c.data.prefetch = 2
  c.data.background = BACKGROUND
  for k, v in data.items():
    c.data[k] = v
  return c


def take(it, n):
  return [next(it) for _ in range(n)]


def host(config, n, **kw):
  it = input_pipeline.host_iterator(config, **kw)
  out = take(it, n)
  it.close()
  return out


def assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]))


def _save(path, array, fmt, **kw):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path, format=fmt, **kw)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
  """9 decodable images of mixed formats, sizes and modes, 2 corrupt files, 2 non-images."""
  root = tmp_path_factory.mktemp("mixed")
  rng = np.random.default_rng(0)
  rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  rgba = np.concatenate([rgb(30, 40), np.full((30, 40, 1), 255, np.uint8)], -1)
  rgba[:, :20, 3] = 0  # left half transparent
  _save(root / "rgba.png", rgba, "PNG")
  _save(root / "sub" / "gray.png", rgb(20, 20)[..., 0], "PNG")
  _save(root / "sub" / "deeper" / "gray_alpha.png", rgb(25, 25)[..., :2], "PNG")
  _save(root / "photo.jpg", rgb(50, 30), "JPEG")
  _save(root / "UPPER.JPEG", rgb(64, 64), "JPEG")
  _save(root / "pic.webp", rgb(18, 33), "WEBP")
  _save(root / "pic.bmp", rgb(40, 17), "BMP")
  Image.fromarray(rgb(22, 22)).save(root / "anim.gif", save_all=True,
                                    append_images=[Image.fromarray(rgb(22, 22))])
  _save(root / "palette.png", np.asarray(Image.fromarray(rgb(16, 16)).convert("P")), "PNG")
  (root / "corrupt.jpg").write_bytes(b"this is not a jpeg")
  good = io.BytesIO()
  Image.fromarray(rgb(30, 30)).save(good, format="PNG")
  (root / "sub" / "truncated.png").write_bytes(good.getvalue()[:100])
  (root / "notes.txt").write_text("not an image")
  (root / "sub" / "meta.json").write_text("{}")
  return root


# ---- import hygiene ---------------------------------------------------------------------

def test_importing_the_pipeline_does_not_import_tensorflow():
  code = ("import sys, jaxgan.input_pipeline, jaxgan.data.order, jaxgan.data.builtin, "
          "jaxgan.data.store; assert 'tensorflow' not in sys.modules")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# ---- builtin ----------------------------------------------------------------------------

def test_render_shapes_is_deterministic_colourful_and_any_size():
  a = builtin.render_shapes(0, 5, 24, 20)
  assert a.shape == (24, 20, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, builtin.render_shapes(0, 5, 24, 20))
  assert not np.array_equal(a, builtin.render_shapes(0, 6, 24, 20))
  assert not np.array_equal(a, builtin.render_shapes(1, 5, 24, 20))
  assert builtin.render_shapes(0, 5, 7, 33).shape == (7, 33, 3)
  many = np.stack([builtin.render_shapes(0, i, 32, 32) for i in range(8)])
  assert many.std() > 40 and len(np.unique(many.reshape(-1, 3), axis=0)) > 500


def test_unknown_builtin_lists_available():
  with pytest.raises(ValueError, match="'shapes'"):
    input_pipeline.host_iterator(make_config("builtin:nope"))


def test_builtin_iterator_yields_global_device_batches():
  with input_pipeline.create_iterator(make_config()) as it:
    assert it.step == 0
    batch = next(it)
    assert it.step == 1
  image = batch["image"]
  assert isinstance(image, jax.Array) and image.shape == (8, 16, 16, 3)
  assert image.dtype == np.float32 and set(batch) == {"image"}
  assert image.sharding.spec == jax.sharding.PartitionSpec("data")
  x = np.asarray(image)
  assert -1.0 <= x.min() < -0.5 and 0.5 < x.max() <= 1.0


def test_batch_uses_images_per_step():
  c = make_config(batch=4)
  c.train.d_steps = 3
  assert next(input_pipeline.host_iterator(c))["image"].shape == (12, 16, 16, 3)


# ---- preprocessing ops ------------------------------------------------------------------

def _both_ways(fn, image):
  """fn applied eagerly and inside tf.data; asserts equal, returns the result."""
  eager = fn(tf.constant(image)).numpy()
  in_data = next(iter(tf.data.Dataset.from_tensors(image).map(fn))).numpy()
  np.testing.assert_array_equal(eager, in_data)
  return eager


def test_rgba_is_composited_onto_background():
  image = np.zeros((4, 4, 4), np.uint8)
  image[..., :3] = 200
  image[:, :2, 3] = 0
  image[:, 2:, 3] = 255
  image[0, 0, 3] = 51  # 20% opaque
  out = _both_ways(lambda x: tf_ops.to_rgb(x, BACKGROUND), image)
  np.testing.assert_array_equal(out[1, 1], BACKGROUND)
  np.testing.assert_array_equal(out[:, 2:], 200)
  np.testing.assert_array_equal(out[0, 0], np.round(0.2 * 200 + 0.8 * np.array(BACKGROUND)))


def test_gray_expands_to_rgb_and_one_channel_keeps_it():
  gray = np.arange(16, dtype=np.uint8).reshape(4, 4, 1) * 15
  rgb = _both_ways(lambda x: tf_ops.to_rgb(x, BACKGROUND), gray)
  np.testing.assert_array_equal(rgb, np.repeat(gray, 3, -1))
  back = _both_ways(lambda x: tf_ops.to_channels(x, 1), rgb)
  np.testing.assert_array_equal(back, gray)


@pytest.mark.parametrize("policy,stored", [("resize", (24, 20)), ("center_crop", (24, 20)),
                                           ("random_crop", (27, 54))])
def test_resize_policies_stored_size(policy, stored):
  image = np.zeros((40, 80, 3), np.uint8)
  image[:, 20:60] = 255  # a white centre band, black sides
  out = _both_ways(lambda x: tf_ops.resize(x, (24, 20), policy), image)
  assert out.shape == (*stored, 3)
  if policy == "center_crop":  # The 2:1 image is scaled to 24x48; the centre 20 are white.
    np.testing.assert_array_equal(out, 255)
  if policy == "resize":  # Squashed: sides stay dark.
    assert out[:, 0].max() < 128 and out[:, 10].min() == 255


def test_large_jpeg_decoded_at_reduced_scale_still_covers():
  data = io.BytesIO()
  Image.fromarray(np.full((400, 300, 3), 128, np.uint8)).save(data, format="JPEG")
  out = tf_ops.decode(tf.constant(data.getvalue()), (48, 40))
  assert out.shape == (100, 75, 3)  # 1/4 scale covers 48x40, 1/8 would not.


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(orientation):
  rng = np.random.default_rng(orientation)
  pixels = (rng.integers(0, 4, (6, 10, 3)) * 80).astype(np.uint8).repeat(8, 0).repeat(8, 1)
  exif = Image.Exif()
  exif[0x0112] = orientation
  tagged, plain = io.BytesIO(), io.BytesIO()
  Image.fromarray(pixels).save(tagged, format="JPEG", quality=95, exif=exif.tobytes())
  Image.fromarray(pixels).save(plain, format="JPEG", quality=95)
  assert tf_ops.exif_orientation(tagged.getvalue()) == orientation
  assert tf_ops.exif_orientation(plain.getvalue()) == 1
  stored = tf_ops.decode(tf.constant(plain.getvalue()), pixels.shape[:2]).numpy()  # full size
  upright = Image.fromarray(stored)
  upright.getexif()[0x0112] = orientation
  want = np.asarray(ImageOps.exif_transpose(upright))
  got = tf_ops.decode(tf.constant(tagged.getvalue()), want.shape[:2]).numpy()
  np.testing.assert_array_equal(got, want)
  # At reduced scale too, the decode still covers the upright size it was asked for.
  half = tf_ops.decode(tf.constant(tagged.getvalue()), (want.shape[0] // 2, want.shape[1] // 2))
  assert half.shape == (want.shape[0] // 2, want.shape[1] // 2, 3)


def test_exif_orientation_of_junk_is_1():
  for data in (b"", b"\xff\xd8", b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00II*\x00\xff\xff",
               b"\x89PNG\r\n"):
    assert tf_ops.exif_orientation(data) == 1


# ---- folder -----------------------------------------------------------------------------

def test_folder_listing_never_enters_a_folder_twice(tmp_path, caplog):
  root = tmp_path / "images"
  (root / "a" / "b").mkdir(parents=True)
  for i, folder in enumerate([root, root / "a", root / "a" / "b"]):
    for j in range(4):
      Image.fromarray(np.full((8, 8, 3), 10 * i + j, np.uint8)).save(folder / f"{j}.png")
  os.symlink(root, root / "a" / "b" / "loop")        # back to the root
  os.symlink(root / "a", root / "a" / "b" / "again")  # a second way into a
  os.symlink(root / "a", root / "twin")               # and a third
  os.symlink(tmp_path / "gone", root / "broken")      # a broken link: not a folder, no image
  with caplog.at_level(logging.WARNING):
    files = folder_lib.list_images(str(root))
  assert len(files) == 12 and len(set(files)) == 12
  warning = " ".join(r.getMessage() for r in caplog.records)
  assert "skipped 3 links to folders already listed" in warning
  assert all(n in warning for n in ("twin", os.path.join("a", "b", "loop"),
                                    os.path.join("a", "b", "again")))


def test_small_datasets_are_warned_about():
  from jaxgan.training import console  # pylint: disable=g-import-not-at-top
  assert "fewer than one batch of 64" in console.small_data_warning(20, 64)
  assert "fewer than 4 batches of 64" in console.small_data_warning(200, 64)
  assert (console.small_data_warning(256, 64) is None
          and console.small_data_warning(None, 64) is None)



def test_folder_mixed_formats_skips_corrupt_with_one_warning(mixed_folder, caplog):
  spec = spec_lib.from_config(make_config(f"folder:{mixed_folder}"))
  with caplog.at_level(logging.WARNING):
    store = batches_lib.build_store(spec)
  assert len(store) == NUM_GOOD_FILES
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
              and "could not be decoded" in r.getMessage()]
  assert len(warnings) == 1
  assert "skipped 2 of 11" in warnings[0]
  assert "corrupt.jpg" in warnings[0] and os.path.join("sub", "truncated.png") in warnings[0]
  assert "notes.txt" not in warnings[0]


def test_folder_composites_rgba_onto_background(mixed_folder, tmp_path):
  os.symlink(mixed_folder / "rgba.png", tmp_path / "only.png")
  c = make_config(f"folder:{tmp_path}", size=(30, 40), resize="resize", flip=False)
  image = input_pipeline.load_examples(c, 1)["image"][0]
  np.testing.assert_allclose((image[:, :20] + 1) * 127.5, np.broadcast_to(BACKGROUND, (30, 20, 3)),
                             atol=1e-4)


@pytest.mark.parametrize("size,channels,resize", [
    ((16, 16), 3, "center_crop"), ((24, 20), 3, "resize"), ((20, 24), 1, "center_crop"),
    ((16, 16), 1, "random_crop"), ((18, 14), 3, "random_crop")])
def test_folder_output_shape_and_range(mixed_folder, size, channels, resize):
  c = make_config(f"folder:{mixed_folder}", size=size, channels=channels, resize=resize)
  with input_pipeline.create_iterator(c) as it:
    batches = take(it, 3)
  for b in batches:
    x = np.asarray(b["image"])
    assert x.shape == (8, *size, channels) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.std() > 0.1


def test_missing_or_empty_folder_is_an_error_naming_the_path(tmp_path):
  missing = tmp_path / "no_such_dir"
  with pytest.raises(ValueError, match="no_such_dir.*does not exist"):
    input_pipeline.host_iterator(make_config(f"folder:{missing}"))
  (tmp_path / "empty" / "sub").mkdir(parents=True)
  (tmp_path / "empty" / "sub" / "readme.txt").write_text("x")
  with pytest.raises(ValueError, match="no images.*empty"):
    input_pipeline.host_iterator(make_config(f"folder:{tmp_path / 'empty'}"))
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "x.png").write_bytes(b"junk")
  with pytest.raises(ValueError, match="none of the 1 image files"):
    input_pipeline.host_iterator(make_config(f"folder:{tmp_path / 'bad'}"))


def test_cache_memory_disk_and_none_give_identical_batches(mixed_folder, tmp_path, monkeypatch):
  kw = dict(resize="random_crop", size=(14, 12))
  src = f"folder:{mixed_folder}"
  memory = host(make_config(src, cache="memory", **kw), 4, start_step=2)
  disk = host(make_config(src, cache=str(tmp_path / "cache"), **kw), 4, start_step=2)
  assert len(list((tmp_path / "cache").glob("folder-*.npy"))) == 1
  none = host(make_config(src, cache="none", **kw), 4, start_step=2)
  assert_batches_equal(memory, disk)
  assert_batches_equal(memory, none)

  def no_decoding(*args, **kwargs):
    raise AssertionError("decoded although cached on disk")
  monkeypatch.setattr(decode, "decode_all", no_decoding)
  again = host(make_config(src, cache=str(tmp_path / "cache"), **kw), 4, start_step=2)
  assert_batches_equal(memory, again)


# ---- order, determinism, resume ---------------------------------------------------------

def test_order_is_a_new_permutation_every_epoch():
  n = 10
  idx = order.example_indices(np.arange(3 * n), n, seed=1)
  epochs = idx.reshape(3, n)
  for e in epochs:
    assert sorted(e) == list(range(n))
  assert not np.array_equal(epochs[0], epochs[1])
  np.testing.assert_array_equal(idx[7:15], order.example_indices(np.arange(7, 15), n, seed=1))
  flips = finish.flips(1, np.arange(10_000))
  assert 0.47 < flips.mean() < 0.53
  u = finish.uniform(1, np.arange(10_000), 2)
  assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.02


SOURCES = {
    "builtin": lambda folder: make_config(),
    "folder": lambda folder: make_config(f"folder:{folder}", resize="random_crop"),
    "folder_nocache": lambda folder: make_config(f"folder:{folder}", cache="none"),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_same_seed_same_batches_and_exact_resume(name, mixed_folder):
  config = SOURCES[name](mixed_folder)
  with input_pipeline.create_iterator(config) as it:
    full = take(it, 6)
    assert it.step == 6
  with input_pipeline.create_iterator(config) as it:
    assert_batches_equal(full, take(it, 6))
  with input_pipeline.create_iterator(config, start_step=it.step - 2) as resumed:
    assert resumed.step == 4
    assert_batches_equal(full[4:], take(resumed, 2))
  config.seed += 1
  other = host(config, 2)
  assert not np.array_equal(np.asarray(full[0]["image"]), other[0]["image"])


def test_flip_is_random_per_example():
  c = make_config(flip=True)
  flipped = host(c, 3)
  c.data.flip = False
  plain = host(c, 3)
  same = [np.array_equal(a, b) for x, y in zip(flipped, plain)
          for a, b in zip(x["image"], y["image"])]
  mirrored = [np.array_equal(a[:, ::-1], b) for x, y in zip(flipped, plain)
              for a, b in zip(x["image"], y["image"])]
  assert all(s or m for s, m in zip(same, mirrored)) and any(same) and any(mirrored)


def test_two_processes_see_disjoint_examples_covering_the_dataset():
  c = make_config(flip=False)  # builtin_size 24, global batch 8: one epoch = 3 batches.
  single = host(c, 3)
  halves = [host(c, 3, process_index=p, process_count=2) for p in range(2)]
  ids = [{b.tobytes() for batch in h for b in batch["image"]} for h in halves]
  assert len(ids[0]) == len(ids[1]) == 12 and not ids[0] & ids[1]
  everything = {b.tobytes() for batch in single for b in batch["image"]}
  assert ids[0] | ids[1] == everything and len(everything) == 24
  for k in range(3):  # The global batch does not depend on the number of processes.
    np.testing.assert_array_equal(
        single[k]["image"], np.concatenate([halves[0][k]["image"], halves[1][k]["image"]]))


def test_batch_is_sharded_over_the_data_axis_of_several_devices():
  code = """
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import jax, numpy as np
from jaxgan import config as config_lib, input_pipeline
c = config_lib.default_config()
c.data.image_size, c.data.builtin_size, c.train.batch_size = (8, 8), 16, 8
with input_pipeline.create_iterator(c) as it:
  batch = next(it)["image"]
assert len(jax.devices()) == 4 and batch.shape == (8, 8, 8, 3), batch.shape
assert [s.data.shape for s in batch.addressable_shards] == [(2, 8, 8, 3)] * 4
host = next(input_pipeline.host_iterator(c))["image"]
np.testing.assert_array_equal(np.asarray(batch), host)
"""
  subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_batch_must_divide_by_process_count():
  with pytest.raises(ValueError, match="8 images.*3 processes"):
    input_pipeline.host_iterator(make_config(), process_index=0, process_count=3)


def test_load_examples_takes_num():
  out = input_pipeline.load_examples(make_config(), 13)
  assert out["image"].shape == (13, 16, 16, 3)
  np.testing.assert_array_equal(out["image"][:8], host(make_config(), 1)[0]["image"])


# ---- prefetch thread --------------------------------------------------------------------

def test_close_stops_the_prefetch_thread_and_errors_propagate():
  it = input_pipeline.create_iterator(make_config())
  next(it)
  assert any(t.name == "jaxgan-prefetch" for t in threading.enumerate())
  it.close()
  assert it._thread is not None and not it._thread.is_alive()
  with pytest.raises(RuntimeError, match="closed"):
    next(it)

  def failing():
    yield {"image": np.zeros((2, 1))}
    raise OSError("disk gone")
  it = input_pipeline.DataIterator(failing(), lambda b: b, prefetch=2)
  next(it)
  for _ in range(2):  # The error is raised again, not a hang.
    with pytest.raises(OSError, match="disk gone"):
      next(it)
  it.close()

  it = input_pipeline.create_iterator(make_config())
  thread = it._thread
  del it  # An abandoned iterator's thread ends.
  thread.join(timeout=5)
  assert not thread.is_alive()


# ---- TFDS -------------------------------------------------------------------------------

@pytest.mark.parametrize("name,channels", [("mnist", 3), ("cifar10", 1)])
def test_tfds_mock_data(name, channels):
  c = make_config(f"tfds:{name}", size=(12, 10), channels=channels, resize="resize")
  with tfds.testing.mock_data(num_examples=20):
    with input_pipeline.create_iterator(c) as it:
      batches = take(it, 4)
    again = host(c, 4)
  for b in batches:
    assert b["image"].shape == (8, 12, 10, channels) and b["label"].shape == (8,)
    x = np.asarray(b["image"])
    assert -1 <= x.min() and x.max() <= 1 and b["label"].dtype == np.int32
  assert_batches_equal(batches, again)


def test_tfds_spec_parsing_and_image_key():
  from jaxgan.data import tfds_source  # pylint: disable=g-import-not-at-top
  assert tfds_source.parse_spec("mnist") == ("mnist", "train")
  assert tfds_source.parse_spec("cifar10:test") == ("cifar10", "test")
  assert tfds_source.parse_spec("celeb_a/align:2.0.1:train[:80%]") == (
      "celeb_a/align:2.0.1", "train[:80%]")
  assert tfds_source.parse_spec("mnist:3.*.*") == ("mnist:3.*.*", "train")
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(ValueError, match="'nope' is not a feature.*'image'"):
      input_pipeline.host_iterator(make_config("tfds:mnist", tfds_image_key="nope"))


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
  """A real, prepared 20-example TFDS dataset: image i is filled with 10*i, label i % 3."""

  class JaxganTinyImages(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(6, 5, 3)), "label": tfds.features.ClassLabel(
              num_classes=3)}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      for i in range(20):
        yield i, {"image": np.full((6, 5, 3), 10 * i, np.uint8), "label": i % 3}

  data_dir = str(tmp_path_factory.mktemp("tfds"))
  JaxganTinyImages(data_dir=data_dir).download_and_prepare()
  return functools.partial(make_config, "tfds:jaxgan_tiny_images", size=(6, 5), resize="resize",
                           flip=False, tfds_data_dir=data_dir, batch=4, shuffle_buffer=20)


def _ids(batch):
  ids = np.round((np.asarray(batch["image"])[:, 0, 0, 0] + 1) * 127.5 / 10).astype(int)
  np.testing.assert_array_equal(np.asarray(batch["label"]), ids % 3)
  return ids


def test_tfds_reshuffles_every_epoch_deterministically_and_resumes(tiny_tfds):
  c = tiny_tfds()
  with input_pipeline.create_iterator(c) as it:
    full = take(it, 12)
  ids = np.concatenate([_ids(b) for b in full])[:40].reshape(2, 20)  # 12 x 4 = 2.4 epochs
  assert sorted(ids[0]) == sorted(ids[1]) == list(range(20))
  assert not np.array_equal(ids[0], ids[1]) and not np.array_equal(ids[0], np.arange(20))
  assert_batches_equal(full, host(c, 12))
  assert_batches_equal(full[7:], host(c, 5, start_step=7))


def test_tfds_two_processes_read_disjoint_halves(tiny_tfds):
  c = tiny_tfds()
  per_process = [np.concatenate([_ids(b) for b in host(c, 5, process_index=p, process_count=2)])
                 for p in range(2)]  # 5 local batches of 2 = one epoch of 10 examples each.
  assert len(set(per_process[0])) == len(set(per_process[1])) == 10
  assert sorted(np.concatenate(per_process)) == list(range(20))


def test_tfds_random_crop_and_disk_cache(tiny_tfds, tmp_path):
  c = tiny_tfds(resize="random_crop", size=(4, 4), cache=str(tmp_path))
  batches = host(c, 3)
  assert batches[0]["image"].shape == (4, 4, 4, 3) and batches[0]["label"].shape == (4,)
  assert_batches_equal(batches[1:], host(c, 2, start_step=1))


# ---- the real data in ../shared/data ----------------------------------------------------

def _shared(sub):
  path = SHARED_DATA / sub
  if not path.is_dir():
    pytest.skip(f"{path} is absent")
  return path


@pytest.mark.parametrize("sub,size,channels", [
    ("pokemon/thumbnails", (16, 16), 3), ("art/wikiart_abstract_224", (24, 20), 1)])
def test_real_folders_load(sub, size, channels):
  path = _shared(sub)
  c = make_config(f"folder:{path}", size=size, channels=channels)
  spec = spec_lib.from_config(c)
  store = batches_lib.build_store(spec)
  assert len(store) == len(folder_lib.list_images(str(path))) and not store.skipped
  batch = next(batches_lib.stored_batches(spec, store, 0, 0, 1))["image"]
  assert batch.shape == (8, *size, channels) and -1 <= batch.min() and batch.max() <= 1


def test_kandinsky_large_non_square_jpegs():
  path = _shared("art/kandinsky")  # 331 JPEGs up to 2200x2765: DCT-scaled decoding, ~2 s.
  c = make_config(f"folder:{path}", size=(32, 24), resize="random_crop")
  with input_pipeline.create_iterator(c) as it:
    batches = take(it, 3)
  assert all(b["image"].shape == (8, 32, 24, 3) for b in batches)


def test_tfds_labels_are_checked_against_num_classes(tiny_tfds):
  c = tiny_tfds()
  c.model.num_classes = 3
  batches = input_pipeline.load_examples(c, 8)
  assert set(batches["label"].tolist()) == {0, 1, 2}
  c.model.num_classes = 2
  with pytest.raises(ValueError, match=r"has label 2, outside the range 0..1 of "
                     r"config.model.num_classes=2"):
    input_pipeline.load_examples(c, 8)


def test_tfds_without_labels_for_a_conditional_model_is_an_error():
  c = make_config("tfds:celeb_a", size=(12, 10), resize="resize")
  c.model.num_classes = 4
  with tfds.testing.mock_data(num_examples=4):
    with pytest.raises(ValueError, match=r"num_classes=4 is invalid: tfds:celeb_a has no "
                       r"integer 'label' feature"):
      input_pipeline.host_iterator(c)
