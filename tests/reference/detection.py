"""Oracles and synthetic data for jaxdl.detection.

* ``pycocotools_stats``: the 12 numbers of ``COCOeval(..., "bbox").stats``,
  run on deep copies (pycocotools mutates its inputs) with its prints muted.
* ``voc_ap`` / ``voc_evaluate``: float64 NumPy ports of py-faster-rcnn's
  ``voc_ap`` and ``voc_eval`` (the VOC2010+ all-point AP of the notes, and the
  VOC2007 11-point AP), run per category on COCO-style inputs: corner boxes
  ``(x, y, x + w, y + h)``, ``iscrowd`` read as "difficult", detections sorted
  by score with a stable sort.
* ``match_image``: the per-image greedy matching of ``COCOeval.evaluateImg``
  for one IoU threshold, the reference of ``match_detections``.
* ``notes_get_tp_fp_fn``: the notes' ``get_TP_FP_FN``, kept with its errors
  (sorts by x1 instead of score, pops by IoU value instead of index, crashes
  without ground truth) for regression tests.
* ``synthetic_coco``: COCO-like ground truth and results with the cases the
  evaluation must get right (crowd boxes, area-range boundaries, images
  without ground truth or detections, > 100 detections, tied scores).
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np

# --------------------------------------------------------------------------
# pycocotools
# --------------------------------------------------------------------------


def pycocotools_stats(gt: dict, dets: list) -> np.ndarray:
  """``COCOeval(gt, dets, "bbox").stats`` (evaluate, accumulate, summarize)."""
  from pycocotools.coco import COCO
  from pycocotools.cocoeval import COCOeval
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt = COCO()
    coco_gt.dataset = copy.deepcopy(gt)
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
    evaluator = COCOeval(coco_gt, coco_dt, "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  return np.asarray(evaluator.stats)


# --------------------------------------------------------------------------
# VOC (py-faster-rcnn lib/datasets/voc_eval.py)
# --------------------------------------------------------------------------


def voc_ap(rec: np.ndarray, prec: np.ndarray,
           use_07_metric: bool = False) -> float:
  """py-faster-rcnn ``voc_ap``: 11-point (VOC2007) or all-point (VOC2010+)."""
  rec = np.asarray(rec, np.float64)
  prec = np.asarray(prec, np.float64)
  if use_07_metric:
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
      p = 0.0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
      ap = ap + p / 11.0
    return float(ap)
  mrec = np.concatenate(([0.0], rec, [1.0]))
  mpre = np.concatenate(([0.0], prec, [0.0]))
  for i in range(mpre.size - 1, 0, -1):
    mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
  i = np.where(mrec[1:] != mrec[:-1])[0]
  return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def voc_eval_class(gt: dict, dets: list, category_id: int, *,
                   iou_threshold: float = 0.5, use_07_metric: bool = False,
                   pixel_offset: float = 1.0):
  """py-faster-rcnn ``voc_eval`` for one class; returns ``(rec, prec, ap)``.

  The only change is the stable sort of detections (``voc_eval`` uses the
  default quicksort, which orders tied scores arbitrarily).
  """
  recs = {img["id"]: ([], []) for img in gt["images"]}
  for ann in gt["annotations"]:
    if ann["category_id"] != category_id:
      continue
    x, y, w, h = ann["bbox"]
    recs[ann["image_id"]][0].append([x, y, x + w, y + h])
    recs[ann["image_id"]][1].append(bool(ann["iscrowd"]))
  class_recs = {}
  npos = 0
  for image_id, (bbox, difficult) in recs.items():
    difficult = np.array(difficult, bool)
    npos += int(np.sum(~difficult))
    class_recs[image_id] = {"bbox": np.array(bbox, np.float64).reshape(-1, 4),
                            "difficult": difficult,
                            "det": [False] * len(bbox)}
  mine = [d for d in dets if d["category_id"] == category_id]
  image_ids = [d["image_id"] for d in mine]
  confidence = np.array([d["score"] for d in mine], np.float64)
  bb_all = np.array([[d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2],
                      d["bbox"][1] + d["bbox"][3]] for d in mine],
                    np.float64).reshape(-1, 4)
  sorted_ind = np.argsort(-confidence, kind="stable")
  bb_all = bb_all[sorted_ind]
  image_ids = [image_ids[i] for i in sorted_ind]
  nd = len(image_ids)
  tp = np.zeros(nd)
  fp = np.zeros(nd)
  po = pixel_offset
  for d in range(nd):
    r = class_recs[image_ids[d]]
    bb = bb_all[d]
    ovmax = -np.inf
    bbgt = r["bbox"]
    if bbgt.size > 0:
      ixmin = np.maximum(bbgt[:, 0], bb[0])
      iymin = np.maximum(bbgt[:, 1], bb[1])
      ixmax = np.minimum(bbgt[:, 2], bb[2])
      iymax = np.minimum(bbgt[:, 3], bb[3])
      iw = np.maximum(ixmax - ixmin + po, 0.0)
      ih = np.maximum(iymax - iymin + po, 0.0)
      inters = iw * ih
      uni = ((bb[2] - bb[0] + po) * (bb[3] - bb[1] + po) +
             (bbgt[:, 2] - bbgt[:, 0] + po) * (bbgt[:, 3] - bbgt[:, 1] + po) -
             inters)
      overlaps = inters / uni
      ovmax = np.max(overlaps)
      jmax = np.argmax(overlaps)
    if ovmax > iou_threshold:
      if not r["difficult"][jmax]:
        if not r["det"][jmax]:
          tp[d] = 1.0
          r["det"][jmax] = True
        else:
          fp[d] = 1.0
    else:
      fp[d] = 1.0
  fp = np.cumsum(fp)
  tp = np.cumsum(tp)
  with np.errstate(divide="ignore", invalid="ignore"):
    rec = tp / float(npos)
  prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
  return rec, prec, voc_ap(rec, prec, use_07_metric)


def voc_evaluate(gt: dict, dets: list, **kwargs) -> dict:
  """``voc_eval_class`` for every category; NaN AP without positives."""
  ap = {}
  for cat in gt["categories"]:
    with np.errstate(invalid="ignore"):
      ap[cat["id"]] = voc_eval_class(gt, dets, cat["id"], **kwargs)[2]
  has_positives = {a["category_id"] for a in gt["annotations"]
                   if not a["iscrowd"]}
  scored = [v for k, v in ap.items() if k in has_positives]
  return {"ap": ap, "map": float(np.mean(scored)) if scored else float("nan")}


# --------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------


def match_image(ious: np.ndarray, scores: np.ndarray, gt_ignore: np.ndarray,
                gt_crowd: np.ndarray, iou_threshold: float):
  """``COCOeval.evaluateImg`` matching for one threshold, by original index.

  Args:
    ious: ``[D, G]`` IoU of every detection with every ground truth.
    scores: ``[D]`` detection scores (sorted here, stable, descending).
    gt_ignore: ``[G]`` ground truths that are neither TP nor FP when matched.
    gt_crowd: ``[G]`` ground truths that can be matched many times.
    iou_threshold: a match needs IoU >= this.

  Returns:
    ``(tp, fp, gt_index, ignored)`` per detection in the input order.
  """
  d_count, g_count = ious.shape
  order = np.argsort(-np.asarray(scores), kind="mergesort")
  gt_order = np.argsort(gt_ignore, kind="mergesort")
  tp = np.zeros(d_count, bool)
  fp = np.zeros(d_count, bool)
  ignored = np.zeros(d_count, bool)
  gt_index = -np.ones(d_count, np.int64)
  taken = np.zeros(g_count, bool)
  for d in order:
    best = min(iou_threshold, 1 - 1e-10)
    m = -1
    for g in gt_order:
      if taken[g] and not gt_crowd[g]:
        continue
      if m > -1 and not gt_ignore[m] and gt_ignore[g]:
        break
      if ious[d, g] < best:
        continue
      best = ious[d, g]
      m = g
    if m == -1:
      fp[d] = True
      continue
    taken[m] = True
    gt_index[d] = m
    ignored[d] = gt_ignore[m]
    tp[d] = not gt_ignore[m]
  return tp, fp, gt_index, ignored


def notes_get_tp_fp_fn(dts, gts, iou_thre, iou):
  """The notes' ``get_TP_FP_FN`` verbatim in logic (``argmax`` -> NumPy).

  Errors kept: ``dts.sort`` orders by the first coordinate (x1) instead of
  the score, ``gts.pop(max_iou)`` pops by the IoU value instead of the index,
  ``max([])`` raises without ground truth.
  """
  dts.sort(reverse=True)
  tps, fps = [], []
  for dt in dts:
    sign = False
    others = [iou(dt, gt) for gt in gts]
    max_iou = max(others)
    max_iou_idx = np.argmax(others)  # noqa: F841 (unused in the notes too)
    if max_iou >= iou_thre:
      sign = not sign
      tps.append(dt)
      gts.pop(max_iou)
    if not sign:
      fps.append(dt)
  fns = gts
  return tps, fps, fns


# --------------------------------------------------------------------------
# Synthetic COCO-like data
# --------------------------------------------------------------------------

# COCO's 80 category ids (1..90 with gaps), used to keep ids non-contiguous.
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
    23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
    65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88,
    89, 90)


def _random_boxes(rng, n, width, height):
  """``[n, 4]`` xywh boxes with log-uniform sizes (COCO-like: many small)."""
  side = np.exp(rng.uniform(np.log(4.0), np.log(0.9 * min(width, height)), n))
  aspect = np.exp(rng.uniform(-1.0, 1.0, n))
  w = np.minimum(side * aspect, width - 1)
  h = np.minimum(side / aspect, height - 1)
  x = rng.uniform(0, width - w)
  y = rng.uniform(0, height - h)
  return np.stack([x, y, w, h], -1)


def synthetic_coco(rng: np.random.Generator, *, num_images: int = 50,
                   num_categories: int = 8, gts_per_image: float = 7.0,
                   dets_per_image: int = 30, crowd_rate: float = 0.03,
                   empty_gt_rate: float = 0.1, empty_det_rate: float = 0.1,
                   boundary_rate: float = 0.1, tie_decimals: int | None = 2,
                   hit_rate: float = 0.6, crowded_image: bool = True,
                   width: float = 640.0, height: float = 480.0):
  """A COCO-format ground-truth dict and results list.

  Detections are jittered copies of ground truths (``hit_rate`` of them, some
  with a wrong category) plus random boxes; scores are rounded to
  ``tie_decimals`` so many tie. ``boundary_rate`` of the ground truths get an
  ``area`` of exactly 32**2 or 96**2 (the area-range boundaries); crowd boxes
  are large. With ``crowded_image`` the first image holds 150 detections of
  one category (more than maxDets=100). The last category never has ground
  truth (only false positives); the second to last gets ground truth that no
  detection hits.

  Returns:
    ``(gt, dets)``: ``gt`` with ``images``, ``categories``, ``annotations``;
    ``dets`` a list of ``{"image_id", "category_id", "bbox", "score"}``.
  """
  cat_ids = np.array(COCO_CATEGORY_IDS[:num_categories]
                     if num_categories <= 80 else
                     np.arange(1, num_categories + 1))
  image_ids = rng.choice(10 * num_images + 10, num_images, replace=False) + 1
  images = [{"id": int(i), "width": width, "height": height}
            for i in image_ids]
  categories = [{"id": int(c), "name": f"c{c}"} for c in cat_ids]
  annotations = []
  dets = []
  gt_cats = cat_ids[:-1] if num_categories > 1 else cat_ids
  for index, image_id in enumerate(image_ids):
    n_gt = 0 if rng.random() < empty_gt_rate else rng.poisson(gts_per_image)
    present = rng.choice(gt_cats, size=min(len(gt_cats), 3), replace=False)
    boxes = _random_boxes(rng, n_gt, width, height)
    labels = rng.choice(present, n_gt)
    crowd = rng.random(n_gt) < crowd_rate
    for b, c, is_crowd in zip(boxes, labels, crowd):
      if is_crowd:
        b = np.array([b[0] / 2, b[1] / 2, width / 2, height / 2])
      area = b[2] * b[3] * rng.uniform(0.5, 1.0)
      if rng.random() < boundary_rate:
        area = float(rng.choice([32.0 ** 2, 96.0 ** 2]))
      annotations.append({
          "id": len(annotations) + 1, "image_id": int(image_id),
          "category_id": int(c), "bbox": [float(v) for v in b],
          "area": float(area), "iscrowd": int(is_crowd)})
    if rng.random() < empty_det_rate:
      continue
    n_det = 150 if (crowded_image and index == 0) else dets_per_image
    n_hit = min(int(hit_rate * n_det), 3 * n_gt)
    hits = boxes[rng.integers(0, max(n_gt, 1), n_hit)] if n_gt else np.zeros(
        (0, 4))
    jitter = rng.normal(0, 0.08, hits.shape) * np.concatenate(
        [hits[:, 2:], hits[:, 2:]], -1)
    hit_boxes = hits + jitter
    hit_boxes[:, 2:] = np.maximum(hit_boxes[:, 2:], 1.0)
    hit_labels = (labels[rng.integers(0, max(n_gt, 1), n_hit)] if n_gt
                  else np.zeros(0, int))
    wrong = rng.random(n_hit) < 0.1
    hit_labels = np.where(wrong, rng.choice(cat_ids, n_hit), hit_labels)
    n_random = n_det - n_hit
    det_boxes = np.concatenate([hit_boxes,
                                _random_boxes(rng, n_random, width, height)])
    det_labels = np.concatenate([hit_labels, rng.choice(cat_ids, n_random)])
    if crowded_image and index == 0:
      det_labels[:] = det_labels[0]
    # Hits score higher than random boxes, as a detector's would.
    scores = np.concatenate([rng.beta(4, 2, n_hit), rng.beta(1, 4, n_random)])
    if tie_decimals is not None:
      scores = np.round(scores, tie_decimals)
    for b, c, s in zip(det_boxes, det_labels, scores):
      dets.append({"image_id": int(image_id), "category_id": int(c),
                   "bbox": [float(v) for v in b], "score": float(s)})
  if num_categories > 2:
    # A category with ground truth that no detection hits.
    missed = int(cat_ids[-2])
    dets = [d for d in dets if d["category_id"] != missed]
    if not any(a["category_id"] == missed for a in annotations):
      b = _random_boxes(rng, 1, width, height)[0]
      annotations.append({
          "id": len(annotations) + 1, "image_id": int(image_ids[-1]),
          "category_id": missed, "bbox": [float(v) for v in b],
          "area": float(b[2] * b[3]), "iscrowd": 0})
  gt = {"images": images, "categories": categories, "annotations": annotations}
  return gt, dets
