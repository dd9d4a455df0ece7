r"""The training report: one self-contained HTML page of a workdir.

  python -m jaxgan.report --workdir runs/pokemon            # WORKDIR/report.html
  python -m jaxgan.report --workdir runs/pokemon --nearest 0 --out /tmp/r.html

The page needs no network and no other file (images are inlined as data: URLs, the script
is its own): the run's progress and step-time figures, the training curves (losses.png's
panels), the eval metrics and the best checkpoint, the sample grids as a timeline (a slider,
and a play button), the latest grid next to the real images, the memorisation check
(WORKDIR/nearest.png: each sample beside its nearest training images) and the config as its
changes from the family's defaults, with the full config below.

The training loop rewrites WORKDIR/report.html every `report_every_secs` and at the end,
from the files of the workdir only (nothing is computed on the device), so a reload of the
page shows the latest state of a run. This command writes it on demand and, with
--nearest K (default 4), first runs the memorisation check (jaxgan.sample --nearest) when
WORKDIR/nearest.json is missing or older than the latest checkpoint.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from jaxgan import errors
from jaxgan import images as images_lib
from jaxgan import workdir as workdir_lib

# The timeline shows at most this many grids, evenly spaced over the run (the last included).
MAX_FRAMES = 60
# Timeline frames larger than this (bytes of PNG) are inlined as JPEG of at most
# images_lib.GIF_MAX_SIDE pixels, so that a long run's page stays a few MB.
MAX_FRAME_PNG_BYTES = 300_000

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1400px; padding: 0 16px;
       color: #222; background: #fafafa; }
h1 { margin: 16px 0 4px; } h2 { margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.status { color: #555; margin: 0; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; text-align: left;
  border-bottom: 1px solid #eee; font-variant-numeric: tabular-nums; }
img { max-width: 100%; image-rendering: pixelated; background: #fff; }
.pair { display: flex; gap: 16px; flex-wrap: wrap; } figure { margin: 0; flex: 1 1 400px; }
figcaption { color: #555; font-size: 90%; }
pre { background: #f0f0f0; padding: 8px; overflow-x: auto; font-size: 85%; }
.note { color: #777; font-style: italic; }
#timeline-controls { display: flex; gap: 12px; align-items: center; margin-bottom: 8px; }
#timeline-slider { flex: 1; }
"""

_SCRIPT = """
(function () {
  const frames = JSON.parse(document.getElementById("timeline-data").textContent);
  const slider = document.getElementById("timeline-slider");
  const image = document.getElementById("timeline-image");
  const label = document.getElementById("timeline-step");
  const play = document.getElementById("timeline-play");
  if (!slider || frames.length === 0) return;
  function show(i) {
    slider.value = i;
    image.src = frames[i].src;
    label.textContent = "step " + frames[i].step.toLocaleString("en") +
        " (" + (i + 1) + " of " + frames.length + ")";
  }
  slider.addEventListener("input", function () { show(Number(slider.value)); });
  let timer = null;
  play.addEventListener("click", function () {
    if (timer !== null) { clearInterval(timer); timer = null; play.textContent = "Play"; return; }
    play.textContent = "Pause";
    let i = Number(slider.value) >= frames.length - 1 ? 0 : Number(slider.value);
    show(i);
    timer = setInterval(function () {
      i += 1;
      if (i >= frames.length) {
        clearInterval(timer); timer = null; play.textContent = "Play"; return;
      }
      show(i);
    }, 250);
  });
  show(frames.length - 1);
})();
"""


def _data_url(data: bytes, mime: str) -> str:
  return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_url(path: Path, max_png_bytes: int | None = None) -> str:
  """A PNG file as a data: URL; re-encoded as JPEG of at most GIF_MAX_SIDE pixels when it is
  larger than `max_png_bytes`."""
  data = path.read_bytes()
  if max_png_bytes is None or len(data) <= max_png_bytes:
    return _data_url(data, "image/png")
  with Image.open(io.BytesIO(data)) as im:
    out = io.BytesIO()
    images_lib.fit(im.convert("RGB"), images_lib.GIF_MAX_SIDE).save(out, format="JPEG",
                                                                    quality=85)
  return _data_url(out.getvalue(), "image/jpeg")


def timeline(grids: list[tuple[int, Path]], limit: int = MAX_FRAMES) -> list[tuple[int, Path]]:
  """At most `limit` of the (step, path) grids, evenly spaced, the first and last included."""
  if len(grids) <= limit:
    return list(grids)
  picks = sorted({round(i * (len(grids) - 1) / (limit - 1)) for i in range(limit)})
  return [grids[i] for i in picks]


def _fmt(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  if isinstance(value, int) and not isinstance(value, bool):
    return f"{value:,}"
  return str(value)


def _table(rows: list[tuple[str, Any]], head: tuple[str, str] | None = None) -> str:
  out = ["<table>"]
  if head:
    out.append(f"<tr><th>{html.escape(head[0])}</th><th>{html.escape(head[1])}</th></tr>")
  for name, value in rows:
    out.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(_fmt(value))}</td></tr>")
  out.append("</table>")
  return "".join(out)


def step_figures(records: list[dict[str, Any]]) -> list[tuple[str, Any]]:
  """(name, value) rows of the run's speed: seconds per step and images per second (median
  of the logged rates, and the last), from the perf/ scalars of metrics.jsonl."""
  rates = [r["perf/steps_per_sec"] for r in records if r.get("perf/steps_per_sec")]
  imgs = [r["perf/images_per_sec"] for r in records if r.get("perf/images_per_sec")]
  if not rates:
    return []
  rows = [("seconds per step (median of the logged rates)", 1.0 / float(np.median(rates))),
          ("seconds per step (last logged)", 1.0 / rates[-1])]
  if imgs:
    rows += [("images per second (median)", float(np.median(imgs))),
             ("images per second (last)", imgs[-1])]
  rows.append(("records in metrics.jsonl", len(records)))
  return rows


def _eval_rows(records: list[dict[str, Any]], wd: workdir_lib.Workdir) -> list[tuple[str, Any]]:
  rows = []
  for key in sorted({k for r in records for k in r if k.startswith("eval/")}):
    last = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    if last:
      rows.append((f"{key} (step {last[-1][0]:,})", float(last[-1][1])))
  if wd.best_json.exists():
    best = json.loads(wd.best_json.read_text())
    rows.append((f"best {best['value_name']} (kept in best/)", f"{best['value']:.4g} at step "
                 f"{best['step']:,}"))
  return rows


def _config_section(wd: workdir_lib.Workdir) -> str:
  if not wd.config_json.exists():
    return '<p class="note">No config.json yet.</p>'
  from jaxgan import config as config_lib  # pylint: disable=g-import-not-at-top  (fast start: JAX)
  config = workdir_lib.load_config(wd)
  defaults = config_lib.default_config(config.model.family).to_dict()
  diff = workdir_lib.config_diff(defaults, config.to_dict())
  rows = "".join(f"<tr><td>{html.escape(f)}</td><td>{html.escape(repr(a))}</td>"
                 f"<td>{html.escape(repr(b))}</td></tr>" for f, a, b in diff)
  full = wd.config_py.read_text() if wd.config_py.exists() else wd.config_json.read_text()
  return (f"<p>{len(diff)} changes from the {html.escape(config.model.family)} family's "
          f"defaults:</p><table><tr><th>field</th><th>default</th><th>this run</th></tr>{rows}"
          f"</table><details><summary>The full config (WORKDIR/config.py)</summary>"
          f"<pre>{html.escape(full)}</pre></details>")


def _curves(records: list[dict[str, Any]], wd: workdir_lib.Workdir, replot: bool) -> str:
  path = wd.loss_plot
  if replot and records:
    images_lib.plot_losses(records, path)
  if not path.exists():
    return '<p class="note">No metrics yet.</p>'
  return (f'<img id="curves-image" src="{image_url(path)}" alt="training curves: losses, '
          f'D logits, gradient norms and eval metrics">')


def _nearest_section(wd: workdir_lib.Workdir) -> str:
  if not wd.nearest_grid.exists():
    return ('<p class="note">Not computed yet: <code>python -m jaxgan.sample --workdir '
            f'{html.escape(str(wd.root))} --nearest 4</code> (or <code>python -m jaxgan.report'
            '</code>, which runs it).</p>')
  lines = []
  if wd.nearest_json.exists():
    record = json.loads(wd.nearest_json.read_text())
    lines.append(f"Checkpoint {record['step']:,}: each row is a sample followed by its "
                 f"{record['k']} nearest of {record['reals']:,} training images in "
                 f"{' and then '.join(record['spaces'])} (a blank tile between the spaces).")
    lines += record["summary"]
  text = "".join(f"<p>{html.escape(l)}</p>" for l in lines)
  return f'{text}<img id="nearest-image" src="{image_url(wd.nearest_grid)}" alt="nearest">'


def build(wd: workdir_lib.Workdir, replot: bool = True) -> str:
  """The report page of `wd` as one HTML string (see the module doc); `replot` redraws
  losses.png from metrics.jsonl first."""
  records = workdir_lib.read_metrics(wd.metrics) if wd.metrics.exists() else []
  config = workdir_lib.load_config(wd) if wd.config_json.exists() else None
  name = wd.root.resolve().name
  last = records[-1]["step"] if records else 0
  status = [f"step {last:,}"]
  if config is not None:
    total = int(config.train.num_steps)
    status = [f"step {last:,} of {total:,} ({100.0 * last / total:.1f}%)",
              f"{config.model.family} on {config.data.source}",
              "x".join(map(str, config.data.image_size))]
  if wd.metrics.exists():
    mtime = datetime.datetime.fromtimestamp(wd.metrics.stat().st_mtime, datetime.timezone.utc)
    status.append(f"metrics last written {mtime:%Y-%m-%d %H:%M:%S} UTC")
  now = datetime.datetime.now(datetime.timezone.utc)
  status.append(f"page written {now:%Y-%m-%d %H:%M:%S} UTC")

  grids = wd.sample_grids()
  frames = [{"step": step, "src": image_url(path, MAX_FRAME_PNG_BYTES)}
            for step, path in timeline(grids)]
  if frames:
    timeline_html = (
        '<div id="timeline-controls"><button id="timeline-play" type="button">Play</button>'
        f'<input id="timeline-slider" type="range" min="0" max="{len(frames) - 1}" '
        f'value="{len(frames) - 1}" aria-label="sample grid">'
        f'<span id="timeline-step">step {frames[-1]["step"]:,}</span></div>'
        f'<img id="timeline-image" src="{frames[-1]["src"]}" alt="sample grid">'
        + (f'<p class="note">{len(frames)} of the {len(grids)} grids, evenly spaced.</p>'
           if len(frames) < len(grids) else ""))
  else:
    timeline_html = '<p class="note">No sample grid yet.</p>'
  pair = []
  if grids:
    pair.append(f'<figure><img id="latest-image" src="{image_url(grids[-1][1])}" '
                f'alt="latest samples"><figcaption>Samples at step {grids[-1][0]:,} (fixed '
                f'seeds; the EMA generator when there is one)</figcaption></figure>')
  if wd.real_grid.exists():
    pair.append(f'<figure><img id="real-image" src="{image_url(wd.real_grid)}" alt="real '
                f'images"><figcaption>Training images, as the pipeline gives them'
                f'</figcaption></figure>')
  figures = step_figures(records)
  evals = _eval_rows(records, wd)
  # No '</' in the JSON, so that it cannot end its script element early.
  data = json.dumps(frames).replace("</", "<\\/")
  body = [
      f"<header><h1>{html.escape(name)}</h1><p class=\"status\">"
      f"{html.escape(' · '.join(status))}</p></header>",
      "<section id=\"speed\"><h2>Step time</h2>"
      + (_table(figures) if figures else '<p class="note">No step logged yet.</p>') + "</section>",
      "<section id=\"curves\"><h2>Training curves</h2>" + _curves(records, wd, replot)
      + "</section>",
  ]
  if evals:
    body.append("<section id=\"metrics\"><h2>Sample quality</h2>" + _table(evals) + "</section>")
  body += [
      "<section id=\"timeline\"><h2>Samples over training</h2>" + timeline_html + "</section>",
      "<section id=\"latest\"><h2>Latest samples and real images</h2><div class=\"pair\">"
      + "".join(pair) + "</div></section>",
      "<section id=\"nearest\"><h2>Nearest training images (memorisation check)</h2>"
      + _nearest_section(wd) + "</section>",
      "<section id=\"config\"><h2>Config</h2>" + _config_section(wd) + "</section>",
  ]
  return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
          f"<title>jaxgan report: {html.escape(name)}</title><style>{_STYLE}</style></head>"
          f"<body>{''.join(body)}<script id=\"timeline-data\" type=\"application/json\">{data}"
          f"</script><script>{_SCRIPT}</script></body></html>\n")


def write(wd: workdir_lib.Workdir, out: str | os.PathLike | None = None,
          replot: bool = True) -> Path:
  """Writes `build(wd)` to `out` (default WORKDIR/report.html), atomically; returns it."""
  path = Path(out) if out else wd.report
  text = build(wd, replot)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # the loop's and this command's
  tmp.write_text(text, encoding="utf-8")
  tmp.replace(path)
  return path


def nearest_is_stale(wd: workdir_lib.Workdir) -> bool:
  """Whether WORKDIR/nearest.json is missing or of an older step than the latest checkpoint."""
  from jaxgan import checkpointing  # pylint: disable=g-import-not-at-top  (fast start: Orbax)
  if not wd.checkpoints.is_dir():
    return False
  manager = checkpointing.create_manager(wd.checkpoints, read_only=True)
  try:
    latest = manager.latest_step()
  finally:
    manager.close()
  if latest is None:
    return False
  if not wd.nearest_json.exists():
    return True
  return json.loads(wd.nearest_json.read_text()).get("step") != latest


def main(argv):
  from absl import app, logging  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  wd = workdir_lib.Workdir(_WORKDIR.value)
  if not wd.root.is_dir():
    raise app.UsageError(f"--workdir={_WORKDIR.value}: no such directory")
  if _NEAREST.value < 0:
    raise app.UsageError(f"--nearest={_NEAREST.value}: expected the number of neighbours, "
                         f">= 0 (0: do not compute them)")
  if _NEAREST.value and nearest_is_stale(wd):
    from jaxgan.metrics import nearest  # pylint: disable=g-import-not-at-top  (fast start: JAX)
    t = time.perf_counter()
    try:
      for line in nearest.write_check(str(wd.root), k=_NEAREST.value):
        logging.info("%s", line)
      logging.info("Memorisation check in %.1f s.", time.perf_counter() - t)
    except (ValueError, FileNotFoundError, errors.CorruptCheckpointError) as e:
      logging.warning("No memorisation check on the page: %s", e)
  path = write(wd, _OUT.value or None)
  logging.info("Wrote %s (%.1f MB); open it in a browser (reload it to see a running job's "
               "latest state).", path, path.stat().st_size / 1e6)


if __name__ == "__main__":
  from absl import flags  # pylint: disable=g-import-not-at-top
  _WORKDIR = flags.DEFINE_string("workdir", None, "The training run's workdir.")
  _OUT = flags.DEFINE_string("out", "", "The page to write; default WORKDIR/report.html.")
  _NEAREST = flags.DEFINE_integer("nearest", 4, "Neighbours per sample of the memorisation "
                                  "check, run first when WORKDIR/nearest.json is missing or "
                                  "older than the latest checkpoint; 0: never.")
  from jaxgan import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, __name__, __doc__, required=("workdir",))
