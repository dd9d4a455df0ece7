"""The memorisation check: nearest training images of samples, in pixels and in features."""

import json
import shutil
import subprocess
import sys

import ml_collections
import numpy as np
from PIL import Image

from jaxgan import images
from jaxgan import sampling
from jaxgan.metrics import nearest
from tests.conftest import REPO, subprocess_env


def test_nearest_equals_brute_force_and_skips_self():
  rng = np.random.default_rng(0)
  keys = rng.integers(0, 256, (30, 4, 5, 3), dtype=np.uint8)
  queries = rng.integers(0, 256, (6, 4, 5, 3), dtype=np.uint8)
  index, distance = nearest.nearest(queries, keys, 3)
  q = queries.reshape(6, -1) / 127.5 - 1
  k = keys.reshape(30, -1) / 127.5 - 1
  brute = np.sqrt(((q[:, None] - k[None]) ** 2).sum(-1))
  np.testing.assert_array_equal(index, np.argsort(brute, axis=1)[:, :3])
  np.testing.assert_allclose(distance, np.sort(brute, axis=1)[:, :3], rtol=1e-5)
  self_index, self_distance = nearest.nearest(keys, keys, 1, exclude_self=True)
  brute_kk = np.sqrt(((k[:, None] - k[None]) ** 2).sum(-1)) + np.diag([np.inf] * 30)
  np.testing.assert_array_equal(self_index[:, 0], brute_kk.argmin(1))
  np.testing.assert_allclose(self_distance[:, 0], brute_kk.min(1), rtol=1e-5)


def test_a_copied_training_image_is_found_and_counted():
  rng = np.random.default_rng(1)
  reals = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
  copies = reals[[3, 17]].astype(np.int16) + rng.integers(-2, 3, (2, 8, 8, 3))
  samples = np.concatenate([np.clip(copies, 0, 255).astype(np.uint8),
                            rng.integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)])
  found = nearest.search("pixels", samples, reals, 2, 1 / np.sqrt(8 * 8 * 3))
  assert list(found.index[:2, 0]) == [3, 17]
  assert found.distance[0, 0] < 0.02 < 0.3 < found.distance[2, 0]  # RMS units of [-1, 1]
  assert len(found.between_reals) == 50 and found.between_reals.min() > 0.3
  result = nearest.Result(samples, reals, [found])
  (line,) = nearest.summary(result)
  assert "2 of 3 samples are nearer than that to a training image" in line
  picture = nearest.grid(result, min_side=0)
  assert picture.shape == (3 * 10 + 2, 3 * 10 + 2, 3)  # 3 rows of sample + 2 neighbours
  np.testing.assert_array_equal(picture[2:10, 12:20], reals[3])  # row 0: copy, then reals[3]


def test_find_in_pixels_and_features_of_a_trained_run(trained_workdir):
  gen = sampling.load_generator(trained_workdir)
  gen.config.evals = ml_collections.ConfigDict({"metrics": {
      "type": "metrics", "every": 10, "network": "random", "num": 40, "batch": 8}})
  result = nearest.find(gen, k=3, num=4)
  assert [n.space for n in result.neighbours] == ["pixels", "features"]
  assert result.samples.shape == (4, 16, 16, 3) and len(result.reals) == 40  # num of the entry
  np.testing.assert_array_equal(
      result.samples, images.to_uint8(sampling.sample(gen, range(4))))
  pixels, features = result.neighbours
  brute = nearest.nearest(result.samples, result.reals, 3)
  np.testing.assert_array_equal(pixels.index, brute[0])
  assert features.index.shape == (4, 3) and (np.diff(features.distance, axis=1) >= 0).all()
  picture = nearest.grid(result)
  k = images.display_factor(4 * 8, (16, 16), nrow=8)
  assert picture.shape[1] == 8 * (16 * k + 2) + 2  # sample, 3 pixel, blank, 3 feature tiles


def test_sample_nearest_command_writes_the_grid_and_the_record(trained_workdir, tmp_path):
  run = shutil.copytree(trained_workdir, tmp_path / "run")
  proc = subprocess.run([sys.executable, "-m", "jaxgan.sample", f"--workdir={run}",
                         "--nearest=2", "--num=3"], cwd=REPO, env=subprocess_env(),
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "each followed by its 2 nearest of" in proc.stderr
  assert "samples' median distance to the nearest training image" in proc.stderr
  record = json.loads((run / "nearest.json").read_text())
  assert record["k"] == 2 and record["samples"] == 3 and record["spaces"] == ["pixels"]
  with Image.open(run / "nearest.png") as im:
    assert im.size[0] == im.size[1] >= 512  # 3 rows of 3 tiles
  bad = subprocess.run([sys.executable, "-m", "jaxgan.sample", f"--workdir={run}",
                        "--nearest=-1"], cwd=REPO, env=subprocess_env(), capture_output=True,
                       text=True, timeout=300, check=False)
  assert bad.returncode != 0 and "--nearest=-1" in bad.stderr
