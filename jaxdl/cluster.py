"""k-means (k-means++ init, Lloyd iterations), silhouette score and kNN.

Every function is pure, static-shaped, works under ``jax.jit`` and batches
with ``jax.vmap`` (a batch of independent problems). Padded points pass
``mask`` (True = real point); they are never chosen as centres, never move
a centre and get label -1.

``kmeans`` follows ``sklearn.cluster.KMeans(algorithm="lloyd", n_init=1)``:
the same greedy k-means++ (``2 + floor(log k)`` candidates per centre), the
same stopping rule (labels unchanged, or total squared centre shift ``<=
tol * mean feature variance``), empty clusters re-seeded with the points
farthest from their centres (a cluster left empty, as when there are more
clusters than distinct points, takes the largest cluster's centre), and a
final assignment step so that the labels
belong to the returned centres. Random draws use ``jax.random``, so only a
given ``init`` array reproduces sklearn's run exactly.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxdl._checks import (as_rank, class_ids, compute_dtype, is_real_scalar,
                           mask_or_ones, one_of, positive_int)

INITS = ("k-means++", "random")
_BLOCK_ELEMENTS = 1 << 22  # float32 elements per silhouette distance block
# Nearest-neighbour search: query rows per block are chosen so that a block's
# [rows, N] distances hold about 2**20 floats (measured fastest for 1k x 10k
# points of 16-256 features), and the expanded-distance search keeps this
# many candidates beyond k for the exact re-ranking.
_NEIGHBOUR_BLOCK_ELEMENTS = 1 << 20
_EXTRA_CANDIDATES = 16


class KMeansResult(NamedTuple):
  """``kmeans`` output.

  Attributes:
    centers: ``[k, D]`` cluster centres.
    labels: ``[N]`` int32 index of each point's nearest centre, -1 for
      padding.
    inertia: scalar sum of squared distances of real points to their centre.
    n_iter: scalar int32 number of Lloyd iterations run (sklearn's
      ``n_iter_``).
    converged: scalar bool, False when ``max_iter`` stopped the loop.
  """
  centers: jax.Array
  labels: jax.Array
  inertia: jax.Array
  n_iter: jax.Array
  converged: jax.Array


# ------------------------------------------------------------------ checks


def _as_points(x: ArrayLike, name: str) -> jax.Array:
  """``[N, D]`` points in float32 (half precision and integers upcast)."""
  x = as_rank(x, name, ("N", "D"))
  if x.shape[1] == 0:
    raise ValueError(f"{name} must hold points of at least one feature, "
                     f"got shape {tuple(x.shape)}.")
  return x.astype(compute_dtype(x.dtype))


def _without_padding(x: jax.Array, w: jax.Array) -> jax.Array:
  """Padded points (``w == 0``) as zeros: weighting them by 0 kept NaN and
  inf (0 * inf) and let huge values overflow the real points' sums."""
  return jnp.where(w[:, None] > 0, x, 0).astype(x.dtype)


def _check_k(k: int, n: int, name: str = "k") -> None:
  if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
    raise ValueError(f"{name} must be a Python int, got {k!r}.")
  if not 1 <= k <= n:
    raise ValueError(
        f"{name} must satisfy 1 <= {name} <= N={n} points, got {k}.")


def _check_real_points(mask: jax.Array, k: int) -> None:
  """Raises ``ValueError`` when a known ``mask`` leaves fewer than ``k`` real
  points (under ``jit`` or ``vmap`` it is not looked at)."""
  if isinstance(mask, jax.core.Tracer):
    return
  real = int(np.sum(np.asarray(mask, bool)))
  if real < k:
    raise ValueError(f"mask must leave at least k={k} real points, got "
                     f"{real}.")


# --------------------------------------------------------------- distances


def _exact_squared_distances(q: jax.Array, x_t: jax.Array) -> jax.Array:
  """Squared distances summed from coordinate differences, one feature at
  a time: ``q`` ``[B, D]`` and ``x_t`` ``[D, ..., M]`` (features leading,
  the rest broadcasting against ``[B, 1]``) give ``[B, M]``. Each term is
  rounded once, so the result is within about ``D`` float32 ulps of the
  true distance however far the points are from the origin."""
  def add_feature(d, d2):
    diff = q[:, d, None] - lax.dynamic_index_in_dim(x_t, d, keepdims=False)
    return d2 + diff * diff
  shape = jnp.broadcast_shapes((q.shape[0], 1), x_t.shape[1:])
  return lax.fori_loop(0, q.shape[1], add_feature,
                       jnp.zeros(shape, q.dtype), unroll=min(q.shape[1], 8))


def _nearest(query: jax.Array, points: jax.Array, w: jax.Array, *,
             k: int) -> jax.Array:
  """``[Q, k]`` int32 indices of each query's ``k`` nearest real points.

  Ordered by distance, exact ties by index; real points at a NaN or
  infinite distance come after the others, padding (``w == 0``) last. The
  data are first scaled by a power of two (exact) so that their largest
  coordinate is about 1: squared differences then neither overflow nor
  flush to zero at any scale. The fast expanded form
  ``|q|^2 - 2 q.x + |x|^2`` (about the finite points' mean), less each
  point's rounding bound, proposes ``k + 16`` candidates, which are
  re-ranked by exact distances; a block of queries in which a candidate set
  cannot be certified (the candidates' largest lower bound is not beyond
  the k-th exact distance: points far apart relative to their spacing) is
  recomputed exactly.
  """
  n, dim = points.shape
  num_q = query.shape[0]
  if num_q == 0:
    return jnp.zeros((0, k), jnp.int32)
  real = w > 0
  finite = real & jnp.all(jnp.isfinite(points), axis=-1)
  largest = jnp.max(jnp.where(finite[:, None], jnp.abs(points), 0))
  scale = jnp.ldexp(jnp.ones((), points.dtype), -jnp.frexp(largest)[1])
  points = _without_padding(points, w) * scale
  query = query * scale
  mean = jnp.sum(jnp.where(finite[:, None], points, 0), 0) / jnp.maximum(
      jnp.sum(finite), 1)
  centred = points - mean
  centred_sq = jnp.sum(centred * centred, -1)  # [N]
  # Rounding bound of the centred expansion: (2D + 6) ulps of |q|^2 + |x|^2
  # from the sums and the two subtractions, 4 more from centring q and x,
  # and a little margin; unit roundoff 2**-24.
  gamma = (2 * dim + 16) * 2.0**-24
  num_candidates = min(n, k + _EXTRA_CANDIDATES)
  worst = jnp.finfo(points.dtype).max

  def rank_key(d2, is_real):  # NaN / inf distances after finite, padding last
    return jnp.where(is_real, jnp.where(jnp.isfinite(d2), d2, worst), jnp.inf)

  def exact_block(q):  # [B, D] -> [B, k]
    d2 = rank_key(_exact_squared_distances(q, points.T), real)
    return lax.top_k(-d2, k)[1]  # ties: lower index first

  def block_nearest(q):  # [B, D] -> [B, k]
    qc = q - mean
    q_sq = jnp.sum(qc * qc, -1)
    expanded = (q_sq[:, None] - 2 * jnp.matmul(
        qc, centred.T, precision=lax.Precision.HIGHEST) + centred_sq)
    # Each point's own share of the bound: one far point must not force
    # every query to be recomputed.
    lower = rank_key(expanded - gamma * centred_sq, real)
    # Both outputs whole: slicing a column of top_k's values (or its
    # indices, when the values are used) made XLA:CPU sort whole rows, 50x
    # slower.
    neg_lower, candidates = lax.top_k(-lower, num_candidates)  # [B, R]
    exact = rank_key(
        _exact_squared_distances(q, jnp.moveaxis(points[candidates], -1, 0)),
        real[candidates])
    exact, candidates = lax.sort((exact, candidates), num_keys=2)
    if num_candidates == n:  # every point was re-ranked
      return candidates[:, :k]
    # Every other point's lower bound is at least the candidates' largest.
    beyond = -jnp.min(neg_lower, axis=1) - gamma * q_sq
    kth = exact[:, k - 1] * (1 + (dim + 2) * 2.0**-24)
    return lax.cond(jnp.all(beyond > kth), lambda: candidates[:, :k],
                    lambda: exact_block(q))

  rows = max(1, min(num_q, _NEIGHBOUR_BLOCK_ELEMENTS // n))
  num_blocks = -(-num_q // rows)
  # Padded with the last query: zeros can sit far from the data and fail
  # the certificate.
  padded = jnp.pad(query, ((0, num_blocks * rows - num_q), (0, 0)),
                   mode="edge")
  found = lax.map(block_nearest, padded.reshape(num_blocks, rows, dim))
  return found.reshape(-1, k)[:num_q].astype(jnp.int32)


def kmeans_predict(x: ArrayLike, centers: ArrayLike) -> jax.Array:
  """Index of the nearest centre for each point (``KMeans.predict``).

  Args:
    x: ``[N, D]`` points.
    centers: ``[k, D]`` centres.

  Returns:
    ``[N]`` int32 labels. Distances are exact (summed from coordinate
    differences where the fast expanded form cannot decide), so the answer
    does not depend on how far the data sit from the origin; an exact tie
    goes to the lowest index. Equals ``KMeans.predict`` on the same points
    in float64, up to ties within float32 rounding.

  >>> kmeans_predict(jnp.array([[0., 0.], [9., 9.]]),
  ...                jnp.array([[10., 10.], [1., 1.]]))
  Array([1, 0], dtype=int32)
  """
  x = _as_points(x, "x")
  centers = _as_points(as_rank(centers, "centers", ("k", "D")), "centers")
  if not centers.shape[0]:
    raise ValueError("centers must hold at least one centre, got shape "
                     f"{tuple(centers.shape)}.")
  if centers.shape[1] != x.shape[1]:
    raise ValueError(f"centers must have shape [k, D={x.shape[1]}], got "
                     f"{tuple(centers.shape)}.")
  return _kmeans_predict(x, centers)


@jax.jit
def _kmeans_predict(x: jax.Array, centers: jax.Array) -> jax.Array:
  ones = jnp.ones(centers.shape[0], centers.dtype)
  return _nearest(x, centers, ones, k=1)[:, 0]


# ------------------------------------------------------------------ k-means


def _sample(key: jax.Array, weights: jax.Array, shape=()) -> jax.Array:
  """Indices drawn with probability proportional to ``weights >= 0``."""
  logits = jnp.where(weights > 0, jnp.log(jnp.where(weights > 0, weights, 1)),
                     -jnp.inf)
  return jax.random.categorical(key, logits, shape=shape)


def _kmeans_plus_plus(key: jax.Array, x: jax.Array, w: jax.Array,
                      k: int) -> jax.Array:
  """Greedy k-means++ (sklearn's ``_kmeans_plusplus``): ``[k, D]`` centres.

  Each new centre is the best of ``2 + floor(log k)`` candidates drawn with
  probability proportional to the squared distance to the nearest chosen
  centre, "best" meaning the lowest resulting potential.
  """
  n_trials = 2 + int(math.log(k))
  key, first_key = jax.random.split(key)
  first = x[_sample(first_key, w)]
  # Exact distances, as in _assign: the expanded form's rounding swamps
  # the small ones, which then drew tight clusters' points as candidates.
  closest = _exact_squared_distances(first[None], x.T)[0] * w  # [N]
  centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)

  def add_center(c, carry):
    centers, closest = carry
    # All remaining points coincide with centres: draw uniformly instead.
    p = jnp.where(jnp.sum(closest) > 0, closest, w)
    candidates = _sample(jax.random.fold_in(key, c), p, (n_trials,))
    d2 = jnp.minimum(closest,
                     _exact_squared_distances(x[candidates], x.T) * w)
    best = jnp.argmin(jnp.sum(d2, axis=1))
    return centers.at[c].set(x[candidates[best]]), d2[best]

  centers, _ = lax.fori_loop(1, k, add_center, (centers, closest))
  return centers


def _initial_centers(key: jax.Array, x: jax.Array, w: jax.Array, k: int,
                     init: str) -> jax.Array:
  if init == "k-means++":
    return _kmeans_plus_plus(key, x, w, k)
  # k distinct real points, uniformly (sklearn's "random").
  idx = jax.random.choice(key, x.shape[0], (k,), replace=False,
                          p=w / jnp.sum(w))
  return x[idx]


def _assign(x: jax.Array, centers: jax.Array) -> jax.Array:
  """``[N]`` int32 index of each point's nearest centre, lowest on ties.

  By exact distances (:func:`_exact_squared_distances`; on CPU as fast as
  the expanded form at 16 features, about 2x slower at 128 and 4-5x at
  512): the expansion's rounding, relative to ``|x|^2``, swamps the
  distances within clusters that are tight relative to their distance from
  the data's mean, and mislabelled their points.
  """
  return jnp.argmin(_exact_squared_distances(x, centers.T),
                    axis=1).astype(jnp.int32)


def _relocate_empty(x, w, centers, labels, sums, counts):
  """sklearn's ``_relocate_empty_clusters``: each empty cluster takes one of
  the points farthest from their own centre (the farthest for the
  lowest-numbered empty cluster), and that point leaves its old cluster;
  nothing moves when every point sits on its centre (more clusters than
  distinct points). Distances as sklearn's, from the differences: the
  expanded form ``|x|^2 - 2 x.c + |c|^2`` leaves rounding where they are
  0."""
  k = sums.shape[0]
  distances = jnp.where(
      w > 0, jnp.sum((x - centers[labels]) ** 2, axis=1), -jnp.inf)
  empty = (counts == 0) & (jnp.max(distances) > 0)
  far = lax.top_k(distances, k)[1]
  far = far[jnp.clip(jnp.cumsum(empty) - 1, 0, k - 1)]  # [k]
  moved = empty.astype(x.dtype)  # [k]
  leaves = jax.nn.one_hot(labels[far], k, dtype=x.dtype) * moved[
      :, None]  # [k (empty), k (old)]
  sums = jnp.where(empty[:, None], x[far], sums - leaves.T @ x[far])
  counts = jnp.where(empty, 1, counts - jnp.sum(leaves, axis=0))
  return sums, counts


def _lloyd_update(x: jax.Array, w: jax.Array, centers: jax.Array):
  """One Lloyd iteration: assign, then move each centre to its mean."""
  k = centers.shape[0]
  labels = _assign(x, centers)
  onehot = jax.nn.one_hot(labels, k, dtype=x.dtype) * w[:, None]
  sums = jnp.matmul(onehot.T, x, precision=lax.Precision.HIGHEST)  # [k, D]
  counts = jnp.sum(onehot, axis=0)  # [k]
  sums, counts = lax.cond(jnp.any(counts == 0), _relocate_empty,
                          lambda *a: a[-2:], x, w, centers, labels, sums,
                          counts)
  centers = sums / jnp.maximum(counts, 1)[:, None]
  # A cluster still empty sits on the largest cluster's centre, where
  # sklearn means to put it (its _average_centers reads that cluster's
  # unnormalised sum instead when the largest has the higher index).
  return (jnp.where(counts[:, None] > 0, centers, centers[jnp.argmax(counts)]),
          labels)


def kmeans(key: jax.Array, x: ArrayLike, k: int, *,
           init: str | ArrayLike = "k-means++", max_iter: int = 300,
           tol: float = 1e-4, mask: ArrayLike | None = None) -> KMeansResult:
  """k-means clustering by Lloyd's algorithm in one ``lax.while_loop``.

  Equals ``sklearn.cluster.KMeans(n_clusters=k, init=init, n_init=1,
  max_iter=max_iter, tol=tol, algorithm="lloyd")`` run on the real points:
  given the same ``init`` array it reaches the same centres, inertia and
  iteration count, except where sklearn 1.9 is arbitrary or off: ties among
  the farthest points when empty clusters are re-seeded (numpy's
  argpartition order there, lowest index here), and a cluster that the
  re-seeding empties while the largest cluster has a higher index (sklearn
  gives it that cluster's unnormalised sum, here its centre). The loop
  stops when the labels no longer change or the total squared centre shift
  is ``<= tol`` times the mean per-feature variance of the data.

  Args:
    key: PRNG key for the initialisation (unused for an array ``init``).
    x: ``[N, D]`` points (half precision is clustered in float32 and the
      centres returned in the input dtype).
    k: number of clusters, ``1 <= k <= N`` (static).
    init: ``"k-means++"`` (greedy, as sklearn), ``"random"`` (``k`` distinct
      points) or a ``[k, D]`` array of initial centres.
    max_iter: maximum number of Lloyd iterations (may be traced: no
      recompilation when it changes).
    tol: relative tolerance on the centre shift (may be traced).
    mask: optional ``[N]`` bool, False for padding. At least ``k`` points
      must be real (checked when the mask is known; under ``jit`` it cannot
      be, and with fewer the centres are unspecified).

  Returns:
    ``KMeansResult(centers, labels, inertia, n_iter, converged)``. A real
    point with a NaN or infinite coordinate makes the centres' and the
    inertia NaN and the labels meaningless (sklearn raises); mask it out.

  References:
    Lloyd, "Least squares quantization in PCM", 1982; Arthur & Vassilvitskii,
    "k-means++: the advantages of careful seeding", SODA 2007.

  >>> x = jnp.array([[0., 0.], [0., 1.], [10., 10.], [10., 11.]])
  >>> kmeans(jax.random.key(0), x, 2, init=x[::2]).centers
  Array([[ 0. ,  0.5],
         [10. , 10.5]], dtype=float32)
  """
  input_dtype = jnp.asarray(x).dtype
  x = _as_points(x, "x")
  n, dim = x.shape
  _check_k(k, n)
  if isinstance(init, str):
    one_of(init, INITS, "init", alternative="a [k, D] array")
  else:
    init = jnp.asarray(init, x.dtype)
    if init.shape != (k, dim):
      raise ValueError(f"init must have shape [k, D]=({k}, {dim}), got "
                       f"{tuple(init.shape)}.")
  # Both may be traced (no recompilation); check them when they are known.
  if not isinstance(max_iter, jax.core.Tracer) and not (
      np.ndim(max_iter) == 0 and np.issubdtype(np.asarray(max_iter).dtype,
                                               np.integer) and max_iter >= 1):
    raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}.")
  if not isinstance(tol, jax.core.Tracer) and not (
      is_real_scalar(tol) and tol >= 0):  # NaN too.
    raise ValueError(f"tol must be a number >= 0, got {tol!r}.")
  real = mask_or_ones(mask, (n,))
  if mask is not None:
    _check_real_points(real, k)
  result = _kmeans(key, x, real.astype(x.dtype),
                   None if isinstance(init, str) else init, max_iter, tol, k=k,
                   init_kind=init if isinstance(init, str) else "array")
  if jnp.issubdtype(input_dtype, jnp.floating):  # half precision: return it
    result = result._replace(centers=result.centers.astype(input_dtype))
  return result


@functools.partial(jax.jit, static_argnames=("k", "init_kind"))
def _kmeans(key, x, w, init, max_iter, tol, *, k, init_kind) -> KMeansResult:
  n = x.shape[0]
  x = _without_padding(x, w)
  # Centre the data, as sklearn does.
  total = jnp.sum(w)
  mean = jnp.sum(x * w[:, None], axis=0) / total
  x = (x - mean) * w[:, None]
  variance = jnp.sum(x * x, axis=0) / total
  tol_abs = tol * jnp.mean(variance)
  if init_kind == "array":
    centers = init - mean
  else:
    centers = _initial_centers(key, x, w, k, init_kind)

  def cond(state):
    _, _, it, done = state
    return (it < max_iter) & ~done

  def body(state):
    centers, labels_old, it, _ = state
    new_centers, labels = _lloyd_update(x, w, centers)
    same_labels = jnp.all((labels == labels_old) | (w == 0))
    shift = jnp.sum((new_centers - centers) ** 2)
    return new_centers, labels, it + 1, same_labels | (shift <= tol_abs)

  init_state = (centers, jnp.full((n,), -1, jnp.int32), jnp.int32(0),
                jnp.bool_(False))
  centers, _, n_iter, converged = lax.while_loop(cond, body, init_state)
  # Final assignment to the returned centres (sklearn's last E-step).
  labels = _assign(x, centers)
  residual = (x - centers[labels]) * w[:, None]
  inertia = jnp.sum(residual * residual)
  labels = jnp.where(w > 0, labels, -1)
  return KMeansResult(centers + mean, labels, inertia, n_iter, converged)


# --------------------------------------------------------------- silhouette


def silhouette_score(x: ArrayLike, labels: ArrayLike, *, num_clusters: int,
                     mask: ArrayLike | None = None) -> jax.Array:
  """Mean silhouette coefficient ``(b - a) / max(a, b)`` over the points.

  Equals ``sklearn.metrics.silhouette_score(x, labels)`` (Euclidean): ``a``
  is the mean distance to the other points of the own cluster, ``b`` the
  lowest mean distance to another non-empty cluster, and a point alone in
  its cluster scores 0. sklearn raises unless the number of distinct labels
  is in ``[2, N - 1]``; here the result is NaN instead.

  Distances are computed from coordinate differences (not the
  ``|x|^2 - 2 x.y + |y|^2`` expansion, which loses the small distances that
  dominate ``a`` in float32), a block of rows at a time, in about 16 MiB of
  working memory whatever ``N``.

  Args:
    x: ``[N, D]`` points.
    labels: ``[N]`` cluster ids in ``[0, num_clusters)`` (any id, e.g.
      :func:`kmeans`' ``-1``, where ``mask`` is False).
    num_clusters: number of possible ids (static).
    mask: optional ``[N]`` bool, False for padding.

  Returns:
    float32 scalar in [-1, 1], or NaN (also when a real point has a NaN or
    infinite coordinate; sklearn rejects those). Differentiable in ``x``
    (for fixed labels) with finite gradients, coincident points included.

  References:
    Rousseeuw, "Silhouettes: a graphical aid to the interpretation and
    validation of cluster analysis", J. Comput. Appl. Math. 1987.
  """
  x = _as_points(x, "x")
  n = x.shape[0]
  if not n:
    raise ValueError(f"x must hold at least one point, got shape "
                     f"{tuple(x.shape)}.")
  labels = jnp.asarray(labels)
  if labels.shape != (n,):
    raise ValueError(f"labels must have shape ({n},), got "
                     f"{tuple(labels.shape)}.")
  positive_int(num_clusters, "num_clusters")
  mask = mask_or_ones(mask, (n,))
  class_ids(labels, num_clusters, "labels", num_name="num_clusters",
            mask=mask)
  return _silhouette(x, labels, mask.astype(x.dtype),
                     num_clusters=num_clusters)


@functools.partial(jax.jit, static_argnames="num_clusters")
def _silhouette(x, labels, w, *, num_clusters) -> jax.Array:
  n, dim = x.shape
  x = _without_padding(x, w)
  members = jax.nn.one_hot(labels, num_clusters, dtype=x.dtype) * w[:, None]
  sizes = jnp.sum(members, axis=0)  # [C]
  block = max(1, min(n, _BLOCK_ELEMENTS // (n * dim)))
  rows = jnp.pad(jnp.arange(n), (0, (-n) % block)).reshape(-1, block)

  def cluster_distance_sums(row_ids):  # [block] -> [block, C]
    diff = x[row_ids][:, None, :] - x[None, :, :]  # [block, N, D]
    d2 = jnp.sum(diff * diff, axis=-1)
    # Double where: sqrt has an infinite slope at 0 (every self-distance).
    d = jnp.where(d2 > 0, jnp.sqrt(jnp.where(d2 > 0, d2, 1.0)), 0.0)
    return jnp.matmul(d, members, precision=lax.Precision.HIGHEST)

  sums = lax.map(cluster_distance_sums, rows).reshape(-1, num_clusters)[:n]
  own = jax.nn.one_hot(labels, num_clusters, dtype=bool)
  own_size = jnp.sum(jnp.where(own, sizes, 0), axis=1)
  a = jnp.sum(jnp.where(own, sums, 0), axis=1) / jnp.maximum(own_size - 1, 1)
  mean_other = jnp.where(own | (sizes == 0), jnp.inf,
                         sums / jnp.maximum(sizes, 1))
  b = jnp.min(mean_other, axis=1)
  # No other cluster (b = inf): s = 0 rather than inf / inf, whose NaN
  # reached the gradient through the final where.
  b = jnp.where(jnp.isfinite(b), b, a)
  denom = jnp.maximum(a, b)
  s = jnp.where((own_size > 1) & (denom > 0),
                (b - a) / jnp.where(denom > 0, denom, 1), 0.0)
  n_real = jnp.sum(w)
  n_clusters = jnp.sum(sizes > 0)
  score = jnp.sum(s * w) / jnp.maximum(n_real, 1)
  # A real NaN or infinite coordinate (padding is zeros by now): NaN. The
  # distance masks above read a NaN distance as 0, a finite, wrong score.
  finite = jnp.all(jnp.isfinite(x))
  return jnp.where((n_clusters >= 2) & (n_clusters < n_real) & finite, score,
                   jnp.nan)


# ---------------------------------------------------------------------- kNN


def knn_predict(train_x: ArrayLike, train_y: ArrayLike, query: ArrayLike, *,
                k: int = 5, num_classes: int,
                mask: ArrayLike | None = None) -> jax.Array:
  """k-nearest-neighbour classification by majority vote.

  Equals ``sklearn.neighbors.KNeighborsClassifier(n_neighbors=k).fit(
  train_x, train_y).predict(query)`` (uniform weights, Euclidean) up to
  ties within float32 rounding: a tied vote goes to the lowest class id, and
  of neighbours at exactly equal distances the lower indices come first
  (sklearn's order among them depends on its search). Distances are exact to
  float32 rounding at any scale and wherever the points are: the fast
  expanded form ``|q|^2 - 2 q.x + |x|^2`` only proposes ``k + 16``
  candidates, re-ranked from coordinate differences, and a block of queries
  whose candidates it cannot certify (groups of points far apart relative
  to their spacing) is recomputed from differences, which costs about twice
  as much (always, under ``jax.vmap``, where the choice becomes a select).
  Integers are converted to float32 (exact up to 2**24). Real points at a
  NaN or infinite distance rank after the others, padding last.

  Args:
    train_x: ``[N, D]`` training points.
    train_y: ``[N]`` their class ids in ``[0, num_classes)`` (any id where
      ``mask`` is False).
    query: ``[Q, D]`` points to classify.
    k: neighbours per query, ``1 <= k <= N`` (static).
    num_classes: number of classes (static).
    mask: optional ``[N]`` bool, False for padded training points (at least
      ``k`` must be real: checked when the mask is known, not under ``jit``).

  Returns:
    ``[Q]`` int32 predicted class ids.

  >>> knn_predict(jnp.array([[0.], [1.], [10.]]), jnp.array([0, 0, 1]),
  ...             jnp.array([[2.], [9.]]), k=1, num_classes=2)
  Array([0, 1], dtype=int32)
  """
  train_x = _as_points(train_x, "train_x")
  query = _as_points(query, "query")
  n, dim = train_x.shape
  if query.shape[1] != dim:
    raise ValueError(f"query must have shape [Q, D={dim}], got "
                     f"{tuple(query.shape)}.")
  train_y = jnp.asarray(train_y)
  if train_y.shape != (n,):
    raise ValueError(f"train_y must have shape ({n},), got "
                     f"{tuple(train_y.shape)}.")
  _check_k(k, n)
  positive_int(num_classes, "num_classes")
  given = mask is not None
  mask = mask_or_ones(mask, (n,))
  if given:
    _check_real_points(mask, k)
  class_ids(train_y, num_classes, "train_y", mask=mask)
  return _knn(train_x, train_y, query, mask.astype(train_x.dtype), k=k,
              num_classes=num_classes)


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn(train_x, train_y, query, w, *, k, num_classes) -> jax.Array:
  neighbours = _nearest(query, train_x, w, k=k)  # [Q, k]
  votes = jnp.sum(jax.nn.one_hot(train_y[neighbours], num_classes,
                                 dtype=jnp.int32), axis=1)
  return jnp.argmax(votes, axis=1).astype(jnp.int32)
