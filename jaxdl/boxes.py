"""Box formats, areas and the IoU family (IoU, GIoU, DIoU, CIoU).

All functions are pure, work under ``jax.jit`` and batch with ``jax.vmap``.
Boxes are ``[..., 4]`` arrays in one of three formats:

* ``"xyxy"``: (x1, y1, x2, y2) corners;
* ``"xywh"``: (x1, y1, w, h), the COCO format;
* ``"cxcywh"``: (centre x, centre y, w, h), the YOLO format.

Coordinates are continuous: a box's width is ``x2 - x1``. ``pixel_offset=1.0``
reproduces the inclusive-pixel convention of the PASCAL VOC devkit (width
``x2 - x1 + 1``). A box with ``x2 < x1`` or ``y2 < y1`` has zero area.

Half-precision inputs are computed in float32 and returned in their own dtype.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxdl._checks import as_boxes, compute_dtype, one_of, real_scalar

FORMATS = ("xyxy", "xywh", "cxcywh")
VARIANTS = ("iou", "giou", "diou", "ciou")


def _check_format(fmt: str, name: str = "fmt") -> None:
  one_of(fmt, FORMATS, name)


def _check_real(value, name: str, *, non_negative: bool = False) -> None:
  """Raises ``ValueError`` naming ``name`` unless ``value`` is a real scalar
  (traced too), ``>= 0`` with ``non_negative`` when its value is known."""
  real_scalar(value, name)  # An array broadcast into the result.
  if (non_negative and not isinstance(value, jax.core.Tracer)
      and not value >= 0):  # NaN too.
    raise ValueError(f"{name} must be >= 0, got {value}.")


def _result_dtype(dtype) -> jnp.dtype:
  return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32


def convert(boxes: ArrayLike, src: str, dst: str) -> jax.Array:
  """Converts boxes between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"``.

  Equals ``torchvision.ops.box_convert`` (whose names are "xyxy", "xywh",
  "cxcywh").

  Args:
    boxes: ``[..., 4]`` boxes in format ``src``.
    src: the input format.
    dst: the output format.

  Returns:
    ``[..., 4]`` boxes in format ``dst``, same dtype, except that integer
    boxes converted from or to ``"cxcywh"`` come back float32 (as
    torchvision's, whose halves make them float).

  >>> convert(jnp.array([10., 20., 4., 6.]), "cxcywh", "xyxy")
  Array([ 8., 17., 12., 23.], dtype=float32)
  """
  _check_format(src, "src")
  _check_format(dst, "dst")
  boxes = as_boxes(boxes, "boxes")
  if src == dst:
    return boxes
  if "cxcywh" in (src, dst) and not jnp.issubdtype(boxes.dtype, jnp.floating):
    boxes = boxes.astype(jnp.float32)  # Centres and corners can be halves.
  out_dtype = boxes.dtype
  if jnp.issubdtype(out_dtype, jnp.floating):  # Halves in float32.
    boxes = boxes.astype(compute_dtype(out_dtype))
  a, b, c, d = jnp.moveaxis(boxes, -1, 0)
  if src == "xywh":
    a, b, c, d = a, b, a + c, b + d
  elif src == "cxcywh":
    a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
  # a, b, c, d are now x1, y1, x2, y2.
  if dst == "xywh":
    a, b, c, d = a, b, c - a, d - b
  elif dst == "cxcywh":
    a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
  return jnp.stack([a, b, c, d], axis=-1).astype(out_dtype)


def _given_sides(boxes: jax.Array, fmt: str) -> tuple[jax.Array, jax.Array]:
  """Width and height, each ``[...]``, as given (``"xywh"``,
  ``"cxcywh"``) or as corner differences (``"xyxy"``). Not through corners:
  in float32, x = 1e8 plus w = 1 rounds back to 1e8, a width of 0."""
  if fmt == "xyxy":
    if jnp.issubdtype(boxes.dtype, jnp.unsignedinteger):
      # An inverted box's x2 - x1 wraps around to a large width.
      x1, y1, x2, y2 = jnp.moveaxis(boxes, -1, 0)
      return (jnp.where(x2 >= x1, x2 - x1, 0),
              jnp.where(y2 >= y1, y2 - y1, 0))
    return boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
  return boxes[..., 2], boxes[..., 3]


def _sides(boxes: jax.Array, fmt: str, pixel_offset: float):
  """Corners and non-negative width/height, each ``[...]``."""
  x1, y1, x2, y2 = jnp.moveaxis(convert(boxes, fmt, "xyxy"), -1, 0)
  w = jnp.maximum(x2 - x1 + pixel_offset, 0.0)
  h = jnp.maximum(y2 - y1 + pixel_offset, 0.0)
  return x1, y1, x2, y2, w, h


def area(boxes: ArrayLike, *, fmt: str = "xyxy",
         pixel_offset: float = 0.0) -> jax.Array:
  """Box areas, ``max(w, 0) * max(h, 0)``.

  Args:
    boxes: ``[..., 4]`` boxes.
    fmt: box format.
    pixel_offset: added to widths and heights (1.0 for the VOC convention).

  Returns:
    ``[...]`` areas in the input dtype (float32 for integer input).
  """
  _check_format(fmt)
  _check_real(pixel_offset, "pixel_offset")
  boxes = as_boxes(boxes, "boxes")
  out_dtype = _result_dtype(boxes.dtype)
  w, h = _given_sides(boxes.astype(compute_dtype(boxes.dtype)), fmt)
  w = jnp.maximum(w + pixel_offset, 0.0)
  h = jnp.maximum(h + pixel_offset, 0.0)
  return (w * h).astype(out_dtype)


class _Overlap(NamedTuple):
  """Shared geometry of a pair of boxes, every field ``[...]``."""
  inter: jax.Array
  union: jax.Array
  enclose_w: jax.Array
  enclose_h: jax.Array
  centre_dist2: jax.Array
  wa: jax.Array
  ha: jax.Array
  wb: jax.Array
  hb: jax.Array


def _intersection(a_corners, b_corners, pixel_offset: float = 0.0):
  """Intersection area of xyxy boxes given as ``(x1, y1, x2, y2)`` tuples of
  broadcastable arrays (:mod:`jaxdl.nms` keeps boxes coordinate-major).

  The width is at most either box's width, so an inverted (zero-area) box
  overlaps nothing.
  """
  ax1, ay1, ax2, ay2 = a_corners
  bx1, by1, bx2, by2 = b_corners
  inter_w = jnp.maximum(
      jnp.minimum(ax2, bx2) - jnp.maximum(ax1, bx1) + pixel_offset, 0.0)
  inter_h = jnp.maximum(
      jnp.minimum(ay2, by2) - jnp.maximum(ay1, by1) + pixel_offset, 0.0)
  return inter_w * inter_h


def _overlap(a: jax.Array, b: jax.Array, fmt: str,
             pixel_offset: float) -> _Overlap:
  ax1, ay1, ax2, ay2, wa, ha = _sides(a, fmt, pixel_offset)
  bx1, by1, bx2, by2, wb, hb = _sides(b, fmt, pixel_offset)
  inter = _intersection((ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2),
                       pixel_offset)
  union = wa * ha + wb * hb - inter
  enclose_w = jnp.maximum(ax2, bx2) - jnp.minimum(ax1, bx1) + pixel_offset
  enclose_h = jnp.maximum(ay2, by2) - jnp.minimum(ay1, by1) + pixel_offset
  centre_dist2 = ((bx1 + bx2 - ax1 - ax2) ** 2 +
                  (by1 + by2 - ay1 - ay2) ** 2) / 4
  return _Overlap(inter, union, enclose_w, enclose_h, centre_dist2,
                  wa, ha, wb, hb)


def _safe_aspect_angle(w: jax.Array, h: jax.Array) -> jax.Array:
  """``atan(w / h)`` with a finite gradient for every box: 0 with a zero
  gradient for a point box (and one below the smallest normal float), and
  the sides scaled by the longer one first, so that ``w**2 + h**2`` in the
  gradient of ``arctan2`` cannot underflow to 0 for tiny boxes."""
  side = jnp.maximum(w, h)
  sized = side > jnp.finfo(side.dtype).tiny
  scale = jax.lax.stop_gradient(jnp.where(sized, side, 1.0))
  angle = jnp.arctan2(jnp.where(sized, w, 1.0) / scale,
                      jnp.where(sized, h, 1.0) / scale)
  return jnp.where(sized, angle, 0.0)


def _iou_from_overlap(o: _Overlap, variant: str, eps: float) -> jax.Array:
  iou_value = o.inter / (o.union + eps)
  if variant == "iou":
    return iou_value
  if variant == "giou":
    # Sides clamped at 0 as the boxes' (and torchvision's): two boxes
    # inverted along one axis gave a negative area, GIoU inf near -eps.
    enclose_area = jnp.maximum(o.enclose_w, 0.0) * jnp.maximum(o.enclose_h,
                                                               0.0)
    return iou_value - (enclose_area - o.union) / (enclose_area + eps)
  diagonal2 = o.enclose_w ** 2 + o.enclose_h ** 2 + eps
  # At most 1 for valid boxes, whose centres lie in the enclosing box; the
  # clamp keeps an inverted box (centre outside it) in range: next to a
  # point box it gave DIoU -5e8.
  diou = iou_value - jnp.minimum(o.centre_dist2 / diagonal2, 1.0)
  if variant == "diou":
    return diou
  angle_gap = _safe_aspect_angle(o.wb, o.hb) - _safe_aspect_angle(o.wa, o.ha)
  v = (4 / math.pi ** 2) * angle_gap ** 2
  # As torchvision and YOLOv5: the trade-off weight is a constant.
  alpha = jax.lax.stop_gradient(v / (1 - iou_value + v + eps))
  return diou - alpha * v


def _box_pair(a: ArrayLike, b: ArrayLike, name_a: str,
              name_b: str) -> tuple[jax.Array, jax.Array]:
  """``a`` and ``b`` as ``[..., 4]`` arrays whose leading axes broadcast;
  raises ``ValueError`` naming ``name_a`` / ``name_b`` otherwise."""
  a = as_boxes(a, name_a)
  b = as_boxes(b, name_b)
  try:
    np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
  except ValueError:
    raise ValueError(
        f"{name_a} and {name_b} must broadcast over their leading axes, got "
        f"shapes {tuple(a.shape)} and {tuple(b.shape)}.") from None
  return a, b


def iou(a: ArrayLike, b: ArrayLike, *, variant: str = "iou",
        fmt: str = "xyxy", eps: float = 1e-7,
        pixel_offset: float = 0.0) -> jax.Array:
  """Elementwise IoU, GIoU, DIoU or CIoU of two broadcastable sets of boxes.

  The four variants share one intersection / union / enclosing-box
  computation. With ``eps`` they match torchvision's
  ``generalized_box_iou_loss``, ``distance_box_iou_loss`` and
  ``complete_box_iou_loss`` (value = 1 - loss); ``variant="iou"`` matches
  ``torchvision.ops.box_iou`` up to ``eps``. CIoU's trade-off weight
  ``alpha`` is under ``stop_gradient`` as in torchvision and YOLOv5.

  Gradients are finite for every input, including zero-size, inverted,
  identical and concentric boxes.

  Args:
    a: ``[..., 4]`` boxes.
    b: ``[..., 4]`` boxes, broadcastable with ``a`` over the leading axes.
    variant: ``"iou" | "giou" | "diou" | "ciou"`` (static).
    fmt: ``"xyxy" | "xywh" | "cxcywh"`` (static).
    eps: added to denominators, a scalar ``>= 0`` (checked when concrete).
    pixel_offset: added to every width and height (1.0: the VOC "+1").

  Returns:
    ``[...]`` the broadcast leading shape; IoU in [0, 1], GIoU and DIoU in
    [-1, 1], CIoU in [-1.5, 1] (its penalty ``alpha * v`` reaches 1/2 for
    far-apart boxes of opposite aspect ratio). Input dtype (float32 for
    integers).

  References:
    Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019;
    Zheng et al., "Distance-IoU Loss", AAAI 2020.

  >>> iou(jnp.array([0., 0., 2., 2.]), jnp.array([1., 0., 3., 2.]))
  Array(0.33333334, dtype=float32)
  """
  one_of(variant, VARIANTS, "variant")
  _check_format(fmt)
  _check_real(eps, "eps", non_negative=True)
  _check_real(pixel_offset, "pixel_offset")
  a, b = _box_pair(a, b, "a", "b")
  out_dtype = _result_dtype(jnp.result_type(a.dtype, b.dtype))
  compute = compute_dtype(out_dtype)
  overlap = _overlap(a.astype(compute), b.astype(compute), fmt, pixel_offset)
  return _iou_from_overlap(overlap, variant, eps).astype(out_dtype)


def pairwise_iou(a: ArrayLike, b: ArrayLike, **kwargs) -> jax.Array:
  """All-pairs IoU family: ``[N, 4] x [M, 4] -> [N, M]``.

  ``iou`` vmapped over both sets; ``kwargs`` are those of :func:`iou`.
  ``variant="iou"`` equals ``torchvision.ops.box_iou`` and ``"giou"``
  ``torchvision.ops.generalized_box_iou``, both up to ``eps``.

  Args:
    a: ``[N, 4]`` boxes.
    b: ``[M, 4]`` boxes.
    **kwargs: ``variant``, ``fmt``, ``eps``, ``pixel_offset`` as in ``iou``.

  Returns:
    ``[N, M]`` with entry ``[i, j] = iou(a[i], b[j])``.
  """
  a = as_boxes(a, "a", flat=True)
  b = as_boxes(b, "b", flat=True)
  row = jax.vmap(lambda x, y: iou(x, y, **kwargs), in_axes=(None, 0))
  return jax.vmap(row, in_axes=(0, None))(a, b)


def _size_as(size: ArrayLike, dtype: Any) -> jax.Array:
  """An image size in the boxes' dtype. Integer sizes outside an integer
  dtype's range saturate (no box of uint8 corners goes past 255, so 255
  clips as a size of 300 would); a plain cast raised OverflowError."""
  size = jnp.asarray(size)
  if jnp.issubdtype(dtype, jnp.integer) and jnp.issubdtype(size.dtype,
                                                           jnp.integer):
    to, of = jnp.iinfo(dtype), jnp.iinfo(size.dtype)
    size = jnp.clip(size, max(int(to.min), int(of.min)),
                    min(int(to.max), int(of.max)))
  return size.astype(dtype)


def clip(boxes: ArrayLike, height: ArrayLike, width: ArrayLike, *,
         fmt: str = "xyxy") -> jax.Array:
  """Clips boxes to the image ``[0, width] x [0, height]``.

  Equals ``torchvision.ops.clip_boxes_to_image`` for ``"xyxy"``.

  Args:
    boxes: ``[..., 4]`` boxes in ``fmt``.
    height: image height (scalar or broadcastable to ``[...]``).
    width: image width.
    fmt: box format; the result is in the same format.

  Returns:
    ``[..., 4]`` clipped boxes in the boxes' dtype, except that integer
    boxes come back float32 in ``"cxcywh"`` (as :func:`convert`) or when
    ``height`` or ``width`` is not an integer (as torch's ``clamp``).
  """
  _check_format(fmt)
  boxes = as_boxes(boxes, "boxes")
  corners = convert(boxes, fmt, "xyxy")
  if not jnp.issubdtype(corners.dtype, jnp.floating) and not all(
      jnp.issubdtype(jnp.result_type(size), jnp.integer)
      for size in (height, width)):
    corners = corners.astype(jnp.float32)  # A size of 10.5 stays 10.5.
  x1, y1, x2, y2 = jnp.moveaxis(corners, -1, 0)
  width = _size_as(width, corners.dtype)
  height = _size_as(height, corners.dtype)
  clipped = jnp.stack([jnp.clip(x1, 0, width), jnp.clip(y1, 0, height),
                       jnp.clip(x2, 0, width), jnp.clip(y2, 0, height)], -1)
  return convert(clipped.astype(corners.dtype), "xyxy", fmt)


def is_valid(boxes: ArrayLike, *, fmt: str = "xyxy",
             min_size: float = 0.0) -> jax.Array:
  """True where a box is finite with width and height ``> min_size``.

  With ``min_size > 0`` this is the keep-mask of
  ``torchvision.ops.remove_small_boxes`` except that a side exactly equal to
  ``min_size`` is rejected here (strict, so zero-size boxes are invalid at the
  default ``min_size=0``).

  Args:
    boxes: ``[..., 4]`` boxes.
    fmt: box format.
    min_size: the minimum side length (may be traced; checked to be
      ``>= 0`` when concrete).

  Returns:
    ``[...]`` bool.
  """
  _check_format(fmt)
  real_scalar(min_size, "min_size")  # An array: ambiguous truth value.
  if not isinstance(min_size, jax.core.Tracer) and min_size < 0:
    raise ValueError(f"min_size must be >= 0, got {min_size}.")
  boxes = as_boxes(boxes, "boxes")
  w, h = _given_sides(boxes, fmt)
  finite = jnp.all(jnp.isfinite(boxes), axis=-1)
  return finite & (w > min_size) & (h > min_size)
