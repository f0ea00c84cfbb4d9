"""Detection augmentation as pure functions: mosaic, random perspective, color
jitter, letterbox and flips.

Images are ``[H, W, C]`` arrays, either an integer dtype (uint8: values in
[0, 255]) or floating point (values in [0, 1], as torchvision assumes; the
geometric functions' default ``fill=114`` is YOLOv5's uint8 grey, so pass
``fill=114 / 255`` for such float images). Boxes are pixel ``"xyxy"``
``[M, 4]`` arrays with continuous coordinates (pixel ``(i, j)`` covers
``[j, j + 1] x [i, i + 1]``) and come with a ``[M]`` bool ``mask`` (True =
a real box). Box-carrying functions return the updated mask;
entries whose mask is False are returned as zero boxes (and label ``-1``).

Every function is pure and static-shaped: it works under ``jax.jit``, batches
with ``jax.vmap`` (a batch of mosaics is ``jax.vmap(mosaic)``), and is
deterministic for a given key. Python-valued keyword arguments are static:
changing them recompiles (``fill`` and an array ``center`` may be traced).

* :func:`mosaic` -- YOLOv5 ``load_mosaic`` (the notes' "Mosaic").
* :func:`random_perspective` = :func:`perspective_matrix` +
  :func:`warp_image` + :func:`warp_boxes` (:func:`box_candidates`).
* :func:`color_jitter` -- torchvision ``ColorJitter`` (tensor definitions).
* :func:`letterbox` (:func:`letterbox_geometry`), :func:`hflip`,
  :func:`vflip`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike
import numpy as np

from jaxdl import boxes as boxes_lib
from jaxdl._checks import (_is_int, as_boxes, as_rank, int_at_least, int_pair,
                           mask_or_ones, signed_ids)


class Mosaic(NamedTuple):
  """Output of :func:`mosaic`."""
  image: jax.Array  # [2S, 2S, C]
  boxes: jax.Array  # [4M, 4]
  labels: jax.Array  # [4M]
  mask: jax.Array  # [4M]


class Augmented(NamedTuple):
  """An augmented image with its boxes and their mask."""
  image: jax.Array  # [H', W', C]
  boxes: jax.Array  # [M, 4]
  mask: jax.Array  # [M]


class Perspective(NamedTuple):
  """A sampled warp: the 3x3 matrix (source to output pixels) and its scale."""
  matrix: jax.Array  # [3, 3]
  scale: jax.Array  # []


# --------------------------------------------------------------- validation


def _as_image(image: ArrayLike, name: str = "image") -> jax.Array:
  return as_rank(image, name, ("H", "W", "C"))


def _as_box_set(boxes: ArrayLike, mask: ArrayLike | None, *,
                lead: str = "M"):
  """Float boxes ``[*lead, 4]`` and a bool mask ``[*lead]`` (default all).

  ``lead`` names the leading axes for messages: ``"M"`` or ``"4, M"``.
  """
  boxes = jnp.asarray(boxes)
  rank = lead.count(",") + 2
  if boxes.ndim != rank or boxes.shape[-1] != 4 or (
      rank == 3 and boxes.shape[0] != 4):
    raise ValueError(
        f"boxes must have shape [{lead}, 4], got {tuple(boxes.shape)}.")
  if not jnp.issubdtype(boxes.dtype, jnp.floating):
    boxes = boxes.astype(jnp.float32)
  return boxes, mask_or_ones(mask, boxes.shape[:-1])


def _check_non_negative(*, finite: bool = False, **values: float) -> None:
  """Raises ``ValueError`` naming the first value that is negative or NaN
  (or, with ``finite``, infinite)."""
  for name, value in values.items():
    if not value >= 0 or (finite and math.isinf(value)):
      bound = "finite and >= 0" if finite else ">= 0"
      raise ValueError(f"{name} must be {bound}, got {value}.")


def _matrix3x3(matrix: ArrayLike, dtype=jnp.float32) -> jax.Array:
  """A ``[3, 3]`` matrix of ``dtype``; ``ValueError`` for another shape."""
  matrix = jnp.asarray(matrix, dtype)
  if matrix.shape != (3, 3):
    raise ValueError(f"matrix must have shape [3, 3], got {matrix.shape}.")
  return matrix


def _finish(values: jax.Array, dtype) -> jax.Array:
  """Float pixel values back to ``dtype``: integers round and saturate."""
  if jnp.issubdtype(dtype, jnp.integer):
    info = jnp.iinfo(dtype)
    values = jnp.clip(jnp.round(values), info.min, info.max)
  return values.astype(dtype)


def _float_dtype(dtype):
  """Float32, or a wider float ``dtype`` (float64 under x64)."""
  return jnp.promote_types(dtype, jnp.float32) if jnp.issubdtype(
      dtype, jnp.floating) else jnp.float32


def _fill_value(fill: ArrayLike, dtype) -> jax.Array:
  """``fill`` as a pixel of ``dtype``: rounded and saturated for integer
  images, as OpenCV casts ``borderValue`` before it blends."""
  return _finish(jnp.asarray(fill, _float_dtype(dtype)), dtype)


def _masked(boxes: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.where(mask[..., None], boxes, 0).astype(boxes.dtype)


# -------------------------------------------------------------------- mosaic


def _as_four_images(images) -> jax.Array:
  if isinstance(images, (list, tuple)):
    if len(images) != 4:
      raise ValueError(f"images must hold 4 images, got {len(images)}.")
    images = [jnp.asarray(x) for x in images]
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) != 1:
      raise ValueError(
          f"images must all have the same [S, S, C] shape, got "
          f"{[tuple(x.shape) for x in images]}.")
    images = jnp.stack(images)
  images = jnp.asarray(images)
  if images.ndim != 4 or images.shape[0] != 4:
    raise ValueError(
        f"images must have shape [4, S, S, C] (4 images), got "
        f"{tuple(images.shape)}.")
  if images.shape[1] != images.shape[2]:
    raise ValueError(
        f"images must be square [4, S, S, C] tiles, got "
        f"{tuple(images.shape)}.")
  return images


def _mosaic_center(key: jax.Array, size: int, center) -> jax.Array:
  """``[2]`` int32 ``(xc, yc)``: drawn as YOLOv5, or the given one."""
  if center is None:
    # YOLOv5: int(uniform(-b, 2S + b)) with b = -S // 2, i.e. the integers in
    # [c, 2S - c) with c = ceil(S / 2) (c = S / 2 for even S, as in the notes).
    half = -(-size // 2)
    return jax.random.randint(key, (2,), half, 2 * size - half, jnp.int32)
  if isinstance(center, (tuple, list)):
    if len(center) != 2:
      raise ValueError(f"center must be (xc, yc), got {center!r}.")
    for value in center:
      if isinstance(value, (bool, np.bool_, numbers.Number)) and not (
          _is_int(value) and 0 <= value <= 2 * size):
        raise ValueError(
            f"center must be integer pixels in [0, {2 * size}] (the "
            f"canvas), got {center!r}.")
  center = jnp.asarray(center)
  if center.shape != (2,):
    raise ValueError(f"center must be (xc, yc), got shape {center.shape}.")
  return jnp.clip(center.astype(jnp.int32), 0, 2 * size)


def mosaic(key: jax.Array, images: ArrayLike, boxes: ArrayLike,
           labels: ArrayLike, mask: ArrayLike, *, fill: float = 114,
           center: ArrayLike | tuple[int, int] | None = None,
           min_size: float = 2.0) -> Mosaic:
  """YOLOv5 mosaic: four ``[S, S, C]`` tiles around a centre in one canvas.

  The canvas is ``[2S, 2S, C]`` filled with ``fill``. Tile 0 ends at the
  centre ``(xc, yc)`` from the top left, tile 1 from the top right, tile 2
  from the bottom left and tile 3 from the bottom right, each cropped by the
  canvas edge, exactly as the four cases of YOLOv5's ``load_mosaic``. The
  centre is drawn uniformly from the integers in ``[c, 2S - c)``,
  ``c = ceil(S / 2)``, as YOLOv5's ``int(random.uniform(-b, 2S + b))`` with
  its border ``b = -S // 2`` (for even ``S`` the notes'
  ``int(random.uniform(S/2, 3S/2))``). Boxes move with their tile,
  are clipped to the canvas, and those not wider and taller than
  ``min_size`` pixels after clipping are masked out (at ``min_size=0``:
  boxes with no visible area).

  Args:
    key: PRNG key for the centre (unused when ``center`` is given).
    images: ``[4, S, S, C]`` tiles (or a sequence of four ``[S, S, C]``).
    boxes: ``[4, M, 4]`` pixel xyxy boxes, in each tile's coordinates.
    labels: ``[4, M]`` integer labels.
    mask: ``[4, M]`` bool, True for real boxes.
    fill: canvas value where no tile lands (114, YOLOv5's grey).
    center: optional ``(xc, yc)`` integer pixels in ``[0, 2S]``; a Python
      pair is checked at trace time, an array is clipped to that range.
    min_size: boxes need width and height ``> min_size`` to stay.

  Returns:
    ``Mosaic(image [2S, 2S, C], boxes [4M, 4], labels [4M], mask [4M])``;
    box ``t * M + j`` comes from tile ``t``, box ``j``. Masked-out boxes are
    zeros with label -1 (unsigned labels come back as int32 for it).

  References:
    Bochkovskiy et al., "YOLOv4", 2020; Ultralytics YOLOv5 ``load_mosaic``.

  >>> tiles = jnp.zeros((4, 8, 8, 3), jnp.uint8)
  >>> out = mosaic(jax.random.key(0), tiles, jnp.zeros((4, 1, 4)),
  ...              jnp.zeros((4, 1), int), jnp.zeros((4, 1), bool))
  >>> out.image.shape, out.boxes.shape
  ((16, 16, 3), (4, 4))
  """
  images = _as_four_images(images)
  size = images.shape[1]
  boxes, mask = _as_box_set(boxes, mask, lead="4, M")
  labels = jnp.asarray(labels)
  if labels.shape != mask.shape:
    raise ValueError(f"labels must have shape {list(mask.shape)} to match "
                     f"boxes, got {tuple(labels.shape)}.")
  _check_non_negative(min_size=min_size)
  xc, yc = _mosaic_center(key, size, center)

  # The four tiles form one [2S, 2S] block whose top-left corner lands at
  # (xc - S, yc - S); the canvas is that block shifted, filled elsewhere.
  block = jnp.concatenate(
      [jnp.concatenate([images[0], images[1]], axis=1),
       jnp.concatenate([images[2], images[3]], axis=1)], axis=0)
  fill_value = _fill_value(fill, images.dtype)
  # The block's offset (yc - S, xc - S) lies in [-pad, pad], so it sits in a
  # canvas-sized slice of the block padded by pad. The drawn centre needs
  # only S - S // 2; the pad matters when a warp's gather (as in
  # random_perspective) reads through the slice: XLA then stores it padded.
  pad = size if center is not None else size - size // 2
  padded = jnp.pad(block, ((pad, pad), (pad, pad), (0, 0)),
                   constant_values=fill_value)  # [2S + 2 pad, 2S + 2 pad, C]
  # int32 zero: under x64 a literal 0 is int64, mixed index types fail.
  image = lax.dynamic_slice(padded,
                            (size + pad - yc, size + pad - xc, jnp.int32(0)),
                            (2 * size, 2 * size, images.shape[3]))

  dx = jnp.stack([xc - size, xc, xc - size, xc]).astype(boxes.dtype)
  dy = jnp.stack([yc - size, yc - size, yc, yc]).astype(boxes.dtype)
  offsets = jnp.stack([dx, dy, dx, dy], axis=-1)[:, None, :]  # [4, 1, 4]
  moved = boxes_lib.clip(boxes + offsets, 2 * size, 2 * size)
  keep = mask & boxes_lib.is_valid(moved, min_size=min_size)
  keep = keep.reshape(-1)
  return Mosaic(image=image,
                boxes=_masked(moved.reshape(-1, 4), keep),
                labels=jnp.where(keep, signed_ids(labels.reshape(-1)), -1),
                mask=keep)


# ------------------------------------------------------- perspective warps


def _rotation_scale(degrees: jax.Array, scale: jax.Array) -> jax.Array:
  """``cv2.getRotationMatrix2D(angle, (0, 0), scale)`` as a 3x3 matrix."""
  radians = jnp.deg2rad(degrees)
  a = scale * jnp.cos(radians)
  b = scale * jnp.sin(radians)
  zero, one = jnp.zeros_like(a), jnp.ones_like(a)
  return jnp.stack([jnp.stack([a, b, zero]), jnp.stack([-b, a, zero]),
                    jnp.stack([zero, zero, one])])


def _translation(tx: ArrayLike, ty: ArrayLike) -> jax.Array:
  return jnp.eye(3).at[0, 2].set(tx).at[1, 2].set(ty)


def perspective_matrix(key: jax.Array, height: int, width: int, *,
                       degrees: float = 0.0, translate: float = 0.1,
                       scale: float = 0.5, shear: float = 0.0,
                       perspective: float = 0.0,
                       border: int | Sequence[int] = 0) -> Perspective:
  """Samples YOLOv5's ``random_perspective`` matrix ``M = T S R P C``.

  ``C`` moves the input centre to the origin, ``P`` has perspective terms
  ``U(-perspective, perspective)``, ``R`` rotates by ``U(-degrees, degrees)``
  (counter-clockwise on screen, as ``cv2.getRotationMatrix2D``) and scales by
  ``s ~ U(1 - scale, 1 + scale)``, ``S`` shears by ``tan(U(-shear, shear))``
  degrees on each axis, and ``T`` moves the origin to
  ``U(0.5 - translate, 0.5 + translate)`` times the output size. With all
  strengths zero and ``border=0`` the matrix is exactly the identity. The
  draws are ``jax.random.uniform(key, (8,))`` mapped, in this order, onto
  the ranges of ``(px, py, angle, s, shear_x, shear_y, tx, ty)``.

  Args:
    key: PRNG key.
    height: input image height.
    width: input image width.
    degrees: rotation range in degrees (static).
    translate: translation range as a fraction of the output size.
    scale: scale range; ``s`` is drawn from ``[1 - scale, 1 + scale]``.
    shear: shear range in degrees.
    perspective: range of the perspective terms.
    border: pixels added (negative: removed) on each side of the output;
      an int or ``(border_y, border_x)``. The output is
      ``[height + 2 border_y, width + 2 border_x]``.

  Returns:
    ``Perspective(matrix [3, 3], scale [])``: ``matrix`` maps homogeneous
    input pixel coordinates ``(x, y, 1)`` to output coordinates.

  References:
    Ultralytics YOLOv5 ``utils/augmentations.py: random_perspective``.
  """
  int_at_least(1, height=height, width=width)
  _check_non_negative(degrees=degrees, translate=translate, scale=scale,
                      shear=shear, perspective=perspective, finite=True)
  border_y, border_x = int_pair(border, "border")
  out_h, out_w = height + 2 * border_y, width + 2 * border_x
  if out_h <= 0 or out_w <= 0:
    raise ValueError(f"border={border!r} makes the output {(out_h, out_w)};"
                     " its size must be positive.")
  lo = jnp.array([-perspective, -perspective, -degrees, 1 - scale, -shear,
                  -shear, 0.5 - translate, 0.5 - translate], jnp.float32)
  hi = jnp.array([perspective, perspective, degrees, 1 + scale, shear,
                  shear, 0.5 + translate, 0.5 + translate], jnp.float32)
  u = lo + (hi - lo) * jax.random.uniform(key, (8,))
  px, py, angle, s, shear_x, shear_y, tx, ty = u

  centre = _translation(-width / 2, -height / 2)
  persp = jnp.eye(3).at[2, 0].set(px).at[2, 1].set(py)
  rotate = _rotation_scale(angle, s)
  shear_matrix = (jnp.eye(3).at[0, 1].set(jnp.tan(jnp.deg2rad(shear_x)))
                  .at[1, 0].set(jnp.tan(jnp.deg2rad(shear_y))))
  move = _translation(tx * out_w, ty * out_h)
  matrix = move
  for factor in (shear_matrix, rotate, persp, centre):  # "highest": no TF32
    matrix = jnp.dot(matrix, factor, precision="highest")
  return Perspective(matrix=matrix, scale=s)


def _inverse3x3(m: jax.Array) -> jax.Array:
  """Adjugate inverse (exact for the identity, no LAPACK call)."""
  cofactors = jnp.stack([jnp.cross(m[1], m[2]), jnp.cross(m[2], m[0]),
                         jnp.cross(m[0], m[1])])  # rows: cofactors of cols
  det = jnp.dot(m[0], cofactors[0], precision="highest")  # no TF32
  return cofactors.T / det


def _axis_taps(coord: jax.Array, n: int):
  """Start index and weights of the 2 taps along one axis of length ``n``.

  Bilinear interpolation between pixels ``i0 = floor(coord)`` and ``i0 + 1``.
  The 2-pixel window starts at ``clip(i0, 0, n - 2)`` so it is always in
  bounds; a tap outside the image gets weight 0 here and its weight goes to
  the fill value (``cv2.BORDER_CONSTANT``).
  """
  finite = jnp.isfinite(coord)
  coord = jnp.where(finite, coord, -2.0)
  i0 = jnp.floor(coord)
  frac = coord - i0
  inner = (i0 >= 0) & (i0 <= n - 2)
  w0 = jnp.where(inner, 1 - frac, jnp.where(i0 == -1, frac, 0.0))
  w1 = jnp.where(inner, frac, jnp.where(i0 == n - 1, 1 - frac, 0.0))
  start = jnp.clip(i0, 0, n - 2).astype(jnp.int32)
  return start, w0, w1


def _bilinear_sample(image: jax.Array, x: jax.Array, y: jax.Array,
                     fill: float) -> jax.Array:
  """Samples ``image`` ``[H, W, C]`` at float pixel coords ``[Ho, Wo]``.

  Pixel centres sit at integer coordinates (OpenCV ``remap``); out-of-image
  taps take ``fill``. Returns float32 ``[Ho, Wo, C]``.
  """
  height, width, channels = image.shape
  x0, wx0, wx1 = _axis_taps(x, width)
  y0, wy0, wy1 = _axis_taps(y, height)
  # One gather of the 2x2 neighbourhood of every output pixel.
  rows = image.reshape(height, width * channels)
  starts = jnp.stack([y0, x0 * channels], axis=-1)  # [Ho, Wo, 2]
  dims = lax.GatherDimensionNumbers(offset_dims=(2, 3),
                                    collapsed_slice_dims=(),
                                    start_index_map=(0, 1))
  window = lax.gather(rows, starts, dims, slice_sizes=(2, 2 * channels),
                      mode="promise_in_bounds")
  window = window.reshape(*x.shape, 2, 2, channels).astype(jnp.float32)
  e = lambda w: w[..., None]  # noqa: E731  [Ho, Wo] -> [Ho, Wo, 1]
  top = e(wx0) * window[..., 0, 0, :] + e(wx1) * window[..., 0, 1, :]
  bottom = e(wx0) * window[..., 1, 0, :] + e(wx1) * window[..., 1, 1, :]
  fill_weight = 1 - (wx0 + wx1) * (wy0 + wy1)
  return e(wy0) * top + e(wy1) * bottom + e(fill_weight) * fill


def warp_image(image: ArrayLike, matrix: ArrayLike, *,
               size: int | Sequence[int], fill: float = 114,
               affine: bool = False) -> jax.Array:
  """Warps an image by a 3x3 matrix with bilinear sampling.

  Output pixel ``(x, y)`` takes the input at ``matrix^-1 (x, y, 1)``
  (divided by its third coordinate), interpolated bilinearly; taps outside
  the input take ``fill``. This is ``cv2.warpPerspective(image, matrix,
  (W', H'), flags=INTER_LINEAR, borderValue=fill)`` (``cv2.warpAffine`` with
  ``affine=True``) up to OpenCV's 1/32-pixel fixed-point coordinates.
  Integer images are rounded and saturated.

  As in OpenCV (and so YOLOv5), the warp puts pixel centres at integer
  coordinates while :func:`warp_boxes` moves continuous box corners by the
  same matrix; under a scale ``s`` the two differ by ``(s - 1) / 2`` pixel.

  Args:
    image: ``[H, W, C]`` image, ``H, W >= 2``.
    matrix: ``[3, 3]`` map from input to output pixel coordinates.
    size: output ``(H', W')`` or an int for a square output (static).
    fill: value outside the input.
    affine: skip the perspective division (static; the last row of
      ``matrix`` must then be ``(0, 0, 1)``).

  Returns:
    ``[H', W', C]`` warped image in the input dtype.
  """
  image = _as_image(image)
  if image.shape[0] < 2 or image.shape[1] < 2:
    raise ValueError(
        f"image must be at least 2x2 pixels, got {tuple(image.shape)}.")
  matrix = _matrix3x3(matrix)
  out_h, out_w = int_pair(size, "size", minimum=1)
  inverse = _inverse3x3(matrix)
  ys, xs = jnp.meshgrid(jnp.arange(out_h, dtype=jnp.float32),
                        jnp.arange(out_w, dtype=jnp.float32), indexing="ij")
  # Source coordinates as one dot, not elementwise: XLA does not fuse a dot
  # into its consumers, so the gather's tap index and the blend weights read
  # the same stored floats. Written elementwise, XLA may recompute them in
  # each fusion, and the copies can round differently (FMA contraction, for
  # one); at a coordinate within an ulp of an integer the floors then differ
  # and the weights land on the wrong taps (seen: errors of 209 levels in a
  # packed-pixel variant at 64 x 640 px). "highest": no TF32 on GPUs.
  grid = jnp.stack([xs, ys, jnp.ones_like(xs)])  # [3, H', W']
  src = jnp.einsum("ij,jhw->ihw", inverse, grid, precision="highest")
  if affine:
    sx, sy = src[0], src[1]
  else:
    sx, sy = src[0] / src[2], src[1] / src[2]
  fill = _fill_value(fill, image.dtype).astype(jnp.float32)
  return _finish(_bilinear_sample(image, sx, sy, fill), image.dtype)


def box_candidates(before: ArrayLike, after: ArrayLike, *,
                   min_size: float = 2.0, min_area_ratio: float = 0.1,
                   max_aspect_ratio: float = 100.0,
                   eps: float = 1e-16) -> jax.Array:
  """YOLOv5's rule for which boxes survive an augmentation.

  A box stays when, after the augmentation, its width and height are
  ``> min_size`` pixels, its area is ``> min_area_ratio`` times its area
  before, and its aspect ratio ``max(w/h, h/w)`` is ``< max_aspect_ratio``.

  Args:
    before: ``[..., 4]`` xyxy boxes before (already scaled by the warp's
      scale, as YOLOv5 does).
    after: ``[..., 4]`` the same boxes after warping and clipping.
    min_size: minimum side in pixels.
    min_area_ratio: minimum kept fraction of the area.
    max_aspect_ratio: maximum aspect ratio.
    eps: guards the ratios against zero sizes.

  Returns:
    ``[...]`` bool (computed in float32 at least).

  References:
    Ultralytics YOLOv5 ``utils/augmentations.py: box_candidates``.
  """
  _check_non_negative(min_size=min_size, min_area_ratio=min_area_ratio,
                      max_aspect_ratio=max_aspect_ratio)
  before, after = as_boxes(before, "before"), as_boxes(after, "after")
  if before.shape != after.shape:
    raise ValueError(f"before and after must have the same shape, got "
                     f"{tuple(before.shape)} and {tuple(after.shape)}.")
  # float32 at least: a float16 area overflows from 256 x 256 pixels.
  dtype = jnp.promote_types(jnp.result_type(before, after), jnp.float32)
  before, after = before.astype(dtype), after.astype(dtype)
  w1, h1 = before[..., 2] - before[..., 0], before[..., 3] - before[..., 1]
  w2, h2 = after[..., 2] - after[..., 0], after[..., 3] - after[..., 1]
  aspect = jnp.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
  return ((w2 > min_size) & (h2 > min_size) &
          (w2 * h2 / (w1 * h1 + eps) > min_area_ratio) &
          (aspect < max_aspect_ratio))


def warp_boxes(boxes: ArrayLike, mask: ArrayLike | None, matrix: ArrayLike,
               *, size: int | Sequence[int], scale: ArrayLike = 1.0,
               min_size: float = 2.0, min_area_ratio: float = 0.1,
               max_aspect_ratio: float = 100.0) -> tuple[jax.Array,
                                                         jax.Array]:
  """Moves boxes by a 3x3 matrix: warp the 4 corners, re-box, clip, filter.

  The new box is the smallest xyxy box holding the four warped corners,
  clipped to the output ``[0, W'] x [0, H']``; it stays when
  :func:`box_candidates` accepts it against the input box times ``scale``.

  Args:
    boxes: ``[M, 4]`` xyxy pixel boxes in input coordinates.
    mask: ``[M]`` bool, or None for all boxes.
    matrix: ``[3, 3]`` input-to-output map (as for :func:`warp_image`).
    size: output ``(H', W')`` or an int (static).
    scale: the warp's scale (``Perspective.scale``) for the area rule.
    min_size: as in :func:`box_candidates`.
    min_area_ratio: as in :func:`box_candidates`.
    max_aspect_ratio: as in :func:`box_candidates`.

  Returns:
    ``(boxes [M, 4], mask [M])`` in the boxes' float dtype (float32 for
    integer boxes; computed in float32 at least); masked-out boxes are
    zeros.
  """
  boxes, mask = _as_box_set(boxes, mask)
  dtype = boxes.dtype
  # float32 at least: float16 corners lose pixels and their areas overflow.
  boxes = boxes.astype(jnp.promote_types(dtype, jnp.float32))
  matrix = _matrix3x3(matrix, boxes.dtype)
  out_h, out_w = int_pair(size, "size", minimum=1)
  # Masked-out boxes (any values, NaN padding too) are warped as zeros, so
  # that their division by w cannot put NaN into the gradients.
  x1, y1, x2, y2 = jnp.where(mask[:, None], boxes, 0).T
  corners = jnp.stack([jnp.stack([x1, y1]), jnp.stack([x2, y2]),
                       jnp.stack([x1, y2]), jnp.stack([x2, y1])])  # [4, 2, M]
  homogeneous = jnp.concatenate(
      [corners, jnp.ones_like(corners[:, :1])], axis=1)  # [4, 3, M]
  moved = jnp.einsum("ij,kjm->kim", matrix, homogeneous,
                     precision="highest")  # [4, 3, M]; no TF32 on GPUs
  xy = moved[:, :2] / moved[:, 2:]
  new = jnp.stack([xy[:, 0].min(0), xy[:, 1].min(0), xy[:, 0].max(0),
                   xy[:, 1].max(0)], axis=-1)
  new = boxes_lib.clip(new, out_h, out_w)
  keep = mask & box_candidates(boxes * scale, new, min_size=min_size,
                               min_area_ratio=min_area_ratio,
                               max_aspect_ratio=max_aspect_ratio)
  return _masked(new, keep).astype(dtype), keep


def random_perspective(key: jax.Array, image: ArrayLike, boxes: ArrayLike,
                       mask: ArrayLike, *, degrees: float = 0.0,
                       translate: float = 0.1, scale: float = 0.5,
                       shear: float = 0.0, perspective: float = 0.0,
                       border: int | Sequence[int] = 0, fill: float = 114,
                       min_size: float = 2.0, min_area_ratio: float = 0.1,
                       max_aspect_ratio: float = 100.0) -> Augmented:
  """YOLOv5's random rotation, translation, scale, shear and perspective.

  One matrix from :func:`perspective_matrix` warps the image
  (:func:`warp_image`, bilinear, ``fill`` outside) and the boxes
  (:func:`warp_boxes`: corners, re-box, clip, the YOLOv5 candidate rule).
  After :func:`mosaic`, ``border=-S // 2`` crops the ``2S`` canvas back to
  ``S`` as YOLOv5 does (``S - 1`` for odd ``S``, as there). With every
  strength zero and ``border=0`` it is the identity on the image and on the
  boxes that pass :func:`box_candidates`; the others are masked out.

  Args:
    key: PRNG key.
    image: ``[H, W, C]`` image.
    boxes: ``[M, 4]`` xyxy pixel boxes.
    mask: ``[M]`` bool.
    degrees: rotation range in degrees (static, like all keywords).
    translate: translation range, fraction of the output size.
    scale: scale range, ``s ~ U(1 - scale, 1 + scale)``.
    shear: shear range in degrees.
    perspective: perspective range; 0 uses the cheaper affine path.
    border: int or ``(border_y, border_x)``; output is ``[H + 2 border_y,
      W + 2 border_x, C]``.
    fill: value outside the input (114, YOLOv5's grey).
    min_size: as in :func:`box_candidates`.
    min_area_ratio: as in :func:`box_candidates`.
    max_aspect_ratio: as in :func:`box_candidates`.

  Returns:
    ``Augmented(image [H', W', C], boxes [M, 4], mask [M])``.

  References:
    Ultralytics YOLOv5 ``utils/augmentations.py: random_perspective``.
  """
  image = _as_image(image)
  boxes, mask = _as_box_set(boxes, mask)  # validate before any work
  height, width = image.shape[:2]
  border_y, border_x = int_pair(border, "border")
  size = (height + 2 * border_y, width + 2 * border_x)
  warp = perspective_matrix(key, height, width, degrees=degrees,
                            translate=translate, scale=scale, shear=shear,
                            perspective=perspective, border=border)
  new_image = warp_image(image, warp.matrix, size=size, fill=fill,
                         affine=perspective == 0)
  new_boxes, new_mask = warp_boxes(
      boxes, mask, warp.matrix, size=size, scale=warp.scale,
      min_size=min_size, min_area_ratio=min_area_ratio,
      max_aspect_ratio=max_aspect_ratio)
  return Augmented(image=new_image, boxes=new_boxes, mask=new_mask)


# -------------------------------------------------------------- color jitter

_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = range(4)


def _jitter_range(value, name: str, *, center: float, low: float,
                  high: float) -> tuple[float, float] | None:
  """torchvision ``ColorJitter._check_input``: a factor range or None."""
  if isinstance(value, (str, bytes)):
    raise ValueError(f"{name} must be a number or a (min, max) pair, "
                     f"got {value!r}.")
  if np.ndim(value) == 0:  # Python, NumPy or concrete JAX scalars.
    try:
      value = float(value)
    except (TypeError, ValueError):
      raise ValueError(f"{name} must be a number or a (min, max) pair "
                       f"(static), got {value!r}.") from None
    if not value >= 0:
      raise ValueError(f"{name} must be >= 0, got {value}.")
    lo, hi = center - value, center + value
    if center == 1:
      lo = max(lo, 0.0)
  else:
    value = tuple(value)
    if len(value) != 2:
      raise ValueError(f"{name} must be a number or a (min, max) pair, "
                       f"got {value!r}.")
    lo, hi = float(value[0]), float(value[1])
  if not low <= lo <= hi <= high:
    raise ValueError(f"{name} values must lie in [{low}, {high}] with "
                     f"min <= max, got ({lo}, {hi}).")
  if not max(abs(lo), abs(hi)) <= float(np.finfo(np.float32).max):
    raise ValueError(f"{name} must be finite in float32, got ({lo}, {hi}).")
  if lo == hi == center:
    return None
  return lo, hi


def _grayscale(x: jax.Array, integer: bool) -> jax.Array:
  """torchvision ``rgb_to_grayscale``: planar ``[C, H, W] -> [1, H, W]``."""
  if x.shape[0] == 1:
    return x
  gray = 0.2989 * x[0:1] + 0.587 * x[1:2] + 0.114 * x[2:3]
  return jnp.floor(gray) if integer else gray  # .to(uint8) truncates


def _mean(x: jax.Array) -> jax.Array:
  """``jnp.mean(x)`` as a dot with ones: XLA on CPU reduces a fused
  elementwise producer (the grey image) ~20x slower than it runs a dot."""
  flat = x.reshape(-1)
  # "highest": at default precision GPUs round float images to TF32.
  return jnp.dot(flat, jnp.ones_like(flat), precision="highest") / flat.size


def _blend_step(x: jax.Array, op: jax.Array, factor: jax.Array,
                bound: float, integer: bool) -> jax.Array:
  """One of brightness / contrast / saturation, chosen by traced ``op``.

  All three are torchvision's ``_blend(img, other, f)``:
  ``clamp(f img + (1 - f) other, 0, bound)`` with ``other`` black, the mean
  grey level, or the grey image. ``factor = 1`` is exactly the identity on
  values in ``[0, bound]`` (integers for uint8): callers skip a step with 1.
  """
  gray = _grayscale(x, integer)
  # Selected, not weighted by 0 or 1: 0 * NaN would spread one NaN pixel.
  other = jnp.where(op == _CONTRAST, _mean(gray),
                    jnp.where(op == _SATURATION, gray, 0.0))
  y = _clamp(factor * x + (1.0 - factor) * other, bound)
  return jnp.floor(y) if integer else y


def _clamp(y: jax.Array, bound: float) -> jax.Array:
  """``clip(y, 0, bound)`` with torch's gradient: 1 on ``[0, bound]``,
  bounds included (``jnp.clip`` halves it at the bounds, and a step with
  factor 1 would halve it again at every black or white pixel)."""
  return jnp.where((y >= 0) & (y <= bound), y, jnp.clip(y, 0.0, bound))


def _frac(x: jax.Array) -> jax.Array:
  """``x % 1.0`` as torch computes it (``x - floor(x)``), without fmod."""
  return x - jnp.floor(x)


def _rgb_to_hsv(rgb: jax.Array):
  """torchvision ``_rgb2hsv`` on planar ``[3, ...]`` values in [0, 1].

  One division for the hue (``(g - b) / spread`` where torchvision takes
  ``(max - b) / spread - (max - g) / spread``: equal up to rounding) and one
  for the saturation; XLA:CPU stores each divided plane once.
  """
  r, g, b = rgb
  # Which channel is the max, decided once: XLA may recompute r, g, b inside
  # fusions (with FMA), and torchvision's ``maxc == r`` tests on recomputed
  # values could then disagree by an ulp and pick the wrong hue sector.
  r_max = (r >= g) & (r >= b)
  g_max = ~r_max & (g >= b)
  maxc = jnp.where(r_max, r, jnp.where(g_max, g, b))
  minc = jnp.minimum(jnp.minimum(r, g), b)
  equal = maxc == minc
  spread = maxc - minc
  s = spread / jnp.where(equal, 1.0, maxc)
  divisor = jnp.where(equal, 1.0, spread)
  num = jnp.where(r_max, g - b, jnp.where(g_max, b - r, r - g))
  sector = jnp.where(r_max, 0.0, jnp.where(g_max, 2.0, 4.0))
  h = sector + num / divisor
  return _frac(h / 6.0 + 1.0), s, maxc


def _hsv_to_rgb(h: jax.Array, s: jax.Array, v: jax.Array) -> jax.Array:
  """torchvision ``_hsv2rgb``: ``[...]`` h, s, v in [0, 1] -> ``[3, ...]``.

  Branchless: channel ``n`` (5 red, 3 green, 1 blue) is
  ``v - v s clip(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 h) mod 6``, which
  is torchvision's six-sector table of ``v, p, q, t`` up to rounding.
  """
  h6 = h * 6.0
  def channel(n):
    k = n + h6
    k = jnp.where(k >= 6.0, k - 6.0, k)  # (n + 6h) mod 6 for h in [0, 1)
    k = jnp.where(k >= 6.0, k - 6.0, k)
    return _clamp(v - v * s * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0),
                  1.0)
  return jnp.stack([channel(5.0), channel(3.0), channel(1.0)])


def _adjust_hue(x: jax.Array, factor: jax.Array, integer: bool) -> jax.Array:
  """torchvision ``adjust_hue``; integers go through float as it does."""
  rgb = x / 255.0 if integer else x
  h, s, v = _rgb_to_hsv(rgb)
  out = _hsv_to_rgb(_frac(h + factor), s, v)
  # convert_image_dtype(float -> uint8): multiply by 256 - 1e-3, truncate.
  return jnp.floor(out * (255.0 + 1.0 - 1e-3)) if integer else out


def color_jitter(key: jax.Array, image: ArrayLike, *,
                 brightness: float | Sequence[float] = 0.2,
                 contrast: float | Sequence[float] = 0.2,
                 saturation: float | Sequence[float] = 0.2,
                 hue: float | Sequence[float] = 0.05) -> jax.Array:
  """torchvision ``ColorJitter``: random brightness, contrast, saturation, hue.

  Each factor is drawn uniformly from its range and the four adjustments are
  applied in a random order, with torchvision's tensor definitions:
  brightness ``f x``; contrast ``f x + (1 - f) mean(gray(x))``; saturation
  ``f x + (1 - f) gray(x)`` (each clamped to the valid range, and truncated
  for uint8 as torchvision's ``.to(uint8)``); hue shifts H in HSV by ``f``
  (a fraction of a turn). ``gray = 0.2989 R + 0.587 G + 0.114 B``. A strength
  of 0 disables an adjustment (all zero: the identity). One-channel images
  get brightness and contrast only, as in torchvision.

  Args:
    key: PRNG key.
    image: ``[H, W, C]`` with ``C`` 1 or 3; uint8 in [0, 255] or float in
      [0, 1].
    brightness: ``b`` for factors in ``[max(0, 1 - b), 1 + b]``, or a
      ``(min, max)`` pair (static, like all strengths).
    contrast: as ``brightness``.
    saturation: as ``brightness``.
    hue: ``h`` in [0, 0.5] for shifts in ``[-h, h]``, or a pair in
      [-0.5, 0.5].

  Returns:
    ``[H, W, C]`` jittered image, same dtype, in [0, 255] or [0, 1].

  References:
    ``torchvision.transforms.ColorJitter`` and
    ``torchvision.transforms.functional.adjust_{brightness,contrast,
    saturation,hue}`` (tensor versions).

  >>> image = jnp.full((2, 2, 3), 100, jnp.uint8)
  >>> color_jitter(jax.random.key(0), image, brightness=0, contrast=0,
  ...              saturation=0, hue=0).tolist() == image.tolist()
  True
  """
  image = _as_image(image)
  channels = image.shape[-1]
  if channels not in (1, 3):
    raise ValueError(f"image must have 1 or 3 channels, got {channels}.")
  if image.dtype != jnp.uint8 and not jnp.issubdtype(image.dtype,
                                                     jnp.floating):
    raise ValueError(f"image must be uint8 or floating point, got "
                     f"{image.dtype}.")
  ranges = [
      _jitter_range(brightness, "brightness", center=1, low=0, high=math.inf),
      _jitter_range(contrast, "contrast", center=1, low=0, high=math.inf),
      _jitter_range(saturation, "saturation", center=1, low=0,
                    high=math.inf),
      _jitter_range(hue, "hue", center=0, low=-0.5, high=0.5),
  ]
  if channels == 1:  # torchvision leaves grey images' saturation and hue.
    ranges[_SATURATION] = ranges[_HUE] = None
  if all(r is None for r in ranges):
    return image
  integer = jnp.issubdtype(image.dtype, jnp.integer)
  bound = 255.0 if integer else 1.0
  perm_key, factor_key = jax.random.split(key)
  order = jax.random.permutation(perm_key, 4)
  # A disabled adjustment gets its neutral factor: 1 (blends), 0 (hue).
  neutral = [(1.0, 1.0)] * 3 + [(0.0, 0.0)]
  lo, hi = jnp.array([r or n for r, n in zip(ranges, neutral)],
                     jnp.float32).T
  factors = lo + (hi - lo) * jax.random.uniform(factor_key, (4,))

  # slot[op] is the position of op in the random order. A disabled blend is
  # the identity, so only the enabled ones (static) run, in slot order; hue
  # runs once, after the blends that precede it (each blend runs before and
  # after hue, with factor 1 -- the identity -- where it does not belong:
  # under vmap the order differs per image, and this costs less than four
  # hue conversions).
  slot = jnp.argsort(order)
  enabled = [op for op in (_BRIGHTNESS, _CONTRAST, _SATURATION) if ranges[op]]
  enabled = jnp.array(enabled, jnp.int32)
  blends = enabled[jnp.argsort(slot[enabled])]  # blend ops in order

  # Between steps a uint8 image is kept as uint8: every step ends on an
  # integer in [0, 255], so this is exact and moves a quarter of the bytes.
  carry = jnp.uint8 if image.dtype == jnp.uint8 else jnp.float32

  def run_blends(x, start, stop):
    """Blend steps ``start <= j < stop``, in a loop, not unrolled Python:
    the loop-carried image is stored once per step. Unrolled, XLA:CPU fuses
    every later consumer with the whole chain of steps before it and
    recomputes that chain in each fusion."""
    if not len(blends):
      return x
    def step(j, x, factor):
      return _blend_step(x.astype(jnp.float32), blends[j], factor, bound,
                         integer).astype(carry)
    if integer:
      # Traced bounds: one image (lax.map) runs only its own steps. Integer
      # images have no gradient, which this while loop could not carry.
      return lax.fori_loop(start, stop,
                           lambda j, x: step(j, x, factors[blends[j]]), x)
    # Static bounds (differentiable); the other steps blend with factor 1.
    return lax.fori_loop(0, len(blends), lambda j, x: step(
        j, x, jnp.where((j >= start) & (j < stop), factors[blends[j]], 1.0)),
                         x)

  # Planar [C, H, W]: contiguous channel planes vectorise far better than
  # the strided [..., c] reads of the grey level and HSV conversions.
  x = jnp.moveaxis(image, -1, 0).astype(carry)
  if ranges[_HUE] is None:
    x = run_blends(x, 0, len(blends))
  else:
    before_hue = jnp.sum(slot[enabled] < slot[_HUE])
    x = run_blends(x, 0, before_hue)
    x = _adjust_hue(x.astype(jnp.float32), factors[_HUE],
                    integer).astype(carry)
    x = run_blends(x, before_hue, len(blends))
  return jnp.moveaxis(x, 0, -1).astype(image.dtype)


# ------------------------------------------------------ letterbox and flips


def letterbox_geometry(height: int, width: int,
                       size: int | Sequence[int]):
  """YOLOv5 ``letterbox`` layout: resized shape and padding (static ints).

  The image is scaled by ``r = min(H'/H, W'/W)`` to
  ``(round(H r), round(W r))`` and padded by ``round(d - 0.1)`` before and
  ``round(d + 0.1)`` after, ``d`` being half the leftover, per axis.

  Args:
    height: the image's height.
    width: the image's width.
    size: the output side, or ``(height, width)``.

  Returns:
    ``(new_h, new_w, top, bottom, left, right)``.
  """
  out_h, out_w = int_pair(size, "size", minimum=1)
  if height < 1 or width < 1:
    raise ValueError(f"the image must be at least 1x1 pixels, got "
                     f"{height}x{width}.")
  r = min(out_h / height, out_w / width)
  new_h, new_w = int(round(height * r)), int(round(width * r))
  if new_h < 1 or new_w < 1:
    raise ValueError(
        f"size={size!r} resizes the {height}x{width} image to "
        f"{new_h}x{new_w}; each side must keep at least one pixel.")
  dh, dw = (out_h - new_h) / 2, (out_w - new_w) / 2
  top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
  left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
  return new_h, new_w, top, bottom, left, right


def letterbox(image: ArrayLike, boxes: ArrayLike, mask: ArrayLike, *,
              size: int | Sequence[int], fill: float = 114) -> Augmented:
  """Resizes keeping the aspect ratio, then pads to ``size`` (YOLOv5).

  The layout is YOLOv5's ``letterbox`` (:func:`letterbox_geometry`); the
  resize is bilinear with half-pixel centres and no antialiasing, as
  ``cv2.resize(..., INTER_LINEAR)``. Boxes are mapped by the exact resize
  factors ``new_w / W``, ``new_h / H`` and the integer padding actually
  applied to the image (YOLOv5 uses ``r`` and the fractional half padding,
  which can shift its boxes half a pixel from the image).

  Args:
    image: ``[H, W, C]`` image.
    boxes: ``[M, 4]`` xyxy pixel boxes.
    mask: ``[M]`` bool.
    size: output ``(H', W')`` or an int (static).
    fill: padding value.

  Returns:
    ``Augmented(image [H', W', C], boxes [M, 4], mask [M])``; boxes in
    their dtype (computed in float32 at least), masked-out ones zeros.

  References:
    Ultralytics YOLOv5 ``utils/augmentations.py: letterbox``.
  """
  image = _as_image(image)
  height, width, channels = image.shape
  boxes, mask = _as_box_set(boxes, mask)
  new_h, new_w, top, bottom, left, right = letterbox_geometry(
      height, width, size)
  resized = image
  if (new_h, new_w) != (height, width):
    resized = jax.image.resize(image.astype(jnp.float32),
                               (new_h, new_w, channels), "linear",
                               antialias=False)
    resized = _finish(resized, image.dtype)
  padded = jnp.pad(resized, ((top, bottom), (left, right), (0, 0)),
                   constant_values=_fill_value(fill, image.dtype))
  # float32 at least: half-precision factors and products round twice.
  compute = _float_dtype(boxes.dtype)
  factors = jnp.array([new_w / width, new_h / height] * 2, compute)
  offsets = jnp.array([left, top] * 2, compute)
  moved = (boxes.astype(compute) * factors + offsets).astype(boxes.dtype)
  return Augmented(image=padded, boxes=_masked(moved, mask), mask=mask)


def _flip_boxes(boxes: ArrayLike, mask: ArrayLike | None, axis: int,
                extent: int) -> jax.Array:
  """``v -> extent - v`` on the x (``axis=0``) or y (``axis=1``) corners;
  padding rows (masked out, or all zero when ``mask`` is None) stay zero."""
  boxes, given = _as_box_set(boxes, mask)
  if mask is None:  # The module's padding rows are zero boxes.
    given = jnp.any(boxes != 0, axis=-1)
  lo, hi = boxes[:, axis], boxes[:, axis + 2]
  flipped = boxes.at[:, axis].set(extent - hi).at[:, axis + 2].set(extent - lo)
  return _masked(flipped, given)


def hflip(image: ArrayLike, boxes: ArrayLike, *,
          mask: ArrayLike | None = None) -> tuple[jax.Array, jax.Array]:
  """Flips left-right: ``x -> W - x`` for boxes (``np.fliplr`` + YOLOv5).

  Padding rows stay padding: boxes whose ``mask`` is False come back as
  zero boxes, as from the other functions here; without a mask, all-zero
  rows (that padding) are left as zeros rather than moved to ``x = W``.

  Args:
    image: ``[H, W, C]``.
    boxes: ``[M, 4]`` xyxy pixel boxes.
    mask: optional ``[M]`` bool, True for real boxes (the mask itself is
      unchanged by a flip).

  Returns:
    ``(image [H, W, C], boxes [M, 4])``.

  >>> hflip(jnp.zeros((2, 10, 1)), jnp.array([[1., 0., 3., 2.]]))[1]
  Array([[7., 0., 9., 2.]], dtype=float32)
  """
  image = _as_image(image)
  return image[:, ::-1], _flip_boxes(boxes, mask, 0, image.shape[1])


def vflip(image: ArrayLike, boxes: ArrayLike, *,
          mask: ArrayLike | None = None) -> tuple[jax.Array, jax.Array]:
  """Flips top-bottom: ``y -> H - y`` for boxes (``np.flipud`` + YOLOv5).

  Padding rows stay zero boxes, as in :func:`hflip`.

  Args:
    image: ``[H, W, C]``.
    boxes: ``[M, 4]`` xyxy pixel boxes.
    mask: optional ``[M]`` bool, True for real boxes.

  Returns:
    ``(image [H, W, C], boxes [M, 4])``.
  """
  image = _as_image(image)
  return image[::-1], _flip_boxes(boxes, mask, 1, image.shape[0])
