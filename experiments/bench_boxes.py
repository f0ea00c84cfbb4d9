"""Pairwise IoU / CIoU: jaxdl vs the notes' NumPy formulas vs torch CPU.

Run: ``python -m experiments.bench_boxes`` -> ``experiments/results/boxes.md``
(or ``boxes_<platform>.md`` on an accelerator).

Peers, float32, the same boxes, the same formula (:func:`notes_bbox_iou`,
the notes' vectorised YOLOv5 ``bbox_iou`` with eps as jaxdl) broadcast over
``[N, 1, 4] x [1, M, 4]``:
* NumPy;
* torch, with 1 thread and with its default number, the faster counting
  (on a shared 2-core machine spinning OpenMP threads can be much slower);
  torchvision's compiled ops are not available for this torch build.
The contenders of a row are timed in turns (:func:`benchutil.timed_in_turns`).
"""

from __future__ import annotations

import argparse
import math
import types

import jax
import numpy as np

from experiments import benchutil
from jaxdl import boxes
from tests.reference import boxes as ref

SIZES = (1000, 4000)
VARIANTS = ("iou", "ciou")
# Seconds each row's contenders share (see benchutil.timed_in_turns).
BUDGET = 6.0


def notes_bbox_iou(box1, box2, variant: str, xp, eps: float = 1e-7):
  """The notes' YOLOv5 ``bbox_iou`` (xyxy, broadcasting) written against
  ``xp``: ``minimum``, ``maximum``, ``clip0`` (clamp below at 0), ``atan2``
  and ``unbind`` (split the last axis) of NumPy or torch."""
  b1_x1, b1_y1, b1_x2, b1_y2 = xp.unbind(box1)
  b2_x1, b2_y1, b2_x2, b2_y2 = xp.unbind(box2)
  inter = (xp.clip0(xp.minimum(b1_x2, b2_x2) - xp.maximum(b1_x1, b2_x1)) *
           xp.clip0(xp.minimum(b1_y2, b2_y2) - xp.maximum(b1_y1, b2_y1)))
  w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1
  w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1
  union = w1 * h1 + w2 * h2 - inter
  iou = inter / (union + eps)
  if variant == "iou":
    return iou
  cw = xp.maximum(b1_x2, b2_x2) - xp.minimum(b1_x1, b2_x1)
  ch = xp.maximum(b1_y2, b2_y2) - xp.minimum(b1_y1, b2_y1)
  c2 = cw ** 2 + ch ** 2 + eps
  rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 +
          (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
  v = (4 / math.pi ** 2) * (xp.atan2(w2, h2) - xp.atan2(w1, h1)) ** 2
  alpha = v / (v - iou + (1 + eps))
  return iou - (rho2 / c2 + v * alpha)


NUMPY = types.SimpleNamespace(
    minimum=np.minimum, maximum=np.maximum, atan2=np.arctan2,
    clip0=lambda x: np.clip(x, 0, None),
    unbind=lambda x: np.moveaxis(x, -1, 0))


def _torch_ops():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None, None
  ops = types.SimpleNamespace(
      minimum=torch.minimum, maximum=torch.maximum, atan2=torch.atan2,
      clip0=lambda x: x.clamp(0), unbind=lambda x: x.unbind(-1))
  return torch, ops


def _with_threads(torch, threads, fn):
  """``fn`` run with ``threads`` torch threads (restored afterwards)."""
  def call():
    default = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
      return fn()
    finally:
      torch.set_num_threads(default)
  return call


def run() -> str:
  torch, torch_ops = _torch_ops()
  rng = np.random.default_rng(0)
  headers = ["N x M", "variant", "jaxdl (jit)", "NumPy (notes)",
             "torch CPU (faster of 1 / default threads)", "NumPy / jaxdl",
             "torch / jaxdl", "jaxdl compile", "max |jaxdl - NumPy|"]
  rows = []
  for n in SIZES:
    a = ref.random_boxes(rng, n, scale=640.0)
    b = ref.random_boxes(rng, n, scale=640.0)
    a_dev, b_dev = jax.device_put(a), jax.device_put(b)
    for variant in VARIANTS:
      fn = jax.jit(lambda x, y, v=variant: boxes.pairwise_iou(x, y, variant=v))
      compile_s = benchutil.compile_time(lambda: fn(a_dev, b_dev))
      numpy_fn = lambda v=variant: notes_bbox_iou(a[:, None], b[None], v,
                                                  NUMPY)
      diff = float(np.max(np.abs(np.asarray(fn(a_dev, b_dev)) - numpy_fn())))
      contenders = [lambda: fn(a_dev, b_dev), numpy_fn]
      if torch is not None:
        ta, tb = torch.from_numpy(a)[:, None], torch.from_numpy(b)[None]
        torch_fn = lambda v=variant: notes_bbox_iou(ta, tb, v, torch_ops)
        np.testing.assert_allclose(torch_fn().numpy(), numpy_fn(),
                                   rtol=1e-5, atol=1e-5)
        contenders += [_with_threads(torch, threads, torch_fn) for threads in
                       sorted({1, torch.get_num_threads()})]
      t_jax, t_np, *t_torch = benchutil.timed_in_turns(*contenders,
                                                       budget=BUDGET)
      if t_torch:
        torch_cells = [benchutil.format_ms(min(t_torch)),
                       f"{min(t_torch) / t_jax:.1f}x"]
      else:
        torch_cells = ["not installed", "-"]
      rows.append([f"{n} x {n}", variant, benchutil.format_ms(t_jax),
                   benchutil.format_ms(t_np), torch_cells[0],
                   f"{t_np / t_jax:.1f}x", torch_cells[1],
                   benchutil.format_ms(compile_s), f"{diff:.1e}"])
  return benchutil.markdown_table(headers, rows)


def main() -> None:
  argparse.ArgumentParser(description=__doc__).parse_args()
  table = run()
  platform = jax.devices()[0].platform
  body = ("Pairwise IoU and CIoU, float32, boxes with corners uniform in "
          "[0, 640) and sides uniform in [0.5, 320). "
          "Median wall time per call after compilation; the contenders of "
          "a row take turns over 3 rounds and each one's fastest round "
          "counts. NumPy and torch run the same formula, the notes' "
          "(YOLOv5's) bbox_iou; torch's figure is the faster of 1 thread and "
          "its default. Ratios > 1 mean jaxdl is faster.\n\n"
          + table)
  benchutil.write_and_print(
      benchutil.platform_name("boxes"), f"Pairwise IoU benchmark ({platform})",
      body,
      benchutil.environment(extra_packages=("torch",)))


if __name__ == "__main__":
  main()
