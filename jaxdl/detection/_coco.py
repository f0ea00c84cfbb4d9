"""COCO bbox evaluation (``COCOeval(..., "bbox")``) with jitted kernels.

The host layer (:mod:`._dataset`) validates the dicts, sorts and packs them;
the matching of every (image, category) cell for all area ranges and IoU
thresholds and the accumulation of precision / recall run jitted. Both run in
float64 (``jax.enable_x64`` inside the call) so IoU thresholds, recall
thresholds and score ties are decided exactly as pycocotools decides them; the
only rounding apart from the order of sums is the precision envelope's
(:func:`_segmented_reverse_cummax`, below 3e-14 for 80 categories).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdl.detection import _dataset
from jaxdl.detection._match import _coco_iou
from jaxdl.detection._match import _greedy_match

# COCOeval.Params for iouType="bbox".
IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1,
                             endpoint=True)
RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1,
                                endpoint=True)
# Rows: all, small, medium, large.
AREA_RANGES = np.array([[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2],
                        [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]])
MAX_DETS = (1, 10, 100)


class CocoAccumulation(NamedTuple):
  """``COCOeval.eval`` for maxDets=100 precision, plus the summary.

  Attributes:
    precision: ``[T, R, K, A]`` interpolated precision at each IoU threshold,
      recall threshold, category and area range with maxDets=100; -1 where
      the category has no ground truth in the area range.
    recall: ``[T, K, A, M]`` final recall for maxDets 1, 10, 100; -1 likewise.
    stats: ``[12]`` the numbers of ``COCOeval.summarize``.
    category_ids: ``[K]`` category ids in order.
  """
  precision: np.ndarray
  recall: np.ndarray
  stats: np.ndarray
  category_ids: np.ndarray


@jax.jit
def _match_cells(det_valid, gt_valid, det_boxes, det_area, det_area_out,
                 gt_boxes, gt_area, gt_crowd, gt_ignore, gt_zero_id,
                 thresholds):
  """TP / FP flags of padded cells for every IoU threshold and area range.

  Args:
    det_valid: ``[P, D]``.
    gt_valid: ``[P, G]``.
    det_boxes: ``[P, D, 4]`` xywh, by descending score within a cell.
    det_area: ``[P, D]`` box areas ``w * h``, from the host (see
      :func:`_coco_iou`).
    det_area_out: ``[P, D, A]`` detection area outside the area range.
    gt_boxes: ``[P, G, 4]`` xywh in annotation order.
    gt_area: ``[P, G]`` box areas ``w * h`` (not the ``area`` field).
    gt_crowd, gt_zero_id: ``[P, G]``.
    gt_ignore: ``[P, G, A]`` crowd or area outside the range.
    thresholds: ``[T]``.

  Returns:
    ``(tp, fp)``, each ``[P, D]`` int64: bit ``t * A + a`` is the flag for
    threshold ``t`` and area range ``a`` (packed so the host moves one word
    per detection).
  """
  ious = jax.vmap(_coco_iou)(det_boxes, gt_boxes, gt_crowd, det_area,
                            gt_area)  # [P, D, G]
  match = functools.partial(_greedy_match, rule="coco")
  per_threshold = jax.vmap(match, (None, None, None, None, None, 0))
  per_area = jax.vmap(per_threshold, (None, None, None, 1, None, None))
  per_cell = jax.vmap(per_area, (0, 0, 0, 0, 0, None))
  gt_index = per_cell(ious, det_valid, gt_valid, gt_ignore, gt_crowd,
                      thresholds)  # [P, A, T, D]
  gt_index = jnp.transpose(gt_index, (0, 3, 2, 1))  # [P, D, T, A]
  matched = gt_index >= 0
  matched_ignore = _gather_ignore(gt_ignore, gt_index)
  # pycocotools stores the matched gt id; an id of 0 reads as "unmatched".
  matched_zero_id = jax.vmap(lambda v, i: v[i])(
      gt_zero_id, jnp.maximum(gt_index, 0))
  counted = matched & ~matched_zero_id
  ignored = (matched & matched_ignore) | (~counted & det_area_out[:, :, None])
  valid = det_valid[:, :, None, None]
  return (_pack(counted & ~ignored & valid),
          _pack(~counted & ~ignored & valid))


def _pack(flags):
  """``[..., T, A]`` bool -> ``[...]`` int64 with bit ``t * A + a``."""
  flat = flags.reshape(flags.shape[:-2] + (-1,)).astype(jnp.int64)
  return jnp.sum(flat << jnp.arange(flat.shape[-1], dtype=jnp.int64), -1)


def _unpack(bits, num_thresholds, num_areas):
  """Inverse of :func:`_pack`: ``[N]`` int64 -> ``[N, T, A]`` bool."""
  shifts = jnp.arange(num_thresholds * num_areas, dtype=jnp.int64)
  flags = (bits[:, None] >> shifts) & 1
  return flags.reshape(-1, num_thresholds, num_areas).astype(bool)


def _gather_ignore(gt_ignore, gt_index):
  """``gt_ignore[p, gt_index[p, d, t, a], a]`` -> ``[P, D, T, A]``."""
  p, d, t, a = gt_index.shape
  flat = jnp.maximum(gt_index, 0).transpose(0, 3, 1, 2).reshape(p, a, d * t)
  by_area = jnp.transpose(gt_ignore, (0, 2, 1))  # [P, A, G]
  picked = jnp.take_along_axis(by_area, flat, axis=-1)  # [P, A, D*T]
  return picked.reshape(p, a, d, t).transpose(0, 2, 3, 1)


def _segmented_reverse_cummax(values, segment):
  """Max over the rest of each contiguous segment of ``[N, ...]`` values.

  ``values`` must lie in [0, 1]: each segment is lifted by twice the number of
  segments after it, so one global reverse ``cummax`` never reaches across a
  boundary. The lift rounds values to the spacing of ``2 * num_segments``
  (about 3e-14 for 80 categories); an exact segmented scan
  (``lax.associative_scan``) costs seconds of compilation instead.
  """
  lift = 2.0 * (segment[-1] - segment).astype(values.dtype)
  lift = lift.reshape(lift.shape + (1,) * (values.ndim - 1))
  return lax.cummax(values + lift, axis=0, reverse=True) - lift


@functools.partial(jax.jit, static_argnames=("num_thresholds", "max_dets"))
def _accumulate(tp_bits, fp_bits, category, rank, seg_start, need, *,
                num_thresholds, max_dets):
  """``COCOeval.accumulate`` over all detections sorted by category, score.

  Args:
    tp_bits, fp_bits: ``[N]`` packed ``[T, A]`` flags (see :func:`_pack`), in
      (category, -score, image, list position) order; padding at the end
      has category ``K``.
    category: ``[N]`` int32 category index, non-decreasing.
    rank: ``[N]`` int32 rank by score within the detection's cell.
    seg_start: ``[K + 1]`` first index of each category (and of padding).
    need: ``[K, A, R]`` true positives needed to reach each recall threshold
      (``searchsorted(arange(npig + 1) / npig, recThrs)``, float64 exact).
    num_thresholds: T.
    max_dets: the maxDets values.

  Returns:
    ``(precision [T, R, K, A] float64 (maxDets = max(max_dets)),
    tp_count [T, K, A, M] int32)``.
  """
  num_cat, num_areas = need.shape[:2]
  tp = _unpack(tp_bits, num_thresholds, num_areas)
  fp = _unpack(fp_bits, num_thresholds, num_areas)
  # One segment sum for every maxDets and one cumsum for TP and FP: each
  # scan-like op costs compile time.
  in_top = rank[:, None] < jnp.asarray(max_dets)  # [N, M]
  tp_count = jax.ops.segment_sum(
      (tp[..., None] & in_top[:, None, None]).astype(jnp.int32), category,
      num_segments=num_cat + 1)[:num_cat]  # [K, T, A, M]
  cum = jnp.cumsum(jnp.stack([tp, fp]).astype(jnp.int32), axis=1)
  zero = jnp.zeros((2, 1) + tp.shape[1:], jnp.int32)
  before = jnp.concatenate([zero, cum], 1)[:, seg_start]  # [2, K + 1, T, A]
  local = (cum - before[:, category]).astype(jnp.float64)  # in-category
  tp_cum, tp_before = cum[0], before[0]
  tp_local, fp_local = local[0], local[1]
  precision = tp_local / (fp_local + tp_local + np.spacing(1))
  envelope = _segmented_reverse_cummax(precision, category)  # [N, T, A]

  need = jnp.transpose(need, (0, 2, 1))[:, None]  # [K, 1, R, A]
  targets = tp_before[:num_cat, :, None, :] + need  # [K, T, R, A]
  total = tp_count[..., -1][:, :, None, :]  # [K, T, 1, A]

  index = _search(tp_cum, targets)  # [K, T, R, A]
  start = seg_start[:num_cat, None, None, None]
  index = jnp.where(need == 0, start, index)
  nonempty = (seg_start[1:] > seg_start[:-1])[:, None, None, None]
  reachable = nonempty & (need <= total)
  t_idx = jnp.arange(tp.shape[1])[None, :, None, None]
  a_idx = jnp.arange(tp.shape[2])[None, None, None, :]
  q = envelope[jnp.minimum(index, tp.shape[0] - 1), t_idx, a_idx]
  q = jnp.where(reachable, q, 0.0)  # [K, T, R, A]
  return jnp.transpose(q, (1, 2, 0, 3)), jnp.transpose(tp_count, (1, 0, 2, 3))


def _search(tp_cum, targets):
  """First index where ``tp_cum[:, t, a] >= targets[k, t, r, a]``."""
  num_cat, t, r, a = targets.shape
  queries = jnp.transpose(targets, (1, 3, 0, 2)).reshape(t, a, num_cat * r)
  columns = jnp.transpose(tp_cum, (1, 2, 0))  # [T, A, N]
  search = jax.vmap(jax.vmap(
      lambda c, q: jnp.searchsorted(c, q, side="left")))
  index = search(columns, queries).reshape(t, a, num_cat, r)
  return jnp.transpose(index, (2, 0, 3, 1))  # [K, T, R, A]


def _recall_needs(npig: np.ndarray) -> np.ndarray:
  """``[K, A, R]``: searchsorted(tp / npig, recThrs) for tp = 0..npig."""
  need = np.zeros(npig.shape + (len(RECALL_THRESHOLDS),), np.int64)
  for n in np.unique(npig[npig > 0]):
    recall = np.arange(n + 1) / n
    need[npig == n] = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
  return need


def _summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
  """The 12 numbers of ``COCOeval.summarize`` (same selections and means)."""

  def mean(s):
    s = s[s > -1]
    return -1.0 if s.size == 0 else float(np.mean(s))

  t50 = int(np.flatnonzero(IOU_THRESHOLDS == .5)[0])
  t75 = int(np.flatnonzero(IOU_THRESHOLDS == .75)[0])
  stats = [mean(precision[..., 0]),
           mean(precision[t50:t50 + 1, :, :, 0]),
           mean(precision[t75:t75 + 1, :, :, 0])]
  stats += [mean(precision[..., a]) for a in (1, 2, 3)]
  stats += [mean(recall[:, :, 0, m]) for m in range(len(MAX_DETS))]
  stats += [mean(recall[:, :, a, -1]) for a in (1, 2, 3)]
  return np.asarray(stats)


def _outside(area: np.ndarray) -> np.ndarray:
  """``[n, A]``: area outside each range (the bounds belong to the range)."""
  return ((area[:, None] < AREA_RANGES[:, 0]) |
          (area[:, None] > AREA_RANGES[:, 1]))


def _evaluate(gt: Any, dets: Any) -> CocoAccumulation:
  g = _dataset.parse_ground_truth(gt)
  d = _dataset.parse_detections(dets, g)
  num_cat, num_area = len(g.category_ids), len(AREA_RANGES)
  # Detections by cell, then score (stable); keep the top maxDets[-1].
  det_cell = d.image * num_cat + d.category
  order = np.lexsort((-d.scores, det_cell))
  rank = np.arange(order.size) - _dataset.group_starts(det_cell[order])
  order = order[rank < MAX_DETS[-1]]
  rank = rank[rank < MAX_DETS[-1]]
  det_cell = det_cell[order]
  det_boxes = d.boxes[order]
  det_area = det_boxes[:, 2] * det_boxes[:, 3]
  det_area_out = _outside(det_area)  # [N, A]
  # Ground truths by cell, annotation order kept.
  gt_cell = g.image * num_cat + g.category
  gt_order = np.argsort(gt_cell, kind="stable")
  gt_cell = gt_cell[gt_order]
  gt_crowd = g.crowd[gt_order]
  gt_ignore = gt_crowd[:, None] | _outside(g.area[gt_order])  # [M, A]
  gt_boxes = g.boxes[gt_order]
  gt_zero_id = g.ann_id[gt_order] == 0

  num_t = len(IOU_THRESHOLDS)
  thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
  # Packed flags (see _pack). Detections in cells without ground truth are
  # unmatched: false positives, at every threshold, where inside the range.
  tp = np.zeros(order.size, np.int64)
  fp = ((~det_area_out).astype(np.int64) @ (1 << np.arange(num_area)) *
        sum(1 << (t * num_area) for t in range(num_t)))
  _dataset.match_cells(
      _match_cells, det_cell, gt_cell, (det_boxes, det_area, det_area_out),
      (gt_boxes, gt_boxes[:, 2] * gt_boxes[:, 3], gt_crowd, gt_ignore,
       gt_zero_id), (thresholds,), (tp, fp))

  # Accumulation order: category, -score, image, list position (stable).
  category = d.category[order]
  acc = np.lexsort((order, d.image[order], -d.scores[order], category))
  size = _dataset.padded_length(order.size, 256)
  pad = size - order.size
  seg_start = np.searchsorted(category[acc], np.arange(num_cat + 1))
  npig = np.zeros((num_cat, num_area), np.int64)  # non-ignored gts
  np.add.at(npig, g.category[gt_order], ~gt_ignore)
  precision, tp_count = _accumulate(
      np.pad(tp[acc], (0, pad)), np.pad(fp[acc], (0, pad)),
      np.pad(category[acc], (0, pad), constant_values=num_cat).astype(
          np.int32),
      np.pad(rank[acc], (0, pad)).astype(np.int32),
      seg_start.astype(np.int32), _recall_needs(npig).astype(np.int32),
      num_thresholds=num_t, max_dets=MAX_DETS)
  precision = np.array(precision)
  no_gt = npig == 0  # [K, A]
  precision[:, :, no_gt] = -1
  with np.errstate(divide="ignore", invalid="ignore"):
    recall = np.asarray(tp_count, np.float64) / npig[None, :, :, None]
  recall[:, no_gt] = -1
  return CocoAccumulation(precision, recall, _summarize(precision, recall),
                          g.category_ids)


def coco_accumulate(gt: Any, dets: Any) -> CocoAccumulation:
  """Precision / recall arrays and stats of COCO bbox evaluation.

  The arrays of ``COCOeval.eval`` after ``accumulate()`` (precision for
  maxDets=100 only) and the ``stats`` of ``summarize()``; see
  :func:`coco_evaluate` for the inputs and semantics.

  Args:
    gt: a COCO-format dict with ``images``, ``categories``, ``annotations``.
    dets: a COCO results list.

  Returns:
    :class:`CocoAccumulation`.
  """
  with jax.enable_x64(True):
    return _evaluate(gt, dets)


def coco_evaluate(gt: Any, dets: Any) -> np.ndarray:
  """COCO bbox AP / AR: the 12 numbers of ``COCOeval(..., "bbox").stats``.

  Semantics are pycocotools' (where pycocotools silently drops annotations
  of unknown images or accepts NaN scores, this raises; annotations and
  results of a category not in ``gt['categories']`` are left out, as
  there): IoU thresholds .50:.05:.95, 101 recall points, area ranges
  all / small / medium / large from the ground truth's ``area``
  field (bounds inclusive at 32**2 and 96**2), maxDets 1 / 10 / 100, crowd
  ground truths ignored (IoU over the detection's area, matched many times),
  detections sorted by score with a stable sort and cut to 100 per image and
  category, categories without ground truth left out of the means (-1 when
  nothing is left). The matching and accumulation run jitted over padded
  arrays in float64 (``jax.enable_x64`` inside the call only); the stats
  equal pycocotools' to about ``2 K 2**-52`` for ``K`` categories (the
  precision envelope runs over all at once: ~3e-14 for COCO's 80, ~2.5e-13
  for LVIS's 1,203; measured: 1e-16 on 500k detections, 80 categories).
  Compilation happens once per padded bucket shape (first call: seconds).

  Args:
    gt: a COCO-format dict: ``images`` (``id``), ``categories`` (``id``) and
      ``annotations`` (``id``, ``image_id``, ``category_id``, ``bbox``
      ``[x, y, w, h]``, ``area``, ``iscrowd``).
    dets: a COCO results list of dicts with ``image_id``, ``category_id``,
      ``bbox`` and ``score`` (may be empty: every AP and AR is then 0,
      except -1 for an area range without ground truth; pycocotools'
      ``loadRes`` raises IndexError on an empty list).

  Returns:
    ``[12]`` float64: AP, AP50, AP75, AP small / medium / large, AR1, AR10,
    AR100, AR small / medium / large.

  Raises:
    ValueError: naming the entry with a missing field, an unknown image
      id, a duplicate or non-integer id, a NaN score or area, an
      ``iscrowd`` other than 0 or 1, or a box that is not finite or has a
      negative width or height.

  References:
    ``pycocotools.cocoeval.COCOeval`` (evaluate, accumulate, summarize).

  >>> gt = {"images": [{"id": 1}], "categories": [{"id": 1}],
  ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
  ...                        "bbox": [0, 0, 10, 10], "area": 100,
  ...                        "iscrowd": 0}]}
  >>> dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10],
  ...          "score": 0.9}]
  >>> coco_evaluate(gt, dets)[:3]
  array([1., 1., 1.])
  """
  return coco_accumulate(gt, dets).stats
