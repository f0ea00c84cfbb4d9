"""Float64 NumPy oracles for jaxdl.augment.

* ``load_mosaic``: the notes' YOLOv5 ``load_mosaic`` ("Mosaic" in
  003_8c9233870645df5b.txt) without the ``random_perspective`` step, with the
  dataset replaced by arguments: four ``[S, S, C]`` images, their labels as
  ``[n, 5]`` (class, normalised cx, cy, w, h) and a fixed centre.
* ``yolov5_matrix``, ``warp_boxes``, ``box_candidates``: YOLOv5's
  ``random_perspective`` geometry for given draws; ``warp_image`` is the
  bilinear, constant-border warp that ``cv2.warpPerspective`` computes (in
  exact arithmetic rather than OpenCV's 1/32-pixel fixed point).
* ``adjust_*`` and ``color_jitter``: torchvision's tensor ``ColorJitter``
  definitions (``transforms/_functional_tensor.py``), written on HWC arrays:
  uint8 intermediate results truncate as torchvision's ``.to(uint8)`` does.
* ``letterbox_geometry``, ``resize_bilinear``, ``letterbox``: YOLOv5's
  ``letterbox`` layout and ``cv2.resize(INTER_LINEAR)`` (half-pixel centres,
  edge clamp) in float64.
"""

from __future__ import annotations

import math

import numpy as np

# --------------------------------------------------------------- mosaic


def xywhn2xyxy(x: np.ndarray, w: float, h: float, padw: float = 0.0,
               padh: float = 0.0) -> np.ndarray:
  """YOLOv5: normalised cx, cy, w, h -> pixel x1, y1, x2, y2 (+ padding)."""
  y = np.array(x, np.float64, copy=True)
  y[:, 0] = w * (x[:, 0] - x[:, 2] / 2) + padw
  y[:, 1] = h * (x[:, 1] - x[:, 3] / 2) + padh
  y[:, 2] = w * (x[:, 0] + x[:, 2] / 2) + padw
  y[:, 3] = h * (x[:, 1] + x[:, 3] / 2) + padh
  return y


def xyxy2xywhn(x: np.ndarray, w: float, h: float) -> np.ndarray:
  """Pixel x1, y1, x2, y2 -> normalised cx, cy, w, h (inverse of above)."""
  x = np.asarray(x, np.float64)
  return np.stack([(x[:, 0] + x[:, 2]) / 2 / w, (x[:, 1] + x[:, 3]) / 2 / h,
                   (x[:, 2] - x[:, 0]) / w, (x[:, 3] - x[:, 1]) / h], -1)


def load_mosaic(images, labels, xc: int, yc: int):
  """The notes' ``load_mosaic`` for a fixed centre, without the warp.

  Args:
    images: four ``[S, S, C]`` uint8 images (the notes' ``load_image``
      output; here every tile is already ``S x S``).
    labels: four ``[n_i, 5]`` arrays (class, normalised cx, cy, w, h).
    xc, yc: the mosaic centre in pixels.

  Returns:
    ``(img4 [2S, 2S, C], labels4 [sum n_i, 5])`` with pixel xyxy boxes,
    clipped to ``[0, 2S]`` as in the notes.
  """
  s = images[0].shape[0]
  labels4 = []
  img4 = None
  for i, img in enumerate(images):
    h, w = img.shape[:2]
    if i == 0:  # top left
      img4 = np.full((s * 2, s * 2, img.shape[2]), 114, dtype=np.uint8)
      x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
      x1b, y1b, x2b, y2b = w - (x2a - x1a), h - (y2a - y1a), w, h
    elif i == 1:  # top right
      x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, s * 2), yc
      x1b, y1b, x2b, y2b = 0, h - (y2a - y1a), min(w, x2a - x1a), h
    elif i == 2:  # bottom left
      x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(s * 2, yc + h)
      x1b, y1b, x2b, y2b = w - (x2a - x1a), 0, w, min(y2a - y1a, h)
    else:  # bottom right
      x1a, y1a, x2a, y2a = xc, yc, min(xc + w, s * 2), min(s * 2, yc + h)
      x1b, y1b, x2b, y2b = 0, 0, min(w, x2a - x1a), min(y2a - y1a, h)
    img4[y1a:y2a, x1a:x2a] = img[y1b:y2b, x1b:x2b]
    padw = x1a - x1b
    padh = y1a - y1b
    lab = np.array(labels[i], np.float64, copy=True)
    if lab.size:
      lab[:, 1:] = xywhn2xyxy(lab[:, 1:], w, h, padw, padh)
    labels4.append(lab)
  labels4 = np.concatenate(labels4, 0)
  np.clip(labels4[:, 1:], 0, 2 * s, out=labels4[:, 1:])
  return img4, labels4


# ------------------------------------------------------- random perspective


def yolov5_matrix(height: int, width: int, *, angle: float = 0.0,
                  scale: float = 1.0, shear_x: float = 0.0,
                  shear_y: float = 0.0, tx: float = 0.5, ty: float = 0.5,
                  px: float = 0.0, py: float = 0.0,
                  border: tuple[int, int] = (0, 0)) -> np.ndarray:
  """YOLOv5 ``M = T @ S @ R @ P @ C`` for given draws.

  ``angle`` and shears in degrees; ``tx``, ``ty`` fractions of the output.
  """
  out_h, out_w = height + 2 * border[0], width + 2 * border[1]
  c = np.eye(3)
  c[0, 2], c[1, 2] = -width / 2, -height / 2
  p = np.eye(3)
  p[2, 0], p[2, 1] = px, py
  r = np.eye(3)
  a, b = scale * math.cos(math.radians(angle)), scale * math.sin(
      math.radians(angle))
  r[:2] = [[a, b, 0], [-b, a, 0]]  # cv2.getRotationMatrix2D((0, 0), ...)
  s = np.eye(3)
  s[0, 1] = math.tan(math.radians(shear_x))
  s[1, 0] = math.tan(math.radians(shear_y))
  t = np.eye(3)
  t[0, 2], t[1, 2] = tx * out_w, ty * out_h
  return t @ s @ r @ p @ c


def warp_image(img: np.ndarray, matrix: np.ndarray, out_hw, fill=114.0):
  """Bilinear inverse-map warp, constant border; float64 ``[H', W', C]``."""
  img = np.asarray(img, np.float64)
  h, w = img.shape[:2]
  inv = np.linalg.inv(np.asarray(matrix, np.float64))
  ys, xs = np.mgrid[0:out_hw[0], 0:out_hw[1]].astype(np.float64)
  src = np.einsum("ij,jhw->ihw", inv, np.stack([xs, ys, np.ones_like(xs)]))
  sx, sy = src[0] / src[2], src[1] / src[2]
  x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
  fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]

  def tap(yy, xx):
    inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
    vals = img[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
    return np.where(inside[..., None], vals, fill)

  return ((tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx) * (1 - fy) +
          (tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx) * fy)


def box_candidates(box1, box2, wh_thr=2.0, ar_thr=100.0, area_thr=0.1,
                   eps=1e-16):
  """YOLOv5 ``box_candidates`` on ``[n, 4]`` xyxy boxes (before, after)."""
  box1, box2 = np.asarray(box1, np.float64).T, np.asarray(box2,
                                                          np.float64).T
  w1, h1 = box1[2] - box1[0], box1[3] - box1[1]
  w2, h2 = box2[2] - box2[0], box2[3] - box2[1]
  ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
  return ((w2 > wh_thr) & (h2 > wh_thr) &
          (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr))


def warp_boxes(boxes, matrix, out_hw, scale=1.0):
  """YOLOv5's box branch of ``random_perspective``: new boxes and keep."""
  boxes = np.asarray(boxes, np.float64)
  n = len(boxes)
  xy = np.ones((n * 4, 3))
  xy[:, :2] = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)
  xy = xy @ np.asarray(matrix, np.float64).T
  xy = (xy[:, :2] / xy[:, 2:3]).reshape(n, 8)
  x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
  new = np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], -1)
  new[:, [0, 2]] = new[:, [0, 2]].clip(0, out_hw[1])
  new[:, [1, 3]] = new[:, [1, 3]].clip(0, out_hw[0])
  return new, box_candidates(boxes * scale, new)


# ------------------------------------------------------------ color jitter


def _finish(x: np.ndarray, integer: bool) -> np.ndarray:
  return np.trunc(x) if integer else x


def rgb_to_grayscale(img: np.ndarray, integer: bool) -> np.ndarray:
  """torchvision ``rgb_to_grayscale`` ``[H, W, 3] -> [H, W, 1]``."""
  if img.shape[-1] == 1:
    return img
  gray = 0.2989 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
  return _finish(gray, integer)[..., None]


def _blend(img1, img2, ratio, integer):
  bound = 255.0 if integer else 1.0
  return _finish(np.clip(ratio * img1 + (1.0 - ratio) * img2, 0, bound),
                 integer)


def adjust_brightness(img, factor, integer):
  return _blend(img, np.zeros_like(img), factor, integer)


def adjust_contrast(img, factor, integer):
  mean = np.mean(rgb_to_grayscale(img, integer))
  return _blend(img, mean, factor, integer)


def adjust_saturation(img, factor, integer):
  if img.shape[-1] == 1:
    return img
  return _blend(img, rgb_to_grayscale(img, integer), factor, integer)


def rgb2hsv(img):
  r, g, b = img[..., 0], img[..., 1], img[..., 2]
  maxc, minc = img.max(-1), img.min(-1)
  eqc = maxc == minc
  cr = maxc - minc
  s = cr / np.where(eqc, 1.0, maxc)
  cr_divisor = np.where(eqc, 1.0, cr)
  rc, gc, bc = (maxc - r) / cr_divisor, (maxc - g) / cr_divisor, (
      maxc - b) / cr_divisor
  hr = (maxc == r) * (bc - gc)
  hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
  hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
  h = np.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
  return h, s, maxc


def hsv2rgb(h, s, v):
  i = np.floor(h * 6.0)
  f = h * 6.0 - i
  i = i.astype(np.int64) % 6
  p = np.clip(v * (1.0 - s), 0.0, 1.0)
  q = np.clip(v * (1.0 - s * f), 0.0, 1.0)
  t = np.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
  table = np.stack([np.stack([v, q, p, p, t, v]), np.stack([t, v, v, q, p, p]),
                    np.stack([p, p, t, v, v, q])])  # [3, 6, ...]
  return np.stack([np.take_along_axis(table[c], i[None], 0)[0]
                   for c in range(3)], -1)


def adjust_hue(img, factor, integer):
  if img.shape[-1] == 1:
    return img
  x = img / 255.0 if integer else img
  h, s, v = rgb2hsv(x)
  out = hsv2rgb((h + factor) % 1.0, s, v)
  return np.trunc(out * (255.0 + 1.0 - 1e-3)) if integer else out


ADJUST = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(img, order, factors, dtype=np.float64):
  """torchvision ``ColorJitter.forward`` for a given order and factors.

  ``order``: op indices (0 brightness, 1 contrast, 2 saturation, 3 hue);
  ``factors``: the four factors (an op whose factor is None is skipped).
  ``dtype=np.float32`` reproduces torchvision's float32 arithmetic, which
  decides where uint8 values truncate (e.g. a grey level of exactly 100 in
  decimal is 99.99999 in float32 and truncates to 99).
  """
  integer = np.issubdtype(np.asarray(img).dtype, np.integer)
  x = np.asarray(img, dtype)
  for op in order:
    if factors[op] is not None:
      x = ADJUST[op](x, factors[op], integer)
  return x


# ---------------------------------------------------------------- letterbox


def letterbox_geometry(h, w, new_shape):
  """YOLOv5 ``letterbox`` (auto=False, scaleup=True) sizes and padding."""
  r = min(new_shape[0] / h, new_shape[1] / w)
  new_unpad = int(round(w * r)), int(round(h * r))
  dw, dh = (new_shape[1] - new_unpad[0]) / 2, (new_shape[0] - new_unpad[1]) / 2
  top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
  left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
  return new_unpad[1], new_unpad[0], top, bottom, left, right


def resize_bilinear(img, out_h, out_w):
  """``cv2.resize(INTER_LINEAR)`` in float64: half-pixel, edge clamp."""
  img = np.asarray(img, np.float64)
  h, w = img.shape[:2]

  def taps(n_out, n_in):
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0,
                  n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0

  y0, y1, fy = taps(out_h, h)
  x0, x1, fx = taps(out_w, w)
  fy, fx = fy[:, None, None], fx[None, :, None]
  rows0 = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
  rows1 = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
  return rows0 * (1 - fy) + rows1 * fy


def letterbox(img, boxes, new_shape, fill=114.0):
  """Letterboxed float64 image and boxes moved with the image content."""
  h, w = img.shape[:2]
  nh, nw, top, bottom, left, right = letterbox_geometry(h, w, new_shape)
  resized = resize_bilinear(img, nh, nw) if (nh, nw) != (h, w) else (
      np.asarray(img, np.float64))
  out = np.pad(resized, ((top, bottom), (left, right), (0, 0)),
               constant_values=fill)
  boxes = np.asarray(boxes, np.float64) * [nw / w, nh / h, nw / w, nh / h]
  return out, boxes + [left, top, left, top]
