"""Tests for jaxdl.metrics against scikit-learn and tests/reference/metrics.py.

Tolerances: counts are exact. Ratios are float32 divisions of exact
integer counts (<= 1 ulp, atol 1e-6). AUC / AP are float32 sums of at most a
few hundred terms in [0, 1] here: atol 1e-6 against sklearn's float64. The
binned AUC is within 1e-3 of the exact one at 1000 thresholds (the bound in
BinnedCounts: half the fraction of pairs sharing a bin, ~5e-4 for these
scores). Metrics are piecewise constant in the scores, so there are no
gradient tests.
"""

import doctest
import json
import os
import subprocess
import sys

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from jaxdl import metrics
from tests.reference import metrics as ref

ATOL = 1e-6
N = 64  # one padded size for the jitted cases, so they compile once


def _tied_data(rng, n, *, prevalence=0.4, decimals=1):
  scores = np.round(rng.random(n), decimals).astype(np.float32)
  labels = (rng.random(n) < prevalence).astype(np.int32)
  return scores, labels


def _pad(scores, labels, n=N, rng=None):
  """Pads to ``n`` with junk scores / labels and returns the mask."""
  rng = rng or np.random.default_rng(1)
  pad = n - len(scores)
  mask = np.arange(n) < len(scores)
  scores = np.concatenate([scores, rng.random(pad).astype(np.float32)])
  labels = np.concatenate([labels, rng.integers(0, 2, pad).astype(np.int32)])
  return scores, labels, mask


_roc_auc = jax.jit(metrics.roc_auc)
_ap = jax.jit(metrics.average_precision)
_roc_curve = jax.jit(metrics.roc_curve)
_pr_curve = jax.jit(metrics.precision_recall_curve)


# ------------------------------------------------------------------ binary


def test_notes_prf_example_and_in_place_bug():
  data = ref.NOTES_PRF_DATA.copy()
  scores, labels = data[:, 1].astype(np.float32), data[:, 2].astype(np.int32)
  got = metrics.precision_recall_f1(scores, labels, threshold=0.5)
  want = ref.notes_p_r_f1(data, 0.5)
  np.testing.assert_allclose(got, want, atol=ATOL)
  np.testing.assert_allclose(got, (2 / 3, 1.0, 0.8, 0.75), atol=ATOL)
  # The notes' snippet overwrote its caller's scores with 0/1 predictions.
  np.testing.assert_array_equal(data[:, 1], [1, 0, 1, 1])
  before = scores.copy()
  counts = metrics.confusion_counts(scores, labels, threshold=0.5)
  assert tuple(map(int, counts)) == (2, 1, 0, 1)
  np.testing.assert_array_equal(scores, before)  # jaxdl leaves it alone


@pytest.mark.parametrize("zero_division", [0.0, 1.0, np.nan])
def test_binary_prf_matches_sklearn(zero_division, rng):
  scores, labels = _tied_data(rng, 40)
  scores, labels, mask = _pad(scores, labels)
  real = slice(0, 40)
  for threshold in (0.0, 0.3, 0.5, 1.01):  # 1.01: no predicted positives
    got = metrics.precision_recall_f1(scores, labels, threshold=threshold,
                                      mask=mask, zero_division=zero_division)
    pred = (scores[real] >= threshold).astype(int)
    p, r, f, _ = skm.precision_recall_fscore_support(
        labels[real], pred, average="binary", zero_division=zero_division)
    acc = skm.accuracy_score(labels[real], pred)
    np.testing.assert_allclose(got, (p, r, f, acc), atol=ATOL)
    np.testing.assert_allclose(
        got, ref.p_r_f1(scores[real], labels[real], threshold, zero_division),
        atol=ATOL)


def test_binary_zero_division_no_positives_and_no_samples():
  scores = np.array([0.9, 0.1], np.float32)
  labels = np.array([0, 0])
  got = metrics.precision_recall_f1(scores, labels, zero_division=1.0)
  np.testing.assert_allclose(got, (0.0, 1.0, 0.0, 0.5))  # recall: 0/0
  empty = metrics.precision_recall_f1(scores, labels, mask=[False, False],
                                      zero_division=np.nan)
  assert np.all(np.isnan(np.asarray(empty)))


def test_confusion_counts_half_precision_compared_in_float32():
  """bfloat16 0.30078125 is below 0.3008; NumPy-style rounding of a Python
  threshold to bfloat16 (0.30078125) made it positive, unlike a float32
  threshold of the same value."""
  scores = jnp.array([0.30078125, 0.1, 0.9], jnp.bfloat16)
  labels = np.array([1, 0, 1])
  for threshold in (0.3008, np.float32(0.3008)):
    c = metrics.confusion_counts(scores, labels, threshold=threshold)
    assert tuple(map(int, c)) == (1, 0, 1, 1)
  c = jax.jit(lambda t: metrics.confusion_counts(scores, labels,
                                                 threshold=t))(0.3008)
  assert tuple(map(int, c)) == (1, 0, 1, 1)


def test_confusion_counts_any_shape_and_bool_labels():
  scores = np.array([[0.2, 0.7], [0.5, 0.1]], np.float32)
  labels = np.array([[False, True], [False, True]])
  c = metrics.confusion_counts(scores, labels)
  assert tuple(map(int, c)) == (1, 1, 1, 1)
  c = metrics.confusion_counts(scores, np.array([[-1, 1], [-1, 1]]))
  assert tuple(map(int, c)) == (1, 1, 1, 1)  # {-1, 1} labels


# -------------------------------------------------------------- multiclass


def test_confusion_matrix_matches_sklearn_with_absent_class_and_mask(rng):
  preds = rng.integers(0, 4, 50)
  labels = rng.integers(0, 4, 50)  # class 4 never occurs
  mask = rng.random(50) < 0.8
  got = metrics.confusion_matrix(preds, labels, num_classes=5, mask=mask)
  want = skm.confusion_matrix(labels[mask], preds[mask], labels=range(5))
  np.testing.assert_array_equal(got, want)
  assert got.dtype == jnp.int32


@pytest.mark.parametrize("average", metrics.AVERAGES)
@pytest.mark.parametrize("zero_division", [0.0, 1.0, np.nan])
def test_prfs_matches_sklearn(average, zero_division, rng):
  preds = rng.integers(0, 4, 30)
  preds[preds == 3] = 2  # class 3 is never predicted: precision 0/0
  labels = rng.integers(0, 5, 30)  # class 4 is true but never predicted
  labels[labels == 1] = 0  # class 1 is predicted but never true
  mask = rng.random(30) < 0.9
  for beta in (0.5, 1.0, 2.0):
    got = metrics.precision_recall_fscore(
        preds, labels, num_classes=6, average=average, beta=beta,
        zero_division=zero_division, mask=mask)
    want = skm.precision_recall_fscore_support(
        labels[mask], preds[mask], labels=range(6), average=average,
        beta=beta, zero_division=zero_division)
    for g, w in zip(got[:3], want[:3]):
      np.testing.assert_allclose(g, w, atol=ATOL)
    np.testing.assert_array_equal(
        got.support, np.bincount(labels[mask], minlength=6))


def test_prfs_support_is_int32_under_x64():
  with jax.enable_x64(True):
    got = metrics.precision_recall_fscore(
        np.array([0, 1, 1]), np.array([0, 1, 0]), num_classes=2)
  assert got.support.dtype == jnp.int32
  np.testing.assert_array_equal(got.support, [2, 1])


def test_prfs_nan_zero_division_compiles_once(rng):
  preds, labels = rng.integers(0, 7, 20), rng.integers(0, 7, 20)
  core = metrics._precision_recall_fscore
  before = core._cache_size()
  for zero_division in (np.nan, np.nan, 1.0):
    metrics.precision_recall_fscore(preds, labels, num_classes=7,
                                    average="macro",
                                    zero_division=zero_division)
  assert core._cache_size() == before + 1


def test_prfs_beta_limits_and_micro_is_accuracy(rng):
  preds, labels = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
  kw = dict(num_classes=3)
  r = metrics.precision_recall_fscore(preds, labels, **kw)
  np.testing.assert_allclose(
      metrics.precision_recall_fscore(preds, labels, beta=np.inf, **kw).fscore,
      r.recall)
  np.testing.assert_allclose(
      metrics.precision_recall_fscore(preds, labels, beta=0.0, **kw).fscore,
      r.precision)
  micro = metrics.precision_recall_fscore(preds, labels, average="micro", **kw)
  np.testing.assert_allclose(micro.fscore, np.mean(preds == labels),
                             atol=ATOL)


# ------------------------------------------------------------------ curves


def _check_curves(scores, labels, mask=None):
  real = slice(None) if mask is None else np.asarray(mask)
  s, y = scores[real], labels[real]
  c = _roc_curve(scores, labels, mask=mask)
  v = np.asarray(c.valid)
  fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
  np.testing.assert_allclose(np.asarray(c.x)[v], fpr, atol=ATOL)
  np.testing.assert_allclose(np.asarray(c.y)[v], tpr, atol=ATOL)
  np.testing.assert_array_equal(np.asarray(c.thresholds)[v], thr)
  c = _pr_curve(scores, labels, mask=mask)
  v = np.asarray(c.valid)
  precision, recall, thr = skm.precision_recall_curve(y, s)
  np.testing.assert_allclose(np.asarray(c.x)[v], recall, atol=ATOL)
  np.testing.assert_allclose(np.asarray(c.y)[v], precision, atol=ATOL)
  np.testing.assert_array_equal(np.asarray(c.thresholds)[v][:-1], thr)
  np.testing.assert_allclose(_roc_auc(scores, labels, mask=mask),
                             skm.roc_auc_score(y, s), atol=ATOL)
  np.testing.assert_allclose(_ap(scores, labels, mask=mask),
                             skm.average_precision_score(y, s), atol=ATOL)


@pytest.mark.parametrize("decimals", [1, 2, 7])
def test_curves_auc_ap_match_sklearn_with_ties(decimals, rng):
  scores, labels = _tied_data(rng, N, decimals=decimals)
  _check_curves(scores, labels)


def test_curves_auc_ap_match_sklearn_with_masked_padding(rng):
  scores, labels = _tied_data(rng, 45, decimals=2)
  _check_curves(*_pad(scores, labels, rng=rng))


def test_long_input_associative_scan_path(rng):
  n = metrics._ASSOCIATIVE_SCAN_MIN + 7
  scores, labels = _tied_data(rng, n, decimals=2)
  mask = rng.random(n) < 0.9
  # roc_auc runs both scans (running sum and running max); AP shares them.
  np.testing.assert_allclose(
      metrics.roc_auc(scores, labels, mask=mask),
      skm.roc_auc_score(labels[mask], scores[mask]), atol=ATOL)


def test_auc_ap_extreme_scores_and_negatives(rng):
  scores = np.array([-3e38, -3.5, -0.0, 0.0, 1e-30, 2.5, 3e38, -3.5] * 8,
                    np.float32)  # -0.0 ties with 0.0
  labels = (rng.random(N) < 0.5).astype(np.int32)
  _check_curves(scores, labels)
  scores[scores == 3e38] = np.inf  # sklearn rejects infinities
  scores[scores == -3e38] = -np.inf
  np.testing.assert_allclose(_roc_auc(scores, labels),
                             ref.trapezoid_auc(labels, scores), atol=ATOL)
  np.testing.assert_allclose(_ap(scores, labels),
                             ref.average_precision(labels, scores), atol=ATOL)


def test_half_precision_scores_rank_like_their_float32_values(rng):
  scores, labels = _tied_data(rng, N, decimals=2)
  half = scores.astype(jnp.bfloat16)  # bfloat16 rounding adds ties
  exact = np.asarray(half.astype(np.float32))
  np.testing.assert_allclose(_roc_auc(half, labels),
                             skm.roc_auc_score(labels, exact), atol=ATOL)
  np.testing.assert_allclose(_ap(half, labels),
                             skm.average_precision_score(labels, exact),
                             atol=ATOL)


def test_all_scores_equal():
  labels = np.array([1, 0, 0, 1, 0, 0, 0, 0] * 8, np.int32)
  scores = np.full(N, 0.3, np.float32)
  np.testing.assert_allclose(_roc_auc(scores, labels), 0.5, atol=ATOL)
  np.testing.assert_allclose(_ap(scores, labels), labels.mean(), atol=ATOL)
  c = _roc_curve(scores, labels)
  assert int(np.sum(c.valid)) == 2  # the start point and one threshold


def test_single_class():
  scores = np.linspace(0, 1, N, dtype=np.float32)
  ones, zeros = np.ones(N, np.int32), np.zeros(N, np.int32)
  assert np.isnan(_roc_auc(scores, ones))  # sklearn: warns, NaN
  assert np.isnan(_roc_auc(scores, zeros))
  np.testing.assert_allclose(_ap(scores, ones), 1.0, atol=ATOL)
  np.testing.assert_allclose(_ap(scores, zeros),
                             skm.average_precision_score(zeros, scores))
  c = _roc_curve(scores, ones)
  assert np.all(np.isnan(c.x)) and not np.any(np.isnan(c.y))
  c = _pr_curve(scores, zeros)
  np.testing.assert_array_equal(np.asarray(c.x)[np.asarray(c.valid)],
                                skm.precision_recall_curve(zeros, scores)[1])


def test_all_masked_and_nan_scores(rng):
  scores, labels = _tied_data(rng, N)
  assert np.isnan(_roc_auc(scores, labels, mask=np.zeros(N, bool)))
  np.testing.assert_array_equal(
      _roc_curve(scores, labels, mask=np.zeros(N, bool)).valid,
      np.arange(N + 1) == 0)
  bad = scores.copy()
  bad[3] = np.nan
  assert np.isnan(_roc_auc(bad, labels)) and np.isnan(_ap(bad, labels))
  assert np.all(np.isnan(_roc_curve(bad, labels).x))
  mask = np.arange(N) != 3  # a masked NaN is ignored
  np.testing.assert_allclose(_roc_auc(bad, labels, mask=mask),
                             skm.roc_auc_score(labels[mask], scores[mask]),
                             atol=ATOL)


def test_notes_auc_implementations_as_regression_cases(rng):
  labels = (rng.random(N) < 0.4).astype(np.int32)
  scores = rng.choice(np.array([0.2, 0.5, 0.8], np.float32), N)
  got = float(_roc_auc(scores, labels))
  # The first (rank) formula with mean ranks for ties is exact.
  np.testing.assert_allclose(got, ref.rank_auc(labels, scores), atol=ATOL)
  np.testing.assert_allclose(got, ref.trapezoid_auc(labels, scores),
                             atol=ATOL)
  # The second counts ties in (reversed) sort order: wrong with ties...
  _, _, notes_auc = ref.notes_get_auc(scores.astype(np.float64), labels)
  assert abs(notes_auc - got) > 1e-3
  # ...and right without them.
  distinct = rng.permutation(N).astype(np.float32)
  _, _, notes_auc = ref.notes_get_auc(distinct.astype(np.float64), labels)
  np.testing.assert_allclose(_roc_auc(distinct, labels), notes_auc, atol=ATOL)


def test_xla_sort_path_equals_numpy_path(rng, monkeypatch):
  """CPU runs the NumPy sort; the device path (lax.sort) must agree."""
  scores, labels = _tied_data(rng, N, decimals=1)
  scores, labels, mask = _pad(scores[:50], labels[:50], rng=rng)

  def fresh():  # a new function each time: jit caches traces per function
    def all_metrics(s, y, m):
      r = metrics._rank(s, y, m)
      return metrics._auc_from_ranked(r), metrics._ap_from_ranked(r), r
    return all_metrics

  args = (scores, labels, mask)
  want = jax.jit(fresh())(*args)
  assert "callback" in str(jax.make_jaxpr(fresh())(*args))
  monkeypatch.setattr(metrics, "_sort_by_key", metrics._xla_sort)
  assert "callback" not in str(jax.make_jaxpr(fresh())(*args))
  got = jax.jit(fresh())(*args)
  chex.assert_trees_all_equal(got[:2], want[:2])
  valid = np.asarray(want[2].valid)
  np.testing.assert_array_equal(got[2].valid, valid)
  for g, w in zip(got[2][:3], want[2][:3]):  # tie order may differ inside
    np.testing.assert_array_equal(np.asarray(g)[valid], np.asarray(w)[valid])


@hypothesis.settings(max_examples=25)
@hypothesis.given(
    st.lists(st.integers(0, 5), min_size=N, max_size=N),
    st.lists(st.booleans(), min_size=N, max_size=N),
    st.integers(2, N))
def test_auc_ap_properties(levels, positive, n_real):
  scores = np.asarray(levels, np.float32) / 5
  labels = np.asarray(positive, np.int32)
  mask = np.arange(N) < n_real
  y, s = labels[:n_real], scores[:n_real]
  auc = float(_roc_auc(scores, labels, mask=mask))
  if 0 < y.sum() < n_real:
    np.testing.assert_allclose(auc, skm.roc_auc_score(y, s), atol=ATOL)
    # Reversing the ranking complements the AUC; permuting changes nothing.
    np.testing.assert_allclose(_roc_auc(-scores, labels, mask=mask), 1 - auc,
                               atol=ATOL)
    perm = np.random.default_rng(n_real).permutation(N)
    np.testing.assert_allclose(
        _roc_auc(scores[perm], labels[perm], mask=mask[perm]), auc, atol=ATOL)
  else:
    assert np.isnan(auc)
  np.testing.assert_allclose(_ap(scores, labels, mask=mask),
                             ref.average_precision(y, s), atol=ATOL)


def test_jit_vmap_and_no_retrace(rng):
  batch = [_tied_data(rng, N) for _ in range(3)]
  scores = np.stack([b[0] for b in batch])
  labels = np.stack([b[1] for b in batch])

  @jax.jit
  @chex.assert_max_traces(n=1)
  def auc_and_ap(s, y):
    return metrics.roc_auc(s, y), metrics.average_precision(s, y)

  auc, ap = jax.vmap(auc_and_ap)(scores, labels)
  auc2, _ = jax.vmap(auc_and_ap)(scores[::-1], labels[::-1])  # no retrace
  for i in range(3):
    np.testing.assert_allclose(auc[i], skm.roc_auc_score(labels[i], scores[i]),
                               atol=ATOL)
    np.testing.assert_allclose(
        ap[i], skm.average_precision_score(labels[i], scores[i]), atol=ATOL)
  np.testing.assert_allclose(auc2, auc[::-1])
  curves = jax.vmap(metrics.roc_curve)(scores, labels)
  chex.assert_shape(curves.x, (3, N + 1))
  prfs = jax.jit(jax.vmap(lambda p, y: metrics.precision_recall_fscore(
      p, y, num_classes=2, average="macro")))(scores > 0.5, labels)
  want = skm.precision_recall_fscore_support(labels[1], scores[1] > 0.5,
                                             average="macro")
  np.testing.assert_allclose(prfs.fscore[1], want[2], atol=ATOL)


# -------------------------------------------------------------- multiclass AUC


@pytest.mark.parametrize("average", metrics.ROC_AVERAGES)
def test_multiclass_roc_auc_matches_sklearn(average, rng):
  logits = np.round(rng.normal(size=(60, 4)), 1)
  # The same float32 values for both (ties from the rounded logits).
  probs = np.asarray(jax.nn.softmax(logits), np.float32)
  labels = rng.integers(0, 4, 60)
  mask = rng.random(60) < 0.8
  got = metrics.multiclass_roc_auc(probs, labels, average=average, mask=mask)
  want = skm.roc_auc_score(labels[mask], probs[mask], multi_class="ovr",
                           average=average, labels=range(4))
  np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.filterwarnings(  # sklearn's own, for the absent class
    "ignore:Only one class is present:UserWarning")
def test_multiclass_roc_auc_absent_class_is_nan(rng):
  probs = np.asarray(jax.nn.softmax(rng.normal(size=(30, 3))))
  labels = rng.integers(0, 2, 30)  # class 2 absent
  per_class = metrics.multiclass_roc_auc(probs, labels, average=None)
  assert np.isnan(per_class[2]) and not np.any(np.isnan(per_class[:2]))
  assert np.isnan(metrics.multiclass_roc_auc(probs, labels))
  # Weighted: the absent class weighs 0 (sklearn forces its score to 0).
  np.testing.assert_allclose(
      metrics.multiclass_roc_auc(probs, labels, average="weighted"),
      skm.roc_auc_score(labels, probs, multi_class="ovr", average="weighted",
                        labels=range(3)), atol=1e-6)


@pytest.mark.parametrize("average", ["macro", "weighted", "micro"])
def test_multiclass_roc_auc_every_sample_masked_is_nan(rng, average):
  """No sample: every class is absent (sklearn raises on empty input)."""
  probs = np.asarray(jax.nn.softmax(rng.normal(size=(6, 3))))
  got = metrics.multiclass_roc_auc(probs, np.arange(6) % 3, average=average,
                                   mask=np.zeros(6, bool))
  assert np.isnan(got)


def test_masked_padding_may_hold_any_class_id(rng):
  """Padding ids such as -1 are not range-checked where mask is False, and
  the results equal those of the real entries alone."""
  probs = np.asarray(jax.nn.softmax(rng.normal(size=(12, 3))))
  labels = np.array([0, 1, 2] * 3 + [-1, -1, 7])
  preds = np.where(labels >= 0, np.argmax(probs, 1), -1)
  mask = labels >= 0
  mask[-1] = False
  real = slice(0, 9)
  np.testing.assert_array_equal(
      metrics.confusion_matrix(preds, labels, num_classes=3, mask=mask),
      metrics.confusion_matrix(preds[real], labels[real], num_classes=3))
  np.testing.assert_allclose(
      metrics.multiclass_roc_auc(probs, labels, mask=mask),
      metrics.multiclass_roc_auc(probs[real], labels[real]), atol=1e-7)
  with pytest.raises(ValueError,
                     match=r"labels must lie in \[0, probs.shape\[1\]=3\)"):
    metrics.multiclass_roc_auc(probs, labels, mask=labels != 7)


# ---------------------------------------------------------------- streaming


def test_binned_auc_close_to_exact_and_merge_equals_one_pass(rng):
  n = 20_000
  labels = (rng.random(n) < 0.3).astype(np.int32)
  scores = np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1).astype(
      np.float32)
  one_pass = metrics.binned_update(metrics.binned_init(1000), scores, labels)
  half = n // 2
  a = metrics.binned_update(metrics.binned_init(1000), scores[:half],
                            labels[:half])
  b = metrics.binned_update(metrics.binned_init(1000), scores[half:],
                            labels[half:])
  chex.assert_trees_all_equal(metrics.binned_merge(a, b), one_pass)
  exact_auc = skm.roc_auc_score(labels, scores)
  assert abs(float(metrics.binned_roc_auc(one_pass)) - exact_auc) < 1e-3
  exact_ap = skm.average_precision_score(labels, scores)
  assert abs(float(metrics.binned_average_precision(one_pass))
             - exact_ap) < 1e-3
  # With scores on the grid the binned values are exact.
  grid = np.round(scores * 999) / 999
  on_grid = metrics.binned_update(metrics.binned_init(1000), grid, labels)
  np.testing.assert_allclose(metrics.binned_roc_auc(on_grid),
                             skm.roc_auc_score(labels, grid), atol=1e-6)
  np.testing.assert_allclose(metrics.binned_average_precision(on_grid),
                             skm.average_precision_score(labels, grid),
                             atol=1e-6)


def test_binned_psum_across_devices_axis_and_mask(rng):
  scores = rng.random((4, 25)).astype(np.float32)
  labels = rng.integers(0, 2, (4, 25))
  mask = rng.random((4, 25)) < 0.7

  def per_device(s, y, m):
    state = metrics.binned_update(metrics.binned_init(11), s, y, mask=m)
    return jax.lax.psum(state, "devices")

  merged = jax.vmap(per_device, axis_name="devices")(scores, labels, mask)
  want = metrics.binned_update(metrics.binned_init(11), scores, labels,
                               mask=mask)
  chex.assert_trees_all_equal(jax.tree.map(lambda v: v[0], merged), want)
  assert int(want.positives.sum() + want.negatives.sum()) == mask.sum()
  assert np.isnan(metrics.binned_roc_auc(metrics.binned_init(11)))


@pytest.mark.parametrize("num_thresholds", [2, 11, 101, 200, 1000, 1001])
def test_binned_scores_on_a_threshold_go_to_its_bin(num_thresholds):
  """float32(j / (T - 1)) goes to bin j, though float32(0.53) * 100 =
  52.999996 floors to 52; its neighbours one ulp away go either side."""
  grid = (np.arange(num_thresholds) / (num_thresholds - 1)).astype(np.float32)
  below = np.nextafter(grid[1:], np.float32(0))
  for scores, bins in ((grid, np.arange(num_thresholds)),
                       (below, np.arange(num_thresholds - 1))):
    state = metrics.binned_update(metrics.binned_init(num_thresholds), scores,
                                  np.ones(scores.shape, int))
    np.testing.assert_array_equal(
        state.positives, np.bincount(bins, minlength=num_thresholds))
  # Two scores on adjacent thresholds are told apart: AUC exact.
  s = grid[[num_thresholds // 2 - 1, num_thresholds // 2]]
  state = metrics.binned_update(metrics.binned_init(num_thresholds), s,
                                np.array([0, 1]))
  assert float(metrics.binned_roc_auc(state)) == 1.0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, match", [
    (lambda: metrics.roc_auc(np.zeros(3), np.zeros(4)), "same shape"),
    (lambda: metrics.roc_auc(np.zeros((2, 3)), np.zeros((2, 3))), r"\[N\]"),
    (lambda: metrics.roc_auc(np.zeros(3), np.zeros(3), mask=np.ones(2)),
     "mask"),
    (lambda: metrics.confusion_counts(np.zeros(3), np.zeros(2)), "labels"),
    (lambda: metrics.confusion_matrix(np.array([0, 3]), np.array([0, 1]),
                                      num_classes=3), "preds"),
    (lambda: metrics.confusion_matrix(np.array([0, 1]), np.array([-1, 1]),
                                      num_classes=3), "labels"),
    (lambda: metrics.confusion_matrix(np.zeros(2, int), np.zeros(2, int),
                                      num_classes=0), "num_classes"),
    (lambda: metrics.confusion_matrix(np.zeros(2), np.zeros(2, int),
                                      num_classes=2), "integer"),
    (lambda: metrics.confusion_matrix(np.zeros(2, int), np.zeros(2, int),
                                      num_classes=46341), "below 46341"),
    (lambda: metrics.precision_recall_fscore(
        np.zeros(2, int), np.zeros(2, int), num_classes=2, average="binary"),
     "average"),
    (lambda: metrics.precision_recall_fscore(
        np.zeros(2, int), np.zeros(2, int), num_classes=2, beta=-1.0), "beta"),
    (lambda: metrics.precision_recall_fscore(
        np.zeros(2, int), np.zeros(2, int), num_classes=2,
        beta=float("nan")), "beta"),
    (lambda: metrics.precision_recall_f1(np.zeros(2), np.zeros(2),
                                         zero_division=0.5), "zero_division"),
    (lambda: metrics.precision_recall_f1(np.zeros(2), np.zeros(2),
                                         zero_division="warn"),
     "zero_division"),
    (lambda: metrics.precision_recall_fscore(
        np.zeros(2, int), np.zeros(2, int), num_classes=2,
        zero_division=None), "zero_division"),
    (lambda: metrics.multiclass_roc_auc(np.zeros(3), np.zeros(3, int)),
     "probs"),
    # No class column: the error named labels (ids outside [0, 0)).
    (lambda: metrics.multiclass_roc_auc(np.zeros((3, 0)), np.zeros(3, int)),
     "probs must have at least one class"),
    (lambda: metrics.multiclass_roc_auc(np.zeros((3, 2)), np.array([0, 1, 2])),
     "labels"),
    (lambda: metrics.multiclass_roc_auc(np.zeros((3, 2)), np.zeros(3, int),
                                        average="ovo"), "average"),
    (lambda: metrics.binned_init(1), "num_thresholds"),
    (lambda: metrics.confusion_counts(np.zeros(2), np.zeros(2),
                                      threshold=None), "threshold"),
    (lambda: metrics.precision_recall_f1(np.zeros(2), np.zeros(2),
                                         threshold="0.5"), "threshold"),
    (lambda: metrics.confusion_counts(np.zeros(2), np.zeros(2),
                                      threshold=0.5j), "threshold"),
    (lambda: metrics.confusion_counts(np.zeros(2), np.zeros(2),
                                      threshold=np.ones(1)), "threshold"),
])
def test_bad_input_raises(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_wide_int64_ids_under_jit_are_ignored():
  """Under x64, an int64 id 2**32 + 1 cast to int32 became class 1."""
  with jax.enable_x64(True):
    cm = jax.jit(lambda p, y: metrics.confusion_matrix(p, y, num_classes=2))(
        np.array([2**32 + 1, 0, 1]), np.array([1, 0, -2**32 + 1]))
  np.testing.assert_array_equal(cm, [[1, 0], [0, 0]])


def test_out_of_range_labels_under_jit_are_ignored():
  cm = jax.jit(lambda p, y: metrics.confusion_matrix(p, y, num_classes=2))(
      np.array([0, 1, 5]), np.array([0, -1, 1]))
  np.testing.assert_array_equal(cm, [[1, 0], [0, 0]])


def test_docstring_examples():
  result = doctest.testmod(metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
  assert result.attempted >= 6 and result.failed == 0


def test_subnormal_scores_are_ranked_by_value():
  """XLA:CPU compares floats with subnormals flushed to zero; the sort keys
  read the bits (a sigmoid of a logit below -87 is subnormal)."""
  scores = np.float32([0, 1e-40, 1e-40, 0])
  labels = np.array([0, 1, 1, 0])
  np.testing.assert_allclose(metrics.roc_auc(scores, labels),
                             skm.roc_auc_score(labels, scores))


def test_huge_finite_beta_is_recall():
  labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
  preds = np.array([0, 2, 1, 0, 0, 1, 0, 1])
  for beta in (2.0, 1e20):
    np.testing.assert_allclose(
        metrics.precision_recall_fscore(preds, labels, num_classes=3,
                                        beta=beta).fscore,
        skm.fbeta_score(labels, preds, beta=beta, average=None), atol=1e-6)


def test_binned_batch_of_states_raises_and_vmap_works(rng):
  """A [B, T] state (vmap of the update) failed with a TypeError inside
  the AUC / AP, and an update added the batch to every row."""
  scores = rng.random((3, 40)).astype(np.float32)
  labels = rng.integers(0, 2, (3, 40))
  update = lambda s, y: metrics.binned_update(metrics.binned_init(11), s, y)
  states = jax.vmap(update)(scores, labels)
  chex.assert_shape(states.positives, (3, 11))
  for fn in (metrics.binned_roc_auc, metrics.binned_average_precision):
    with pytest.raises(ValueError, match=r"state must hold \[T\].*vmap"):
      fn(states)
    np.testing.assert_array_equal(
        jax.vmap(fn)(states), [fn(update(s, y)) for s, y in zip(scores,
                                                                labels)])
  with pytest.raises(ValueError, match=r"state must hold \[T\]"):
    metrics.binned_update(states, scores[0], labels[0])


def test_multiclass_roc_auc_two_classes_is_the_binary_auc(rng):
  """sklearn's ovr call rejects C = 2 (it wants probs[:, 1]); jaxdl gives
  the one-vs-rest values, equal to that binary AUC for rows summing to 1."""
  probs = np.asarray(jax.nn.softmax(rng.normal(size=(50, 2))), np.float64)
  labels = rng.integers(0, 2, 50)
  with pytest.raises(ValueError, match="1d array"):
    skm.roc_auc_score(labels, probs, multi_class="ovr")
  binary = skm.roc_auc_score(labels, probs[:, 1])
  for average in ("macro", "weighted"):
    np.testing.assert_allclose(
        metrics.multiclass_roc_auc(probs, labels, average=average), binary,
        atol=1e-6)
  np.testing.assert_allclose(
      metrics.multiclass_roc_auc(probs, labels, average="micro"),
      skm.roc_auc_score(np.eye(2)[labels], probs, average="micro"),
      atol=1e-6)


def test_binned_merge_rejects_other_thresholds():
  a = metrics.binned_init(11)
  with pytest.raises(ValueError, match="same thresholds"):
    metrics.binned_merge(a, metrics.binned_init(5))


_SHARD_MAP_SCRIPT = """
import json
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from jaxdl import metrics
mesh = jax.make_mesh((4,), ("d",))
rng = np.random.default_rng(0)
scores = rng.random((4, 25)).astype(np.float32)
labels = rng.random((4, 25)) < 0.5
f = jax.shard_map(lambda s, y: metrics.roc_auc(s[0], y[0])[None], mesh=mesh,
                  in_specs=(P("d"), P("d")), out_specs=P("d"))
put = lambda x: jax.device_put(x, NamedSharding(mesh, P("d")))
got = jax.jit(f)(put(scores), put(labels))
print(json.dumps({"got": np.asarray(got).tolist(),
                  "scores": scores.tolist(), "labels": labels.tolist()}))
"""


def test_sorted_metrics_run_inside_shard_map():
  """The CPU sort's callback results vary over the mesh like its inputs
  (check_vma), in a subprocess with 4 forced CPU devices."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _SHARD_MAP_SCRIPT], env=env,
                        capture_output=True, text=True, timeout=300,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  want = [skm.roc_auc_score(y, s) for s, y in zip(out["scores"],
                                                   out["labels"])]
  np.testing.assert_allclose(out["got"], want, atol=1e-6)
