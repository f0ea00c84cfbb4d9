"""Float64 NumPy oracles for jaxdl.metrics: the notes' formulas, corrected.

The notes ("P & R & Acc & F1", "ROC & AUC", "AP") give a thresholded
P/R/F1, two AUC implementations and the AP definition. The corrected ports:

* ``p_r_f1`` does not modify its input and returns ``zero_division`` for a
  ratio with a zero denominator (the notes divide by zero);
* ``rank_auc`` is the notes' first AUC (sum of positive ranks, tied scores
  given their mean rank), without pandas;
* ``roc_points`` / ``average_precision`` walk the distinct thresholds in
  descending order, as the notes describe the ROC and PR curves.

``notes_p_r_f1`` and ``notes_get_auc`` are the original snippets (logic kept,
prints replaced by a return) for the regression tests: the first thresholds
its caller's array in place, the second counts tied scores in sort order
instead of averaging them.
"""

from __future__ import annotations

import numpy as np

# The notes' 4-sample example: columns (id, score, label), threshold 0.5.
NOTES_PRF_DATA = np.array([[0, 0.76, 1], [1, 0.3, 0], [2, 0.5, 0],
                           [3, 0.76, 1]])


def notes_p_r_f1(data: np.ndarray, thd: float):
  """The notes' ``p_r_f1``; note that it overwrites ``data[:, 1]``."""
  y_pred = data[:, 1]
  y_pred[np.where(y_pred >= thd)] = 1
  y_pred[np.where(y_pred < thd)] = 0
  y_true = data[:, 2]
  tp = np.sum(np.logical_and(np.equal(1, y_true), np.equal(1, y_pred)))
  fp = np.sum(np.logical_and(np.equal(0, y_true), np.equal(1, y_pred)))
  fn = np.sum(np.logical_and(np.equal(1, y_true), np.equal(0, y_pred)))
  tn = np.sum(np.logical_and(np.equal(0, y_true), np.equal(0, y_pred)))
  precision = tp / (tp + fp)
  recall = tp / (tp + fn)
  accuracy = (tp + tn) / (tp + fp + fn + tn)
  f1_score = (2 * precision * recall) / (precision + recall)
  return precision, recall, f1_score, accuracy


def _ratio(num: float, den: float, zero_division: float) -> float:
  return num / den if den else zero_division


def p_r_f1(scores: np.ndarray, labels: np.ndarray, thd: float,
           zero_division: float = 0.0):
  """Corrected ``p_r_f1``: (precision, recall, f1, accuracy)."""
  pred = np.asarray(scores) >= thd
  true = np.asarray(labels) > 0
  tp = float(np.sum(pred & true))
  fp = float(np.sum(pred & ~true))
  fn = float(np.sum(~pred & true))
  tn = float(np.sum(~pred & ~true))
  return (_ratio(tp, tp + fp, zero_division),
          _ratio(tp, tp + fn, zero_division),
          _ratio(2 * tp, 2 * tp + fp + fn, zero_division),
          _ratio(tp + tn, tp + fp + fn + tn, zero_division))


def mid_ranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks in ascending order; tied values get their mean rank."""
  values = np.asarray(values, np.float64)
  order = np.argsort(values, kind="stable")
  ranks = np.empty(len(values))
  ranks[order] = np.arange(1, len(values) + 1)
  for v in np.unique(values):
    tied = values == v
    ranks[tied] = ranks[tied].mean()
  return ranks


def rank_auc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
  """The notes' first AUC: ``(sum of positive ranks - M(M+1)/2) / (M N)``."""
  y_true = np.asarray(y_true) > 0
  ranks = mid_ranks(y_pred)
  m = int(np.sum(y_true))
  n = len(y_true) - m
  if m == 0 or n == 0:
    return float("nan")
  return (ranks[y_true].sum() - m * (m + 1) / 2) / (m * n)


def notes_get_auc(y_pred: np.ndarray, y_true: np.ndarray):
  """The notes' second AUC (``get_AUC``): ties counted in sort order."""
  pos, neg = y_true[y_true == 1], y_true[y_true == 0]
  rank = np.argsort(y_pred)[::-1]
  y_pred, y_true = y_pred[rank], y_true[rank]
  tpr_all, fpr_all = [0], [0]
  tpr, fpr = 0, 0
  x_step, y_step = 1 / float(len(neg)), 1 / float(len(pos))
  y_sum = 0
  for i in range(len(y_pred)):
    if y_true[i] == 1:
      tpr += y_step
      tpr_all.append(tpr)
      fpr_all.append(fpr)
    else:
      fpr += x_step
      fpr_all.append(fpr)
      tpr_all.append(tpr)
      y_sum += tpr
  return tpr_all, fpr_all, y_sum * x_step


def threshold_counts(y_true: np.ndarray, y_score: np.ndarray):
  """(thresholds, tps, fps) at each distinct score, descending."""
  y_true = np.asarray(y_true) > 0
  y_score = np.asarray(y_score, np.float64)
  thresholds = np.unique(y_score)[::-1]
  tps = np.array([np.sum(y_true & (y_score >= t)) for t in thresholds])
  fps = np.array([np.sum(~y_true & (y_score >= t)) for t in thresholds])
  return thresholds, tps.astype(np.float64), fps.astype(np.float64)


def roc_points(y_true: np.ndarray, y_score: np.ndarray):
  """(fpr, tpr) from (0, 0) through every distinct threshold, descending."""
  _, tps, fps = threshold_counts(y_true, y_score)
  fpr = np.concatenate([[0.0], fps]) / fps[-1] if fps[-1] else None
  tpr = np.concatenate([[0.0], tps]) / tps[-1] if tps[-1] else None
  return fpr, tpr


def trapezoid_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
  fpr, tpr = roc_points(y_true, y_score)
  if fpr is None or tpr is None:
    return float("nan")
  return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
  """``sum_n (R_n - R_{n-1}) P_n`` over the distinct thresholds."""
  _, tps, fps = threshold_counts(y_true, y_score)
  if tps[-1] == 0:
    return 0.0
  recall = np.concatenate([[0.0], tps / tps[-1]])
  precision = tps / (tps + fps)
  return float(np.sum(np.diff(recall) * precision))
