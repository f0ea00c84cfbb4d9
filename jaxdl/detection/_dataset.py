"""Host side: validated NumPy arrays from COCO dicts, and padded cell layouts.

A *cell* is one (image, category) pair: detections are matched only to the
ground truths of their own cell. Cells that hold both are packed into padded
``[P, D, G]`` buckets whose sizes come from a short ladder, so the jitted
matching compiles once per bucket shape and wastes at most a constant factor
on padding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

_GT_FIELDS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")
_DET_FIELDS = ("image_id", "category_id", "bbox", "score")
# Largest number of cells in one bucket call; bigger buckets are chunked.
_MAX_CELLS = 1 << 14
# A bucket's cell count is padded up to at least 64, a power of 4, or fewer
# when its cells are big: at most about this many (detection, ground truth)
# pairs come from that floor. A crowded image (1,100 ground truths, 100
# detections) padded to 64 cells took 15 s and 1.4 GB where pycocotools
# takes 2.4 s.
_MIN_CELLS, _FLOOR_PAIRS = 64, 1 << 20


class GroundTruth(NamedTuple):
  """Ground truth as arrays; ``[M]`` fields in annotation order."""
  image_ids: np.ndarray      # [I] sorted unique image ids
  category_ids: np.ndarray   # [K] sorted unique category ids
  image: np.ndarray          # [M] index into image_ids
  category: np.ndarray       # [M] index into category_ids
  boxes: np.ndarray          # [M, 4] float64 xywh
  area: np.ndarray           # [M] float64, the annotation's `area` field
  crowd: np.ndarray          # [M] bool
  ann_id: np.ndarray         # [M] int64


class Detections(NamedTuple):
  """Results as arrays; ``[N]`` fields in list order."""
  image: np.ndarray          # [N] index into GroundTruth.image_ids
  category: np.ndarray       # [N] index into GroundTruth.category_ids
  boxes: np.ndarray          # [N, 4] float64 xywh
  scores: np.ndarray         # [N] float64


def _column(entries: Sequence[dict], field: str, where: str) -> list:
  """``[e[field] for e in entries]`` with a ValueError naming a bad entry."""
  try:
    return [entry[field] for entry in entries]
  except (KeyError, TypeError):
    for index, entry in enumerate(entries):
      if not isinstance(entry, dict):
        raise ValueError(f"{where}[{index}] must be a dict, got "
                         f"{type(entry).__name__}.") from None
      if field not in entry:
        raise ValueError(
            f"{where}[{index}] has no {field!r} field: {entry!r}.") from None
    raise


def _ids(values: list, where: str, field: str) -> np.ndarray:
  ids = _scalars(values, where, field, kinds="iu", what="integers")
  return ids.astype(np.int64)


def _scalars(values: list, where: str, field: str, *, kinds: str,
             what: str) -> np.ndarray:
  """``[N]`` array of one scalar per entry, of a NumPy kind in ``kinds``:
  no strings (NumPy would parse them), lists or None."""
  try:
    array = np.asarray(values)
  except ValueError:  # ragged
    array = np.asarray(values, object)
  if len(values) and (array.dtype.kind not in kinds
                      or array.shape != (len(values),)):
    bad = next((i for i, v in enumerate(values)
                if np.ndim(v) or np.asarray(v).dtype.kind not in kinds), 0)
    raise ValueError(f"{where} {field} values must be {what}, got "
                     f"{values[bad]!r} at [{bad}].")
  return array.reshape(len(values))


def _unique_ids(entries: Sequence[dict], where: str) -> np.ndarray:
  ids = _ids(_column(entries, "id", where), where, "'id'")
  unique, counts = np.unique(ids, return_counts=True)
  if np.any(counts > 1):
    raise ValueError(f"{where} has duplicate id {unique[counts > 1][0]}.")
  return unique


def _lookup(ids: np.ndarray, known: np.ndarray, where: str,
            field: str) -> np.ndarray:
  """Index of each id in the sorted ``known``; ValueError for an unknown."""
  index, found = _find(ids, known)
  if not np.all(found):
    bad = int(np.argmin(found))
    raise ValueError(f"{where}[{bad}] has unknown {field} {ids[bad]}.")
  return index


def _find(ids: np.ndarray,
          known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Index of each id in the sorted ``known``, and whether it is there."""
  index = np.searchsorted(known, ids)
  found = np.take(known, np.minimum(index, len(known) - 1)) == ids if len(
      known) else np.zeros(len(ids), bool)
  return index, found


def _boxes(values: list, where: str) -> np.ndarray:
  try:
    boxes = np.asarray(values)
  except (ValueError, TypeError):
    boxes = None
  if boxes is not None:
    boxes = boxes.astype(np.float64) if boxes.dtype.kind in "biuf" else None
  if not values:
    boxes = np.zeros((0, 4))
  if boxes is None or boxes.shape != (len(values), 4):
    for index, box in enumerate(values):
      try:
        shape = np.shape(box)
      except ValueError:  # ragged, such as [0, 0, [1], 1]
        shape = None
      if shape != (4,):
        raise ValueError(f"{where}[{index}] bbox must be [x, y, w, h], got "
                         f"{box!r}.")
    raise ValueError(f"{where} bbox values must be numbers.")
  bad = ~np.all(np.isfinite(boxes), axis=1) | np.any(boxes[:, 2:] < 0, axis=1)
  if np.any(bad):
    index = int(np.argmax(bad))
    raise ValueError(f"{where}[{index}] bbox must be finite with width and "
                     f"height >= 0, got {values[index]!r}.")
  return boxes


def _numbers(values: list, where: str, field: str) -> np.ndarray:
  array = _scalars(values, where, field, kinds="biuf",
                   what="numbers").astype(np.float64)
  if np.any(np.isnan(array)):
    index = int(np.argmax(np.isnan(array)))
    raise ValueError(f"{where}[{index}] has a NaN {field}.")
  return array


def parse_ground_truth(gt: Any) -> GroundTruth:
  """Validates a COCO-format dict and converts it to arrays.

  Annotations of a category that is not in ``gt['categories']`` are left
  out (after validation), as ``COCOeval`` leaves them out.
  """
  if not isinstance(gt, dict):
    raise ValueError(f"gt must be a COCO-format dict, got {type(gt).__name__}.")
  for key in ("images", "categories", "annotations"):
    if key not in gt:
      raise ValueError(f"gt has no {key!r} list.")
    if not isinstance(gt[key], (list, tuple)):
      raise ValueError(f"gt[{key!r}] must be a list, got "
                       f"{type(gt[key]).__name__}.")
  image_ids = _unique_ids(gt["images"], "gt['images']")
  category_ids = _unique_ids(gt["categories"], "gt['categories']")
  anns = gt["annotations"]
  where = "gt['annotations']"
  columns = {f: _column(anns, f, where) for f in _GT_FIELDS}
  ann_id = _ids(columns["id"], where, "'id'")
  unique, counts = np.unique(ann_id, return_counts=True)
  if np.any(counts > 1):
    raise ValueError(f"{where} has duplicate id {unique[counts > 1][0]}.")
  image = _lookup(_ids(columns["image_id"], where, "'image_id'"), image_ids,
                  where, "image_id")
  # COCOeval evaluates gt['categories'] only: others are left out.
  category, known = _find(_ids(columns["category_id"], where,
                               "'category_id'"), category_ids)
  area = _numbers(columns["area"], where, "area")
  crowd = _numbers(columns["iscrowd"], where, "iscrowd")
  if not np.all((crowd == 0) | (crowd == 1)):
    index = int(np.argmax((crowd != 0) & (crowd != 1)))
    raise ValueError(f"{where}[{index}] iscrowd must be 0 or 1, got "
                     f"{columns['iscrowd'][index]!r}.")
  crowd = crowd == 1
  boxes = _boxes(columns["bbox"], where)
  return GroundTruth(image_ids, category_ids, image[known], category[known],
                     boxes[known], area[known], crowd[known], ann_id[known])


def parse_detections(dets: Any, gt: GroundTruth) -> Detections:
  """Validates a COCO results list against ``gt`` and converts it.

  Results of a category that is not in ``gt`` are left out (after
  validation), as ``COCOeval`` leaves them out.
  """
  if not isinstance(dets, (list, tuple)):
    raise ValueError(
        f"dets must be a list of COCO results, got {type(dets).__name__}.")
  where = "dets"
  columns = {f: _column(dets, f, where) for f in _DET_FIELDS}
  image = _lookup(_ids(columns["image_id"], where, "'image_id'"),
                  gt.image_ids, where, "image_id")
  category, known = _find(_ids(columns["category_id"], where,
                               "'category_id'"), gt.category_ids)
  boxes = _boxes(columns["bbox"], where)
  scores = _numbers(columns["score"], where, "score")
  return Detections(image[known], category[known], boxes[known],
                    scores[known])


def group_starts(keys: np.ndarray) -> np.ndarray:
  """``[N]`` index of the first entry of each entry's run of equal keys."""
  if keys.size == 0:
    return np.zeros(0, np.int64)
  new = np.concatenate([[True], keys[1:] != keys[:-1]])
  return np.maximum.accumulate(np.where(new, np.arange(keys.size), 0))


def bucket_size(n: int | np.ndarray, minimum: int) -> np.ndarray:
  """The smallest ``minimum * 4**k >= n`` (the padded size of a bucket)."""
  n = np.maximum(np.asarray(n), 1)
  power = np.ceil(np.log(n / minimum) / np.log(4) - 1e-9)
  return (minimum * 4 ** np.maximum(power, 0)).astype(np.int64)


def padded_length(n: int, minimum: int) -> int:
  """The next power of two ``>= n``, at least ``minimum`` (a power of two)."""
  return 1 << max(int(n) - 1, minimum - 1).bit_length()


class Bucket(NamedTuple):
  """Padded cells of one size: indices into the sorted det / gt arrays."""
  det_index: np.ndarray      # [P, D] int64, -1 for padding
  gt_index: np.ndarray       # [P, G] int64, -1 for padding


def buckets(det_cell: np.ndarray, gt_cell: np.ndarray) -> Iterator[Bucket]:
  """Packs the cells holding both detections and ground truths.

  Args:
    det_cell: ``[N]`` cell of each detection, sorted ascending (detections in
      processing order within a cell).
    gt_cell: ``[M]`` cell of each ground truth, sorted ascending.

  Yields:
    :class:`Bucket` per (detections, ground truths, cells) padded size.
  """
  cells, det_start, det_count = np.unique(det_cell, return_index=True,
                                          return_counts=True)
  gt_cells, gt_start, gt_count = np.unique(gt_cell, return_index=True,
                                           return_counts=True)
  _, di, gi = np.intersect1d(cells, gt_cells, assume_unique=True,
                             return_indices=True)
  det_start, det_count = det_start[di], det_count[di]
  gt_start, gt_count = gt_start[gi], gt_count[gi]
  det_pad = bucket_size(det_count, 4)
  gt_pad = bucket_size(gt_count, 4)
  shapes = np.unique(np.stack([det_pad, gt_pad], -1), axis=0)
  for d_size, g_size in shapes:
    chosen = np.flatnonzero((det_pad == d_size) & (gt_pad == g_size))
    for chunk in np.array_split(chosen, -(-chosen.size // _MAX_CELLS)):
      floor = max(1, min(_MIN_CELLS, _FLOOR_PAIRS // (d_size * g_size)))
      p_size = int(min(bucket_size(chunk.size, floor), _MAX_CELLS))
      yield Bucket(
          _padded_ranges(det_start[chunk], det_count[chunk], d_size, p_size),
          _padded_ranges(gt_start[chunk], gt_count[chunk], g_size, p_size))


def _padded_ranges(start: np.ndarray, count: np.ndarray, size: int,
                   rows: int) -> np.ndarray:
  """``[rows, size]``: row i is ``start[i] + arange(count[i])``, then -1."""
  offsets = np.arange(size)
  index = np.where(offsets < count[:, None], start[:, None] + offsets, -1)
  return np.pad(index, ((0, rows - len(start)), (0, 0)), constant_values=-1)


def gather(values: np.ndarray, index: np.ndarray, fill=0) -> np.ndarray:
  """``values[index]`` with ``fill`` where ``index == -1``."""
  out = np.take(values, np.maximum(index, 0), axis=0)
  mask = (index >= 0).reshape(index.shape + (1,) * (values.ndim - 1))
  return np.where(mask, out, fill)


def match_cells(kernel, det_cell: np.ndarray, gt_cell: np.ndarray,
                det_arrays: tuple, gt_arrays: tuple, extra: tuple,
                outputs: tuple) -> None:
  """Runs ``kernel`` on every bucket of cells and scatters its results.

  Args:
    kernel: jitted ``kernel(det_valid [P, D], gt_valid [P, G], *dets, *gts,
      *extra)`` returning a tuple of ``[P, D, ...]`` arrays, where ``dets``
      are ``det_arrays`` gathered to ``[P, D, ...]`` (padding 0 / False) and
      ``gts`` likewise ``[P, G, ...]``.
    det_cell, gt_cell: as in :func:`buckets`.
    det_arrays: ``[N, ...]`` arrays in ``det_cell`` order.
    gt_arrays: ``[M, ...]`` arrays in ``gt_cell`` order.
    extra: further kernel arguments (thresholds, ...).
    outputs: ``[N, ...]`` NumPy arrays, one per kernel result, filled in
      place for the detections of the cells that have ground truth.
  """
  pending = []
  for bucket in buckets(det_cell, gt_cell):
    di, gi = bucket.det_index, bucket.gt_index
    dets = [gather(a, di, np.zeros((), a.dtype)) for a in det_arrays]
    gts = [gather(a, gi, np.zeros((), a.dtype)) for a in gt_arrays]
    # Dispatch every bucket before reading any result back.
    pending.append((di, kernel(di >= 0, gi >= 0, *dets, *gts, *extra)))
  for di, results in pending:
    real = di >= 0
    for out, result in zip(outputs, results):
      out[di[real]] = np.asarray(result)[real]
