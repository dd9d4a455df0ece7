"""The sample-quality scores against closed forms, scipy and brute force."""

import itertools

import numpy as np
import pytest
import scipy.linalg

from jaxgan.metrics import scores


def _rotation(d, seed):
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
  return q


def test_frechet_distance_of_gaussians_matches_the_closed_form():
  rng = np.random.default_rng(0)
  mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
  a, b = rng.uniform(0.1, 2.0, 5), rng.uniform(0.1, 2.0, 5)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b))
  # Diagonal covariances.
  assert scores.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected,
                                                                                    rel=1e-10)
  # Full covariances with the same eigenvectors: Tr sqrt(S1 S2) = sum sqrt(a_i b_i).
  q = _rotation(5, 1)
  s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
  assert scores.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
  assert scores.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_matches_scipy_on_random_features():
  rng = np.random.default_rng(2)
  real = rng.normal(size=(300, 16))
  fake = rng.normal(size=(250, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
  m1, s1 = scores.moments(real)
  m2, s2 = scores.moments(fake)
  np.testing.assert_allclose(s1, np.cov(real, rowvar=False), rtol=1e-12)
  root = scipy.linalg.sqrtm(s1 @ s2).real
  expected = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * root)
  assert scores.frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-8)
  # A singular covariance (fewer samples than dimensions) is still finite.
  m3, s3 = scores.moments(real[:8])
  assert np.isfinite(scores.frechet_distance(m3, s3, m2, s2))


def _mmd2_brute(x, y):
  d = x.shape[1]
  k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
  m, n = len(x), len(y)
  xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
  yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
  return xx + yy - 2 * xy


def test_kid_is_the_unbiased_mmd2_of_the_cubic_kernel():
  rng = np.random.default_rng(3)
  real = rng.normal(size=(12, 4)).astype(np.float32)
  fake = (rng.normal(size=(12, 4)) + 0.7).astype(np.float32)
  # One subset of every feature: the MMD^2 of the whole sets (it does not depend on order).
  mean, std = scores.kernel_inception_distance(real, fake, num_subsets=1, subset_size=12)
  assert mean == pytest.approx(_mmd2_brute(real.astype(np.float64), fake.astype(np.float64)),
                               rel=1e-4)
  assert std == 0.0
  mean, std = scores.kernel_inception_distance(real, fake, num_subsets=20, subset_size=6)
  assert mean > 0 and std > 0


def _pr_brute(real, fake, k):
  def radii(x):
    return [sorted(np.sum((x - p) ** 2, 1))[k] for p in x]
  def covered(points, centres, r):
    return np.mean([any(np.sum((c - p) ** 2) <= rc for c, rc in zip(centres, r)) for p in points])
  return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def test_precision_recall_against_brute_force_knn():
  rng = np.random.default_rng(4)
  real = rng.normal(size=(40, 3)).astype(np.float32)
  fake = (rng.normal(size=(30, 3)) * 0.6 + 1.0).astype(np.float32)
  p, r = scores.precision_recall(real, fake, k=3, batch=7)
  assert (p, r) == pytest.approx(_pr_brute(real, fake, 3))
  assert 0 < p < 1 and 0 < r < 1, (p, r)
  assert scores.precision_recall(real, real, k=3) == (1.0, 1.0)
  assert scores.precision_recall(real, real + 1000.0, k=3) == (0.0, 0.0)


def test_inception_score_of_uniform_and_one_hot_predictions():
  assert scores.inception_score(np.full((100, 7), 1 / 7)) == pytest.approx((1.0, 0.0))
  one_hot = np.eye(5)[np.arange(100) % 5]  # every split has every class equally often
  assert scores.inception_score(one_hot, splits=10) == pytest.approx((5.0, 0.0))
  with pytest.raises(ValueError, match=r"expected \[N, K\] with N >= splits"):
    scores.inception_score(np.ones((4, 3)) / 3, splits=10)
