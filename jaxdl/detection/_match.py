"""Greedy detection-to-ground-truth matching (COCO and VOC rules)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxdl import boxes as box_ops


class Matches(NamedTuple):
  """Per-detection outcome of :func:`match_detections`, each ``[N]``.

  Attributes:
    tp: bool, matched a ground truth that is not ignored.
    fp: bool, a real detection that matched nothing (and is not ignored).
    gt_index: int32 index of the matched ground truth (ignored or not),
      ``-1`` when unmatched or padded.
    ignored: bool, matched an ignored ground truth: neither TP nor FP.
  """
  tp: jax.Array
  fp: jax.Array
  gt_index: jax.Array
  ignored: jax.Array


# The evaluators pass box areas computed on the host in NumPy: computed in the
# kernel, XLA:CPU contracts an area product and the sum of areas into one
# fused multiply-add where it vectorises (cells of more than 16 ground
# truths), whose single rounding moved IoUs by an ulp from pycocotools' and
# voc_eval's and flipped matches at thresholds such as IoU = 0.5 + 1e-16.


def _coco_iou(det: jax.Array, gt: jax.Array, crowd: jax.Array,
              det_area: jax.Array, gt_area: jax.Array) -> jax.Array:
  """``pycocotools.mask.iou`` of ``[D, 4]`` and ``[G, 4]`` xywh boxes.

  The arithmetic follows pycocotools' ``bbIou`` operation by operation
  (right edges ``x + w``, union ``(da + ga) - i``) so that thresholds and
  ties compare bit-identically, given the areas ``w * h`` (``[D]``, ``[G]``)
  rounded as pycocotools rounds them; a crowd ground truth's union is the
  detection's area. ``jaxdl.boxes.iou`` derives areas from corners, which
  can differ in the last bit.
  """
  dx, dy, dw, dh = (v[:, None] for v in det.T)  # [D, 1]
  gx, gy, gw, gh = gt.T  # [G]
  w = jnp.minimum(dw + dx, gw + gx) - jnp.maximum(dx, gx)  # [D, G]
  h = jnp.minimum(dh + dy, gh + gy) - jnp.maximum(dy, gy)
  overlap = (w > 0) & (h > 0)
  inter = w * h
  det_area = det_area[:, None]
  union = jnp.where(crowd, det_area, det_area + gt_area - inter)
  return jnp.where(overlap, inter / jnp.where(overlap, union, 1.0), 0.0)


def _voc_iou(det: jax.Array, gt: jax.Array, det_area: jax.Array,
             gt_area: jax.Array, pixel_offset: ArrayLike) -> jax.Array:
  """py-faster-rcnn ``voc_eval``'s overlaps of ``[D, 4]`` and ``[G, 4]`` xyxy
  boxes, operation by operation, given the areas ``(x2 - x1 + offset) *
  (y2 - y1 + offset)`` (``[D]``, ``[G]``): 0 / 0 is NaN, as there."""
  inter = box_ops._intersection(  # pylint: disable=protected-access
      tuple(v[:, None] for v in det.T), tuple(gt.T), pixel_offset)
  return inter / (det_area[:, None] + gt_area - inter)


def _greedy_match(ious: jax.Array, det_valid: jax.Array, gt_valid: jax.Array,
                  gt_ignore: jax.Array, gt_reusable: jax.Array,
                  threshold: ArrayLike, *, rule: str) -> jax.Array:
  """Matches detections, already in processing order, to ground truths.

  ``rule="coco"`` is ``COCOeval.evaluateImg``: a detection takes, among the
  ground truths still free (reusable ones are always free) with
  ``IoU >= threshold``, the best non-ignored one, else the best ignored one;
  IoU ties go to the last ground truth. ``rule="voc"`` is py-faster-rcnn's
  ``voc_eval``: a detection looks only at its first-argmax ground truth and
  needs ``IoU > threshold``; if that one is taken (and not reusable) the
  detection is a false positive.

  Args:
    ious: ``[D, G]`` IoU, rows in processing (descending score) order.
    det_valid: ``[D]`` bool.
    gt_valid: ``[G]`` bool.
    gt_ignore: ``[G]`` bool, matches to these are neither TP nor FP.
    gt_reusable: ``[G]`` bool, can be matched by many detections (crowd).
    threshold: scalar IoU threshold.
    rule: ``"coco"`` or ``"voc"`` (static).

  Returns:
    ``[D]`` int32 matched ground-truth index, ``-1`` for none.
  """
  num_gt = ious.shape[-1]
  if num_gt == 0:
    return jnp.full(ious.shape[:-1], -1, jnp.int32)
  gt_range = jnp.arange(num_gt)

  def coco_step(taken, inputs):
    row, valid = inputs
    free = gt_valid & (~taken | gt_reusable) & (row >= threshold)  # [G]
    preferred = free & ~gt_ignore
    group = jnp.where(jnp.any(preferred), preferred, free)
    best = jnp.max(jnp.where(group, row, -jnp.inf))
    # The last best ground truth (a max over indices: cheaper than argmax).
    index = jnp.max(jnp.where(group & (row == best), gt_range, -1))
    matched = valid & (index >= 0)
    return taken | (matched & (gt_range == index)), jnp.where(
        matched, index, -1)

  def voc_step(taken, inputs):
    row, valid = inputs
    # np.argmax: the first maximum; a NaN is the maximum and fails `>`.
    row = jnp.where(gt_valid, row, -jnp.inf)
    nan = jnp.isnan(row)
    best = jnp.where(jnp.any(nan), jnp.nan, jnp.max(row))
    index = jnp.min(jnp.where(nan | (row == best), gt_range, num_gt))
    at_index = gt_range == index
    hit = valid & jnp.any(gt_valid) & (best > threshold)
    matched = hit & jnp.any(at_index & (gt_reusable | ~taken))
    new = matched & at_index & ~gt_reusable
    return taken | new, jnp.where(matched, index, -1)

  step = coco_step if rule == "coco" else voc_step
  taken = jnp.zeros(num_gt, bool)
  _, gt_index = lax.scan(step, taken, (ious, det_valid))
  return gt_index.astype(jnp.int32)


def _as_mask(mask: ArrayLike | None, size: int, name: str) -> jax.Array:
  if mask is None:
    return jnp.ones(size, bool)
  mask = jnp.asarray(mask)
  if mask.shape != (size,):
    raise ValueError(f"{name} must have shape ({size},), got {mask.shape}.")
  return mask.astype(bool)


def match_detections(det_boxes: ArrayLike, det_scores: ArrayLike,
                     gt_boxes: ArrayLike, *, iou_threshold: float = 0.5,
                     det_mask: ArrayLike | None = None,
                     gt_mask: ArrayLike | None = None,
                     gt_ignore: ArrayLike | None = None,
                     pixel_offset: float = 0.0,
                     crowd_iou: bool = False) -> Matches:
  """Greedy TP / FP matching of one image's detections to its ground truths.

  Detections are visited by descending score (stable: ties keep the lower
  index first). Each takes, among the ground truths not matched yet with
  ``IoU >= iou_threshold``, the one with the highest IoU (ties: the last), and
  prefers a non-ignored ground truth to an ignored one. A ground truth is
  matched at most once; an ignored one (crowd / difficult) can absorb any
  number of detections, which are then neither TP nor FP. This is the
  per-image matching of ``COCOeval.evaluateImg`` with ``gt_ignore`` as
  ``iscrowd`` and ``crowd_iou=True``, and the notes' ``get_TP_FP_FN``
  corrected (sorted by score, the matched ground truth removed by index, no
  crash without ground truth).

  False negatives are the real, non-ignored ground truths that no detection
  took: ``gt_mask & ~gt_ignore & ~jnp.isin(jnp.arange(M), gt_index)``.

  Args:
    det_boxes: ``[N, 4]`` detection boxes, ``"xyxy"``.
    det_scores: ``[N]`` scores.
    gt_boxes: ``[M, 4]`` ground-truth boxes, ``"xyxy"`` (``M`` may be 0).
    iou_threshold: a match needs ``IoU >= iou_threshold`` (static, like
      ``pixel_offset`` and ``crowd_iou``: mark them static under ``jit``).
    det_mask: ``[N]`` bool, False for padding.
    gt_mask: ``[M]`` bool, False for padding.
    gt_ignore: ``[M]`` bool, ground truths whose matches are ignored.
    pixel_offset: 1.0 for the VOC "+1" box size convention.
    crowd_iou: if True (static), the IoU with an ignored ground truth is the
      intersection over the detection's area, COCO's rule for crowd regions;
      with it, ``gt_ignore=iscrowd`` gives ``evaluateImg``'s matches for
      the detections given (``evaluateImg`` first keeps the ``maxDets``
      best), including its ``min(iou_threshold, 1 - 1e-10)``, exactly
      where the IoUs computed here order against the threshold and each
      other as pycocotools' float64 ones do. IoUs are computed in float32
      (float64 for float64 boxes under x64; half precision is upcast), so
      an IoU within a float32 ulp of the threshold or of another IoU can
      decide differently, even for integer boxes (``[0, 0, 1514, 1082]``
      against ``[0, 0, 1701, 1751]`` is 0.55 - 1.7e-8: a match at 0.55
      here, none in pycocotools). :func:`coco_evaluate` computes in float64
      and has none of these differences.

  Returns:
    :class:`Matches` with ``[N]`` fields in the input order; padded
    detections are neither TP, FP nor ignored and have ``gt_index = -1``.

  References:
    Lin et al., "Microsoft COCO: Common Objects in Context", 2014, and
    ``pycocotools.cocoeval.COCOeval.evaluateImg``.

  >>> m = match_detections(jnp.array([[0., 0., 2., 2.], [0., 0., 2., 2.1]]),
  ...                      jnp.array([0.5, 0.9]), jnp.array([[0., 0., 2., 2.]]))
  >>> m.tp, m.fp
  (Array([False,  True], dtype=bool), Array([ True, False], dtype=bool))
  """
  det_boxes = jnp.asarray(det_boxes)
  gt_boxes = jnp.asarray(gt_boxes)
  det_scores = jnp.asarray(det_scores)
  # At least float32: a bfloat16 IoU of 312/625 rounded to 0.5 and matched.
  dtype = jnp.promote_types(jnp.result_type(det_boxes, gt_boxes), jnp.float32)
  det_boxes, gt_boxes = det_boxes.astype(dtype), gt_boxes.astype(dtype)
  for name, b in (("det_boxes", det_boxes), ("gt_boxes", gt_boxes)):
    if b.ndim != 2 or b.shape[-1] != 4:
      raise ValueError(f"{name} must have shape [N, 4], got {b.shape}.")
  num_det, num_gt = det_boxes.shape[0], gt_boxes.shape[0]
  if det_scores.shape != (num_det,):
    raise ValueError(
        f"det_scores must have shape ({num_det},), got {det_scores.shape}.")
  if not 0.0 <= iou_threshold <= 1.0:
    raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}.")
  det_valid = _as_mask(det_mask, num_det, "det_mask")
  gt_valid = _as_mask(gt_mask, num_gt, "gt_mask")
  ignore = (jnp.zeros(num_gt, bool) if gt_ignore is None else
            _as_mask(gt_ignore, num_gt, "gt_ignore"))
  # Real detections first, then by descending score, stable. Negated as
  # floats: an unsigned score of 0 would wrap to the largest key.
  keys = det_scores.astype(jnp.promote_types(det_scores.dtype, jnp.float32))
  order = jnp.lexsort((-keys, ~det_valid))
  if crowd_iou:
    # xywh with the offset in the sides: right edges become x2 + offset.
    offset = jnp.array([0.0, 0.0, pixel_offset, pixel_offset])
    det_xywh = box_ops.convert(det_boxes[order], "xyxy", "xywh") + offset
    gt_xywh = box_ops.convert(gt_boxes, "xyxy", "xywh") + offset
    ious = _coco_iou(det_xywh, gt_xywh, ignore,
                     det_xywh[:, 2] * det_xywh[:, 3],
                     gt_xywh[:, 2] * gt_xywh[:, 3])
  else:
    # eps=0 and 0 for 0 / 0 (point boxes), as pycocotools' bbIou.
    ious = jnp.nan_to_num(box_ops.pairwise_iou(
        det_boxes[order], gt_boxes, pixel_offset=pixel_offset, eps=0.0))
  if crowd_iou:  # evaluateImg's clamp, so that 1.0 does not need IoU == 1
    iou_threshold = min(iou_threshold, 1 - 1e-10)
  sorted_index = _greedy_match(ious, det_valid[order], gt_valid, ignore,
                               ignore, iou_threshold, rule="coco")
  gt_index = jnp.zeros(num_det, jnp.int32).at[order].set(sorted_index)
  matched = gt_index >= 0
  if num_gt:
    ignored = matched & ignore[jnp.maximum(gt_index, 0)]
  else:
    ignored = matched
  tp = matched & ~ignored
  return Matches(tp=tp, fp=det_valid & ~matched, gt_index=gt_index,
                 ignored=ignored)
