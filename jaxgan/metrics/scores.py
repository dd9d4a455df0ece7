"""Sample-quality scores of feature sets: FID, KID, Inception Score, precision and recall.

Each is a small pure function of features (or class probabilities), computed with JAX on
the default device where the work is pairwise (KID, precision/recall), and in float64 on
the host where it needs a matrix square root (FID).

    fid = frechet_distance(*moments(real), *moments(fake))
    kid_mean, kid_std = kernel_inception_distance(real, fake)
    is_mean, is_std = inception_score(probs)
    precision, recall = precision_recall(real, fake, k=3)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


# ---- FID ---------------------------------------------------------------------------------

def moments(features) -> tuple[np.ndarray, np.ndarray]:
  """(mean [D], covariance [D, D]) of features [N, D] in float64 (unbiased, N - 1)."""
  x = np.asarray(features, np.float64)
  if x.ndim != 2 or len(x) < 2:
    raise ValueError(f"features of shape {x.shape}: expected [N, D] with N >= 2")
  mu = x.mean(axis=0)
  centred = x - mu
  return mu, centred.T @ centred / (len(x) - 1)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """The Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017):

      ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

  Tr((sigma1 sigma2)^(1/2)) is computed stably in float64 as the sum of the square roots
  of the eigenvalues of the symmetric PSD matrix s1 sigma2 s1, s1 = sigma1^(1/2) (by
  `eigh`; negative rounding eigenvalues are clipped to 0), which has the same eigenvalues
  as sigma1 sigma2; no complex parts, no `sqrtm` iteration to fail on singular covariances.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
    raise ValueError(f"moments of different shapes: mu {mu1.shape} vs {mu2.shape}, sigma "
                     f"{s1.shape} vs {s2.shape}")
  w, v = np.linalg.eigh((s1 + s1.T) / 2)
  root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  inner = root1 @ s2 @ root1
  eig = np.linalg.eigvalsh((inner + inner.T) / 2)
  trace_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)


# ---- KID ---------------------------------------------------------------------------------

@jax.jit
def _mmd2_unbiased(x: Array, y: Array) -> Array:
  """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 between x [m, d] and y [n, d]."""
  d = x.shape[1]
  kernel = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
  kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
  m, n = x.shape[0], y.shape[0]
  return ((kxx.sum() - jnp.trace(kxx)) / (m * (m - 1))
          + (kyy.sum() - jnp.trace(kyy)) / (n * (n - 1)) - 2.0 * kxy.mean())


def kernel_inception_distance(real, fake, *, num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
  """KID (Binkowski et al. 2018): the unbiased MMD^2 between real and fake features with
  the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3,

      MMD^2 = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (n(n-1))
              - 2 sum_{i,j} k(x_i, y_j) / (mn),

  averaged over `num_subsets` random subsets of `subset_size` of each set (drawn without
  replacement within a subset; min(subset_size, N) when a set is smaller).

  Returns:
    (mean, standard deviation) over the subsets.
  """
  real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
  size = min(subset_size, len(real), len(fake))
  if size < 2:
    raise ValueError(f"KID needs at least 2 features per set, got {len(real)} and {len(fake)}")
  rng = np.random.default_rng(seed)
  values = []
  for _ in range(num_subsets):
    x = real[rng.choice(len(real), size, replace=False)]
    y = fake[rng.choice(len(fake), size, replace=False)]
    values.append(float(_mmd2_unbiased(jnp.asarray(x), jnp.asarray(y))))
  return float(np.mean(values)), float(np.std(values))


# ---- Inception Score ---------------------------------------------------------------------

def inception_score(probs, *, splits: int = 10) -> tuple[float, float]:
  """Inception Score (Salimans et al. 2016) of class probabilities [N, K]:

      IS = exp(E_x KL(p(y|x) || p(y))),  p(y) the mean of p(y|x) over the split,

  computed on `splits` equal consecutive splits (the last images dropped when N does not
  divide), as the reference implementation does.

  Returns:
    (mean, standard deviation) over the splits.
  """
  p = np.asarray(probs, np.float64)
  if p.ndim != 2 or len(p) < splits:
    raise ValueError(f"probabilities of shape {p.shape}: expected [N, K] with N >= splits "
                     f"({splits})")
  n = len(p) // splits
  scores = []
  for i in range(splits):
    part = p[i * n:(i + 1) * n]
    marginal = part.mean(axis=0, keepdims=True)
    kl = np.sum(part * (np.log(np.clip(part, 1e-30, None)) - np.log(np.clip(marginal, 1e-30, None))),
                axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


# ---- precision and recall ----------------------------------------------------------------

@jax.jit
def _squared_distances(a: Array, b: Array) -> Array:
  """||a_i - b_j||^2, [len(a), len(b)], in float32 (clipped at 0)."""
  sq = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
  return jnp.maximum(sq, 0.0)


def _radii(x: np.ndarray, k: int, batch: int) -> np.ndarray:
  """Squared distance of each row of x to its k-th nearest other row."""
  out = []
  for i in range(0, len(x), batch):
    d = np.asarray(_squared_distances(jnp.asarray(x[i:i + batch]), jnp.asarray(x)))
    out.append(np.sort(d, axis=1)[:, k])  # column 0 is the point itself
  return np.concatenate(out)


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, batch: int) -> float:
  """Fraction of `points` inside at least one ball (centre, squared radius)."""
  inside = []
  for i in range(0, len(points), batch):
    d = np.asarray(_squared_distances(jnp.asarray(points[i:i + batch]), jnp.asarray(centres)))
    inside.append(np.any(d <= radii[None, :], axis=1))
  return float(np.concatenate(inside).mean())


def precision_recall(real, fake, *, k: int = 3, batch: int = 1024) -> tuple[float, float]:
  """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN manifolds:

      precision = fraction of fake features within the k-NN radius of some real feature,
      recall    = fraction of real features within the k-NN radius of some fake feature,

  a set's k-NN radius of a point being its distance to its k-th nearest neighbour in the
  same set (the point itself excluded). Distances are computed in batches of `batch` rows.

  Returns:
    (precision, recall), each in [0, 1].
  """
  real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
  if min(len(real), len(fake)) <= k:
    raise ValueError(f"precision/recall with k={k} needs more than k features per set, got "
                     f"{len(real)} and {len(fake)}")
  precision = _coverage(fake, real, _radii(real, k, batch), batch)
  recall = _coverage(real, fake, _radii(fake, k, batch), batch)
  return precision, recall
