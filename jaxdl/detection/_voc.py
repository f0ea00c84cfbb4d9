"""PASCAL VOC evaluation (py-faster-rcnn ``voc_eval``) of COCO-format inputs."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.detection import _dataset
from jaxdl.detection._ap import voc_ap
from jaxdl.detection._match import _greedy_match
from jaxdl.detection._match import _voc_iou


@jax.jit
def _match_cells(det_valid, gt_valid, det_boxes, det_area, gt_boxes, gt_area,
                 gt_difficult, iou_threshold, pixel_offset):
  """``voc_eval``'s TP / FP flags of padded cells.

  Args:
    det_valid: ``[P, D]``.
    gt_valid: ``[P, G]``.
    det_boxes: ``[P, D, 4]`` xyxy, by descending score (stable) in a cell.
    det_area: ``[P, D]`` areas with the offset, from the host (see
      :func:`_voc_iou`).
    gt_boxes: ``[P, G, 4]`` xyxy.
    gt_area: ``[P, G]`` likewise.
    gt_difficult: ``[P, G]``.
    iou_threshold: a match needs ``IoU > iou_threshold``.
    pixel_offset: added to widths and heights.

  Returns:
    ``(tp, fp)``, each ``[P, D]`` bool.
  """
  iou = functools.partial(_voc_iou, pixel_offset=pixel_offset)
  ious = jax.vmap(iou)(det_boxes, gt_boxes, det_area, gt_area)  # [P, D, G]
  match = functools.partial(_greedy_match, threshold=iou_threshold,
                            rule="voc")
  # A difficult ground truth is ignored and never marked as detected.
  gt_index = jax.vmap(match)(ious, det_valid, gt_valid, gt_difficult,
                             gt_difficult)  # [P, D]
  matched = gt_index >= 0
  difficult = jnp.take_along_axis(gt_difficult, jnp.maximum(gt_index, 0), 1)
  return matched & ~difficult, det_valid & ~matched


@functools.partial(jax.jit, static_argnames=("use_07_metric",))
def _batched_voc_ap(recall, precision, mask, *, use_07_metric):
  def ap(r, p, m):
    return voc_ap(r, p, use_07_metric=use_07_metric, mask=m)
  return jax.vmap(ap)(recall, precision, mask)


def _segment_cumsum(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
  """Cumulative sum restarting at each run of equal ``segment`` values."""
  total = np.cumsum(values)
  starts = _dataset.group_starts(segment)
  return total - (total - values)[starts]


def _evaluate(gt: Any, dets: Any, iou_threshold: float, use_07_metric: bool,
              pixel_offset: float) -> dict:
  g = _dataset.parse_ground_truth(gt)
  d = _dataset.parse_detections(dets, g)
  num_cat = len(g.category_ids)

  def corners(xywh):
    x, y, w, h = xywh.T
    return np.stack([x, y, x + w, y + h], -1)

  def areas(xyxy):  # voc_eval's, operation by operation
    x1, y1, x2, y2 = xyxy.T
    return (x2 - x1 + pixel_offset) * (y2 - y1 + pixel_offset)

  det_corners, gt_corners = corners(d.boxes), corners(g.boxes)

  det_cell = d.image * num_cat + d.category
  order = np.lexsort((-d.scores, det_cell))  # stable: list order on ties
  gt_cell = g.image * num_cat + g.category
  gt_order = np.argsort(gt_cell, kind="stable")
  tp = np.zeros(order.size, bool)
  fp = np.ones(order.size, bool)  # no ground truth in the cell: a miss
  _dataset.match_cells(
      _match_cells, det_cell[order], gt_cell[gt_order],
      (det_corners[order], areas(det_corners[order])),
      (gt_corners[gt_order], areas(gt_corners[gt_order]), g.crowd[gt_order]),
      (np.float64(iou_threshold), np.float64(pixel_offset)), (tp, fp))

  # voc_eval's curve: all detections of a class by score, stable.
  category = d.category[order]
  acc = np.lexsort((order, -d.scores[order], category))
  category, tp, fp = category[acc], tp[acc].astype(float), fp[acc].astype(
      float)
  tp_cum = _segment_cumsum(tp, category)
  fp_cum = _segment_cumsum(fp, category)
  npos = np.bincount(g.category[~g.crowd], minlength=num_cat).astype(float)
  with np.errstate(divide="ignore", invalid="ignore"):
    recall = tp_cum / npos[category]
  precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)

  # One padded row per category for the batched voc_ap.
  length = _dataset.padded_length(np.max(np.bincount(category, minlength=1)),
                                  16)
  column = np.arange(category.size) - _dataset.group_starts(category)
  padded = (np.zeros((num_cat, length)), np.zeros((num_cat, length)),
            np.zeros((num_cat, length), bool))
  padded[0][category, column] = recall
  padded[1][category, column] = precision
  padded[2][category, column] = True
  ap = np.asarray(_batched_voc_ap(*padded, use_07_metric=use_07_metric))
  has_positives = npos > 0
  return {"ap": {int(c): float(a) for c, a in zip(g.category_ids, ap)},
          "map": float(np.mean(ap[has_positives])) if np.any(has_positives)
                 else float("nan")}


def voc_evaluate(gt: Any, dets: Any, *, iou_threshold: float = 0.5,
                 use_07_metric: bool = False,
                 pixel_offset: float = 1.0) -> dict:
  """PASCAL VOC AP per category of COCO-format inputs (py-faster-rcnn).

  Equals py-faster-rcnn's ``voc_eval`` run for each category on the corner
  boxes ``(x, y, x + w, y + h)`` of ``gt`` and ``dets``, with ``iscrowd``
  read as "difficult": widths and heights get ``+ pixel_offset``; detections
  are sorted by score (stable: ties keep list order, where ``voc_eval``'s
  ``np.argsort(-confidence)`` is not stable, so with tied scores this
  equals ``voc_eval`` with a stable sort); each detection looks
  only at its highest-IoU ground truth of the same image (first on ties) and
  is a true positive when ``IoU > iou_threshold`` and that ground truth is
  not difficult and not yet detected, ignored when it is difficult, and a
  false positive otherwise. AP is :func:`voc_ap` of the resulting curve.
  Matching and AP run jitted in float64 (``jax.enable_x64`` inside the
  call).

  Args:
    gt: a COCO-format dict (see :func:`coco_evaluate`).
    dets: a COCO results list.
    iou_threshold: the IoU a true positive must exceed.
    use_07_metric: 11-point VOC2007 AP instead of the all-point VOC2010+ AP.
    pixel_offset: 1.0 for the VOC devkit's inclusive pixels, 0.0 for
      continuous coordinates.

  Returns:
    ``{"ap": {category_id: ap}, "map": mean AP}``. A category without
    non-difficult ground truth has AP 0 if it has no detections (the
    original ``voc_eval`` fails on an empty detection list there); with
    detections (recall 0 / 0) its all-point AP is NaN and its 11-point AP
    (``use_07_metric``) 0. ``map`` averages the categories that have
    non-difficult ground truth (NaN if none has). Annotations and
    detections of a category not in ``gt['categories']`` are left out.

  Raises:
    ValueError: as :func:`coco_evaluate`, naming the offending entry.

  References:
    py-faster-rcnn ``lib/datasets/voc_eval.py`` (``voc_eval``, ``voc_ap``).
  """
  if not 0.0 <= iou_threshold <= 1.0:
    raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}.")
  with jax.enable_x64(True):
    return _evaluate(gt, dets, iou_threshold, use_07_metric, pixel_offset)
