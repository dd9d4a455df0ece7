"""Class-conditional training: labels from class subfolders, a conditional DCGAN that learns
which colour each class is, per-class grids, --labels, and the errors of unlabelled data."""

import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from jaxgan import config as config_lib
from jaxgan import images
from jaxgan import input_pipeline
from jaxgan import sample as sample_cli
from jaxgan import sampling
from jaxgan.training import assemble
from jaxgan.training import loop
from tests.conftest import REPO, load_config, subprocess_env

# Class k of the folder (sorted subfolder names) is a solid colour.
COLOURS = {"a_red": (230, 30, 30), "b_green": (30, 200, 40), "c_blue": (40, 40, 220)}


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
  root = tmp_path_factory.mktemp("colours")
  rng = np.random.default_rng(0)
  for name, rgb in COLOURS.items():
    (root / name).mkdir()
    for i in range(8):  # a little noise, so that no two images are equal
      noise = rng.integers(-10, 11, (16, 16, 3))
      pixels = np.clip(np.array(rgb)[None, None] + noise, 0, 255).astype(np.uint8)
      Image.fromarray(pixels).save(root / name / f"{i}.png")
  return root


def conditional_config(folder, num_classes=3):
  config = load_config()
  config.data.source, config.data.labels = f"folder:{folder}", "subfolders"
  config.data.flip = False
  config.model.num_classes = num_classes
  config.optim.g_lr, config.optim.d_lr = 2e-3, 2e-3
  config.train.num_steps, config.log_every = 300, 100
  config.sample_every, config.checkpoint_every = 300, 300
  config.num_samples = 12
  return config


@pytest.fixture(scope="module")
def trained(colour_folder, tmp_path_factory):
  """A workdir of a tiny conditional GAN trained 300 steps on the three colours."""
  workdir = tmp_path_factory.mktemp("cond") / "run"
  loop.train_and_evaluate(conditional_config(colour_folder), str(workdir))
  return workdir


def test_labels_come_from_the_class_subfolders(colour_folder):
  batch = input_pipeline.load_examples(conditional_config(colour_folder), 24)
  assert sorted(np.bincount(batch["label"]).tolist()) == [8, 8, 8]
  for image, label in zip(batch["image"], batch["label"]):
    mean = (image.mean(axis=(0, 1)) + 1) * 127.5
    assert np.argmin([np.abs(mean - np.array(c)).sum() for c in COLOURS.values()]) == label


def test_samples_of_class_k_are_closest_to_colour_k(trained):
  gen = sampling.load_generator(trained)
  assert gen.gan.num_classes == 3
  seeds, labels, nrow = sampling.class_grid(range(10), range(3))
  assert nrow == 10 and labels[:10] == [0] * 10 and labels[-10:] == [2] * 10
  images = sampling.sample(gen, seeds, labels=labels)
  colours = np.array(list(COLOURS.values()), np.float64)
  for k in range(3):
    means = (images[np.array(labels) == k].mean(axis=(1, 2)) + 1) * 127.5  # [10, 3]
    nearest = np.argmin(np.abs(means[:, None] - colours[None]).sum(-1), axis=1)
    assert (nearest == k).all(), (k, means.round())


def test_training_grids_show_one_row_per_class(trained):
  # 12 samples, 3 classes: 3 rows of 4 images of 16x16 upscaled k times, 2 px padding.
  k = images.display_factor(12, (16, 16), nrow=4)
  assert k == 8  # 4 * (8 * 16 + 2) + 2 = 522 >= 512 pixels wide
  t = 16 * k + 2
  with Image.open(trained / "samples" / "step_0000300.png") as im:
    assert im.size == (4 * t + 2, 3 * t + 2)
    pixels = np.asarray(im.convert("RGB"), np.float64)
  colours = np.array(list(COLOURS.values()), np.float64)
  for row in range(3):
    tile = pixels[2 + row * t:row * t + t, 2:t].mean(axis=(0, 1))
    assert np.argmin(np.abs(tile - colours).sum(-1)) == row


def test_sample_labels_flag_writes_a_per_class_grid(trained, tmp_path):
  out = tmp_path / "classes.png"
  message = sample_cli.write_samples(str(trained), str(out), labels=[2, 0], num=5)
  assert "one row per class of [2, 0]" in message
  t = 16 * images.display_factor(10, (16, 16), nrow=5) + 2
  with Image.open(out) as im:
    assert im.size == (5 * t + 2, 2 * t + 2)
    first = np.asarray(im.convert("RGB"), np.float64)[2:t, 2:t].mean(axis=(0, 1))
  assert np.argmin(np.abs(first - np.array(list(COLOURS.values()))).sum(-1)) == 2
  proc = subprocess.run([sys.executable, "-m", "jaxgan.sample", f"--workdir={trained}",
                         "--labels=7", f"--out={tmp_path / 'x.png'}"], cwd=REPO,
                        env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2  # bad usage
  assert "error: label 7 is out of range: this generator has classes 0..2" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_labels_for_an_unconditional_generator_are_an_error(trained_workdir, tmp_path):
  with pytest.raises(ValueError, match="--labels: the generator of .* is unconditional"):
    sample_cli.write_samples(str(trained_workdir), str(tmp_path / "x.png"), labels=[0])
  gen = sampling.load_generator(trained_workdir)
  with pytest.raises(ValueError, match="this generator is unconditional"):
    sampling.sample(gen, [0], labels=[0])


def test_a_conditional_config_on_unlabelled_data_is_an_error(colour_folder):
  config = conditional_config(colour_folder)
  config.data.labels = "none"
  with pytest.raises(config_lib.ConfigError, match=r"config.model.num_classes=3 is invalid: a "
                     r"class-conditional model needs labelled data"):
    assemble.validate(config)
  config = load_config()
  config.model.num_classes = 2  # the builtin dataset has no labels
  with pytest.raises(config_lib.ConfigError, match=r"num_classes=2 is invalid.*builtin:shapes"):
    assemble.validate(config)


def test_more_class_folders_than_num_classes_is_an_error(colour_folder):
  with pytest.raises(ValueError, match=r"num_classes=2 is invalid: .* has 3 class subfolders "
                     r"\(a_red, b_green, c_blue\); set model.num_classes=3"):
    input_pipeline.load_examples(conditional_config(colour_folder, num_classes=2), 4)


def test_images_outside_a_class_folder_are_an_error(tmp_path):
  (tmp_path / "a").mkdir()
  Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a" / "0.png")
  Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "loose.png")
  with pytest.raises(ValueError, match=r"1 image files lie directly in .* \(e.g. loose.png\)"):
    input_pipeline.load_examples(conditional_config(tmp_path, num_classes=1), 2)
