"""The FID Inception port against pytorch-fid's network, the weight mapping, and the torch
state-dict reader.

tests/fixtures/inception_reference.npz was made by tests/fixtures/make_inception_reference.py
with torch, torchvision and pytorch-fid: pytorch-fid's own network with the seeded random
weights of tests/fixtures/inception_inputs.py, on the fixed images there.
"""

import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.metrics import inception
from jaxgan.metrics import torch_state

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import inception_inputs  # noqa: E402  pylint: disable=g-import-not-at-top


@pytest.fixture(scope="module")
def reference():
  with np.load(FIXTURES / "inception_reference.npz") as f:
    return {"pool": f["pool"], "logits": f["logits"], "shapes": json.loads(str(f["shapes"]))}


def test_port_equals_pytorch_fid_on_the_same_weights(reference):
  variables = inception.variables_from_state_dict(
      inception_inputs.random_state_dict(reference["shapes"]))
  # NCHW in [0, 1] as torch took them -> NHWC in [-1, 1]; each size resized to 299x299 (up
  # from 64x64 and the non-square 37x50, down from 320x300), then one batch for the network.
  batches = [jnp.asarray(b.transpose(0, 2, 3, 1)) * 2 - 1 for b in inception_inputs.images()]
  resized = jnp.concatenate([inception.resize(b) for b in batches])
  out = jax.jit(inception.FIDInception().apply)(variables, resized)
  for key in ("pool", "logits"):
    got, want = np.asarray(out[key]), reference[key]
    assert got.shape == want.shape == (4, {"pool": 2048, "logits": 1008}[key])
    scale = np.abs(want).max()
    assert scale > 1.0  # the random network's features are not degenerate
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * scale)


def test_every_tensor_of_the_state_dict_is_mapped(reference):
  shapes = reference["shapes"]
  # 94 convs (weight; BatchNorm weight, bias, running mean and var, num_batches_tracked), fc.
  assert len(shapes) == 94 * 6 + 2
  state = inception_inputs.random_state_dict(shapes)
  variables = inception.variables_from_state_dict(state)
  # Every variable of the port is filled, and from the right tensor with the right layout.
  flat = {"/".join(k.key for k in path): v
          for path, v in jax.tree_util.tree_flatten_with_path(variables)[0]}
  expected = jax.tree_util.tree_flatten_with_path(inception.variable_shapes())[0]
  assert len(flat) == len(expected) == len(shapes) - 94  # all but num_batches_tracked
  np.testing.assert_array_equal(flat["params/Mixed_6b/branch7x7_2/conv/kernel"],
                                state["Mixed_6b.branch7x7_2.conv.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(flat["batch_stats/Mixed_7c/branch_pool/bn/var"],
                                state["Mixed_7c.branch_pool.bn.running_var"])
  np.testing.assert_array_equal(flat["params/Conv2d_1a_3x3/bn/scale"],
                                state["Conv2d_1a_3x3.bn.weight"])
  np.testing.assert_array_equal(flat["params/fc/kernel"], state["fc.weight"].T)


def test_a_state_dict_of_another_network_is_refused(reference):
  state = inception_inputs.random_state_dict(reference["shapes"])
  missing = {k: v for k, v in state.items() if not k.startswith("Mixed_7c.")}
  with pytest.raises(ValueError, match=r"no value for 45 of its variables \(batch_stats/Mixed_7c"):
    inception.variables_from_state_dict(missing)
  extra = {**state, "AuxLogits.fc.weight": np.zeros((1008, 768), np.float32)}
  with pytest.raises(ValueError, match=r"1 tensors that are not part of it \(AuxLogits.fc.weight"):
    inception.variables_from_state_dict(extra)
  wrong = {**state, "fc.bias": np.zeros((1000,), np.float32)}
  with pytest.raises(ValueError, match=r"fc.bias has shape \(1000,\).*expects \(1008,\)"):
    inception.variables_from_state_dict(wrong)


@pytest.mark.parametrize("name", ["torch_zip.pth", "torch_legacy.pth"])
def test_torch_state_dict_reader(name):
  """Both formats torch.save writes: dtypes, a 0-d tensor, a transposed view and an offset
  slice of a shared storage."""
  got = torch_state.load_state_dict(FIXTURES / name)
  want = inception_inputs.small_state_dict()
  assert list(got) == list(want)
  for key, value in want.items():
    assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
    np.testing.assert_array_equal(got[key], value)


def test_reader_refuses_code_in_the_pickle(tmp_path):
  class Evil:
    def __reduce__(self):
      return (print, ("this must not run",))
  path = tmp_path / "evil.pth"
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
  with pytest.raises(pickle.UnpicklingError, match=r"\.print is not allowed in a state dict"):
    torch_state.load_state_dict(path)
  not_torch = tmp_path / "not_torch.pth"
  not_torch.write_bytes(pickle.dumps(123))
  with pytest.raises(ValueError, match="neither a torch zip archive nor a legacy torch file"):
    torch_state.load_state_dict(not_torch)


def test_weights_file_missing_or_wrong(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
  monkeypatch.delenv("JAXGAN_INCEPTION_WEIGHTS", raising=False)
  with pytest.raises(FileNotFoundError) as missing:
    inception.load_weights()
  for part in (inception.WEIGHTS_FILE, inception.WEIGHTS_URL, inception.WEIGHTS_SHA256,
               str(tmp_path / "torch" / "hub" / "checkpoints")):
    assert part in str(missing.value)
  wrong = tmp_path / "cache" / "jaxgan" / inception.WEIGHTS_FILE
  wrong.parent.mkdir(parents=True)
  wrong.write_bytes(b"not the weights")
  assert inception.find_weights() == wrong  # found in jaxgan's cache
  with pytest.raises(ValueError, match=f"has sha256 [0-9a-f]{{64}}, but .* have "
                     f"{inception.WEIGHTS_SHA256}.*{inception.WEIGHTS_URL}"):
    inception.load_weights()


def test_resize_is_torch_bilinear_without_antialiasing():
  """Half-pixel bilinear: a 2x2 image up to 4x4 interpolates with weights 1/4 and 3/4 and
  clamps at the border; grayscale is repeated to RGB."""
  x = jnp.array([[0.0, 1.0], [2.0, 3.0]])[None, :, :, None]
  out = np.asarray(inception.resize(x, 4))
  assert out.shape == (1, 4, 4, 3)
  np.testing.assert_allclose(out[0, 0, :, 0], [0.0, 0.25, 0.75, 1.0])
  np.testing.assert_allclose(out[0, :, 0, 1], [0.0, 0.5, 1.5, 2.0])
