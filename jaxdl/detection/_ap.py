"""PASCAL VOC average precision from a precision-recall curve."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxdl.detection._match import _as_mask

# py-faster-rcnn's np.arange(0., 1.1, 0.1): 0.30000000000000004 and all.
_VOC07_RECALLS = np.arange(0.0, 1.1, 0.1)


def _float_dtype(*arrays: jax.Array):
  dtype = jnp.result_type(*arrays)
  return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32


def voc_ap(recall: ArrayLike, precision: ArrayLike, *,
           use_07_metric: bool = False,
           mask: ArrayLike | None = None) -> jax.Array:
  """Average precision of a PR curve, as py-faster-rcnn's ``voc_ap``.

  ``use_07_metric=False`` (VOC2010+): the precision is made monotone (each
  point takes the maximum precision at any higher recall) and the area under
  the step curve is summed over the points where recall changes, with
  sentinels (recall 0, precision 0) in front and (1, 0) behind.
  ``use_07_metric=True`` (VOC2007): the mean over the 11 recalls
  ``0, 0.1, ..., 1`` of the maximum precision at recall ``>=`` that value
  (0 when there is none).

  In float64 (``jax.enable_x64``) the result equals ``voc_ap`` to rounding of
  the final sum; in float32 an 11-point recall exactly on a threshold (e.g.
  ``3 / 10`` against ``0.30000000000000004``) can compare differently.

  Args:
    recall: ``[L]`` recall of the detections sorted by descending score
      (non-decreasing; NaN when there are no positives, as ``voc_eval``).
    precision: ``[L]`` precision at the same points.
    use_07_metric: 11-point VOC2007 AP (static).
    mask: ``[L]`` bool, False for padding; padded points are skipped.

  Returns:
    Scalar AP in the inputs' float dtype (float32 for integers), computed in
    float32 at least.

  References:
    Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge",
    IJCV 2010; py-faster-rcnn ``lib/datasets/voc_eval.py``.

  >>> float(voc_ap(jnp.array([0.5, 0.5, 1.0]), jnp.array([1.0, 0.5, 2 / 3])))
  0.8333333730697632
  """
  recall = jnp.asarray(recall)
  precision = jnp.asarray(precision)
  if recall.ndim != 1:
    raise ValueError(f"recall must have shape [L], got {recall.shape}.")
  if precision.shape != recall.shape:
    raise ValueError(f"precision must have the shape of recall "
                     f"{recall.shape}, got {precision.shape}.")
  out_dtype = _float_dtype(recall, precision)
  # float16 / bfloat16 sums of 11 points lost the third digit (0.992 for 1).
  dtype = jnp.promote_types(out_dtype, jnp.float32)
  recall = recall.astype(dtype)
  precision = precision.astype(dtype)
  size = recall.shape[0]
  valid = _as_mask(mask, size, "mask")

  if use_07_metric:
    thresholds = jnp.asarray(_VOC07_RECALLS, dtype)
    reached = valid & (recall >= thresholds[:, None])  # [11, L]
    best = jnp.max(jnp.where(reached, precision, -jnp.inf), axis=-1,
                   initial=-jnp.inf)
    best = jnp.where(jnp.any(reached, axis=-1), best, 0.0)
    ap = jnp.zeros((), dtype)
    for value in best:  # sequential, as the reference sums
      ap = ap + value / 11.0
    return ap.astype(out_dtype)

  if size == 0:
    return jnp.zeros((), out_dtype)
  # Move padding to the end, where it repeats the last recall with
  # precision 0: zero-width steps that do not lift the envelope.
  order = jnp.argsort(~valid, stable=True)
  recall, precision, valid = recall[order], precision[order], valid[order]
  num_valid = jnp.sum(valid)
  last = jnp.where(num_valid > 0, recall[jnp.maximum(num_valid - 1, 0)], 0.0)
  recall = jnp.where(valid, recall, last)
  precision = jnp.where(valid, precision, 0.0)
  mrec = jnp.concatenate([jnp.zeros(1, dtype), recall, jnp.ones(1, dtype)])
  mpre = jnp.concatenate([jnp.zeros(1, dtype), precision,
                          jnp.zeros(1, dtype)])
  envelope = lax.cummax(mpre, reverse=True)
  step = mrec[1:] - mrec[:-1]
  return jnp.sum(jnp.where(mrec[1:] != mrec[:-1], step * envelope[1:],
                           0.0)).astype(out_dtype)
