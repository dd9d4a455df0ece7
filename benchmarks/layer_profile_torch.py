r"""PyTorch side of benchmarks/layer_profile.py: a timing server for one conv layer pass at a time.

Run by layer_profile.py with the torch venv's python (never imported by jaxgan):
  /path/to/torch-venv/bin/python benchmarks/layer_profile_torch.py [--threads 2]

Protocol (one JSON object a line on stdin, one JSON answer a line on stdout):
  {"layer": {"kind": "conv"|"tconv", "b": 64, "h": 16, "cin": 128, "ho": 8, "cout": 256},
   "pass": "fwd"|"dx"|"dw", "reps": n}  ->  {"s": [seconds of each of the n calls]}
  {"quit": true}                        ->  exits

Layers are NCHW, float32, k4 s2 p1 (F.conv2d / F.conv_transpose2d). fwd runs under no_grad;
dx is torch.autograd.grad of <y, g> with respect to the input only (the weight does not
require grad), dw with respect to the weight only (the input does not): each builds its own
graph once and times only the backward call (retain_graph=True).
"""

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F


def make(layer, pss):
  b, h, cin, ho, cout = layer["b"], layer["h"], layer["cin"], layer["ho"], layer["cout"]
  gen = torch.Generator().manual_seed(0)
  x = torch.randn(b, cin, h, h, generator=gen)
  if layer["kind"] == "conv":
    w = torch.randn(cout, cin, 4, 4, generator=gen) * 0.02
    op = lambda x, w: F.conv2d(x, w, stride=2, padding=1)  # noqa: E731
  else:
    w = torch.randn(cin, cout, 4, 4, generator=gen) * 0.02
    op = lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1)  # noqa: E731
  if pss == "fwd":
    def run():
      with torch.no_grad():
        return op(x, w)
    return run
  wrt = x if pss == "dx" else w
  wrt.requires_grad_(True)
  y = op(x, w)
  assert y.shape == (b, cout, ho, ho), (y.shape, layer)
  g = torch.randn(y.shape, generator=gen)
  return lambda: torch.autograd.grad(y, wrt, g, retain_graph=True)[0]


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--threads", type=int, default=2)
  args = ap.parse_args()
  torch.set_num_threads(args.threads)
  cache = {}
  for line in sys.stdin:
    req = json.loads(line)
    if req.get("quit"):
      break
    key = (json.dumps(req["layer"], sort_keys=True), req["pass"])
    if key not in cache:
      cache.clear()  # one layer pass at a time keeps memory small
      cache[key] = make(req["layer"], req["pass"])
      cache[key]()  # warm-up
      cache[key]()
    fn, times = cache[key], []
    for _ in range(req["reps"]):
      t0 = time.perf_counter()
      fn()
      times.append(time.perf_counter() - t0)
    print(json.dumps({"s": times, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
  main()
