"""The pictures of a run: readable grids, the GIF caption, the smoothed multi-panel plot."""

import numpy as np
from PIL import Image, ImageFont
import pytest

from jaxgan import images


@pytest.mark.parametrize("num,size,nrow,factor", [
    (64, (16, 16), None, 4),   # 8 * (4 * 16 + 2) + 2 = 530
    (64, (32, 32), None, 2),   # 8 * 66 + 2 = 530
    (64, (64, 64), None, 1),   # already 530
    (5, (16, 16), 5, 7),       # one row: 5 * (7 * 16 + 2) + 2 = 572
    (6, (18, 20), None, 9),    # 2 x 3 of 18x20: the long side is 3 * (9 * 20 + 2) + 2 = 548
])
def test_display_factor_is_the_least_that_reaches_512(num, size, nrow, factor):
  assert images.display_factor(num, size, nrow) == factor
  rows, cols = images.grid_shape(num, nrow)
  side = lambda k: max(rows * (k * size[0] + 2), cols * (k * size[1] + 2)) + 2
  assert side(factor) >= 512 and (factor == 1 or side(factor - 1) < 512)


def test_grid_tiles_are_the_images_upscaled_by_nearest_neighbour():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (6, 8, 10, 3), dtype=np.uint8)
  grid = images.make_grid(x, nrow=3)
  k = images.display_factor(6, (8, 10), 3)
  assert grid.shape == (2 * (8 * k + 2) + 2, 3 * (10 * k + 2) + 2, 3) and max(grid.shape) >= 512
  for i in range(6):
    y0, x0 = 2 + (i // 3) * (8 * k + 2), 2 + (i % 3) * (10 * k + 2)
    tile = grid[y0:y0 + 8 * k, x0:x0 + 10 * k]
    np.testing.assert_array_equal(tile, x[i].repeat(k, 0).repeat(k, 1))
  assert (grid[:2] == 255).all() and (grid[:, :2] == 255).all()  # the padding stays 2 px
  native = images.make_grid(x, nrow=3, min_side=0)
  assert native.shape == (2 * 10 + 2, 3 * 12 + 2, 3)


def test_gif_caption_is_a_truetype_line_of_readable_height(tmp_path):
  assert isinstance(images.caption_font(), ImageFont.FreeTypeFont)
  grid = np.zeros((64, 16, 16, 3), np.float32)
  paths = []
  for step in (0, 1250):
    paths.append((step, images.save_grid(grid, tmp_path / f"{step}.png")))
  images.write_gif(paths, tmp_path / "s.gif")
  with Image.open(tmp_path / "s.gif") as gif:
    gif.seek(1)
    frame = np.asarray(gif.convert("L"))
  assert frame.shape[1] == 530  # the grid, upscaled, not shrunk
  strip = frame[530:]  # below the grid: white with the caption in black
  ink = np.argwhere(strip < 128)
  height = ink[:, 0].max() - ink[:, 0].min() + 1
  width = ink[:, 1].max() - ink[:, 1].min() + 1
  # "step 1,250" at 18 px: letters over 12 px high (ascenders to descenders), one line whose
  # ink spans the font's own measure of the string (so no glyph is dropped or spaced apart).
  assert height >= 12
  expected = images.caption_font().getlength("step 1,250")
  assert abs(width - expected) <= 4, (width, expected)


def test_smoothing_is_a_debiased_moving_average():
  np.testing.assert_allclose(images.smooth([3.0] * 50), 3.0)  # no bias towards 0 at the start
  step = images.smooth([0.0] * 20 + [1.0] * 200, weight=0.9)
  assert step[0] == 0.0 and 0 < step[20] < 0.2 and step[-1] > 0.999
  noisy = np.random.default_rng(0).normal(size=1000)
  assert images.smooth(noisy).std() < 0.4 * noisy.std()
  np.testing.assert_array_equal(images.smooth([1.0, 5.0], weight=0.0), [1.0, 5.0])


def test_plot_panels_follow_the_recorded_keys(tmp_path):
  records = [{"step": s, "loss/d": 1.0, "loss/g": 2.0, "d/real": 0.5, "d/fake": -0.5,
              "grad_norm/d": 3.0, "grad_norm/g": 0.1, "penalty": 0.2,
              "perf/steps_per_sec": 9.0} for s in range(1, 41)]
  records[19].update({"eval/fid": 90.0, "eval/kid": 0.1, "eval/kid_std": 0.01})
  records[39].update({"eval/fid": 80.0, "eval/kid": 0.05, "eval/kid_std": 0.01})
  panels = {title: [k for k, _ in curves] for title, _, _, curves in images.plot_panels(records)}
  assert panels == {"GAN losses": ["loss/d", "loss/g"],
                    "D logits (batch means)": ["d/real", "d/fake"],
                    "gradient norms": ["grad_norm/d", "grad_norm/g"],
                    "other scalars": ["penalty"],
                    "eval/fid": ["eval/fid"], "eval/kid": ["eval/kid"]}  # kid_std: kid's band
  path = images.plot_losses(records, tmp_path / "losses.png")
  with Image.open(path) as im:
    assert im.size == (1300, 1080)  # 2 columns x 3 rows of panels
  only_losses = [{"step": 1, "loss/d": 1.0}]
  assert [p[0] for p in images.plot_panels(only_losses)] == ["GAN losses"]
  assert images.plot_losses([], tmp_path / "none.png") is None
