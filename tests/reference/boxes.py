"""Float64 NumPy oracles for jaxdl.boxes: the notes' IoU formulas, corrected.

``bbox_iou`` follows the YOLOv5 ``bbox_iou`` of the notes ("GIoU & DIoU &
CIoU"), with three corrections: widths and heights are clamped at zero (an
inverted box has zero area, as has the enclosing box of two boxes inverted
along the same axis, and the distance penalty is at most 1, which only an
inverted box's centre could exceed), ``eps`` sits where torchvision puts it
(union, enclosing area, diagonal, CIoU alpha) rather than inside ``h``, and
the aspect angle is ``atan2(w, h)`` so zero-height boxes are defined.

``notes_*`` functions are the original snippets, kept verbatim in logic, to
show the errors as regression cases.
"""

from __future__ import annotations

import math

import numpy as np


def to_xyxy(boxes: np.ndarray, fmt: str) -> np.ndarray:
  """Converts to corners; float inputs keep their dtype, others -> float64."""
  boxes = np.asarray(boxes)
  if not np.issubdtype(boxes.dtype, np.floating):
    boxes = boxes.astype(np.float64)
  a, b, c, d = np.moveaxis(boxes, -1, 0)
  if fmt == "xyxy":
    return boxes
  if fmt == "xywh":
    return np.stack([a, b, a + c, b + d], -1)
  if fmt == "cxcywh":
    return np.stack([a - c / 2, b - d / 2, a + c / 2, b + d / 2], -1)
  raise ValueError(fmt)


def bbox_iou(box1: np.ndarray, box2: np.ndarray, *, variant: str = "iou",
             fmt: str = "xyxy", eps: float = 1e-7,
             pixel_offset: float = 0.0) -> np.ndarray:
  """Elementwise IoU family of broadcastable ``[..., 4]`` boxes.

  Computes in the inputs' float dtype: pass float64 for the oracle, float32
  for the NumPy baseline of the benchmark.
  """
  b1 = np.moveaxis(to_xyxy(box1, fmt), -1, 0)
  b2 = np.moveaxis(to_xyxy(box2, fmt), -1, 0)
  b1_x1, b1_y1, b1_x2, b1_y2 = b1
  b2_x1, b2_y1, b2_x2, b2_y2 = b2
  po = pixel_offset

  inter = (np.clip(np.minimum(b1_x2, b2_x2) - np.maximum(b1_x1, b2_x1) + po,
                   0, None) *
           np.clip(np.minimum(b1_y2, b2_y2) - np.maximum(b1_y1, b2_y1) + po,
                   0, None))
  w1 = np.clip(b1_x2 - b1_x1 + po, 0, None)
  h1 = np.clip(b1_y2 - b1_y1 + po, 0, None)
  w2 = np.clip(b2_x2 - b2_x1 + po, 0, None)
  h2 = np.clip(b2_y2 - b2_y1 + po, 0, None)
  union = w1 * h1 + w2 * h2 - inter
  iou = inter / (union + eps)
  if variant == "iou":
    return iou
  cw = np.maximum(b1_x2, b2_x2) - np.minimum(b1_x1, b2_x1) + po
  ch = np.maximum(b1_y2, b2_y2) - np.minimum(b1_y1, b2_y1) + po
  if variant == "giou":
    c_area = np.clip(cw, 0, None) * np.clip(ch, 0, None)
    return iou - (c_area - union) / (c_area + eps)
  c2 = cw ** 2 + ch ** 2 + eps
  rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 +
          (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
  distance = np.minimum(rho2 / c2, 1.0)  # <= 1 unless a box is inverted.
  if variant == "diou":
    return iou - distance
  if variant == "ciou":
    v = (4 / math.pi ** 2) * (np.arctan2(w2, h2) - np.arctan2(w1, h1)) ** 2
    alpha = v / (v - iou + (1 + eps))
    return iou - (distance + v * alpha)
  raise ValueError(variant)


def pairwise(a: np.ndarray, b: np.ndarray, **kwargs) -> np.ndarray:
  """``[N, 4] x [M, 4] -> [N, M]`` by broadcasting ``bbox_iou``."""
  return bbox_iou(np.asarray(a)[:, None, :], np.asarray(b)[None, :, :],
                  **kwargs)


def notes_iou_xyxy(box1, box2) -> float:
  """The notes' scalar xyxy IoU (002, "1.3 NMS相关"): inclusive "+1" pixels."""
  xx1 = max(box1[0], box2[0])
  yy1 = max(box1[1], box2[1])
  xx2 = min(box1[2], box2[2])
  yy2 = min(box1[3], box2[3])
  area1 = (box1[2] - box1[0] + 1) * (box1[3] - box1[1] + 1)
  area2 = (box2[2] - box2[0] + 1) * (box2[3] - box2[1] + 1)
  inter = max(xx2 - xx1 + 1, 0.0) * max(yy2 - yy1 + 1, 0.0)
  return inter / (area1 + area2 - inter)


def notes_iou_xywh(x1, y1, w1, h1, x2, y2, w2, h2) -> float:
  """The notes' centre-format IoU with its bug kept: ``down`` uses ``+ h2/2``.

  (The ``lefy`` / ``intersetion`` typos are fixed so that it runs.)
  """
  up = min(y1 + h1 / 2, y2 + h2 / 2)
  down = max(y1 - h1 / 2, y2 + h2 / 2)  # Bug: should be y2 - h2 / 2.
  right = min(x1 + w1 / 2, x2 + w2 / 2)
  left = max(x1 - w1 / 2, x2 - w2 / 2)
  if up > down and right > left:
    inter = (up - down) * (right - left)
    union = w1 * h1 + w2 * h2 - inter
    return inter / union
  return 0.0


def notes_get_max_iou(pred_bboxes: np.ndarray, gt_bbox: np.ndarray):
  """The notes' vectorised ``get_max_IoU`` (003, "IoU"), "+1" pixels."""
  xmin = np.maximum(pred_bboxes[:, 0], gt_bbox[0])
  ymin = np.maximum(pred_bboxes[:, 1], gt_bbox[1])
  xmax = np.minimum(pred_bboxes[:, 2], gt_bbox[2])
  ymax = np.minimum(pred_bboxes[:, 3], gt_bbox[3])
  w = np.maximum(xmax - xmin + 1, 0)
  h = np.maximum(ymax - ymin + 1, 0)
  inters = w * h
  unions = ((gt_bbox[2] - gt_bbox[0] + 1) * (gt_bbox[3] - gt_bbox[1] + 1) +
            (pred_bboxes[:, 2] - pred_bboxes[:, 0] + 1) *
            (pred_bboxes[:, 3] - pred_bboxes[:, 1] + 1) - inters)
  overlaps = inters / unions
  return overlaps, np.max(overlaps), np.argmax(overlaps)


# The notes' own example ("IoU" in 003).
NOTES_GT_BBOX = np.array([70, 80, 120, 150], np.float64)
NOTES_PRED_BBOXES = np.array([[15, 18, 47, 60],
                              [50, 50, 90, 100],
                              [70, 80, 120, 145],
                              [130, 160, 250, 280],
                              [25.6, 66.1, 113.3, 147.8]], np.float64)


def random_boxes(rng: np.random.Generator, n: int, *, scale: float = 100.0,
                 dtype=np.float32) -> np.ndarray:
  """``[n, 4]`` valid xyxy boxes with corners in ``[0, scale]`` (roughly)."""
  xy = rng.uniform(0, scale, size=(n, 2))
  wh = rng.uniform(0.5, scale / 2, size=(n, 2))
  return np.concatenate([xy, xy + wh], -1).astype(dtype)


def adversarial_boxes() -> np.ndarray:
  """``[K, 4]`` xyxy boxes that stress edge cases: zero size, inverted,
  touching edges, nested, concentric, far apart, huge and tiny."""
  return np.array([
      [0, 0, 0, 0],          # point at the origin
      [0, 0, 10, 0],         # zero height
      [5, 5, 5, 15],         # zero width
      [10, 10, 0, 0],        # inverted
      [0, 0, 10, 10],
      [10, 0, 20, 10],       # touches the previous one on an edge
      [2, 2, 8, 8],          # nested in [0, 0, 10, 10], same centre
      [0, 0, 10, 10],        # identical to index 4
      [1e4, 1e4, 1e4 + 1, 1e4 + 1],  # far away
      [-50, -50, 50, 50],    # negative coordinates, huge
      [4.999, 4.999, 5.001, 5.001],  # tiny
      [0, 3, 10, 7],         # wide, same centre as index 4
  ], np.float64)
