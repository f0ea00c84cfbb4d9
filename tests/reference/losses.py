"""Float64 NumPy oracles for jaxdl.losses: the PyTorch formulas of the notes.

Each function writes the formula of the PyTorch / torchvision documentation
(the notes' "3. LOSS 函数" and "Torchvision.ops.Focal_Loss") literally, in
float64, class axis last. ``notes_dice_loss`` is the notes' Dice snippet,
whose numerator adds ``2 * smooth``: an empty prediction on an empty target
scores -1.
"""

from __future__ import annotations

import numpy as np


def _reduce(loss: np.ndarray, reduction: str) -> np.ndarray:
  if reduction == "mean":
    return np.mean(loss)
  if reduction == "sum":
    return np.sum(loss)
  return loss


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
  return -np.logaddexp(0.0, -x)


def _log_softmax(x: np.ndarray) -> np.ndarray:
  shifted = x - np.max(x, axis=-1, keepdims=True)
  return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def dice_loss(probs, targets, smooth=1.0, axis=None):
  """``1 - (2 sum(p t) + s) / (sum(p) + sum(t) + s)``."""
  p = np.asarray(probs, np.float64)
  t = np.asarray(targets, np.float64)
  numerator = 2 * np.sum(p * t, axis=axis) + smooth
  return 1 - numerator / (np.sum(p, axis=axis) + np.sum(t, axis=axis) +
                          smooth)


def notes_dice_loss(output, target, smooth=1.0, eps=1e-7):
  """The notes' ``forward``, verbatim in logic (wrong: ``2 * smooth``)."""
  output = np.asarray(output, np.float64)
  target = np.asarray(target, np.float64)
  inter = 2 * (np.sum(output * target) + smooth)
  union = np.sum(output) + np.sum(target) + smooth + eps
  return 1 - inter / union


def binary_cross_entropy_with_logits(x, t, weight=None, pos_weight=None,
                                     reduction="mean"):
  """``-w [pw t log s(x) + (1 - t) log(1 - s(x))]`` (PyTorch's docs)."""
  x = np.asarray(x, np.float64)
  t = np.asarray(t, np.float64)
  pw = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
  w = 1.0 if weight is None else np.asarray(weight, np.float64)
  loss = -w * (pw * t * _log_sigmoid(x) + (1 - t) * _log_sigmoid(-x))
  return _reduce(np.broadcast_to(loss, x.shape), reduction)


def sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="none"):
  """torchvision's ``sigmoid_focal_loss`` (the notes' copy), in float64."""
  x = np.asarray(x, np.float64)
  t = np.asarray(t, np.float64)
  p = 1 / (1 + np.exp(-x))
  ce = binary_cross_entropy_with_logits(x, t, reduction="none")
  p_t = p * t + (1 - p) * (1 - t)
  loss = ce * (1 - p_t) ** gamma
  if alpha >= 0:
    loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
  return _reduce(loss, reduction)


def nll_loss(log_probs, labels, weight=None, ignore_index=-100,
             reduction="mean"):
  """``l_n = -w[y_n] x[n, y_n]``, weighted mean over non-ignored entries."""
  x = np.asarray(log_probs, np.float64)
  labels = np.asarray(labels)
  num_classes = x.shape[-1]
  w = np.ones(num_classes) if weight is None else np.asarray(weight,
                                                             np.float64)
  flat_x = x.reshape(-1, num_classes)
  flat_y = labels.reshape(-1)
  loss = np.zeros(flat_y.shape)
  total_weight = 0.0
  for n, y in enumerate(flat_y):
    if y == ignore_index:
      continue
    loss[n] = -w[y] * flat_x[n, y]
    total_weight += w[y]
  if reduction == "mean":
    with np.errstate(invalid="ignore", divide="ignore"):
      return np.float64(loss.sum()) / np.float64(total_weight)
  return _reduce(loss.reshape(labels.shape), reduction)


def cross_entropy(logits, labels, weight=None, ignore_index=-100,
                  label_smoothing=0.0, reduction="mean"):
  """``F.cross_entropy`` for integer labels or ``[..., C]`` probabilities."""
  x = np.asarray(logits, np.float64)
  labels = np.asarray(labels)
  num_classes = x.shape[-1]
  w = np.ones(num_classes) if weight is None else np.asarray(weight,
                                                             np.float64)
  log_p = _log_softmax(x)
  eps = label_smoothing
  if np.issubdtype(labels.dtype, np.floating):
    t = labels.astype(np.float64) * (1 - eps) + eps / num_classes
    loss = -np.sum(w * t * log_p, axis=-1)
    return _reduce(loss, reduction)
  nll = nll_loss(log_p, labels, w, ignore_index, reduction)
  ignored = labels == ignore_index
  smooth = np.where(ignored, 0.0, -np.sum(w * log_p, axis=-1))
  if reduction == "mean":
    total_weight = np.sum(np.where(ignored, 0.0, w[np.where(ignored, 0,
                                                             labels)]))
    with np.errstate(invalid="ignore", divide="ignore"):
      smooth = np.float64(smooth.sum()) / np.float64(total_weight)
  else:
    smooth = _reduce(smooth, reduction)
  return (1 - eps) * nll + eps / num_classes * smooth


def l1_loss(pred, target, reduction="mean"):
  diff = np.asarray(pred, np.float64) - np.asarray(target, np.float64)
  return _reduce(np.abs(diff), reduction)
