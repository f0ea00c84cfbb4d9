"""Classification metrics: P/R/F, confusion matrix, ROC/PR curves, AUC, AP.

Every function is pure, static-shaped, works under ``jax.jit`` and batches
with ``jax.vmap``. Padded batches pass ``mask`` (True = real sample); masked
samples count nowhere. Results equal scikit-learn's:

* ``precision_recall_fscore`` = ``sklearn.metrics.
  precision_recall_fscore_support`` with ``labels=range(num_classes)``;
* ``roc_curve`` / ``precision_recall_curve``: ``x[valid]``, ``y[valid]`` equal
  sklearn's curves (``roc_curve(..., drop_intermediate=False)``);
* ``roc_auc`` = ``roc_auc_score`` (tied scores share a threshold, so ties
  count one half: the mid-rank / trapezoid rule), NaN where sklearn warns that
  a class is absent; ``average_precision`` = ``average_precision_score``.

Curves are fixed-length: one slot per sample plus the start point. Scores are
ranked in float32 (half precision is upcast exactly; float64 is rounded to
float32 when x64 is on, and integer scores above 2**24 can tie). An unmasked
NaN score makes the curve and the AUC / AP NaN (sklearn rejects NaN input).

Sorting is the only super-linear step. XLA's CPU sort is a comparison sort,
over 10x slower than NumPy's vectorised one (``roc_auc`` at N = 1e6: 187 ms
with ``lax.sort``, 15.7 ms with NumPy in experiments/results/metrics.md),
so on the CPU backend that one sort is delegated to NumPy through
``jax.pure_callback`` (still jittable and vmappable, not differentiable,
which these piecewise-constant metrics are not anyway); on other backends
``lax.sort`` runs on the device (``lax.platform_dependent``).

For evaluation sets that do not fit in memory, ``BinnedCounts`` accumulates
per-bin positive / negative counts on a fixed grid of thresholds; its update
and merge are sums, so ``jax.lax.psum`` merges per-device states.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxdl import _keys
from jaxdl._checks import (as_rank, class_ids, half_to_float32, is_real_scalar,
                           mask_or_ones, one_of, positive_int, signed_ids)

AVERAGES = (None, "micro", "macro", "weighted")
ROC_AVERAGES = (None, "micro", "macro", "weighted")

_INT32_MAX = np.iinfo(np.int32).max
_CODE_PAD, _CODE_NEG, _CODE_POS = 0, 1, 2


class Counts(NamedTuple):
  """Binary confusion counts (int32 scalars, or ``[...]`` under vmap)."""
  tp: jax.Array
  fp: jax.Array
  fn: jax.Array
  tn: jax.Array


class BinaryScores(NamedTuple):
  """Precision, recall, F1 and accuracy at one threshold (float32)."""
  precision: jax.Array
  recall: jax.Array
  f1: jax.Array
  accuracy: jax.Array


class PRFScores(NamedTuple):
  """``precision_recall_fscore`` output.

  ``precision``, ``recall``, ``fscore`` are ``[num_classes]`` for
  ``average=None`` and scalars otherwise; ``support`` is always the
  ``[num_classes]`` int32 count of true samples per class (sklearn returns
  None when averaging; a fixed shape is kept here).
  """
  precision: jax.Array
  recall: jax.Array
  fscore: jax.Array
  support: jax.Array


class Curve(NamedTuple):
  """A fixed-length curve; only entries where ``valid`` is True are on it.

  Every field is ``[N + 1]`` for ``N`` samples. Entries with ``valid`` False
  are the intermediate points inside a group of tied scores, or padding.
  """
  x: jax.Array
  y: jax.Array
  thresholds: jax.Array
  valid: jax.Array


# ------------------------------------------------------------------ checks


def _check_same_shape(a: jax.Array, b: jax.Array, name_a: str,
                      name_b: str) -> None:
  if a.shape != b.shape:
    raise ValueError(f"{name_a} and {name_b} must have the same shape, got "
                     f"{tuple(a.shape)} and {tuple(b.shape)}.")


def _check_zero_division(zero_division: float) -> None:
  is_nan = (isinstance(zero_division, (float, np.floating))
            and np.isnan(zero_division))
  if not (is_nan or zero_division in (0, 1)):
    raise ValueError(
        f"zero_division must be 0.0, 1.0 or nan, got {zero_division!r}.")


def _divide(num: jax.Array, den: jax.Array,
            zero_division: ArrayLike) -> jax.Array:
  """``num / den`` in float32, ``zero_division`` where ``den == 0``."""
  num = num.astype(jnp.float32)
  den = den.astype(jnp.float32)
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0),
                   jnp.asarray(zero_division, jnp.float32))


# ------------------------------------------------------------------ binary


def confusion_counts(scores: ArrayLike, labels: ArrayLike, *,
                     threshold: ArrayLike = 0.5,
                     mask: ArrayLike | None = None) -> Counts:
  """Binary TP / FP / FN / TN at one threshold.

  A sample is predicted positive iff ``score >= threshold`` (the notes'
  rule); it is a true positive iff ``label > 0`` (so {0, 1}, bool and
  {-1, 1} labels all work). The inputs are never modified (the notes'
  snippet thresholds its caller's array in place). Equals ``sklearn.metrics.
  confusion_matrix(labels > 0, scores >= threshold, labels=[0, 1])
  .ravel()`` in the order (tn, fp, fn, tp).

  Args:
    scores: ``[...]`` scores or probabilities. Half precision is compared
      in float32, so a Python-float threshold is not first rounded to the
      scores' dtype (as NumPy would): the result does not depend on the
      threshold's dtype.
    labels: ``[...]`` binary labels, same shape.
    threshold: real scalar; may be traced.
    mask: optional ``[...]`` bool, False for padding.

  Returns:
    ``Counts(tp, fp, fn, tn)``, int32 scalars summed over every axis.

  >>> c = confusion_counts(jnp.array([0.76, 0.3, 0.5, 0.76]),
  ...                      jnp.array([1, 0, 0, 1]))
  >>> [int(v) for v in c]  # tp, fp, fn, tn
  [2, 1, 0, 1]
  """
  scores = jnp.asarray(scores)
  labels = jnp.asarray(labels)
  _check_same_shape(scores, labels, "scores", "labels")
  mask = mask_or_ones(mask, scores.shape)
  if not is_real_scalar(threshold):
    shown = (f"shape {np.shape(threshold)}" if np.ndim(threshold)
             else repr(threshold))
    raise ValueError(f"threshold must be a real scalar, got {shown}.")
  scores = scores.astype(half_to_float32(scores.dtype))
  predicted = scores >= threshold
  positive = labels > 0

  def count(p, t):
    return jnp.sum(mask & (predicted == p) & (positive == t), dtype=jnp.int32)

  return Counts(tp=count(True, True), fp=count(True, False),
                fn=count(False, True), tn=count(False, False))


def precision_recall_f1(scores: ArrayLike, labels: ArrayLike, *,
                        threshold: ArrayLike = 0.5,
                        mask: ArrayLike | None = None,
                        zero_division: float = 0.0) -> BinaryScores:
  """Binary precision, recall, F1 and accuracy at ``score >= threshold``.

  Equals ``sklearn.metrics.precision_recall_fscore_support(...,
  average="binary", zero_division=zero_division)`` on the thresholded
  predictions, and ``accuracy_score``. A ratio whose denominator is zero
  (no predicted positives, no positives, no samples) is ``zero_division``;
  F1 is ``2 tp / (2 tp + fp + fn)``, so it is 0 rather than NaN when
  precision and recall are both 0.

  Args:
    scores: ``[...]`` scores.
    labels: ``[...]`` binary labels (``> 0`` is positive).
    threshold: scalar threshold.
    mask: optional ``[...]`` bool.
    zero_division: 0.0, 1.0 or nan (static).

  Returns:
    ``BinaryScores(precision, recall, f1, accuracy)``, float32 scalars.

  References:
    scikit-learn ``precision_recall_fscore_support``.

  >>> precision_recall_f1(jnp.array([0.76, 0.3, 0.5, 0.76]),
  ...                     jnp.array([1, 0, 0, 1])).f1
  Array(0.8, dtype=float32)
  """
  _check_zero_division(zero_division)
  c = confusion_counts(scores, labels, threshold=threshold, mask=mask)
  return BinaryScores(
      precision=_divide(c.tp, c.tp + c.fp, zero_division),
      recall=_divide(c.tp, c.tp + c.fn, zero_division),
      f1=_divide(2 * c.tp, 2 * c.tp + c.fp + c.fn, zero_division),
      accuracy=_divide(c.tp + c.tn, c.tp + c.fp + c.fn + c.tn, zero_division))


# -------------------------------------------------------------- multiclass


def confusion_matrix(preds: ArrayLike, labels: ArrayLike, *, num_classes: int,
                     mask: ArrayLike | None = None) -> jax.Array:
  """Multiclass confusion matrix, rows true class, columns predicted class.

  Equals ``sklearn.metrics.confusion_matrix(labels, preds,
  labels=range(num_classes))``. Ids outside ``[0, num_classes)`` raise
  ``ValueError`` when the arrays are concrete; under ``jit`` such samples
  are ignored.

  Args:
    preds: ``[N]`` predicted class ids (int).
    labels: ``[N]`` true class ids (int).
    num_classes: ``C`` (static; a new value recompiles).
    mask: optional ``[N]`` bool.

  Returns:
    ``[C, C]`` int32 counts.

  >>> confusion_matrix(jnp.array([0, 1, 1]), jnp.array([0, 1, 0]),
  ...                  num_classes=2)
  Array([[1, 1],
         [0, 1]], dtype=int32)
  """
  positive_int(num_classes, "num_classes", allow_bool=True)
  if num_classes ** 2 >= 2 ** 31:  # the int32 cell index would overflow
    raise ValueError(f"num_classes must be below 46341 (a [C, C] matrix of "
                     f"fewer than 2**31 cells), got {num_classes}.")
  preds = as_rank(preds, "preds", ("N",))
  labels = as_rank(labels, "labels", ("N",))
  _check_same_shape(preds, labels, "preds", "labels")
  mask = mask_or_ones(mask, preds.shape)
  class_ids(preds, num_classes, "preds", allow_bool=True, mask=mask)
  class_ids(labels, num_classes, "labels", allow_bool=True, mask=mask)
  return _confusion_matrix(preds, labels, mask, num_classes=num_classes)


@functools.partial(jax.jit, static_argnames="num_classes")
def _confusion_matrix(preds, labels, mask, *, num_classes):
  # Range-checked at their own width: int64 ids (x64) cast to int32 first
  # would wrap, 2**32 + 1 into class 1.
  preds, labels = signed_ids(preds), signed_ids(labels)
  in_range = ((preds >= 0) & (preds < num_classes) & (labels >= 0) &
              (labels < num_classes))
  weight = (mask & in_range).astype(jnp.int32)
  flat = jnp.where(weight > 0, labels * num_classes + preds,
                   0).astype(jnp.int32)
  counts = jnp.bincount(flat, weights=weight, length=num_classes ** 2)
  return counts.astype(jnp.int32).reshape(num_classes, num_classes)


def _nan_average(values: jax.Array, weights: jax.Array | None) -> jax.Array:
  """sklearn's ``_nanaverage``: NaNs ignored; all-zero weights -> unweighted."""
  keep = ~jnp.isnan(values)
  values = jnp.where(keep, values, 0.0)
  if weights is not None:
    w = jnp.where(keep, weights.astype(jnp.float32), 0.0)
    wsum = jnp.sum(w)
    weighted = jnp.sum(w * values) / jnp.where(wsum > 0, wsum, 1.0)
  count = jnp.sum(keep)
  plain = jnp.sum(values) / jnp.maximum(count, 1)
  result = plain if weights is None else jnp.where(wsum > 0, weighted, plain)
  return jnp.where(count > 0, result, jnp.nan)


def precision_recall_fscore(preds: ArrayLike, labels: ArrayLike, *,
                            num_classes: int, average: str | None = None,
                            beta: float = 1.0, zero_division: float = 0.0,
                            mask: ArrayLike | None = None) -> PRFScores:
  """Per-class or averaged precision, recall and F-beta.

  Equals ``sklearn.metrics.precision_recall_fscore_support(labels, preds,
  labels=range(num_classes), average=average, beta=beta,
  zero_division=zero_division)``: classes absent from the data are included
  (with ``zero_division`` scores), ``"micro"`` pools the counts,
  ``"macro"`` is the plain mean over classes, ``"weighted"`` the mean
  weighted by support; NaN scores (``zero_division=nan``) are left out of
  the averages. F-beta is ``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)``.

  Args:
    preds: ``[N]`` predicted class ids.
    labels: ``[N]`` true class ids.
    num_classes: ``C`` (static).
    average: ``None | "micro" | "macro" | "weighted"`` (static).
    beta: weight of recall (static); ``inf`` gives recall, 0 precision.
    zero_division: 0.0, 1.0 or nan (static).
    mask: optional ``[N]`` bool.

  Returns:
    ``PRFScores(precision, recall, fscore, support)``: the scores are
    ``[C]`` float32 for ``average=None``, scalars otherwise; ``support`` is
    the ``[C]`` int32 number of true samples per class.

  References:
    scikit-learn ``precision_recall_fscore_support``.

  >>> precision_recall_fscore(jnp.array([0, 1, 1]), jnp.array([0, 1, 0]),
  ...                         num_classes=2, average="macro").fscore
  Array(0.6666667, dtype=float32)
  """
  one_of(average, AVERAGES, "average")
  if not is_real_scalar(beta) or not beta >= 0:  # NaN too.
    raise ValueError(f"beta must be a number >= 0, got {beta!r}.")
  _check_zero_division(zero_division)
  cm = confusion_matrix(preds, labels, num_classes=num_classes, mask=mask)
  # zero_division is traced: a static NaN would never equal itself and so
  # would recompile on every call.
  return _precision_recall_fscore(cm, jnp.float32(zero_division),
                                  average=average, beta=float(beta))


@functools.partial(jax.jit, static_argnames=("average", "beta"))
def _precision_recall_fscore(cm, zero_division, *, average, beta):
  tp = jnp.diagonal(cm)
  pred_sum = jnp.sum(cm, axis=0, dtype=cm.dtype)
  true_sum = jnp.sum(cm, axis=1, dtype=cm.dtype)  # int32 under x64 too.
  support = true_sum
  if average == "micro":
    tp, pred_sum, true_sum = jnp.sum(tp), jnp.sum(pred_sum), jnp.sum(true_sum)
  precision = _divide(tp, pred_sum, zero_division)
  recall = _divide(tp, true_sum, zero_division)
  if np.isposinf(beta):
    fscore = recall
  elif beta == 0:
    fscore = precision
  else:
    b2 = beta ** 2
    tp32, true32 = tp.astype(jnp.float32), true_sum.astype(jnp.float32)
    if b2 > 1:  # Divided by b2, so that a huge beta does not overflow.
      fscore = _divide((1 / b2 + 1) * tp32, true32 + pred_sum / b2,
                       zero_division)
    else:
      fscore = _divide((1 + b2) * tp32, b2 * true32 + pred_sum,
                       zero_division)
  if average in ("macro", "weighted"):
    weights = support if average == "weighted" else None
    precision, recall, fscore = (_nan_average(v, weights)
                                 for v in (precision, recall, fscore))
  return PRFScores(precision, recall, fscore, support)


# ------------------------------------------------------------------ sorting


def _descending_key(scores: jax.Array) -> jax.Array:
  """int32 keys whose ascending order is the descending order of
  ``scores`` ranked in float32 (:func:`jaxdl._keys.descending_keys`)."""
  return _keys.descending_keys(scores.astype(jnp.float32))


def _key_to_score(key: jax.Array) -> jax.Array:
  return _keys.key_to_float(key, jnp.float32)


def _xla_sort(key: jax.Array, code: jax.Array):
  return lax.sort((key, code), num_keys=1, is_stable=False)


def _numpy_sort_host(key: np.ndarray, code: np.ndarray):
  key, code = np.broadcast_arrays(key, code)
  # One uint64 per sample: the key (sign flipped, so unsigned order is
  # signed order) above an 8-bit code; a single vectorised uint64 sort.
  packed = ((key.view(np.uint32) ^ np.uint32(0x80000000)).astype(np.uint64)
            << np.uint64(8)) | code.astype(np.uint64)
  packed = np.sort(packed, axis=-1)
  key_sorted = ((packed >> np.uint64(8)).astype(np.uint32)
                ^ np.uint32(0x80000000)).view(np.int32)
  code_sorted = (packed & np.uint64(0xFF)).astype(np.int8)
  return key_sorted, code_sorted


def _numpy_sort(key: jax.Array, code: jax.Array):
  shapes = (jax.ShapeDtypeStruct(key.shape, jnp.int32),
            jax.ShapeDtypeStruct(code.shape, jnp.int8))
  outs = jax.pure_callback(_numpy_sort_host, shapes, key, code,
                           vmap_method="expand_dims")
  # Inside shard_map the inputs vary over the mesh axes; the callback's
  # results must say so too, or platform_dependent's branches differ.
  typeof = getattr(jax, "typeof", None)  # Older JAX: no varying types.
  axis_type = getattr(typeof(key), "manual_axis_type", None) if typeof else None
  varying = tuple(getattr(axis_type, "varying", ()) or ())
  if varying:
    outs = tuple(lax.pcast(o, varying, to="varying") for o in outs)
  return outs


def _sort_by_key(key: jax.Array, code: jax.Array):
  """Sorts int32 ``key`` ascending, carrying the int8 ``code`` along."""
  return lax.platform_dependent(key, code, cpu=_numpy_sort, default=_xla_sort)


class _Ranked(NamedTuple):
  """Samples in descending score order, as ``[N + 1]`` slots.

  Slot 0 is the start point (nothing predicted positive); slot ``i + 1`` is
  "the ``i + 1`` highest-scored samples predicted positive".
  """
  tps: jax.Array        # [N + 1] int32, cumulative positives
  fps: jax.Array        # [N + 1] int32, cumulative negatives
  thresholds: jax.Array  # [N + 1] float32, +inf at slot 0
  valid: jax.Array      # [N + 1] bool: slot 0 and the last of each tie group
  has_nan: jax.Array    # [] bool: an unmasked score is NaN


def _binary_inputs(scores: ArrayLike, labels: ArrayLike,
                   mask: ArrayLike | None):
  """Checked ``[N]`` scores, labels and bool mask."""
  scores = as_rank(scores, "scores", ("N",))
  labels = as_rank(labels, "labels", ("N",))
  _check_same_shape(scores, labels, "scores", "labels")
  return scores, labels, mask_or_ones(mask, scores.shape)


def _rank(scores: jax.Array, labels: jax.Array, mask: jax.Array) -> _Ranked:
  has_nan = jnp.any(mask & jnp.isnan(scores))
  code = jnp.where(labels > 0, _CODE_POS, _CODE_NEG).astype(jnp.int8)
  code = jnp.where(mask, code, jnp.int8(_CODE_PAD))
  # Padding sorts last: no real (non-NaN) score has the largest key.
  key = jnp.where(mask, _descending_key(scores), _INT32_MAX)
  key, code = _sort_by_key(key, code)
  real = code != _CODE_PAD
  zero = jnp.zeros((1,), jnp.int32)
  tps = jnp.concatenate(
      [zero, _scan(jnp.add, (code == _CODE_POS).astype(jnp.int32))])
  # Real samples fill the first slots, so slot i holds min(i, #real) of
  # them: the negatives follow without a second scan.
  slots = jnp.arange(tps.shape[0], dtype=jnp.int32)
  fps = jnp.minimum(slots, jnp.sum(mask, dtype=jnp.int32)) - tps
  # A slot is a threshold when the next sample has a different score (or
  # is padding, whose key differs from every real one, or does not exist).
  last_of_group = real & jnp.append(key[1:] != key[:-1], True)
  valid = jnp.concatenate([jnp.ones((1,), bool), last_of_group])
  thresholds = jnp.concatenate([jnp.full((1,), jnp.inf, jnp.float32),
                                _key_to_score(key)])
  return _Ranked(tps, fps, thresholds, valid, has_nan)


# XLA:CPU runs lax.cumsum / lax.cummax as a windowed reduction, 4-7x slower
# at N = 1e6 than a log-depth associative scan; the scan compiles slower
# (~0.5 s more), so it is used only for long inputs (a static choice).
_ASSOCIATIVE_SCAN_MIN = 1 << 15


def _scan(op, x: jax.Array) -> jax.Array:
  """Inclusive running ``op`` (``jnp.add`` or ``jnp.maximum``) along axis -1."""
  axis = x.ndim - 1
  if x.shape[-1] >= _ASSOCIATIVE_SCAN_MIN:
    return lax.associative_scan(op, x, axis=axis)
  return (lax.cumsum if op is jnp.add else lax.cummax)(x, axis=axis)


def _previous_slot(valid: jax.Array) -> jax.Array:
  """``[N + 1] -> [N + 1]`` index of the previous valid slot (0 for slot 0).

  One running maximum of the valid slot indices; callers gather their
  cumulative counts there (cheaper than one scan per count on CPU).
  """
  slots = jnp.arange(valid.shape[-1], dtype=jnp.int32)
  latest = _scan(jnp.maximum, jnp.where(valid, slots, 0))
  return jnp.concatenate([jnp.zeros((1,), jnp.int32), latest[:-1]])


def _sum(terms: jax.Array) -> jax.Array:
  """float32 sum in blocks of 1024, so the rounding error stays ~1e-7."""
  n = terms.shape[-1]
  block = 1024
  pad = (-n) % block
  terms = jnp.pad(terms, [(0, 0)] * (terms.ndim - 1) + [(0, pad)])
  blocks = terms.reshape(*terms.shape[:-1], -1, block)
  return jnp.sum(jnp.sum(blocks, axis=-1), axis=-1)


def _poison(value: jax.Array, has_nan: jax.Array) -> jax.Array:
  return jnp.where(has_nan, jnp.nan, value)


# ------------------------------------------------------------------ curves


def roc_curve(scores: ArrayLike, labels: ArrayLike, *,
              mask: ArrayLike | None = None) -> Curve:
  """ROC curve with one slot per sample, in descending threshold order.

  Slot 0 is (0, 0) at threshold +inf; slot ``i`` is the point after the
  ``i`` highest-scored samples are predicted positive. ``valid`` marks slot 0
  and the last slot of every group of tied scores, so ``x[valid]``,
  ``y[valid]``, ``thresholds[valid]`` equal ``sklearn.metrics.roc_curve(
  labels, scores, drop_intermediate=False)`` (FPR, TPR, thresholds). As in
  sklearn, FPR is NaN when there are no negatives, TPR when there are no
  positives. Padding (``mask`` False) slots come last and are invalid.

  Args:
    scores: ``[N]`` scores (higher = more positive).
    labels: ``[N]`` binary labels (``> 0`` is positive).
    mask: optional ``[N]`` bool.

  Returns:
    ``Curve(x=fpr, y=tpr, thresholds, valid)``, each ``[N + 1]``.

  References:
    Fawcett, "An introduction to ROC analysis", 2006; scikit-learn
    ``roc_curve``.
  """
  return _roc_curve(*_binary_inputs(scores, labels, mask))


@jax.jit
def _roc_curve(scores, labels, mask) -> Curve:
  r = _rank(scores, labels, mask)
  fpr = r.fps / r.fps[-1].astype(jnp.float32)
  tpr = r.tps / r.tps[-1].astype(jnp.float32)
  fpr = jnp.where(r.fps[-1] > 0, fpr, jnp.nan)
  tpr = jnp.where(r.tps[-1] > 0, tpr, jnp.nan)
  return Curve(_poison(fpr, r.has_nan), _poison(tpr, r.has_nan),
               r.thresholds, r.valid)


def precision_recall_curve(scores: ArrayLike, labels: ArrayLike, *,
                           mask: ArrayLike | None = None) -> Curve:
  """Precision-recall curve with one slot per sample, in sklearn's order.

  sklearn's order is increasing threshold, ending at the point (recall 0,
  precision 1). So ``x[valid]`` (recall) and ``y[valid]`` (precision) equal
  ``sklearn.metrics.precision_recall_curve(labels, scores)``'s recall and
  precision, and ``thresholds[valid][:-1]`` its thresholds (the end point's
  threshold is +inf). With no positives recall is 1 at every threshold, as
  in sklearn. Padding slots come first and are invalid.

  Args:
    scores: ``[N]`` scores.
    labels: ``[N]`` binary labels (``> 0`` is positive).
    mask: optional ``[N]`` bool.

  Returns:
    ``Curve(x=recall, y=precision, thresholds, valid)``, each ``[N + 1]``.

  References:
    scikit-learn ``precision_recall_curve``.
  """
  return _precision_recall_curve(*_binary_inputs(scores, labels, mask))


@jax.jit
def _precision_recall_curve(scores, labels, mask) -> Curve:
  r = _rank(scores, labels, mask)
  recall, precision = _recall_precision(r)
  flip = lambda v: jnp.flip(v, axis=-1)
  return Curve(_poison(flip(recall), r.has_nan),
               _poison(flip(precision), r.has_nan),
               flip(r.thresholds), flip(r.valid))


def _recall_precision(r: _Ranked):
  """Recall and precision per slot, descending order; slot 0 is (0, 1)."""
  total_pos = r.tps[-1]
  recall = jnp.where(total_pos > 0,
                     r.tps / jnp.maximum(total_pos, 1).astype(jnp.float32),
                     1.0)
  recall = recall.at[0].set(0.0)
  precision = _divide(r.tps, r.tps + r.fps, 0.0).at[0].set(1.0)
  return recall, precision


def roc_auc(scores: ArrayLike, labels: ArrayLike, *,
            mask: ArrayLike | None = None) -> jax.Array:
  """Area under the ROC curve, ties counted one half.

  Equals ``sklearn.metrics.roc_auc_score(labels, scores)``: the trapezoid
  rule over the ROC curve, which equals the notes' rank formula
  ``(sum of positive mid-ranks - M (M + 1) / 2) / (M N)`` with tied scores
  given their average rank. NaN when only one class is present (sklearn
  warns and returns NaN).

  Args:
    scores: ``[N]`` scores.
    labels: ``[N]`` binary labels (``> 0`` is positive).
    mask: optional ``[N]`` bool.

  Returns:
    float32 scalar in [0, 1] or NaN.

  References:
    Hanley & McNeil, "The meaning and use of the area under a ROC curve",
    Radiology 1982; scikit-learn ``roc_auc_score``.

  >>> roc_auc(jnp.array([0.1, 0.4, 0.35, 0.8]), jnp.array([0, 0, 1, 1]))
  Array(0.75, dtype=float32)
  """
  return _roc_auc(*_binary_inputs(scores, labels, mask))


def _jit_reduce(reduce, ranked=_rank):
  """``jax.jit`` of ``reduce(ranked(*args))``: a ranking, then a summary."""
  return jax.jit(lambda *args: reduce(ranked(*args)))


def _auc_from_ranked(r: _Ranked) -> jax.Array:
  total_pos, total_neg = r.tps[-1], r.fps[-1]
  prev = _previous_slot(r.valid)
  prev_tps, prev_fps = r.tps[prev], r.fps[prev]
  # Trapezoid over each tie group: width in FPR times mean height in TPR.
  width = jnp.where(r.valid, r.fps - prev_fps, 0).astype(jnp.float32)
  height = (r.tps + prev_tps).astype(jnp.float32)
  scale = 2.0 * total_neg.astype(jnp.float32) * total_pos.astype(jnp.float32)
  area = _sum(width * height / jnp.where(scale > 0, scale, 1.0))
  area = jnp.where((total_pos > 0) & (total_neg > 0), area, jnp.nan)
  return _poison(area, r.has_nan)


_roc_auc = _jit_reduce(_auc_from_ranked)


def average_precision(scores: ArrayLike, labels: ArrayLike, *,
                      mask: ArrayLike | None = None) -> jax.Array:
  """Average precision: the step integral ``sum_n (R_n - R_{n-1}) P_n``.

  Equals ``sklearn.metrics.average_precision_score(labels, scores)`` (no
  interpolation; tied scores form one threshold). 0 when there are no
  positives, as sklearn (which warns). All scores equal gives the
  prevalence.

  Args:
    scores: ``[N]`` scores.
    labels: ``[N]`` binary labels (``> 0`` is positive).
    mask: optional ``[N]`` bool.

  Returns:
    float32 scalar in [0, 1] (NaN for an unmasked NaN score).

  References:
    scikit-learn ``average_precision_score``; Manning et al.,
    "Introduction to Information Retrieval", 2008, ch. 8.

  >>> average_precision(jnp.array([0.1, 0.4, 0.35, 0.8]),
  ...                   jnp.array([0, 0, 1, 1]))
  Array(0.8333334, dtype=float32)
  """
  return _average_precision(*_binary_inputs(scores, labels, mask))


def _ap_from_ranked(r: _Ranked) -> jax.Array:
  _, precision = _recall_precision(r)
  prev_tps = r.tps[_previous_slot(r.valid)]
  total_pos = jnp.maximum(r.tps[-1], 1).astype(jnp.float32)
  # Recall steps only at thresholds; with no positives every step is 0.
  step = jnp.where(r.valid, r.tps - prev_tps, 0).astype(jnp.float32)
  return _poison(_sum(step / total_pos * precision), r.has_nan)


_average_precision = _jit_reduce(_ap_from_ranked)


def multiclass_roc_auc(probs: ArrayLike, labels: ArrayLike, *,
                       average: str | None = "macro",
                       mask: ArrayLike | None = None) -> jax.Array:
  """One-vs-rest ROC AUC of ``[N, C]`` class scores.

  Equals ``sklearn.metrics.roc_auc_score(labels, probs, multi_class="ovr",
  average=average, labels=range(C))``: class ``c``'s AUC is ``roc_auc(
  probs[:, c], labels == c)``; ``"macro"`` is their mean, ``"weighted"``
  the mean weighted by class support, ``"micro"`` the AUC of the flattened
  one-hot problem, ``None`` the ``[C]`` per-class values. A class absent
  from ``labels`` (or present in every sample) has AUC NaN, which makes the
  macro average NaN, as in sklearn; the weighted average gives an absent
  class weight 0 and stays a number, as sklearn does. With every sample
  masked out (where sklearn raises on an empty input) every class is absent
  and each average is NaN.

  With ``C = 2`` jaxdl differs: sklearn's call above raises ("y should be a
  1d array"), as it expects a binary problem's positive-class scores,
  ``roc_auc_score(labels, probs[:, 1])``. Here the one-vs-rest values are
  returned; when the rows sum to 1, class 0's AUC equals class 1's, so the
  macro and weighted averages equal that binary AUC, and ``"micro"`` equals
  ``roc_auc_score(one_hot(labels), probs, average="micro")``.

  Args:
    probs: ``[N, C]`` class scores (probabilities in sklearn; any scores here).
    labels: ``[N]`` class ids in ``[0, C)`` (any id where ``mask`` is False).
    average: ``None | "micro" | "macro" | "weighted"`` (static).
    mask: optional ``[N]`` bool.

  Returns:
    float32 scalar, or ``[C]`` for ``average=None``.

  References:
    Provost & Domingos, "Well-trained PETs", 2000; scikit-learn
    ``roc_auc_score``.
  """
  one_of(average, ROC_AVERAGES, "average")
  probs = as_rank(probs, "probs", ("N", "C"))
  n, num_classes = probs.shape
  if num_classes < 1:
    raise ValueError(f"probs must have at least one class column, got "
                     f"shape {tuple(probs.shape)}.")
  labels = as_rank(labels, "labels", ("N",))
  if labels.shape != (n,):
    raise ValueError(f"labels must have shape [N]=({n},), got "
                     f"{tuple(labels.shape)}.")
  mask = mask_or_ones(mask, (n,))
  class_ids(labels, num_classes, "labels", num_name="probs.shape[1]",
            allow_bool=True, mask=mask)
  return _multiclass_roc_auc(probs, labels, mask, average=average)


@functools.partial(jax.jit, static_argnames="average")
def _multiclass_roc_auc(probs, labels, mask, *, average):
  num_classes = probs.shape[1]
  onehot = labels[:, None] == jnp.arange(num_classes)  # [N, C]
  if average == "micro":
    return _roc_auc(probs.ravel(), onehot.ravel(),
                    jnp.repeat(mask, num_classes))
  per_class = jax.vmap(_roc_auc, in_axes=(1, 1, None))(probs, onehot, mask)
  if average is None:
    return per_class
  if average == "macro":
    return jnp.mean(per_class)
  support = jnp.sum(onehot & mask[:, None], axis=0).astype(jnp.float32)
  # An absent class (AUC NaN) weighs 0, as sklearn forces its score to 0.
  weighted = jnp.where(support > 0, per_class * support, 0.0)
  return jnp.sum(weighted) / jnp.sum(support)


# ---------------------------------------------------------------- streaming


class BinnedCounts(NamedTuple):
  """Streaming state: positives and negatives per score bin.

  Bin ``j`` of ``T`` holds scores in ``[j / (T - 1), (j + 1) / (T - 1))``
  (scores below 0 go to bin 0, scores >= 1 to bin ``T - 1``), so "predicted
  positive at threshold ``j / (T - 1)``" is the count in bins ``>= j``.
  Merging two states is their sum (``jax.tree.map(jnp.add, a, b)`` or
  ``lax.psum``). Counts are int32: the totals of positives and of
  negatives must stay below 2**31.
  """
  positives: jax.Array  # [T] int32
  negatives: jax.Array  # [T] int32


def _threshold_grid(num_thresholds: int) -> np.ndarray:
  """``[T]`` float32 thresholds ``j / (T - 1)`` (NumPy: XLA may divide by
  multiplying with the reciprocal, which rounds some of them differently)."""
  return (np.arange(num_thresholds) / (num_thresholds - 1)).astype(np.float32)


def _check_state(state: BinnedCounts) -> None:
  """Raises ``ValueError`` unless ``state`` holds ``[T]`` counts, ``T >= 2``.

  A ``[B, T]`` state (from ``jax.vmap`` of the update) would otherwise have
  every batch added to each row (update) or fail inside XLA (AUC / AP).
  """
  pos, neg = jnp.shape(state.positives), jnp.shape(state.negatives)
  if len(pos) != 1 or pos != neg or pos[0] < 2:
    raise ValueError(
        f"state must hold [T] counts (T >= 2) as binned_init makes, got "
        f"positives {pos} and negatives {neg}. For a batch of states, "
        f"jax.vmap this function, or merge them first (sum over the batch "
        f"axis).")


def binned_init(num_thresholds: int) -> BinnedCounts:
  """An empty state over ``num_thresholds`` evenly spaced thresholds in [0, 1].

  Args:
    num_thresholds: ``T >= 2`` (static; the state's size).

  Returns:
    ``BinnedCounts`` of zeros, each ``[T]`` int32.
  """
  if not isinstance(num_thresholds, (int, np.integer)) or num_thresholds < 2:
    raise ValueError(
        f"num_thresholds must be an int >= 2, got {num_thresholds!r}.")
  zeros = jnp.zeros((num_thresholds,), jnp.int32)
  return BinnedCounts(zeros, zeros)


def binned_update(state: BinnedCounts, scores: ArrayLike, labels: ArrayLike,
                  mask: ArrayLike | None = None) -> BinnedCounts:
  """Adds a batch of scores in [0, 1] to the state; memory is ``O(T)``.

  Args:
    state: the running ``BinnedCounts``, each ``[T]`` (``jax.vmap`` the
      update for a batch of states).
    scores: ``[...]`` probabilities (clipped to [0, 1]; NaN is skipped),
      binned in float32 (float64 scores are rounded first).
    labels: ``[...]`` binary labels (``> 0`` is positive).
    mask: optional ``[...]`` bool.

  Returns:
    The updated state.
  """
  _check_state(state)
  scores = jnp.asarray(scores)
  labels = jnp.asarray(labels)
  _check_same_shape(scores, labels, "scores", "labels")
  return _binned_update(state, scores, labels,
                        mask_or_ones(mask, scores.shape))


@jax.jit
def _binned_update(state, scores, labels, mask) -> BinnedCounts:
  mask = mask & ~jnp.isnan(scores)
  num_bins = state.positives.shape[-1]
  scores = jnp.clip(scores.astype(jnp.float32), 0.0, 1.0).ravel()
  # floor(s * (T - 1)) can round across a threshold (float32(0.53) * 100 =
  # 52.999996): one step either way fixes it, so that bin j holds exactly
  # the scores with grid[j] <= s < grid[j + 1].
  grid = jnp.asarray(_threshold_grid(num_bins))
  bins = jnp.clip(jnp.floor(scores * (num_bins - 1)).astype(jnp.int32), 0,
                  num_bins - 1)
  bins = bins + (grid[jnp.minimum(bins + 1, num_bins - 1)] <= scores)
  bins = jnp.minimum(bins, num_bins - 1)
  bins = bins - (grid[bins] > scores)
  positive = (labels > 0).ravel()
  mask = mask.ravel()
  add = lambda w: jnp.bincount(bins, weights=w.astype(jnp.int32),
                               length=num_bins).astype(jnp.int32)
  return BinnedCounts(state.positives + add(mask & positive),
                      state.negatives + add(mask & ~positive))


def binned_merge(a: BinnedCounts, b: BinnedCounts) -> BinnedCounts:
  """The state of both batches: an elementwise sum (so ``psum`` merges too).

  Args:
    a: a ``BinnedCounts``, each ``[T]`` int32 (or ``[..., T]``).
    b: another over the same ``T`` thresholds.

  Returns:
    Their sum, a ``BinnedCounts`` of the same shapes.
  """
  if jnp.shape(a.positives) != jnp.shape(b.positives):
    raise ValueError(
        f"b must have a's shape {jnp.shape(a.positives)} (the same "
        f"thresholds), got {jnp.shape(b.positives)}.")
  return jax.tree.map(jnp.add, a, b)


def _binned_ranked(state: BinnedCounts) -> _Ranked:
  """The binned counts as a ranked curve: one slot per bin, highest first."""
  pos = jnp.flip(state.positives, axis=-1)
  neg = jnp.flip(state.negatives, axis=-1)
  zero = jnp.zeros((*pos.shape[:-1], 1), jnp.int32)
  tps = jnp.concatenate([zero, _scan(jnp.add, pos)], axis=-1)
  fps = jnp.concatenate([zero, _scan(jnp.add, neg)], axis=-1)
  valid = jnp.concatenate([zero == 0, (pos + neg) > 0], axis=-1)
  thresholds = jnp.concatenate([jnp.full((1,), jnp.inf),
                                jnp.flip(_threshold_grid(pos.shape[-1]))])
  return _Ranked(tps, fps, thresholds, valid, jnp.zeros((), bool))


_binned_roc_auc = _jit_reduce(_auc_from_ranked, _binned_ranked)
_binned_average_precision = _jit_reduce(_ap_from_ranked, _binned_ranked)


def binned_roc_auc(state: BinnedCounts) -> jax.Array:
  """ROC AUC of the binned scores (scores in one bin count as tied).

  Equals ``sklearn.metrics.roc_auc_score`` of the scores each replaced by
  its bin's threshold ``j / (T - 1)``. The error against the exact ``roc_auc``
  is at most half the fraction of (positive, negative) pairs that share a
  bin.

  Args:
    state: ``BinnedCounts``, each ``[T]``. A batch of states (``[B, T]``,
      from ``jax.vmap`` of the update) raises ``ValueError``: ``jax.vmap``
      this function for ``[B]`` AUCs, or merge the states first.

  Returns:
    float32 scalar, NaN when one class is absent.
  """
  _check_state(state)
  return _binned_roc_auc(state)


def binned_average_precision(state: BinnedCounts) -> jax.Array:
  """Average precision of the binned scores (scores in one bin tied).

  Equals ``sklearn.metrics.average_precision_score`` of the scores each
  replaced by its bin's threshold ``j / (T - 1)``.

  Args:
    state: ``BinnedCounts``, each ``[T]``; a batch of states raises
      ``ValueError``, as in :func:`binned_roc_auc`.

  Returns:
    float32 scalar; 0 when there are no positives.
  """
  _check_state(state)
  return _binned_average_precision(state)
