"""The training report: one self-contained page, checked in a real headless Chromium."""

import json
import re
import shutil
import subprocess
import sys
import time

from PIL import Image
import pytest

from jaxgan import report
from jaxgan import workdir as workdir_lib
from jaxgan.training import actions
from tests.browser import Browser, find_chromium
from tests.conftest import REPO, subprocess_env

IMAGES = ("curves-image", "timeline-image", "latest-image", "real-image", "nearest-image")


@pytest.fixture(scope="module")
def reported(trained_workdir, tmp_path_factory):
  """A copy of the trained workdir and the page `python -m jaxgan.report` wrote of it."""
  run = shutil.copytree(trained_workdir, tmp_path_factory.mktemp("report") / "run")
  proc = subprocess.run([sys.executable, "-m", "jaxgan.report", f"--workdir={run}",
                         "--nearest=2"], cwd=REPO, env=subprocess_env(), capture_output=True,
                        text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"Wrote {run / 'report.html'}" in proc.stderr
  return run


def test_the_page_is_self_contained(reported):
  page = (reported / "report.html").read_text()
  # Nothing to fetch: no link, no external script, style, image or font.
  assert not re.search(r"""(src|href)\s*=\s*["']?(?!data:|#)[a-z]+:""", page)
  assert "<link" not in page and "@import" not in page and "url(" not in page
  for name in ("losses", "D logits", "step 6 of 6 (100.0%)", "seconds per step",
               "nearest of", "train.num_steps", "The full config"):
    assert name in page, name
  frames = json.loads(re.search(r'<script id="timeline-data" type="application/json">(.*?)'
                                r"</script>", page, re.S).group(1))
  assert [f["step"] for f in frames] == [0, 2, 4, 6]


def test_the_page_in_headless_chromium(reported, tmp_path):
  executable = find_chromium()
  if executable is None:
    pytest.skip("no Chromium to run the page in: apt-get install chromium (or set $CHROMIUM)")
  with Browser(executable) as b:
    b.open((reported / "report.html").as_uri())
    assert b.evaluate("document.title") == "jaxgan report: run"
    shown = b.evaluate("Object.fromEntries(Array.from(document.images).map("
                       "i => [i.id, [i.complete, i.naturalWidth, i.naturalHeight]]))")
    for name in IMAGES:  # present and decoded (a broken data: URL has naturalWidth 0)
      complete, width, height = shown[name]
      assert complete and min(width, height) >= 150 and max(width, height) >= 512, (
          name, shown[name])
    # The timeline: the slider shows the first grid, then Play runs through the grids.
    first = b.evaluate("""(async () => {
        const s = document.getElementById("timeline-slider");
        s.value = 0; s.dispatchEvent(new Event("input"));
        const img = document.getElementById("timeline-image"); await img.decode();
        const frames = JSON.parse(document.getElementById("timeline-data").textContent);
        return [document.getElementById("timeline-step").textContent,
                img.src === frames[0].src, img.naturalWidth];
      })()""")
    assert first == ["step 0 (1 of 4)", True, 522]
    b.evaluate('document.getElementById("timeline-play").click()')
    time.sleep(0.6)
    label = b.evaluate('document.getElementById("timeline-step").textContent')
    assert label in ("step 2 (2 of 4)", "step 4 (3 of 4)", "step 6 (4 of 4)"), label
    assert b.errors == []
    shot = b.screenshot(tmp_path / "report.png")
  with Image.open(shot) as im:
    assert im.format == "PNG" and 1200 <= im.width <= 1280 and im.height > 2000  # the whole page


def test_the_run_writes_the_page_and_the_action_rewrites_it(trained_workdir, tmp_path):
  assert (trained_workdir / "report.html").exists()  # written at the end of the run
  wd = workdir_lib.Workdir(shutil.copytree(trained_workdir, tmp_path / "run"))
  wd.report.unlink()

  class Writer:
    flushed = 0

    def flush(self):
      Writer.flushed += 1

  ctx = actions.Context(config=None, wd=wd, mesh=None, gan=None, manager=None,
                        writer=Writer(), lead=True, start=0)
  action = actions.Report(every_secs=0.05)
  action.schedule.start(0)
  assert not action.schedule.due(1)
  time.sleep(0.06)
  assert action.schedule.due(2)
  action(ctx)
  assert Writer.flushed == 1 and "step 6 of 6" in wd.report.read_text()
  # The run goes on: a new record and grid show on the next rewrite.
  with wd.metrics.open("a") as f:
    f.write(json.dumps({"step": 7, "loss/d": 1.0, "loss/g": 1.0}) + "\n")
  shutil.copy(wd.sample_grid(6), wd.sample_grid(7))
  action(ctx)
  page = wd.report.read_text()
  assert "step 7 of 6" in page and '"step": 7' in page
  assert actions.Report(every_secs=0).schedule.every_secs is None  # 0: only at the end


def test_timeline_keeps_the_first_and_last_of_evenly_spaced_grids():
  grids = [(s, f"{s}.png") for s in range(0, 1000, 10)]
  picked = report.timeline(grids, limit=7)
  assert [s for s, _ in picked] == [0, 160, 330, 500, 660, 820, 990]
  assert report.timeline(grids[:5], limit=7) == grids[:5]
