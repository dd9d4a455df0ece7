"""Makes the README's pictures of a finished run: docs/report.png (the report page in headless
Chromium, whole), docs/grid.png (its last sample grid) and docs/nearest.png (the
memorisation check).

    python -m jaxgan.report --workdir runs/pokemon     # report.html and nearest.png first
    PYTHONPATH=. python docs/make_screenshots.py runs/pokemon
"""

import shutil
import sys
from pathlib import Path

from PIL import Image

from jaxgan import workdir as workdir_lib
from tests.browser import Browser, find_chromium

DOCS = Path(__file__).resolve().parent
# The report's screenshot is scaled down to this width, to keep the repository small.
REPORT_WIDTH = 900


def main(workdir: str) -> None:
  wd = workdir_lib.Workdir(workdir)
  executable = find_chromium()
  if executable is None:
    sys.exit("no Chromium: apt-get install chromium (or set $CHROMIUM)")
  with Browser(executable, width=1280) as b:
    b.open(wd.report.resolve().as_uri())
    if b.errors:
      sys.exit(f"the page has errors: {b.errors}")
    shot = b.screenshot(DOCS / "report.png")
  with Image.open(shot) as im:
    height = round(im.height * REPORT_WIDTH / im.width)
    im.convert("RGB").resize((REPORT_WIDTH, height), Image.Resampling.LANCZOS).quantize(
        256).save(shot, optimize=True)
  shutil.copy(wd.sample_grids()[-1][1], DOCS / "grid.png")
  shutil.copy(wd.nearest_grid, DOCS / "nearest.png")
  for name in ("report.png", "grid.png", "nearest.png"):
    print(DOCS / name, (DOCS / name).stat().st_size // 1024, "KB")


if __name__ == "__main__":
  main(sys.argv[1])
