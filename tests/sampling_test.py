"""Tests of jaxgan.sampling, the sampling command and the notebook, on a trained workdir."""

import subprocess
import sys

import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from jaxgan import images
from jaxgan import sample as sample_cli
from jaxgan import sampling
from jaxgan import workdir as workdir_lib
from tests.conftest import REPO, TRAINED_STEPS, subprocess_env

NOTEBOOK = REPO / "notebooks" / "sample.ipynb"


def test_latents_are_a_pure_function_of_each_seed():
  z = sampling.latents([5, 1, 9], 16)
  assert z.shape == (3, 16) and z.dtype == jnp.float32
  np.testing.assert_array_equal(z[1], sampling.latents([1], 16)[0])
  np.testing.assert_array_equal(z, sampling.latents([5, 1, 9], 16))
  assert not np.allclose(z[0], z[1])
  assert abs(float(jnp.std(sampling.latents(range(200), 16))) - 1.0) < 0.05


def test_truncation_bounds_and_keeps_each_seed_on_its_side():
  free = np.asarray(sampling.latents(range(50), 32))
  for t in (2.0, 0.5):
    cut = np.asarray(sampling.latents(range(50), 32, truncation=t))
    assert np.abs(cut).max() <= t
    # Inverse-CDF sampling: the same seed moves monotonically towards 0.
    assert np.all(np.sign(cut) == np.sign(free)) and np.all(np.abs(cut) <= np.abs(free) + 1e-6)
  with pytest.raises(ValueError, match="truncation=0"):
    sampling.latents([0], 4, truncation=0)


def test_slerp_ends_norm_and_parallel_case():
  z0, z1 = jnp.array([2.0, 0.0, 0.0]), jnp.array([0.0, 2.0, 0.0])
  np.testing.assert_allclose(sampling.slerp(z0, z1, 0.0), z0, atol=1e-6)
  np.testing.assert_allclose(sampling.slerp(z0, z1, 1.0), z1, atol=1e-6)
  mid = sampling.slerp(z0, z1, 0.5)
  np.testing.assert_allclose(mid, [np.sqrt(2), np.sqrt(2), 0.0], atol=1e-6)  # On the circle.
  np.testing.assert_allclose(sampling.slerp(z0, 3 * z0, 0.5), 2 * z0, atol=1e-6)  # Parallel.
  path = sampling.interpolate(z0, z1, 7)
  assert path.shape == (7, 3)
  np.testing.assert_allclose(jnp.linalg.norm(path, axis=1), 2.0, atol=1e-5)
  np.testing.assert_allclose(path[jnp.array([0, -1])], jnp.stack([z0, z1]), atol=1e-6)


def test_load_generator_ema_and_plain_and_a_chosen_step(trained_workdir):
  gen = sampling.load_generator(trained_workdir)
  assert (gen.step, gen.ema) == (TRAINED_STEPS, True)
  assert tuple(gen.config.data.image_size) == (16, 16)
  plain = sampling.load_generator(trained_workdir, ema=False)
  assert not plain.ema
  a, b = sampling.sample(gen, range(4)), sampling.sample(plain, range(4))
  assert a.shape == (4, 16, 16, 3) and np.abs(a).max() <= 1.0
  assert not np.allclose(a, b)  # EMA and trained parameters differ after 6 steps.
  assert sampling.load_generator(trained_workdir, step=4).step == 4


def test_generate_in_padded_batches_matches_one_batch(trained_workdir):
  gen = sampling.load_generator(trained_workdir)
  z = sampling.latents(range(5), gen.config.model.latent_dim)
  np.testing.assert_allclose(sampling.generate(gen, z, batch_size=2), sampling.generate(gen, z),
                             atol=1e-5)


def test_write_samples_interpolation_truncation_and_separate_files(trained_workdir, tmp_path):
  out = tmp_path / "lerp.png"
  message = sample_cli.write_samples(str(trained_workdir), str(out), interpolate=(3, 7), frames=5,
                                     truncation=0.7, separate_dir=str(tmp_path / "each"))
  assert "interpolation from seed 3 to 7" in message
  with Image.open(out) as im:
    t = 16 * images.display_factor(5, (16, 16), nrow=5) + 2  # 16 * 7 + 2
    assert im.size == (5 * t + 2, t + 2) and 5 * t + 2 >= 512  # One row of 5 frames.
  files = sorted(p.name for p in (tmp_path / "each").iterdir())
  assert files == ["0000.png", "0001.png", "0002.png", "0003.png", "0004.png"]
  assert Image.open(tmp_path / "each" / "0000.png").size == (16, 16)


def test_parse_seeds():
  assert sample_cli.parse_seeds("0-3,7, 9-9") == [0, 1, 2, 3, 7, 9]
  for bad in ("", "a", "3-", "-2"):
    with pytest.raises(ValueError):
      sample_cli.parse_seeds(bad)


def test_sample_command_writes_a_grid_and_the_summary(trained_workdir, tmp_path):
  out = tmp_path / "samples.png"
  base = [sys.executable, "-m", "jaxgan.sample", f"--workdir={trained_workdir}"]
  proc = subprocess.run(base + ["--seeds=0-8", "--truncation=0.7", f"--out={out}"], cwd=REPO,
                        env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"Wrote 9 samples to {out} (checkpoint {TRAINED_STEPS}, EMA" in proc.stderr
  t = 16 * images.display_factor(9, (16, 16)) + 2  # 3x3 tiles upscaled to >= 512 pixels
  with Image.open(out) as im:
    assert im.size == (3 * t + 2, 3 * t + 2) and 3 * t + 2 >= 512

  wd = workdir_lib.Workdir(trained_workdir)
  wd.gif.unlink()
  wd.loss_plot.unlink()
  proc = subprocess.run(base + ["--summary"], cwd=REPO, env=subprocess_env(),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with Image.open(wd.gif) as gif:
    assert gif.n_frames == len(wd.sample_grids())
  assert Image.open(wd.loss_plot).format == "PNG"


def _run_notebook(workdir, monkeypatch):
  import nbclient  # pylint: disable=g-import-not-at-top
  import nbformat  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("JAXGAN_WORKDIR", str(workdir))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                   resources={"metadata": {"path": str(REPO / "notebooks")}})
  try:
    client.execute()
  except nbclient.exceptions.CellExecutionError as e:
    return notebook, e
  return notebook, None


def _outputs(notebook):
  return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


# The loss curves, the timeline strip, the nearest neighbours, a grid, the interpolation
# strip and the truncation sweep.
NOTEBOOK_PNGS = 6


def test_notebook_runs_headless_and_shows_images(trained_workdir, monkeypatch):
  notebook, error = _run_notebook(trained_workdir, monkeypatch)
  assert error is None, error
  outputs = _outputs(notebook)
  assert not [o for o in outputs if o.output_type == "error"]
  pngs = [o for o in outputs if "image/png" in o.get("data", {})]
  assert len(pngs) == NOTEBOOK_PNGS
  text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
  assert f"checkpoint of step {TRAINED_STEPS}, EMA generator, 16x16 images" in text
  assert "samples' median distance to the nearest training image" in text


def test_notebook_names_a_workdir_without_a_checkpoint(tmp_path, monkeypatch):
  notebook, error = _run_notebook(tmp_path, monkeypatch)
  assert error is not None and f"{tmp_path} has no checkpoint" in str(error)


def test_the_notebook_is_saved_with_the_outputs_of_a_pokemon_run():
  import nbformat  # pylint: disable=g-import-not-at-top
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  code = [c for c in notebook.cells if c.cell_type == "code"]
  assert all(c.outputs for c in code), "every code cell has its saved output"
  outputs = _outputs(notebook)
  assert not [o for o in outputs if o.output_type == "error"]
  assert len([o for o in outputs if "image/png" in o.get("data", {})]) == NOTEBOOK_PNGS
  assert "folder:" in code[0].outputs[0]["text"] and "pokemon" in code[0].outputs[0]["text"]
  assert "sys.path" not in "".join(c.source for c in code)
