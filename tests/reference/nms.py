"""Float64 NumPy oracles for jaxdl.nms, and the box generators of its tests.

``greedy_nms`` is the notes' NMS loop ("NMS" in the second notes file, steps
1-7) with the corrections jaxdl's contract asks for: continuous areas (no
"+1"), a stable descending sort (ties by lower index; ``argsort()[::-1]``
puts the higher index first), candidates need ``score > score_threshold``,
masked boxes are dropped before the loop, and an IoU of 0/0 (two empty boxes)
never suppresses. ``batched_nms`` runs it per class and merges by score;
``soft_nms`` is the Soft-NMS paper's ``cpu_soft_nms`` loop.

``notes_nms`` and ``notes_nms_first`` are the notes' two snippets, kept as
written: the second is the benchmark's NumPy baseline; the first takes
``xxr``/``yyr`` from ``xl`` (the known error) and is a regression case.
``uniform_boxes`` and ``clustered_boxes`` (both behind ``generated_boxes``)
generate the inputs shared by the tests, the benchmark and the notebook.
"""

from __future__ import annotations

import numpy as np

# The notes' example: [x1, y1, x2, y2, score]; the notes keep rows 1 and 3.
NOTES_DETS = np.array([
    [11.5, 12, 311.4, 410.6, 0.85],
    [0.5, 1, 300.4, 400.5, 0.97],
    [200.5, 300, 700.4, 1000.6, 0.65],
    [250.5, 310, 700.4, 1000.6, 0.72],
])
NOTES_KEEP = [1, 3]


def _iou_one_to_many(box: np.ndarray, others: np.ndarray) -> np.ndarray:
  """IoU of one xyxy box with ``[M, 4]`` boxes; 0/0 gives NaN."""
  area = lambda b: (np.maximum(b[..., 2] - b[..., 0], 0) *
                    np.maximum(b[..., 3] - b[..., 1], 0))
  iw = np.maximum(np.minimum(box[2], others[:, 2]) -
                  np.maximum(box[0], others[:, 0]), 0)
  ih = np.maximum(np.minimum(box[3], others[:, 3]) -
                  np.maximum(box[1], others[:, 1]), 0)
  inter = iw * ih
  with np.errstate(invalid="ignore", divide="ignore"):
    return inter / (area(box) + area(others) - inter)


def _ranked_candidates(scores, score_threshold, mask, above):
  scores = np.asarray(scores, np.float64)
  ok = ~np.isnan(scores)
  if mask is not None:
    ok &= np.asarray(mask, bool)
  if score_threshold is not None:
    ok &= (scores > score_threshold) if above else (scores >= score_threshold)
  idx = np.flatnonzero(ok)
  return idx[np.argsort(-scores[idx], kind="stable")]


def greedy_nms(boxes, scores, iou_threshold, *, score_threshold=None,
               mask=None) -> list[int]:
  """Kept indices, by descending score; the notes' loop, corrected."""
  boxes = np.asarray(boxes, np.float64)
  order = _ranked_candidates(scores, score_threshold, mask, above=True)
  keep = []
  while order.size > 0:
    i = order[0]
    keep.append(int(i))
    overlap = _iou_one_to_many(boxes[i], boxes[order[1:]])
    order = order[1:][~(overlap > iou_threshold)]
  return keep


def batched_nms(boxes, scores, classes, iou_threshold, *,
                score_threshold=None, mask=None) -> list[int]:
  """``greedy_nms`` within each class, merged by descending score."""
  scores = np.asarray(scores, np.float64)
  classes = np.asarray(classes)
  keep = []
  for c in np.unique(classes):
    in_class = (classes == c) if mask is None else (classes == c) & mask
    keep += greedy_nms(boxes, scores, iou_threshold,
                       score_threshold=score_threshold, mask=in_class)
  keep = np.array(sorted(keep), dtype=int)
  return [int(i) for i in keep[np.argsort(-scores[keep], kind="stable")]]


def soft_nms(boxes, scores, *, method="gaussian", sigma=0.5,
             iou_threshold=0.3, score_threshold=1e-3, mask=None):
  """Soft-NMS (Bodla et al. 2017): returns (indices, scores at selection)."""
  boxes = np.asarray(boxes, np.float64)
  current = np.asarray(scores, np.float64).copy()
  remaining = list(_ranked_candidates(current, score_threshold, mask,
                                      above=False))
  picked, picked_scores = [], []
  while remaining:
    best = max(remaining, key=lambda i: (current[i], -i))
    picked.append(int(best))
    picked_scores.append(current[best])
    remaining.remove(best)
    if not remaining:
      break
    rest = np.array(remaining)
    overlap = np.nan_to_num(_iou_one_to_many(boxes[best], boxes[rest]))
    if method == "linear":
      weight = np.where(overlap > iou_threshold, 1 - overlap, 1.0)
    else:
      weight = np.exp(-(overlap * overlap) / sigma)
    # A weight of 0 takes any score to 0, an infinite one too (inf * 0
    # would be NaN).
    with np.errstate(invalid="ignore"):
      current[rest] = np.where(weight == 0, 0.0, current[rest] * weight)
    remaining = [i for i in remaining if current[i] >= score_threshold]
  return picked, np.array(picked_scores)


def notes_nms(dets, thresh):
  """The second notes file's ``nms``, as written ("+1" pixel areas)."""
  x1, y1 = dets[:, 0], dets[:, 1]
  x2, y2 = dets[:, 2], dets[:, 3]
  scores = dets[:, 4]
  areas = (x2 - x1 + 1) * (y2 - y1 + 1)
  order = np.argsort(scores)[::-1]
  keep = []
  while order.size > 0:
    i = order[0]
    keep.append(i)
    xmin = np.maximum(x1[i], x1[order[1:]])
    ymin = np.maximum(y1[i], y1[order[1:]])
    xmax = np.minimum(x2[i], x2[order[1:]])
    ymax = np.minimum(y2[i], y2[order[1:]])
    w = np.maximum(0, xmax - xmin + 1)
    h = np.maximum(0, ymax - ymin + 1)
    inter = w * h
    ovr = inter / (areas[i] + areas[order[1:]] - inter)
    inds = np.where(ovr <= thresh)[0]
    order = order[inds + 1]
  return keep


def notes_nms_first(dets, thr=0.5):
  """The first notes file's ``nms``, as written: ``xxr``/``yyr`` use ``xl``."""
  xl, yl, xr, yr = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3]
  score = dets[:, 4]
  order = score.argsort()[::-1]
  area = (xr - xl + 1) * (yr - yl + 1)
  keep = []
  while order.size > 0:
    i = order[0]
    keep.append(i)
    xxl = np.maximum(xl[i], xl[order[1:]])
    yyl = np.maximum(yl[i], yl[order[1:]])
    xxr = np.minimum(xl[i], xl[order[1:]])
    yyr = np.minimum(xl[i], xl[order[1:]])
    inter = np.maximum(0.0, xxr - xxl + 1) * np.maximum(0.0, yyr - yyl + 1)
    union = area[i] + area[order[1:]] - inter
    iou = inter / union
    idx_list = np.where(iou <= thr)[0]
    order = order[idx_list + 1]
  return keep


def uniform_boxes(rng: np.random.Generator, n: int, *, image_size=1000.0,
                  min_size=10.0, max_size=100.0):
  """``n`` boxes with uniform corners and sides, uniform scores; float32.

  Returns ``(boxes [n, 4] xyxy, scores [n])``.
  """
  top_left = rng.uniform(0, image_size, (n, 2))
  sides = rng.uniform(min_size, max_size, (n, 2))
  boxes = np.concatenate([top_left, top_left + sides], -1)
  return boxes.astype(np.float32), rng.uniform(size=n).astype(np.float32)


def clustered_boxes(rng: np.random.Generator, n: int, *, num_objects=20,
                    image_size=1000.0, jitter=0.15):
  """Detector-like candidates: ``n`` jittered copies of ``num_objects`` boxes.

  Each candidate is an object box whose corners move by ``jitter`` times the
  object's size (normal noise); its score is the object's confidence times a
  factor that falls with the jitter, plus a little noise. Returns float32
  ``(boxes [n, 4] xyxy, scores [n], objects [n] int)``, the object of each
  candidate doubling as a class label.
  """
  size = rng.uniform(0.05, 0.3, (num_objects, 2)) * image_size
  top_left = rng.uniform(0, image_size - size)
  objects = np.concatenate([top_left, top_left + size], -1)
  confidence = rng.uniform(0.5, 1.0, num_objects)
  owner = rng.integers(0, num_objects, n)
  noise = rng.normal(0, jitter, (n, 4))
  boxes = objects[owner] + noise * np.tile(size[owner], 2)
  boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1.0)
  scores = (confidence[owner] * np.exp(-np.abs(noise).mean(-1) / jitter) +
            rng.uniform(0, 0.05, n))
  return (boxes.astype(np.float32), scores.astype(np.float32), owner)


def generated_boxes(kind: str, rng: np.random.Generator, n: int):
  """``(boxes [n, 4], scores [n])`` from ``uniform_boxes`` (``kind=
  "uniform"``) or ``clustered_boxes`` (``"clustered"``), defaults for both."""
  if kind == "uniform":
    return uniform_boxes(rng, n)
  boxes, scores, _ = clustered_boxes(rng, n)
  return boxes, scores
