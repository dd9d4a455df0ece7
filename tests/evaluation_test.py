"""The metrics in the training loop and from the command line, on the tiny config with the
seeded random feature network (the Inception weights cannot be had here)."""

import json
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan import sharding
from jaxgan import workdir as workdir_lib
from jaxgan.metrics import evaluation, networks, offline
from jaxgan.training import assemble
from jaxgan.training import loop
from tests.conftest import REPO, load_config, subprocess_env

VALUES = ("eval/fid", "eval/kid", "eval/kid_std", "eval/is", "eval/is_std", "eval/precision",
          "eval/recall")


def metrics_config(tmp_path, num_steps, **options):
  c = load_config()
  c.train.num_steps, c.checkpoint_every, c.sample_every, c.log_every = num_steps, 2, 100, 2
  c.evals.metrics = ml_collections.ConfigDict({
      "type": "metrics", "every": 2, "network": "random", "num": 16, "batch": 8,
      "metrics": "fid,kid,is,pr", "cache_dir": str(tmp_path / "reference"), **options})
  return c


@pytest.mark.slow
def test_in_loop_metrics_keep_the_best_checkpoint_across_resumes(tmp_path):
  workdir = tmp_path / "run"
  wd = workdir_lib.Workdir(workdir)
  loop.train_and_evaluate(metrics_config(tmp_path, 4), str(workdir))
  records = {r["step"]: r for r in workdir_lib.read_metrics(wd.metrics)}
  for step in (2, 4):
    assert all(np.isfinite(records[step][k]) for k in VALUES), records[step]
    assert "loss/d" in records[step]  # the evaluator's record merges with the losses'
  assert 0 <= records[4]["eval/precision"] <= 1 and records[4]["eval/is"] >= 1
  fids = {s: records[s]["eval/fid"] for s in (2, 4)}
  best_step = min(fids, key=fids.get)
  best = json.loads(wd.best_json.read_text())
  assert best == {"value_name": "fid", "value": fids[best_step], "step": best_step,
                  "evaluator": "metrics"}
  assert sorted(int(p.name) for p in wd.best.iterdir()) == [best_step]
  assert len(list((tmp_path / "reference").glob("reference-*.npz"))) == 1

  # A resumed run keeps the best so far: nothing it evaluates beats a value of -1 ...
  wd.best_json.write_text(json.dumps({**best, "value": -1.0}))
  loop.train_and_evaluate(metrics_config(tmp_path, 6), str(workdir))
  assert "eval/fid" in workdir_lib.read_metrics(wd.metrics)[-1]
  assert json.loads(wd.best_json.read_text())["value"] == -1.0
  assert sorted(int(p.name) for p in wd.best.iterdir()) == [best_step]

  # ... and replaces a worse one, deleting the old best checkpoint.
  wd.best_json.write_text(json.dumps({**best, "value": 1e9}))
  loop.train_and_evaluate(metrics_config(tmp_path, 8), str(workdir))
  last = workdir_lib.read_metrics(wd.metrics)[-1]
  assert json.loads(wd.best_json.read_text())["step"] == 8 == last["step"]
  assert sorted(int(p.name) for p in wd.best.iterdir()) == [8]

  # The command line scores the kept checkpoint as the loop did (the same latents, the same
  # reference features, from the cache).
  values = offline.evaluate(workdir=str(workdir), step="best", network="random", num=16,
                             batch=8, metrics="fid,kid", cache_dir=str(tmp_path / "reference"))
  assert values["step"] == 8 and values["ema"] is False
  assert values["fid"] == pytest.approx(last["eval/fid"], rel=1e-6)


def test_reference_features_are_cached_by_key(tmp_path, monkeypatch):
  config = load_config()
  embed = evaluation.Embedder(networks.build("random"), sharding.make_mesh(jax.devices()[:1]), 8)
  cache = tmp_path / "cache"
  first = evaluation.reference_features(config, embed, 20, cache)
  assert first["pool"].shape == (20, 64) and first["logits"].shape == (20, 10)
  # All of a smaller dataset: the tiny config's builtin set has 64 images.
  assert len(evaluation.reference_features(config, embed, 100, cache)["pool"]) == 64
  files = sorted(cache.glob("reference-*.npz"))
  assert len(files) == 2

  def no_embedding(*args, **kwargs):
    raise AssertionError("recomputed although the cache holds these features")
  with monkeypatch.context() as m:
    m.setattr(evaluation, "embed_batches", no_embedding)
    again = evaluation.reference_features(config, embed, 20, cache)
  np.testing.assert_array_equal(again["pool"], first["pool"])

  # A file whose stored key differs (here: another network's) is recomputed.
  path = next(p for p in files if len(np.load(p)["pool"]) == 20)
  with np.load(path) as f:
    key = json.loads(str(f["key"]))
    np.savez(path, key=json.dumps({**key, "network": "other"}), pool=f["pool"][:, :3],
             logits=f["logits"])
  np.testing.assert_array_equal(evaluation.reference_features(config, embed, 20, cache)["pool"],
                                first["pool"])
  # Another resolution is another key.
  config.data.image_size = (8, 8)
  assert len(list(cache.glob("reference-*.npz"))) == 2
  evaluation.reference_features(config, embed, 20, cache)
  assert len(list(cache.glob("reference-*.npz"))) == 3


@pytest.mark.parametrize("option,value,message", [
    ("metrics", "fid,lpips", "expected a comma-separated list of fid, kid, is, pr"),
    ("keep_best", "is", "'fid'"),
    ("num", 1, "expected a whole number >= 2"),
    ("network", "vgg", "expected one of 'inception', 'random'"),
    ("resolution", 64, "not an option of evaluator type 'metrics'"),
])
def test_bad_metrics_options_are_config_errors(tmp_path, option, value, message):
  config = metrics_config(tmp_path, 4, metrics="fid")
  config.evals.metrics[option] = value
  with pytest.raises(config_lib.ConfigError, match=f"config.evals.metrics.{option}=.*{message}"):
    assemble.validate(config)


def test_one_best_checkpoint_per_run(tmp_path):
  config = metrics_config(tmp_path, 4, metrics="fid")
  config.evals.fid50k = config.evals.metrics.copy_and_resolve_references()
  with pytest.raises(config_lib.ConfigError, match="one best checkpoint per run: the 'metrics' "
                     "entries fid50k, metrics all keep one"):
    assemble.validate(config)
  config.evals.fid50k.keep_best = ""
  assemble.validate(config)


def test_missing_inception_weights_fail_before_training(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  monkeypatch.setenv("TORCH_HOME", str(tmp_path))
  monkeypatch.delenv("JAXGAN_INCEPTION_WEIGHTS", raising=False)
  config = metrics_config(tmp_path, 4, weights="")
  config.evals.metrics.network = "inception"
  with pytest.raises(config_lib.ConfigError, match="evals.metrics.weights=.*download it from "
                     "https://github.com/mseitzer/pytorch-fid/releases"):
    assemble.validate(config)


def test_command_line_scores_two_image_sets(tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
  np.savez(tmp_path / "samples.npz", images=images)
  out = tmp_path / "scores.json"
  proc = subprocess.run(
      [sys.executable, "-m", "jaxgan.evaluate", f"--images={tmp_path / 'samples.npz'}",
       "--ref=builtin:shapes", "--size=16,16", "--network=random", "--num=24", "--batch=8",
       "--metrics=fid,kid,pr", f"--cache_dir={tmp_path}", f"--json={out}"],
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert lines[0].startswith(f"{tmp_path / 'samples.npz'}: 24 images vs 24 reference images")
  assert [l.split()[0] for l in lines[1:-1]] == ["fid", "kid", "precision", "recall"]
  values = json.loads(lines[-1])
  assert values == json.loads(out.read_text())
  assert values["fid"] > 0.01  # noise is not the shapes; a set against itself is 0 below
  same = offline.evaluate(images=str(tmp_path / "samples.npz"),
                           ref=str(tmp_path / "samples.npz"), network="random", num=24, batch=8,
                           metrics="fid,pr")
  assert abs(same["fid"]) < 1e-6 and same["precision"] == same["recall"] == 1.0
  with pytest.raises(ValueError, match="--images needs --ref"):
    offline.evaluate(images=str(tmp_path / "samples.npz"), network="random")
