"""Tests for jaxdl.cluster against scikit-learn and tests/reference/cluster.py.

Tolerances: jaxdl runs k-means in float32 on centred data; sklearn gets
the same float32 points (float64 for the oracles). Centres and inertia
agree to rtol 1e-4 (the issue's bound; measured ~1e-6), labels and iteration
counts exactly. Silhouette distances come from float32 coordinate
differences (relative error ~1e-7 each); the mean coefficient is within
atol 1e-5 of sklearn's float64 (measured <= 2e-8). Clustering is not
differentiable (argmin), so there are no gradient tests.
"""

import doctest
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score as sk_silhouette
from sklearn.neighbors import KNeighborsClassifier

from jaxdl import cluster, metrics
from tests.reference import cluster as ref


def _blobs(rng, n_per=50, k=4, dim=3, spread=4.0):
  centres = rng.normal(size=(k, dim)) * spread
  x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres])
  return x.astype(np.float32)


def _sklearn(x, init, **kw):
  return KMeans(len(init), init=init, n_init=1, algorithm="lloyd",
                **kw).fit(x)


def _assert_same_as_sklearn(got, km):
  np.testing.assert_allclose(got.centers, km.cluster_centers_, rtol=1e-4,
                             atol=1e-4)
  np.testing.assert_allclose(got.inertia, km.inertia_, rtol=1e-4)
  np.testing.assert_array_equal(got.labels, km.labels_)
  assert int(got.n_iter) == km.n_iter_


_kmeans = jax.jit(cluster.kmeans, static_argnames=("k", "init"))


# ------------------------------------------------------------------ k-means


def test_kmeans_same_init_matches_sklearn_and_oracle(rng, key):
  x = _blobs(rng, n_per=60, k=5)
  init = x[rng.choice(len(x), 5, replace=False)]
  got = cluster.kmeans(key, x, 5, init=init)
  _assert_same_as_sklearn(got, _sklearn(x, init))
  assert bool(got.converged)
  centers, labels, inertia, n_iter = ref.lloyd(x, init)
  np.testing.assert_allclose(got.centers, centers, rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(got.labels, labels)
  np.testing.assert_allclose(got.inertia, inertia, rtol=1e-4)
  assert int(got.n_iter) == n_iter


@pytest.mark.parametrize("max_iter, tol", [(2, 1e-4), (300, 0.05)])
def test_kmeans_stopping_rules_match_sklearn(max_iter, tol, rng, key):
  x = rng.normal(size=(300, 2)).astype(np.float32)  # no clear clusters
  init = x[:6]
  got = cluster.kmeans(key, x, 6, init=init, max_iter=max_iter, tol=tol)
  _assert_same_as_sklearn(got, _sklearn(x, init, max_iter=max_iter, tol=tol))
  # Labels always belong to the returned centres.
  np.testing.assert_array_equal(got.labels,
                                cluster.kmeans_predict(x, got.centers))
  if max_iter == 2:
    assert not bool(got.converged)


def test_kmeans_empty_cluster_reseeded_like_sklearn(rng, key):
  x = _blobs(rng, n_per=40, k=3)
  init = np.concatenate([x[[0, 45]], [[1e3, 1e3, 1e3]]]).astype(np.float32)
  got = cluster.kmeans(key, x, 3, init=init)
  _assert_same_as_sklearn(got, _sklearn(x, init))
  assert np.all(np.bincount(np.asarray(got.labels), minlength=3) > 0)


@pytest.mark.parametrize("x, init, max_iter", [
    # More clusters than distinct points: nothing to relocate (the loop
    # never converged, and a centre drifted to the data mean).
    ([1., 0., 0.], [0., 1., 5.], 300),
    ([11., 11., 10., 10.], [10., 11., 15.], 300),
    # A cluster emptied by a relocation takes the largest cluster's centre
    # (it took the data mean). Only where the largest cluster has the lower
    # index: there sklearn's _average_centers reads its unnormalised sum.
    ([0., 1., 10.], [0.5, 7., 100.], 1),
    ([3., 6., 9., 12., 14., 17.], [25., 40., -18.], 300),
    ([0., 1., 2., 10., 11., 30.], [0.5, 100., -50., 10.5], 300),
])
def test_kmeans_clusters_left_empty_like_sklearn(x, init, max_iter, key):
  x = np.array(x, np.float32)[:, None]
  init = np.array(init, np.float32)[:, None]
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # sklearn: fewer distinct clusters.
    km = _sklearn(x, init, max_iter=max_iter)
  got = cluster.kmeans(key, x, len(init), init=init, max_iter=max_iter)
  _assert_same_as_sklearn(got, km)
  if max_iter == 300:
    assert bool(got.converged)


def test_notes_k_means_loop_reaches_the_same_centres(key):
  """The notes' example: 200 integer points in [0, 10)^2, k = 3."""
  rng = np.random.default_rng(3)
  x = rng.integers(0, 10, size=(200, 2)).astype(np.float64)
  init = x[rng.choice(200, 3, replace=False)]
  want, _ = ref.notes_k_means(x, init)
  got = cluster.kmeans(key, x.astype(np.float32), 3,
                       init=init.astype(np.float32), tol=0.0)
  np.testing.assert_allclose(got.centers, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("init", cluster.INITS)
def test_kmeans_random_inits_find_separated_blobs(init, rng):
  x = _blobs(rng, n_per=40, k=4, spread=20.0)
  best = KMeans(4, n_init=10, random_state=0).fit(x)
  # Padding far away: an initialisation that picked it would be visible.
  padded = np.concatenate([x, np.full((8, 3), 1e4, np.float32)])
  mask = np.arange(len(padded)) < len(x)
  results = jax.vmap(lambda seed: _kmeans(seed, padded, k=4, init=init,
                                          mask=mask))(
      jax.random.split(jax.random.key(1), 4))
  assert np.all(np.abs(np.asarray(results.centers)) < 100)
  found = np.isclose(results.inertia, best.inertia_, rtol=1e-4)
  # k-means++ finds the four blobs from each of these seeds; uniform random
  # starts often put two centres in one blob (here 1 seed of 4 succeeds).
  assert found.all() if init == "k-means++" else found.any()
  assert np.all(results.inertia >= best.inertia_ * (1 - 1e-4))
  assert np.all(results.converged)


def test_kmeans_mask_ignores_padding(rng, key):
  x = _blobs(rng, n_per=30, k=3)
  init = x[[0, 30, 60]]
  padded = np.concatenate([x, np.full((10, 3), 1e4, np.float32)])
  mask = np.arange(len(padded)) < len(x)
  got = cluster.kmeans(key, padded, 3, init=init, mask=mask)
  want = cluster.kmeans(key, x, 3, init=init)
  chex.assert_trees_all_close(got.centers, want.centers, atol=1e-5)
  np.testing.assert_array_equal(got.labels[:len(x)], want.labels)
  assert np.all(np.asarray(got.labels)[len(x):] == -1)


def test_kmeans_half_precision_input(rng, key):
  x = _blobs(rng, n_per=30, k=3)
  init = x[[0, 30, 60]]
  got = cluster.kmeans(key, x.astype(jnp.bfloat16), 3,
                       init=init.astype(jnp.bfloat16))
  want = cluster.kmeans(key, x.astype(jnp.bfloat16).astype(np.float32), 3,
                        init=init.astype(jnp.bfloat16).astype(np.float32))
  assert got.centers.dtype == jnp.bfloat16
  np.testing.assert_array_equal(got.labels, want.labels)
  np.testing.assert_allclose(got.centers.astype(np.float32),
                             want.centers.astype(jnp.bfloat16).astype(
                                 np.float32))


def test_kmeans_vmap_jit_no_retrace(rng):
  xs = np.stack([_blobs(rng, n_per=20, k=3) for _ in range(3)])
  inits = xs[:, [0, 20, 40]]

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(x, init):
    return cluster.kmeans(jax.random.key(0), x, 3, init=init)

  batched = jax.vmap(run)(xs, inits)
  jax.vmap(run)(xs + 1, inits + 1)  # same shapes: no retrace
  for i in range(3):
    one = cluster.kmeans(jax.random.key(0), xs[i], 3, init=inits[i])
    chex.assert_trees_all_close(jax.tree.map(lambda v: v[i], batched), one,
                                rtol=1e-5)


def test_kmeans_predict_matches_sklearn(rng):
  x = _blobs(rng)
  km = KMeans(4, n_init=1, random_state=0).fit(x)
  query = rng.normal(size=(30, 3)).astype(np.float32) * 5
  np.testing.assert_array_equal(
      cluster.kmeans_predict(query, km.cluster_centers_.astype(np.float32)),
      km.predict(query))


# --------------------------------------------------------------- silhouette


def test_silhouette_matches_sklearn_and_oracle(rng):
  x = _blobs(rng, n_per=50, k=4)
  labels = KMeans(4, n_init=1, random_state=0).fit(x).labels_
  got = cluster.silhouette_score(x, labels, num_clusters=4)
  np.testing.assert_allclose(got, sk_silhouette(x, labels), atol=1e-5)
  np.testing.assert_allclose(got, ref.silhouette(x, labels), atol=1e-5)
  noisy = rng.integers(0, 3, len(x))  # poor clusters: negative scores
  np.testing.assert_allclose(
      cluster.silhouette_score(x, noisy, num_clusters=3),
      sk_silhouette(x, noisy), atol=1e-5)


def test_silhouette_singleton_absent_cluster_mask_and_degenerate(rng):
  x = rng.normal(size=(40, 2)).astype(np.float32)
  labels = rng.integers(0, 3, 40)
  labels[7] = 5  # a singleton cluster scores 0; ids 3 and 4 are absent
  mask = rng.random(40) < 0.8
  mask[7] = True
  got = cluster.silhouette_score(x, labels, num_clusters=6, mask=mask)
  np.testing.assert_allclose(got, sk_silhouette(x[mask], labels[mask]),
                             atol=1e-5)
  one_cluster = cluster.silhouette_score(x, np.zeros(40, int), num_clusters=2)
  assert np.isnan(one_cluster)  # sklearn raises
  assert np.isnan(cluster.silhouette_score(x, np.arange(40), num_clusters=40))
  dupes = np.repeat(x[:4], 5, axis=0)  # identical points: distances 0
  dl = np.repeat(np.arange(4) % 2, 5)
  np.testing.assert_allclose(
      cluster.silhouette_score(dupes, dl, num_clusters=2),
      sk_silhouette(dupes, dl), atol=1e-5)


def test_silhouette_gradient_finite_and_matches_finite_differences(rng):
  x = rng.normal(size=(24, 2)).astype(np.float32)
  x[1] = x[0]  # coincident points: a zero distance off the diagonal too
  labels = np.arange(24) % 3
  score = lambda p: cluster.silhouette_score(p, labels, num_clusters=3)
  grad = np.asarray(jax.grad(score)(x))
  assert np.all(np.isfinite(grad))
  # Central differences in float64 on the oracle, along a random direction.
  direction = rng.normal(size=x.shape)
  eps = 1e-4
  x64 = x.astype(np.float64)
  numeric = (ref.silhouette(x64 + eps * direction, labels) -
             ref.silhouette(x64 - eps * direction, labels)) / (2 * eps)
  np.testing.assert_allclose(np.sum(grad * direction), numeric, rtol=1e-3)


def test_silhouette_vmap(rng):
  xs = rng.normal(size=(2, 30, 2)).astype(np.float32)
  ls = rng.integers(0, 3, (2, 30))
  got = jax.vmap(lambda x, l: cluster.silhouette_score(
      x, l, num_clusters=3))(xs, ls)
  np.testing.assert_allclose(
      got, [sk_silhouette(xs[i], ls[i]) for i in range(2)], atol=1e-5)


# ---------------------------------------------------------------------- kNN


@pytest.mark.parametrize("k", [1, 5, 8])
def test_knn_matches_sklearn_and_oracle(k, rng):
  train = rng.normal(size=(120, 4)).astype(np.float32)
  y = rng.integers(0, 3, 120)
  query = rng.normal(size=(40, 4)).astype(np.float32)
  got = cluster.knn_predict(train, y, query, k=k, num_classes=3)
  want = KNeighborsClassifier(n_neighbors=k).fit(train, y).predict(query)
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(got, ref.knn_predict(train, y, query, k))


def test_knn_tied_vote_mask_and_vmap(rng):
  train = np.array([[0.0], [1.0], [10.0]], np.float32)
  got = cluster.knn_predict(train, np.array([2, 1, 0]), np.array([[0.4]]),
                            k=2, num_classes=3)
  assert int(got[0]) == 1  # one vote each for 2 and 1: the lower class
  mask = np.array([False, True, True])
  got = cluster.knn_predict(train, np.array([2, 1, 0]), np.array([[0.0]]),
                            k=1, num_classes=3, mask=mask)
  assert int(got[0]) == 1  # the padded nearest point is skipped
  queries = rng.normal(size=(2, 5, 1)).astype(np.float32)
  batched = jax.vmap(lambda q: cluster.knn_predict(
      train, np.array([2, 1, 0]), q, k=1, num_classes=3))(queries)
  for i in range(2):
    np.testing.assert_array_equal(
        batched[i], ref.knn_predict(train, np.array([2, 1, 0]), queries[i], 1))


def _far_apart_groups(rng, n):
  """Points around (0, 0), (50, 50) and (1000, 1000), unit spread: float32
  |q|^2 - 2 q.x + |x|^2 about the mean cannot rank neighbours 1 apart."""
  centres = np.array([[0, 0], [50, 50], [1000, 1000]], np.float32)
  return (centres[rng.integers(0, 3, n)]
          + rng.normal(size=(n, 2))).astype(np.float32)


@pytest.mark.parametrize("block_elements", [None, 300 * 8])
def test_knn_exact_for_groups_far_apart(block_elements, rng, monkeypatch):
  """The expanded form alone disagreed with sklearn on 238 of 500 such
  queries. Small blocks mix certified and recomputed blocks."""
  if block_elements is not None:
    monkeypatch.setattr(cluster, "_NEIGHBOUR_BLOCK_ELEMENTS", block_elements)
    jax.clear_caches()
  train, query = _far_apart_groups(rng, 300), _far_apart_groups(rng, 60)
  y = rng.integers(0, 4, 300)
  # The test is only meaningful if float32 expansion alone gets it wrong.
  centred = train - train.mean(0)
  q = query - train.mean(0)
  expanded = ((q * q).sum(1)[:, None] - 2 * q @ centred.T
              + (centred * centred).sum(1))
  exact = ((query[:, None].astype(np.float64) - train[None]) ** 2).sum(-1)
  assert np.any(np.argsort(expanded, 1, kind="stable")[:, :5]
                != np.argsort(exact, 1, kind="stable")[:, :5])
  got = cluster.knn_predict(train, y, query, k=5, num_classes=4)
  want = KNeighborsClassifier(n_neighbors=5).fit(
      train.astype(np.float64), y).predict(query.astype(np.float64))
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(got, ref.knn_predict(train, y, query, 5))
  jax.clear_caches()


@pytest.mark.parametrize("seed", range(10))
def test_knn_nearest_point_found_among_near_ties(seed):
  """30 points on a unit circle around the query at (1000, 1000), balanced
  by 30 at the opposite corner: the expanded distances round to 0.875, 1 or
  1.125, so the true nearest point can be left out of the candidates while
  the candidates' largest expanded distance (1) still exceeds their
  nearest exact one; only the rounding bound tells that the query must be
  recomputed (without it, 3 of these 10 seeds failed). Labels are the
  point indices, so the prediction is the nearest point itself."""
  angles = np.random.default_rng(seed).uniform(0, 2 * np.pi, 30)
  ring = 1000 + np.stack([np.cos(angles), np.sin(angles)], 1)
  train = np.concatenate([ring, -ring]).astype(np.float32)
  query = np.full((1, 2), 1000, np.float32)
  got = cluster.knn_predict(train, np.arange(60), query, k=1, num_classes=60)
  exact = ((query[:, None].astype(np.float64) - train[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(got, exact.argmin(1))


@pytest.mark.parametrize("num_far", [0, 40])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_knn_equal_distances_taken_in_index_order(num_far, offset):
  """Points at -1 and +1 around the query tie; the first two by index
  decide the vote, whether every point is re-ranked (few points), only the
  candidates are (many), or the block is recomputed (far from the mean)."""
  train = np.array([[1.0], [-1.0], [1.0], [-1.0]]) + offset
  y = [1, 1, 0, 0]
  if num_far:
    train = np.concatenate([train, np.full((num_far, 1), 50.0 + offset)])
    y = y + [0] * num_far
    if offset:
      train[-1] = -offset  # the mean moves far away
  got = cluster.knn_predict(train.astype(np.float32), np.array(y),
                            np.array([[offset]], np.float32), k=2,
                            num_classes=2)
  assert int(got[0]) == 1


def test_knn_nan_and_inf_training_points_rank_last(rng):
  train = rng.normal(size=(40, 2)).astype(np.float32)
  train[:2] = [np.nan, 0.0], [np.inf, 0.0]
  y = np.r_[[1, 1], np.zeros(38, int)]
  got = cluster.knn_predict(train, y, np.zeros((3, 2), np.float32), k=1,
                            num_classes=2)
  np.testing.assert_array_equal(got, [0, 0, 0])


@pytest.mark.parametrize("scale", [1e19, 1e-20])
def test_nearest_at_extreme_scales(scale):
  """Squared differences overflowed (1e19) or flushed to zero (1e-20), so
  every distance tied and index 0 won; the data are scaled by a power of
  two first."""
  points = np.array([[3.0], [2.0]], np.float32) * np.float32(scale)
  query = np.zeros((1, 1), np.float32)
  np.testing.assert_array_equal(
      cluster.knn_predict(points, np.array([0, 1]), query, k=1,
                          num_classes=2), [1])
  np.testing.assert_array_equal(cluster.kmeans_predict(query, points), [1])


def test_knn_nan_query_takes_real_points_before_padding():
  """Every distance of a NaN query is NaN: real points must still come
  before padding, whose labels (2 here) never vote."""
  train = np.arange(6, dtype=np.float32)[:, None]
  y = np.array([2, 2, 2, 0, 0, 1])
  mask = np.array([False, False, False, True, True, True])
  got = cluster.knn_predict(train, y, np.array([[np.nan], [0.0]], np.float32),
                            k=3, num_classes=3, mask=mask)
  np.testing.assert_array_equal(got, [0, 0])


def test_kmeans_predict_exact_for_centres_far_from_the_data():
  centers = np.array([[1000, 1000], [1000, 1000.5], [0, 0]], np.float32)
  x = (np.array([1000, 1000], np.float32) + np.random.default_rng(0).normal(
      0, 0.5, (200, 2))).astype(np.float32)
  exact = ((x[:, None].astype(np.float64) - centers[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(cluster.kmeans_predict(x, centers),
                                exact.argmin(1))
  # An exact tie goes to the lower index.
  np.testing.assert_array_equal(
      cluster.kmeans_predict(np.array([[1.0]]), np.array([[2.0], [0.0]])), [0])


def test_kmeans_padding_labels_feed_silhouette_and_knn(rng, key):
  """kmeans labels padding -1; with the same mask, silhouette_score and
  knn_predict accept them and equal their results on the real points."""
  x = _blobs(rng, n_per=10, k=3).astype(np.float32)
  padded = np.concatenate([x, np.full((4, x.shape[1]), 99.0, np.float32)])
  mask = np.arange(len(padded)) < len(x)
  labels = cluster.kmeans(key, padded, 3, mask=mask).labels
  assert np.all(labels[~mask] == -1)
  np.testing.assert_allclose(
      cluster.silhouette_score(padded, labels, num_clusters=3, mask=mask),
      cluster.silhouette_score(x, labels[mask], num_clusters=3), atol=1e-6)
  queries = x[::7] + 0.1
  np.testing.assert_array_equal(
      cluster.knn_predict(padded, labels, queries, k=3, num_classes=3,
                          mask=mask),
      cluster.knn_predict(x, labels[mask], queries, k=3, num_classes=3))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, match", [
    (lambda x, key: cluster.kmeans(key, x, 11), "k must"),
    (lambda x, key: cluster.kmeans(key, x, 0), "k must"),
    (lambda x, key: cluster.kmeans(key, x, 2.0), "k must"),
    (lambda x, key: cluster.kmeans(key, x[0], 2), r"\[N, D\]"),
    (lambda x, key: cluster.kmeans(key, x, 2, init="pp"), "init"),
    (lambda x, key: cluster.kmeans(key, x, 2, init=x[:3]), "init"),
    (lambda x, key: cluster.kmeans(key, x, 2, max_iter=0), "max_iter"),
    (lambda x, key: cluster.kmeans(key, x, 2, tol=-1.0), "tol"),
    (lambda x, key: cluster.kmeans(key, x, 2, tol=np.float32(-1)), "tol"),
    (lambda x, key: cluster.kmeans(key, x, 2, tol=float("nan")), "tol"),
    (lambda x, key: cluster.kmeans(key, x, 2, max_iter=0.5), "max_iter"),
    (lambda x, key: cluster.kmeans(key, x, 2, max_iter=np.int32(0)),
     "max_iter"),
    (lambda x, key: cluster.kmeans(key, x, 2, mask=np.ones(9)), "mask"),
    (lambda x, key: cluster.kmeans_predict(x, x[:, :1]), "centers"),
    (lambda x, key: cluster.silhouette_score(x, np.arange(10) % 3,
                                             num_clusters=2), "labels"),
    (lambda x, key: cluster.silhouette_score(x, np.zeros(9, int),
                                             num_clusters=2), "labels"),
    (lambda x, key: cluster.silhouette_score(x, np.zeros(10, int),
                                             num_clusters=0), "num_clusters"),
    (lambda x, key: cluster.knn_predict(x, np.zeros(10, int), x, k=11,
                                        num_classes=2), "k must"),
    (lambda x, key: cluster.knn_predict(x, np.zeros(10, int), x[:, :1], k=1,
                                        num_classes=2), "query"),
    (lambda x, key: cluster.knn_predict(x, np.full(10, 2), x, k=1,
                                        num_classes=2), "train_y"),
    (lambda x, key: cluster.knn_predict(x, np.zeros(9, int), x, k=1,
                                        num_classes=2), "train_y"),
])
def test_bad_input_raises(call, match, key):
  x = jnp.ones((10, 2))
  with pytest.raises(ValueError, match=match):
    call(x, key)


def test_docstring_examples():
  result = doctest.testmod(cluster, optionflags=doctest.NORMALIZE_WHITESPACE)
  assert result.attempted >= 3 and result.failed == 0


# ------------------------------------------- edge cases found by review


def test_kmeans_predict_far_from_the_origin():
  """Uncentred float32 |x|^2 - 2 x.c + |c|^2 picked the wrong centre at 1e4
  (sklearn's float64 predict: [0, 0, 1, 0])."""
  centers = np.array([[1e4], [1e4 + 1]], np.float32)
  x = np.array([[1e4 + 0.4], [1e4 + 0.45], [1e4 + 0.6], [1e4 + 0.3]],
               np.float32)
  np.testing.assert_array_equal(cluster.kmeans_predict(x, centers),
                                [0, 0, 1, 0])


def test_kmeans_labels_nearest_for_tight_clusters_far_from_the_mean(key):
  """Two far blobs of two tight clusters each: the float32 expanded form,
  rounded relative to |x|^2 ~ 1e6, labelled about a quarter of the points
  with a farther centre (labels != kmeans_predict of the returned centres)
  and ended with inertia 1.6x sklearn's (float64) from the same init."""
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(size=(50, 2)) * 1e-3 + 1e3,
                      rng.normal(size=(50, 2)) * 1e-3 - 1e3]).astype(
                          np.float32)
  init = x[[0, 1, 50, 51]]
  got = cluster.kmeans(key, x, 4, init=init)
  np.testing.assert_array_equal(got.labels,
                                cluster.kmeans_predict(x, got.centers))
  km = _sklearn(x.astype(np.float64), init.astype(np.float64))
  np.testing.assert_array_equal(got.labels, km.labels_)
  np.testing.assert_allclose(got.inertia, km.inertia_, rtol=0.02)


def test_kmeans_plus_plus_seeds_tight_clusters_far_from_the_mean():
  """Four tight clusters in two far groups: k-means++ weighted candidates
  by expanded-form distances, whose rounding (~|x|^2 u) swamped the true
  ones; the median inertia over seeds was 3.5x sklearn's (float64)."""
  rng = np.random.default_rng(0)
  offsets = rng.normal(size=(4, 2)) * 1e-2 + [[0], [0], [1e3], [1e3]]
  x = np.concatenate([o + rng.normal(size=(50, 2)) * 1e-3
                      for o in offsets]).astype(np.float32)
  got = [float(cluster.kmeans(jax.random.key(s), x, 4).inertia)
         for s in range(10)]
  want = [KMeans(4, n_init=1, random_state=s).fit(x.astype(np.float64))
          .inertia_ for s in range(10)]
  assert np.median(got) < 1.5 * np.median(want)


@pytest.mark.parametrize("pad", [np.nan, np.inf, 1e20])
def test_padding_values_never_reach_real_results(pad):
  x = np.array([[0.0], [1.0], [10.0], [11.0], [pad]], np.float32)
  y = np.array([0, 0, 1, 1, 0])
  mask = np.array([True, True, True, True, False])
  np.testing.assert_array_equal(
      cluster.knn_predict(x, y, np.array([[0.2], [10.2]], np.float32), k=1,
                          num_classes=2, mask=mask), [0, 1])
  result = cluster.kmeans(jax.random.key(0), x, 2, init=x[[0, 2]], mask=mask)
  np.testing.assert_allclose(np.sort(np.asarray(result.centers)[:, 0]),
                             [0.5, 10.5])
  np.testing.assert_allclose(
      cluster.silhouette_score(x, y, num_clusters=2, mask=mask),
      cluster.silhouette_score(x[:4], y[:4], num_clusters=2), rtol=1e-6)


def test_silhouette_gradient_is_finite_with_one_cluster():
  grad = jax.grad(lambda x: cluster.silhouette_score(
      x, jnp.array([0, 0, 0]), num_clusters=2))(
          jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
  assert np.all(np.isfinite(grad))


def test_bad_scalars_are_value_errors():
  x = np.arange(8, dtype=np.float32).reshape(4, 2)
  for tol in ("a", None, 1j):
    with pytest.raises(ValueError, match="tol"):
      cluster.kmeans(jax.random.key(0), x, 2, tol=tol)
  with pytest.raises(ValueError, match="x must hold points"):
    cluster.silhouette_score(np.zeros((4, 0)), [0, 0, 1, 1], num_clusters=2)
  for beta in ("a", None):
    with pytest.raises(ValueError, match="beta"):
      metrics.precision_recall_fscore(np.array([0, 1]), np.array([0, 1]),
                                      num_classes=2, beta=beta)
  with pytest.raises(ValueError, match="threshold must be a real scalar"):
    metrics.confusion_counts(np.array([0.2, 0.7]), np.array([0, 1]),
                             threshold=np.array([0.5, 0.6]))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_silhouette_non_finite_real_point_gives_nan(bad):
  """A real NaN point scored 0.743 here, neither the four nor the five
  finite points' score: its NaN distances were read as 0 (an inf point
  already gave NaN). sklearn rejects such input; NaN here, as an unmasked
  NaN score makes metrics.roc_auc NaN."""
  x = np.array([[0, 0], [0, 1], [10, 10], [10, 11], [5, 5]], np.float32)
  labels = np.array([0, 0, 1, 1, 1])
  x[4, 0] = bad
  assert np.isnan(cluster.silhouette_score(x, labels, num_clusters=2))
  grad = jax.grad(lambda x: cluster.silhouette_score(
      x, labels[:4], num_clusters=2))(jnp.asarray(x[:4]))
  assert np.all(np.isfinite(grad))


def test_mask_with_fewer_than_k_real_points_raises():
  """A known mask with fewer than k real points ran silently: kmeans with
  every point masked returned NaN centres, and knn_predict let padded
  points' labels vote (one real point of class 1, k=3: predicted 0).
  sklearn refuses k > n_samples; under jit the mask is not checked."""
  x = np.array([[0.0], [1.0], [10.0], [11.0], [12.0]], np.float32)
  y = np.array([1, 0, 0, 0, 0])
  one_real = np.array([True, False, False, False, False])
  with pytest.raises(ValueError, match="mask"):
    cluster.knn_predict(x, y, x[:1], k=3, num_classes=2, mask=one_real)
  with pytest.raises(ValueError, match="mask"):
    cluster.kmeans(jax.random.key(0), x, 2, mask=one_real)
  with pytest.raises(ValueError, match="mask"):
    cluster.kmeans(jax.random.key(0), x, 1, mask=np.zeros(5, bool))
  # Exactly k real points is fine; under jit the mask is not looked at.
  assert cluster.knn_predict(x, y, x[:1], k=1, num_classes=2,
                             mask=one_real)[0] == 1
  jax.jit(lambda m: cluster.kmeans(jax.random.key(0), x, 2, mask=m))(one_real)


def test_empty_inputs_raise_errors_naming_what_is_missing():
  """No centres raised numpy's "zero-size array to reduction operation
  max"; no points in silhouette_score said "at least one feature"."""
  x = np.ones((3, 2), np.float32)
  with pytest.raises(ValueError, match="centers must hold at least one"):
    cluster.kmeans_predict(x, np.zeros((0, 2), np.float32))
  with pytest.raises(ValueError, match=r"centers must have shape \[k, D\]"):
    cluster.kmeans_predict(x, np.zeros(2, np.float32))
  with pytest.raises(ValueError, match="x must hold at least one point"):
    cluster.silhouette_score(np.zeros((0, 2)), np.zeros(0, int),
                             num_clusters=2)
