"""Classification, segmentation and box-regression losses with PyTorch semantics.

Every loss is a pure function: it works under ``jax.jit``, batches with
``jax.vmap`` and is differentiable. The class axis is last (PyTorch puts it
at axis 1). ``reduction`` is ``"none" | "mean" | "sum"`` as in
``torch.nn.functional``:

* ``"none"``: the per-element (or per-sample) losses;
* ``"sum"``: their sum;
* ``"mean"``: their mean, except for :func:`cross_entropy` and
  :func:`nll_loss` with integer labels, where it is PyTorch's *weighted* mean
  ``sum(loss) / sum(weight[label])`` over the non-ignored entries. When every
  entry is ignored that is ``0 / 0``: NaN, exactly as PyTorch, with zero
  gradients (PyTorch's gradient is zero there too).

Losses are computed from logits with ``log_softmax`` / ``softplus``, so values
and gradients stay finite for logits of magnitude 1e4. Half-precision inputs
are computed in float32 and returned in their own dtype.

>>> logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
>>> cross_entropy(logits, jnp.array([0, -100]))  # the second row is ignored
Array(0.16984604, dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxdl import boxes
from jaxdl._checks import (_is_int, compute_dtype, one_of, real_scalar,
                           signed_ids)

REDUCTIONS = ("none", "mean", "sum")


# --------------------------------------------------------------------------
# Shared helpers.


def _out_dtype(dtype) -> jnp.dtype:
  return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32


def _compute(x: jax.Array) -> jax.Array:
  """float32 for half precision and integers; float32/64 unchanged."""
  return x.astype(compute_dtype(x.dtype))


def _check_same_shape(a: jax.Array, b: jax.Array, name_a: str,
                      name_b: str) -> None:
  if a.shape != b.shape:
    raise ValueError(
        f"{name_b} must have the shape of {name_a} {tuple(a.shape)}, got "
        f"{tuple(b.shape)}.")


def _same_shape_pair(a: ArrayLike, b: ArrayLike, name_a: str,
                     name_b: str) -> tuple[jax.Array, jax.Array, jnp.dtype]:
  """``a`` and ``b`` (same shape) in the compute dtype, plus the output dtype."""
  a = jnp.asarray(a)
  b = jnp.asarray(b)
  _check_same_shape(a, b, name_a, name_b)
  x = _compute(a)
  return x, b.astype(x.dtype), _out_dtype(a.dtype)


def _check_broadcast(value: jax.Array, shape: tuple[int, ...],
                     name: str) -> None:
  try:
    if np.broadcast_shapes(value.shape, shape) != tuple(shape):
      raise ValueError
  except ValueError:
    raise ValueError(
        f"{name} must broadcast to shape {tuple(shape)}, got "
        f"{tuple(value.shape)}.") from None


def _reduce(loss: jax.Array, reduction: str) -> jax.Array:
  if reduction == "mean":
    return jnp.mean(loss)
  if reduction == "sum":
    return jnp.sum(loss)
  return loss


def _safe_divide(numerator: jax.Array, denominator: jax.Array,
                 if_zero: float) -> jax.Array:
  """``numerator / denominator``; ``if_zero`` (zero gradient) where it is 0."""
  nonzero = denominator != 0
  return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1),
                   if_zero)


# --------------------------------------------------------------------------
# Dice.


def dice_loss(probs: ArrayLike, targets: ArrayLike, *, smooth: float = 1.0,
              axis: int | Sequence[int] | None = None) -> jax.Array:
  """Soft Dice loss ``1 - (2 sum(p t) + s) / (sum(p) + sum(t) + s)``.

  An empty prediction on an empty target is a perfect match: loss 0 (the
  notes add ``smooth`` twice to the numerator and score it -1). With
  ``smooth=0`` that case is ``0 / 0`` and is defined as loss 0 too.

  Args:
    probs: ``[...]`` predicted foreground probabilities in [0, 1].
    targets: ``[...]`` same shape, the binary (or soft) mask.
    smooth: finite, ``>= 0``, added to numerator and denominator (static).
    axis: the axes summed over (static); ``None`` sums everything. For a
      per-image loss on ``[B, H, W]`` masks use ``axis=(1, 2)``.

  Returns:
    The loss with ``axis`` reduced: a scalar for ``axis=None``, else the
    remaining axes (e.g. ``[B]``), in [0, 1] for inputs in [0, 1].

  References:
    Milletari et al., "V-Net", 3DV 2016 (Dice loss); Sudre et al.,
    "Generalised Dice overlap as a deep learning loss function", 2017.

  >>> dice_loss(jnp.zeros((2, 2)), jnp.zeros((2, 2)))
  Array(0., dtype=float32)
  """
  real_scalar(smooth, "smooth")
  if not (smooth >= 0 and math.isfinite(smooth)):  # inf: inf / inf = NaN.
    raise ValueError(f"smooth must be a finite number >= 0, got {smooth}.")
  p, t, out_dtype = _same_shape_pair(probs, targets, "probs", "targets")
  if isinstance(axis, Sequence):
    axis = tuple(axis)
  intersection = jnp.sum(p * t, axis=axis)
  total = jnp.sum(p, axis=axis) + jnp.sum(t, axis=axis)
  score = _safe_divide(2 * intersection + smooth, total + smooth, 1.0)
  return (1 - score).astype(out_dtype)


# --------------------------------------------------------------------------
# Binary cross-entropy and focal loss.


def _bce_from_logits(x: jax.Array, t: jax.Array,
                     pos_weight: jax.Array | None = None) -> jax.Array:
  """``-[pw t log s(x) + (1 - t) log(1 - s(x))]`` via softplus, stable."""
  # -log s(x) = softplus(-x) and -log(1 - s(x)) = softplus(x). Written as
  # x + softplus(-x), the second cancels for x << 0 (t = 0): its value and
  # gradient lost their digits, and the gradient was 0 from x = -17.
  positive = t * jax.nn.softplus(-x)
  if pos_weight is not None:
    positive = pos_weight * positive
  return positive + (1 - t) * jax.nn.softplus(x)


def binary_cross_entropy_with_logits(
    logits: ArrayLike, targets: ArrayLike, *, weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    reduction: str = "mean") -> jax.Array:
  """Binary cross-entropy on logits, ``F.binary_cross_entropy_with_logits``.

  ``l = -w [pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]``, computed
  with ``softplus`` so it is finite for any finite logit. ``weight`` scales
  each element; ``pos_weight`` scales the positive term, typically one value
  per class (``[C]``, broadcast against the last axis as in PyTorch's
  multi-label form). ``"mean"`` divides by the number of elements, not by
  the weights.

  Args:
    logits: ``[...]`` logits (e.g. ``[N, C]`` for multi-label).
    targets: ``[...]`` same shape, targets in [0, 1].
    weight: optional, broadcastable to ``logits.shape``.
    pos_weight: optional ``>= 0`` weight of positives, broadcastable to
      ``logits.shape`` (e.g. ``[C]``).
    reduction: ``"none" | "mean" | "sum"``.

  Returns:
    ``[...]`` for ``"none"``, else a scalar, in the dtype of ``logits``.

  References:
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

  >>> binary_cross_entropy_with_logits(jnp.array([0.0, 1e4]),
  ...                                  jnp.array([1.0, 1.0]))
  Array(0.3465736, dtype=float32)
  """
  one_of(reduction, REDUCTIONS, "reduction")
  x, t, out_dtype = _same_shape_pair(logits, targets, "logits", "targets")
  if pos_weight is not None:
    pos_weight = jnp.asarray(pos_weight)
    _check_broadcast(pos_weight, x.shape, "pos_weight")
    pos_weight = pos_weight.astype(x.dtype)
  loss = _bce_from_logits(x, t, pos_weight)
  if weight is not None:
    weight = jnp.asarray(weight)
    _check_broadcast(weight, x.shape, "weight")
    loss = loss * weight.astype(x.dtype)
  return _reduce(loss, reduction).astype(out_dtype)


def _safe_power(base: jax.Array, exponent: float) -> jax.Array:
  """``base ** exponent`` for ``base >= 0`` with a finite gradient at 0."""
  if exponent == 0:
    return jnp.ones_like(base)
  positive = base > 0
  return jnp.where(positive, jnp.where(positive, base, 1.0) ** exponent, 0.0)


def sigmoid_focal_loss(logits: ArrayLike, targets: ArrayLike, *,
                       alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> jax.Array:
  """Focal loss of RetinaNet, ``torchvision.ops.sigmoid_focal_loss``.

  ``FL = alpha_t (1 - p_t)**gamma BCE(x, t)`` with ``p = sigmoid(x)``,
  ``p_t = p t + (1 - p)(1 - t)`` and ``alpha_t = alpha t + (1 - alpha)(1 - t)``.
  ``1 - p_t`` is computed as ``t sigmoid(-x) + (1 - t) sigmoid(x)``, which
  keeps its precision for confident predictions; the gradient of the
  modulating factor is taken as 0 where ``1 - p_t == 0``.

  Args:
    logits: ``[...]`` logits.
    targets: ``[...]`` same shape, binary targets (0/1; soft targets follow
      the same formula).
    alpha: weight of positives in [0, 1]; a negative value disables the
      weighting (torchvision's ``alpha=-1``). Static.
    gamma: focusing exponent ``>= 0``; ``gamma=0, alpha<0`` is plain BCE.
      Static.
    reduction: ``"none" | "mean" | "sum"`` (torchvision's default "none").

  Returns:
    ``[...]`` for ``"none"``, else a scalar, in the dtype of ``logits``.

  References:
    Lin et al., "Focal loss for dense object detection", ICCV 2017;
    ``torchvision.ops.sigmoid_focal_loss``.
  """
  one_of(reduction, REDUCTIONS, "reduction")
  real_scalar(alpha, "alpha")
  real_scalar(gamma, "gamma")
  if not alpha <= 1:  # NaN too.
    raise ValueError(f"alpha must be in [0, 1] or negative, got {alpha}.")
  if not gamma >= 0:
    raise ValueError(f"gamma must be >= 0, got {gamma}.")
  x, t, out_dtype = _same_shape_pair(logits, targets, "logits", "targets")
  one_minus_p_t = t * jax.nn.sigmoid(-x) + (1 - t) * jax.nn.sigmoid(x)
  loss = _bce_from_logits(x, t) * _safe_power(one_minus_p_t, gamma)
  if alpha >= 0:
    loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
  return _reduce(loss, reduction).astype(out_dtype)


# --------------------------------------------------------------------------
# Cross-entropy and negative log-likelihood.


def _check_class_axis(x: jax.Array, name: str) -> None:
  if x.ndim < 1 or x.shape[-1] < 1:
    raise ValueError(
        f"{name} must have shape [..., num_classes], got {tuple(x.shape)}.")


def _class_weight(weight: ArrayLike | None, num_classes: int,
                  dtype) -> jax.Array:
  if weight is None:
    return jnp.ones((num_classes,), dtype)
  weight = jnp.asarray(weight)
  if weight.shape != (num_classes,):
    raise ValueError(
        f"weight must have shape [num_classes] = ({num_classes},), got "
        f"{tuple(weight.shape)}.")
  return weight.astype(dtype)


def _check_index_labels(labels: jax.Array, scores: jax.Array,
                        name: str) -> None:
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"labels must be integer class indices, got dtype "
                     f"{labels.dtype}.")
  if labels.shape != scores.shape[:-1]:
    raise ValueError(
        f"labels must have shape {name}.shape[:-1] = "
        f"{tuple(scores.shape[:-1])}, got {tuple(labels.shape)}.")


def _check_ignore_index(ignore_index: object) -> None:
  if not _is_int(ignore_index):
    raise ValueError("ignore_index must be a Python or NumPy int, got "
                     f"{ignore_index!r}.")


def _indexed_loss(log_probs: jax.Array, labels: jax.Array,
                  weight: jax.Array, ignore_index: int,
                  label_smoothing: float, reduction: str) -> jax.Array:
  """PyTorch's NLL (+ label smoothing) for integer labels.

  Entries equal to ``ignore_index`` (and labels outside ``[0, C)``, which
  PyTorch rejects with an error) get loss 0 and weight 0.
  """
  num_classes = log_probs.shape[-1]
  labels = signed_ids(labels)  # uint8: -100 would compare as 156.
  valid = (labels >= 0) & (labels < num_classes)  # [...]
  if 0 <= ignore_index < num_classes:  # Else those labels are out anyway
    valid &= labels != ignore_index  # (and it may not fit their dtype).
  safe_labels = jnp.where(valid, labels, 0)
  picked = jnp.take_along_axis(log_probs, safe_labels[..., None],
                               axis=-1)[..., 0]  # [...]
  label_weight = jnp.where(valid, weight[safe_labels], 0.0)  # [...]
  loss = jnp.where(valid, -label_weight * picked, 0.0)
  if label_smoothing:
    # The uniform part: -sum_c w_c log p_c, spread with mass eps / C.
    smooth = jnp.where(valid, -jnp.sum(log_probs * weight, axis=-1), 0.0)
    loss = (1 - label_smoothing) * loss + (
        label_smoothing / num_classes) * smooth
  if reduction == "mean":
    return _safe_divide(jnp.sum(loss), jnp.sum(label_weight), jnp.nan)
  return _reduce(loss, reduction)


def nll_loss(log_probs: ArrayLike, labels: ArrayLike, *,
             weight: ArrayLike | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> jax.Array:
  """Negative log-likelihood, ``torch.nn.functional.nll_loss``.

  ``l_n = -weight[y_n] log_probs[n, y_n]``, 0 where ``y_n == ignore_index``;
  ``"mean"`` is ``sum(l) / sum(weight[y_n])`` over non-ignored entries (NaN
  when all are ignored, as PyTorch).

  Args:
    log_probs: ``[..., C]`` log-probabilities (e.g. ``log_softmax`` output).
    labels: ``[...]`` integer class indices in ``[0, C)`` or
      ``ignore_index``; other values are treated as ignored (PyTorch raises).
    weight: optional ``[C]`` class weights.
    ignore_index: the int label value that contributes nothing (static;
      any int, also one outside the labels' dtype).
    reduction: ``"none" | "mean" | "sum"``.

  Returns:
    ``[...]`` for ``"none"``, else a scalar, in the dtype of ``log_probs``.

  References:
    ``torch.nn.functional.nll_loss``.
  """
  one_of(reduction, REDUCTIONS, "reduction")
  _check_ignore_index(ignore_index)
  log_probs = jnp.asarray(log_probs)
  labels = jnp.asarray(labels)
  _check_class_axis(log_probs, "log_probs")
  _check_index_labels(labels, log_probs, "log_probs")
  out_dtype = _out_dtype(log_probs.dtype)
  x = _compute(log_probs)
  weight = _class_weight(weight, x.shape[-1], x.dtype)
  return _indexed_loss(x, labels, weight, ignore_index, 0.0,
                       reduction).astype(out_dtype)


def cross_entropy(logits: ArrayLike, labels: ArrayLike, *,
                  weight: ArrayLike | None = None, ignore_index: int = -100,
                  label_smoothing: float = 0.0,
                  reduction: str = "mean") -> jax.Array:
  """Softmax cross-entropy, ``torch.nn.functional.cross_entropy``.

  Two kinds of ``labels``, told apart by dtype as PyTorch does by shape:

  * integer class indices ``[...]``: ``l_n = (1 - e) w[y_n] (-log p[n, y_n])
    + (e / C) sum_c w_c (-log p[n, c])``, 0 where ``y_n == ignore_index``;
    ``"mean"`` is ``sum(l) / sum(w[y_n])`` over non-ignored entries (NaN
    when all are ignored, as PyTorch);
  * class probabilities ``[..., C]`` (floating): ``l_n = -sum_c w_c
    t'[n, c] log p[n, c]`` with ``t' = (1 - e) t + e / C``; ``"mean"``
    divides by the number of rows. ``ignore_index`` does not apply.

  Args:
    logits: ``[..., C]`` unnormalised scores, class axis last.
    labels: ``[...]`` integers in ``[0, C)`` or ``ignore_index`` (other
      values are treated as ignored; PyTorch raises), or ``[..., C]``
      floating probabilities.
    weight: optional ``[C]`` class weights.
    ignore_index: the int label value that contributes nothing (static;
      any int, also one outside the labels' dtype).
    label_smoothing: ``e`` in [0, 1] (static).
    reduction: ``"none" | "mean" | "sum"``.

  Returns:
    ``[...]`` for ``"none"``, else a scalar, in the dtype of ``logits``.

  References:
    ``torch.nn.functional.cross_entropy``; Szegedy et al., "Rethinking the
    Inception architecture", CVPR 2016 (label smoothing).

  >>> cross_entropy(jnp.array([[0.0, 0.0]]), jnp.array([1]))
  Array(0.6931472, dtype=float32)
  """
  one_of(reduction, REDUCTIONS, "reduction")
  _check_ignore_index(ignore_index)
  real_scalar(label_smoothing, "label_smoothing")
  if not 0.0 <= label_smoothing <= 1.0:
    raise ValueError(
        f"label_smoothing must be in [0, 1], got {label_smoothing}.")
  logits = jnp.asarray(logits)
  labels = jnp.asarray(labels)
  _check_class_axis(logits, "logits")
  out_dtype = _out_dtype(logits.dtype)
  x = _compute(logits)
  num_classes = x.shape[-1]
  weight = _class_weight(weight, num_classes, x.dtype)
  log_probs = jax.nn.log_softmax(x, axis=-1)
  if jnp.issubdtype(labels.dtype, jnp.floating):
    _check_same_shape(logits, labels, "logits", "labels (probabilities)")
    t = labels.astype(x.dtype)
    if label_smoothing:
      t = (1 - label_smoothing) * t + label_smoothing / num_classes
    loss = -jnp.sum(weight * t * log_probs, axis=-1)
    return _reduce(loss, reduction).astype(out_dtype)
  _check_index_labels(labels, logits, "logits")
  return _indexed_loss(log_probs, labels, weight, ignore_index,
                       label_smoothing, reduction).astype(out_dtype)


# --------------------------------------------------------------------------
# Regression losses.


def l1_loss(pred: ArrayLike, target: ArrayLike, *,
            reduction: str = "mean") -> jax.Array:
  """Mean absolute error, ``torch.nn.functional.l1_loss``: ``|pred - target|``.

  Args:
    pred: ``[...]`` predictions.
    target: broadcastable with ``pred``.
    reduction: ``"none" | "mean" | "sum"``.

  Returns:
    The broadcast shape for ``"none"``, else a scalar. The gradient at
    ``pred == target`` is 0, as in PyTorch.

  References:
    ``torch.nn.L1Loss``.
  """
  one_of(reduction, REDUCTIONS, "reduction")
  pred = jnp.asarray(pred)
  target = jnp.asarray(target)
  try:
    np.broadcast_shapes(pred.shape, target.shape)
  except ValueError:
    raise ValueError(
        f"pred and target must broadcast, got shapes {tuple(pred.shape)} and "
        f"{tuple(target.shape)}.") from None
  out_dtype = _out_dtype(jnp.result_type(pred.dtype, target.dtype))
  diff = _compute(pred) - _compute(target)
  # |d| as d * sign(d): jnp.abs has gradient 1 at 0, PyTorch's has 0.
  return _reduce(diff * jnp.sign(diff), reduction).astype(out_dtype)


def iou_loss(pred: ArrayLike, target: ArrayLike, *, variant: str = "giou",
             fmt: str = "xyxy", eps: float = 1e-7,
             reduction: str = "none") -> jax.Array:
  """Box-regression loss ``1 - IoU`` (or GIoU / DIoU / CIoU).

  ``1 - jaxdl.boxes.iou(pred, target, variant=...)``; with the default
  ``eps`` it equals ``torchvision.ops.generalized_box_iou_loss``,
  ``distance_box_iou_loss`` and ``complete_box_iou_loss``. Gradients are
  finite for degenerate and identical boxes.

  Args:
    pred: ``[..., 4]`` predicted boxes.
    target: ``[..., 4]`` target boxes, broadcastable with ``pred``.
    variant: ``"iou" | "giou" | "diou" | "ciou"`` (static).
    fmt: ``"xyxy" | "xywh" | "cxcywh"`` (static).
    eps: added to denominators.
    reduction: ``"none" | "mean" | "sum"`` (torchvision's default "none");
      the mean of no boxes is 0, as in torchvision.

  Returns:
    ``[...]`` losses for ``"none"`` (``1 -`` :func:`jaxdl.boxes.iou`: in
    [0, 1] for IoU, [0, 2] for GIoU and DIoU, [0, 2.5] for CIoU), else a
    scalar; computed in float32 for half-precision boxes and returned in
    their dtype (float32 for integers).

  References:
    Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019;
    ``torchvision.ops.generalized_box_iou_loss``.

  >>> iou_loss(jnp.array([0., 0., 2., 2.]), jnp.array([0., 0., 2., 2.]))
  Array(0., dtype=float32)
  """
  one_of(reduction, REDUCTIONS, "reduction")
  pred, target = boxes._box_pair(  # pylint: disable=protected-access
      pred, target, "pred", "target")
  out_dtype = _out_dtype(jnp.result_type(pred.dtype, target.dtype))
  # 1 - IoU in float32: from a half-precision IoU a bfloat16 loss was a
  # multiple of 2**-8 (0.0039 for an IoU of 0.995).
  loss = 1 - boxes.iou(_compute(pred), _compute(target), variant=variant,
                       fmt=fmt, eps=eps)
  if reduction == "mean" and loss.size == 0:
    loss = jnp.sum(loss) * 0  # torchvision: 0, not the NaN of an empty mean.
  else:
    loss = _reduce(loss, reduction)
  return loss.astype(out_dtype)
