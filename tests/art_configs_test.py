"""The art project's systems as configs (art128, wgan_gp128, progan256 and its tiny
version): their fields, and smoke runs of a few steps on real WikiArt paintings."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan import workdir as workdir_lib
from jaxgan.training import assemble
from jaxgan.training import loop
from tests.conftest import run_main
from tests.helpers import ROOT, load_config

WIKIART = ROOT.parent / "shared" / "data" / "art" / "wikiart_abstract_224"


@pytest.fixture(scope="module")
def paintings(tmp_path_factory):
  """A folder of 8 of the shared WikiArt abstract paintings (224x224 JPEGs)."""
  if not WIKIART.is_dir():
    pytest.skip(f"{WIKIART} is absent")
  folder = tmp_path_factory.mktemp("wikiart")
  for path in sorted(WIKIART.glob("*.jpg"))[:8]:
    shutil.copy(path, folder / path.name)
  return folder


def test_art128_is_the_label_smoothed_dcgan():
  c = load_config("art128")
  assemble.validate(c)
  assert (c.train.batch_size, c.model.latent_dim, c.train.loss) == (128, 150, "non_saturating")
  assert c.train.label_smoothing == pytest.approx(0.1)  # real target 0.9
  assert (c.optim.g_lr, c.optim.d_lr, c.optim.b1, c.optim.b2) == (2e-4, 2e-4, 0.5, 0.999)
  g, d = c.model.generator, c.model.discriminator
  assert tuple(d.features) == (64, 128, 256, 512, 1024) and len(g.strides) == 5
  assert (d.norm, g.norm) == ("batch", "batch")


def test_wgan_gp128_is_a_wgan_gp_critic_and_rejects_batchnorm():
  c = load_config("wgan_gp128")
  assemble.validate(c)
  assert (c.train.loss, c.train.penalty, c.train.penalty_weight) == ("wasserstein", "wgan_gp", 10.0)
  assert (c.train.d_steps, c.train.g_steps, c.optim.b1, c.optim.b2) == (5, 1, 0.0, 0.9)
  assert c.model.discriminator.norm == "layer"
  assert tuple(c.model.discriminator.features) == tuple(load_config("art128").model.discriminator.features)
  c.model.discriminator.norm = "batch"
  with pytest.raises(config_lib.ConfigError, match=r"model.discriminator.norm='batch' is invalid: "
                     r"BatchNorm in the discriminator .* train.penalty='wgan_gp'"):
    assemble.validate(c)


def _smoke(name, paintings, tmp_path, **overrides):
  c = load_config(name)
  c.data.source = f"folder:{paintings}"
  c.data.resize = "resize"
  c.log_every = c.sample_every = c.checkpoint_every = 2
  c.num_samples = 4
  for key, value in overrides.items():
    section, field = key.split(".")
    c[section][field] = value
  state = loop.train_and_evaluate(c, str(tmp_path))
  records = workdir_lib.read_metrics(Path(tmp_path) / "metrics.jsonl")
  assert int(state.step) == c.train.num_steps and records
  assert all(np.isfinite(r["loss/d"]) and np.isfinite(r["loss/g"]) for r in records)
  assert (Path(tmp_path) / "samples.gif").exists()


@pytest.mark.slow
def test_art128_smoke_on_wikiart(paintings, tmp_path):
  _smoke("art128", paintings, tmp_path, **{"train.batch_size": 4, "train.num_steps": 2})


@pytest.mark.slow
def test_wgan_gp128_smoke_on_wikiart(paintings, tmp_path):
  # Its gradient penalty's double backward is slow on CPU (docs/pitfalls.md): batch 1.
  _smoke("wgan_gp128", paintings, tmp_path, **{"train.batch_size": 1, "train.num_steps": 1})


@pytest.mark.slow
def test_tiny_progan_smoke_on_wikiart_through_the_entry_point(paintings, tmp_path):
  # 10 steps: 4x4 stable (8 steps), then the 8x8 fade-in.
  result = run_main(tmp_path, f"--config.data.source=folder:{paintings}",
                    "--config.train.num_steps=10", config=ROOT / "configs" / "progan_tiny.py")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Step 8: stage 8x8." in result.stderr
  assert "| 8x8 fade-in 0.250, 80 img" in result.stderr
  records = workdir_lib.read_metrics(tmp_path / "metrics.jsonl")
  assert records[-1]["step"] == 10 and records[-1]["family/level"] == 1
