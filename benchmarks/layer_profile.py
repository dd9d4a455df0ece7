r"""Per-layer CPU profile of the small DCGANs' convolutions: JAX formulations vs PyTorch.

  python benchmarks/layer_profile.py [--models 32,64] [--layers T2,C2] [--rounds 7] \
      [--torch_python /work/torchvenv/bin/python] [--json_out prof.json] [--check_only]

The layers (NHWC, float32, batch 64, 4x4 kernels, stride 2, PyTorch padding 1):
  T*: transposed convs H x H x Cin -> 2H x 2H x Cout (the generators');
  C*: convs H x H x Cin -> H/2 x H/2 x Cout, padding (1, 1) = flax 'SAME' (the discriminators').
For each layer three jitted programs are timed separately: the forward pass (fwd), the input
gradient (dx: the vjp with respect to x only) and the kernel gradient (dw: with respect to
the kernel only); XLA removes what each does not need. Every formulation is first checked
against the reference in value and both gradients.

Transposed-conv formulations (kernel [kh, kw, cin, cout], as jaxgan's ConvTranspose):
  col2im    jaxgan.kernels.cpu.conv_transpose_col2im (jaxgan's CPU path, unsliced): where
            Winograd applies, both gradients by the Winograd conv of its adjoint
  col2im_direct  the same forward with the direct col2im backward (two matmuls over all taps)
  lax       jaxgan.nn.lax_kernels.conv_transpose_lax (the reference), autodiff
  sub4mm    sub-pixel, exact: each of the 4 output phases is a 2x2 stride-1 conv of the input,
            as one [B*H*W, 4*Cin] x [4*Cin, Cout] im2col matmul per phase; autodiff
  sub9mm    sub-pixel with zeros: all phases as ONE [B*H*W, 9*Cin] x [9*Cin, 4*Cout] matmul of
            the 3x3 neighbourhood (2.25x the FLOPs); autodiff
  sub9conv  the same 3x3 zero-padded kernel as one stride-1 lax conv, then depth-to-space
Conv formulations:
  lax       lax.conv_general_dilated(padding='SAME') as flax nn.Conv runs it (XLA's)
  im2col    16 strided slices of the padded input -> [B*Ho*Wo, 16*Cin] x [16*Cin, Cout]; autodiff
  s2d_conv  space-to-depth(2) of the padded input, then a k2 s1 VALID lax conv (4*Cin channels)
  s2d_mm    space-to-depth(2), then 4 plain (unstrided) slices -> the same single matmul
            (`jaxgan.kernels.cpu._s2d_matmul`, whose gradients `kernels.cpu.conv` uses)
  mix       custom VJP: forward and dw by the s2d im2col matmul, dx = the transposed conv of dy
            by jaxgan's col2im (one matmul + col2im)
  winograd  space-to-depth(2), then Winograd's F(4x4, 2x2) on outputs of 8x8 and more, else
            F(2x2, 2x2) (`jaxgan.kernels.cpu._s2d_winograd`: 25 or 9 batched matmuls, 25/64 or
            9/16 of the FLOPs); autodiff
  jaxgan    `jaxgan.kernels.cpu.conv`, jaxgan's CPU path: winograd's passes, with the
            transformed input recomputed in the backward pass

With --torch_python, benchmarks/layer_profile_torch.py runs as a server process and the same
layer pass in PyTorch (F.conv2d / F.conv_transpose2d, NCHW, 2 threads) is timed in the same
rounds. Each round times every implementation once, in a rotated order (A/B/C, B/C/A, ...),
each sample the mean of enough calls to last >= --min_sample_s; the table gives medians over
the rounds (an implementation slower than 1 s a call is timed once, outside the rounds).
The per-step estimate weights each pass by how often one radford32/64 training
step (1 D + 1 G update, G's fakes reused) runs it: G layers fwd, dx, dw once each; D layers
fwd 3x (real and fake in the D update, fake in the G update), dw 2x, dx 3x (1x for D's first
layer, whose input gradient only the G update needs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxgan import hostmem  # noqa: E402  (before JAX starts its threads)

hostmem.configure()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxgan.kernels import cpu  # noqa: E402
from jaxgan.kernels import lax as lax_kernels  # noqa: E402

B = 64
_DN = ("NHWC", "HWIO", "NHWC")

# name: (kind, H in, Cin, H out, Cout)
LAYERS = {
    "T1": ("tconv", 4, 512, 8, 256),
    "T2": ("tconv", 8, 256, 16, 128),
    "T3": ("tconv", 16, 128, 32, 3),
    "T4": ("tconv", 16, 128, 32, 64),
    "T5": ("tconv", 32, 64, 64, 3),
    "C1": ("conv", 32, 3, 16, 128),
    "C4": ("conv", 64, 3, 32, 64),
    "C5": ("conv", 32, 64, 16, 128),
    "C2": ("conv", 16, 128, 8, 256),
    "C3": ("conv", 8, 256, 4, 512),
}
MODELS = {"32": ["T1", "T2", "T3", "C1", "C2", "C3"],
          "64": ["T1", "T2", "T4", "T5", "C4", "C5", "C2", "C3"]}
FIRST_D = {"32": "C1", "64": "C4"}
CURRENT = {"tconv": "col2im", "conv": "jaxgan"}
PASSES = ("fwd", "dx", "dw")


# ---------------------------------------------------------------- transposed convs

def tconv_lax(x, w):
  return lax_kernels.conv_transpose_lax(x, w, (2, 2), (2 * x.shape[1], 2 * x.shape[2]))


def tconv_col2im(x, w):
  return cpu.conv_transpose_col2im(x, w, (2, 2), (2 * x.shape[1], 2 * x.shape[2]))


def _phase_taps(x, k=4):
  """Per axis, for phase r of the output (o = 2q + r): the taps (j, d) with y[2q+r] += x[q+d] w[j]."""
  (ph, qh), (pw, qw) = (cpu._tap_plan(n, 2 * n, k, 2) for n in x.shape[1:3])  # pylint: disable=protected-access
  assert (qh, qw) == x.shape[1:3]
  assert all(abs(d) <= 1 for taps in ph + pw for _, d in taps), (ph, pw)
  return ph, pw


def _shift(xp, dh, dw, h, w):
  """x[q + dh, p + dw] for 0 <= q < h, 0 <= p < w, of x padded by 1 (zeros outside)."""
  return xp[:, 1 + dh:1 + dh + h, 1 + dw:1 + dw + w]


def _pad1(x):
  return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def _interleave(phases, b, h, w, cout):
  """phases[rh][rw]: [b, h, w, cout] -> y [b, 2h, 2w, cout] with y[2q+rh, 2p+rw] = phases[rh][rw][q, p]."""
  rows = [jnp.stack(row, axis=3) for row in phases]  # [b, h, w, 2, cout]
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, cout)


def tconv_sub4mm(x, w):
  b, h, wd, cin = x.shape
  cout = w.shape[-1]
  ph, pw = _phase_taps(x)
  xp = _pad1(x)
  phases = []
  for th in ph:
    row = []
    for tw in pw:
      taps = [(i, dh, j, dw) for i, dh in th for j, dw in tw]
      cols = jnp.concatenate([_shift(xp, dh, dw, h, wd) for _, dh, _, dw in taps], axis=-1)
      kern = jnp.concatenate([w[i, j] for i, _, j, _ in taps], axis=0)  # [4 cin, cout]
      row.append((cols.reshape(-1, len(taps) * cin) @ kern).reshape(b, h, wd, cout))
    phases.append(row)
  return _interleave(phases, b, h, wd, cout)


def _sub9_kernel(x, w):
  """[3, 3, cin, 2, 2, cout]: the weight of input offset (dh, dw) in output phase (rh, rw)."""
  ph, pw = _phase_taps(x)
  zero = jnp.zeros(w.shape[2:], w.dtype)
  def tap(taps, d):
    return {dd: i for i, dd in taps}.get(d)
  grid = []
  for dh in (-1, 0, 1):
    row = []
    for dw in (-1, 0, 1):
      blocks = []
      for th in ph:
        brow = []
        for tw in pw:
          i, j = tap(th, dh), tap(tw, dw)
          brow.append(zero if i is None or j is None else w[i, j])
        blocks.append(jnp.stack(brow, axis=1))  # [cin, 2(rw), cout]
      row.append(jnp.stack(blocks, axis=1))  # [cin, 2(rh), 2(rw), cout]
    grid.append(jnp.stack(row))
  return jnp.stack(grid)


def _depth_to_space(z, b, h, w, cout):
  """z [b, h, w, 2, 2, cout] (phase rh, rw) -> [b, 2h, 2w, cout]."""
  return z.reshape(b, h, w, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, cout)


def tconv_sub9mm(x, w):
  b, h, wd, cin = x.shape
  cout = w.shape[-1]
  k9 = _sub9_kernel(x, w).reshape(9 * cin, 4 * cout)
  xp = _pad1(x)
  cols = jnp.concatenate([_shift(xp, dh, dw, h, wd) for dh in (-1, 0, 1) for dw in (-1, 0, 1)], -1)
  return _depth_to_space(cols.reshape(-1, 9 * cin) @ k9, b, h, wd, cout)


def tconv_sub9conv(x, w):
  b, h, wd, cin = x.shape
  cout = w.shape[-1]
  k9 = _sub9_kernel(x, w).reshape(3, 3, cin, 4 * cout)
  z = jax.lax.conv_general_dilated(x, k9, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_DN)
  return _depth_to_space(z, b, h, wd, cout)


# ---------------------------------------------------------------- downsampling convs

def conv_lax(x, w):
  return jax.lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=_DN)


def conv_im2col(x, w):
  b, h, wd, cin = x.shape
  kh, kw, _, cout = w.shape
  ho, wo = h // 2, wd // 2
  xp = _pad1(x)
  cols = jnp.stack([xp[:, i:i + 2 * ho:2, j:j + 2 * wo:2] for i in range(kh) for j in range(kw)], 3)
  return (cols.reshape(-1, kh * kw * cin) @ w.reshape(kh * kw * cin, cout)).reshape(b, ho, wo, cout)


def _s2d(x, w):
  """Space-to-depth(2) of the 1-padded x [b, h/2+1, w/2+1, 4 cin] and the kernel [2, 2, 4 cin, cout]."""
  b, h, wd, cin = x.shape
  cout = w.shape[-1]
  xp = _pad1(x)
  hs, ws = (h + 2) // 2, (wd + 2) // 2
  s = xp.reshape(b, hs, 2, ws, 2, cin).transpose(0, 1, 3, 2, 4, 5).reshape(b, hs, ws, 4 * cin)
  k = w.reshape(2, 2, 2, 2, cin, cout).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * cin, cout)
  return s, k


def conv_s2d_conv(x, w):
  s, k = _s2d(x, w)
  return jax.lax.conv_general_dilated(s, k, (1, 1), "VALID", dimension_numbers=_DN)


def conv_s2d_mm(x, w):
  return cpu._s2d_matmul(x, w, 2, ((1, 1), (1, 1)))  # pylint: disable=protected-access


@jax.custom_vjp
def conv_mix(x, w):
  return conv_s2d_mm(x, w)


def _mix_fwd(x, w):
  return conv_s2d_mm(x, w), (x, w)


def _mix_bwd(res, dy):
  x, w = res
  # dx: the adjoint of the SAME stride-2 conv is conv_transpose_lax of dy with the kernel
  # flipped in space and its channel axes swapped; computed by jaxgan's col2im path.
  wt = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
  dx = cpu.conv_transpose_col2im(dy, wt, (2, 2), x.shape[1:3])
  # dw: the im2col matmul's kernel gradient, cols^T dy.
  _, pull = jax.vjp(lambda w: conv_s2d_mm(x, w), w)
  return dx, pull(dy)[0]


conv_mix.defvjp(_mix_fwd, _mix_bwd)


def conv_winograd(x, w):
  return cpu._s2d_winograd(x, w, 2, ((1, 1), (1, 1)))  # pylint: disable=protected-access


def conv_jaxgan(x, w):
  return cpu.conv(x, w, (2, 2), "SAME", dimension_numbers=jax.lax.conv_dimension_numbers(
      x.shape, w.shape, _DN))


@jax.custom_vjp
def tconv_col2im_direct(x, w):
  return tconv_col2im(x, w)


def _direct_fwd(x, w):
  return tconv_col2im(x, w), (x, w)


def _direct_bwd(res, dy):
  x, w = res
  return cpu._col2im_backward(x, w, dy, (2, 2), (2 * x.shape[1], 2 * x.shape[2]))  # pylint: disable=protected-access


tconv_col2im_direct.defvjp(_direct_fwd, _direct_bwd)

IMPLS = {
    "tconv": {"col2im": tconv_col2im, "col2im_direct": tconv_col2im_direct, "lax": tconv_lax,
              "sub4mm": tconv_sub4mm, "sub9mm": tconv_sub9mm, "sub9conv": tconv_sub9conv},
    "conv": {"jaxgan": conv_jaxgan, "lax": conv_lax, "im2col": conv_im2col,
             "s2d_conv": conv_s2d_conv, "s2d_mm": conv_s2d_mm, "mix": conv_mix,
             "winograd": conv_winograd},
}
REFERENCE = {"tconv": "lax", "conv": "lax"}


# ---------------------------------------------------------------- harness

def inputs(name):
  kind, h, cin, ho, cout = LAYERS[name]
  kx, kw, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (B, h, h, cin), jnp.float32)
  w = 0.02 * jax.random.normal(kw, (4, 4, cin, cout), jnp.float32)
  g = jax.random.normal(kg, (B, ho, ho, cout), jnp.float32)
  return x, w, g


def programs(f):
  return {"fwd": jax.jit(lambda x, w, g: f(x, w)),
          "dx": jax.jit(lambda x, w, g: jax.vjp(lambda x: f(x, w), x)[1](g)[0]),
          "dw": jax.jit(lambda x, w, g: jax.vjp(lambda w: f(x, w), w)[1](g)[0])}


def check(name, impls, tol=1e-4):
  """Max |impl - ref| / max |ref| of value, dx and dw; raises if any exceeds tol."""
  kind = LAYERS[name][0]
  x, w, g = inputs(name)
  ref = None
  out = {}
  for impl in [REFERENCE[kind]] + [i for i in impls if i != REFERENCE[kind]]:
    f = IMPLS[kind][impl]
    y, pull = jax.vjp(f, x, w)
    res = (y, *pull(g))
    if ref is None:
      ref = res
    errs = [float(jnp.max(jnp.abs(a - r)) / jnp.max(jnp.abs(r))) for a, r in zip(res, ref)]
    out[impl] = errs
    if not max(errs) <= tol:
      raise AssertionError(f"{name} {impl}: relative errors (y, dx, dw) {errs} > {tol}")
  return out


class Torch:
  def __init__(self, python):
    script = Path(__file__).with_name("layer_profile_torch.py")
    self.proc = subprocess.Popen([python, str(script), "--threads", "2"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)

  def time(self, name, pss, reps):
    kind, h, cin, ho, cout = LAYERS[name]
    req = {"layer": {"kind": kind, "b": B, "h": h, "cin": cin, "ho": ho, "cout": cout},
           "pass": pss, "reps": reps}
    self.proc.stdin.write(json.dumps(req) + "\n")
    self.proc.stdin.flush()
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError("the torch server died")
    return json.loads(line)["s"]

  def close(self):
    self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
    self.proc.stdin.flush()
    self.proc.wait()


def time_pass(name, pss, impls, torch, rounds, min_sample_s, slow_s=1.0):
  """{impl: [seconds per call, one sample per round]} for one layer pass, rotated rounds;
  an implementation slower than slow_s a call gets only its second warm-up call as sample."""
  kind = LAYERS[name][0]
  x, w, g = inputs(name)
  fns = {}
  for impl in impls:
    fn = programs(IMPLS[kind][impl])[pss]
    fn = fn.lower(x, w, g).compile()
    fns[impl] = lambda fn=fn: jax.block_until_ready(fn(x, w, g))
  if torch is not None:
    fns["torch"] = lambda: torch.time(name, pss, 1)[0]
  reps, samples = {}, {}
  for key, fn in list(fns.items()):  # warm-up, and calls per sample
    fn()
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    if dt > slow_s:  # e.g. XLA's stride-2 transposed-conv kernel gradient: one sample only
      samples[key] = [dt]
      del fns[key]
      continue
    reps[key] = max(1, min(50, math.ceil(min_sample_s / max(dt, 1e-6))))
  keys = list(fns)
  samples.update({k: [] for k in keys})
  for r in range(rounds):
    for key in keys[r % len(keys):] + keys[:r % len(keys)]:
      time.sleep(0.01)
      if key == "torch":
        samples[key].append(statistics.mean(torch.time(name, pss, reps[key])))
      else:
        t0 = time.perf_counter()
        for _ in range(reps[key]):
          fns[key]()
        samples[key].append((time.perf_counter() - t0) / reps[key])
  return samples


def weight(model, name, pss):
  if LAYERS[name][0] == "tconv":
    return 1
  if pss == "fwd":
    return 3
  if pss == "dw":
    return 2
  return 1 if name == FIRST_D[model] else 3


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--models", default="32,64")
  ap.add_argument("--layers", default="", help="only these layer names (default: all of --models)")
  ap.add_argument("--impls", default="", help="only these formulations (comma-separated; the "
                  "current one and the reference are always checked)")
  ap.add_argument("--passes", default=",".join(PASSES))
  ap.add_argument("--rounds", type=int, default=7)
  ap.add_argument("--min_sample_s", type=float, default=0.03)
  ap.add_argument("--torch_python", default="")
  ap.add_argument("--check_only", action="store_true")
  ap.add_argument("--json_out", default="")
  args = ap.parse_args()
  models = args.models.split(",")
  names = [n for n in LAYERS if any(n in MODELS[m] for m in models)]
  if args.layers:
    names = [n for n in names if n in args.layers.split(",")]
  passes = args.passes.split(",")

  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs", flush=True)
  torch = Torch(args.torch_python) if args.torch_python and not args.check_only else None
  results, ratios = {}, {}
  try:
    for name in names:
      kind, h, cin, ho, cout = LAYERS[name]
      impls = list(IMPLS[kind])
      if args.impls:
        impls = [i for i in impls if i in args.impls.split(",") or i == CURRENT[kind]]
      errs = check(name, impls)
      print(f"{name} {kind} {h}x{h}x{cin} -> {ho}x{ho}x{cout}: max rel err (y, dx, dw) "
            + ", ".join(f"{i} {max(e):.1e}" for i, e in errs.items()), flush=True)
      if args.check_only:
        continue
      for pss in passes:
        samples = time_pass(name, pss, impls, torch, args.rounds, args.min_sample_s)
        med = {k: 1e3 * statistics.median(v) for k, v in samples.items()}
        results[name, pss] = med
        jax_med = {k: v for k, v in med.items() if k != "torch"}
        best = min(jax_med, key=jax_med.get)
        # Per-round ratios to the current formulation: robust to a machine whose load drifts.
        cur = samples[CURRENT[kind]]
        ratio = {k: statistics.median(a / b for a, b in zip(v, cur))
                 for k, v in samples.items() if len(v) == len(cur)}
        ratios[name, pss] = ratio
        print(f"  {name} {pss:3s} " + "  ".join(f"{k} {v:7.2f}" for k, v in med.items())
              + f"   best {best}", flush=True)
        print(f"  {name} {pss:3s} /{CURRENT[kind]}: "
              + "  ".join(f"{k} {v:.2f}" for k, v in ratio.items()), flush=True)
  finally:
    if torch is not None:
      torch.close()
  if args.check_only:
    return

  for model in models:
    rows = [(n, p) for n in MODELS[model] for p in passes if (n, p) in results]
    if not rows:
      continue
    print(f"\nModel {model} (batch {B}, ms, median of {args.rounds} rounds)\n")
    print("| layer | shape | pass | JAX current | best JAX | best ms | torch ms "
          "| current/best | best/torch | best/current per round | torch/current per round "
          "| step weight |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    tot = {"current": 0.0, "best": 0.0, "torch": 0.0}
    for n, p in rows:
      kind, h, cin, ho, cout = LAYERS[n]
      med = results[n, p]
      cur = med[CURRENT[kind]]
      jax_med = {k: v for k, v in med.items() if k != "torch"}
      best = min(jax_med, key=jax_med.get)
      tor = med.get("torch", float("nan"))
      wgt = weight(model, n, p)
      tot["current"] += wgt * cur
      tot["best"] += wgt * jax_med[best]
      tot["torch"] += wgt * tor
      print(f"| {n} | {h}x{h}x{cin}->{ho}x{ho}x{cout} | {p} | {CURRENT[kind]} {cur:.2f} | {best} "
            f"| {jax_med[best]:.2f} | {tor:.2f} | {cur / jax_med[best]:.2f} | {jax_med[best] / tor:.2f} "
            f"| {ratios[n, p].get(best, float('nan')):.2f} "
            f"| {ratios[n, p].get('torch', float('nan')):.2f} | {wgt} |")
    print(f"\nper-step weighted sum of the convs: JAX current {tot['current']:.0f} ms, best JAX "
          f"{tot['best']:.0f} ms, torch {tot['torch']:.0f} ms")

  if args.json_out:
    Path(args.json_out).write_text(json.dumps(
        {f"{n}/{p}": {"median_ms": med, "ratio_to_current": ratios[n, p]}
         for (n, p), med in results.items()}, indent=1))


if __name__ == "__main__":
  main()
