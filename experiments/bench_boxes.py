"""Pairwise IoU / CIoU: jaxdl vs the notes' NumPy formulas vs torch CPU.

Run: ``python -m experiments.bench_boxes`` -> ``experiments/results/boxes.md``
(or ``boxes_<platform>.md`` on an accelerator).

Peers, float32, the same boxes:
* NumPy: the notes' vectorised YOLOv5 ``bbox_iou`` (corrected,
  ``tests/reference/boxes.bbox_iou``) broadcast over ``[N, 1, 4] x [1, M, 4]``.
* torch: the notes' YOLOv5 ``bbox_iou`` in torch, broadcast the same way
  (torchvision's compiled ops are not available for this torch build).
"""

from __future__ import annotations

import argparse
import math

import jax
import numpy as np

from experiments import benchutil
from jaxdl import boxes
from tests.reference import boxes as ref

SIZES = (1000, 4000)
VARIANTS = ("iou", "ciou")
# Every peer repeats for at least this long: a median of a few sub-ms calls
# is dominated by allocation noise.
MIN_TIME = 1.0


def torch_bbox_iou(box1, box2, variant: str, eps: float = 1e-7):
  """The notes' YOLOv5 ``bbox_iou`` in torch, broadcasting, eps as jaxdl."""
  import torch  # pylint: disable=g-import-not-at-top

  b1_x1, b1_y1, b1_x2, b1_y2 = box1.unbind(-1)
  b2_x1, b2_y1, b2_x2, b2_y2 = box2.unbind(-1)
  inter = ((torch.min(b1_x2, b2_x2) - torch.max(b1_x1, b2_x1)).clamp(0) *
           (torch.min(b1_y2, b2_y2) - torch.max(b1_y1, b2_y1)).clamp(0))
  w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1
  w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1
  union = w1 * h1 + w2 * h2 - inter
  iou = inter / (union + eps)
  if variant == "iou":
    return iou
  cw = torch.max(b1_x2, b2_x2) - torch.min(b1_x1, b2_x1)
  ch = torch.max(b1_y2, b2_y2) - torch.min(b1_y1, b2_y1)
  c2 = cw ** 2 + ch ** 2 + eps
  rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 +
          (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
  v = (4 / math.pi ** 2) * (torch.atan2(w2, h2) - torch.atan2(w1, h1)) ** 2
  with torch.no_grad():
    alpha = v / (v - iou + (1 + eps))
  return iou - (rho2 / c2 + v * alpha)


def _torch_peer():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return torch


def run(repeats: int) -> str:
  torch = _torch_peer()
  rng = np.random.default_rng(0)
  headers = ["N x M", "variant", "jaxdl (jit)", "NumPy (notes)", "torch CPU",
             "NumPy / jaxdl", "torch / jaxdl", "jaxdl compile",
             "max |jaxdl - NumPy|"]
  rows = []
  for n in SIZES:
    a = ref.random_boxes(rng, n, scale=640.0)
    b = ref.random_boxes(rng, n, scale=640.0)
    a_dev, b_dev = jax.device_put(a), jax.device_put(b)
    for variant in VARIANTS:
      fn = jax.jit(lambda x, y, v=variant: boxes.pairwise_iou(x, y, variant=v))
      compile_s = benchutil.compile_time(lambda: fn(a_dev, b_dev))
      t_jax = benchutil.median_time(lambda: fn(a_dev, b_dev), repeats=repeats,
                                    min_time=MIN_TIME)
      numpy_fn = lambda: ref.bbox_iou(a[:, None], b[None], variant=variant)
      t_np = benchutil.median_time(numpy_fn, repeats=max(3, repeats // 2),
                                   min_time=MIN_TIME)
      diff = float(np.max(np.abs(np.asarray(fn(a_dev, b_dev)) - numpy_fn())))
      if torch is not None:
        ta, tb = torch.from_numpy(a)[:, None], torch.from_numpy(b)[None]
        t_torch = benchutil.median_time(
            lambda: torch_bbox_iou(ta, tb, variant), repeats=repeats,
            min_time=MIN_TIME)
        torch_cells = [benchutil.format_ms(t_torch), f"{t_torch / t_jax:.1f}x"]
      else:
        torch_cells = ["not installed", "-"]
      rows.append([f"{n} x {n}", variant, benchutil.format_ms(t_jax),
                   benchutil.format_ms(t_np), torch_cells[0],
                   f"{t_np / t_jax:.1f}x", torch_cells[1],
                   benchutil.format_ms(compile_s), f"{diff:.1e}"])
  return benchutil.markdown_table(headers, rows)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--repeats", type=int, default=9)
  args = parser.parse_args()
  table = run(args.repeats)
  platform = jax.devices()[0].platform
  body = ("Pairwise IoU and CIoU, float32, boxes with corners uniform in "
          "[0, 640) and sides uniform in [0.5, 320). "
          "Median wall time after compilation (each peer repeated for at "
          f"least {MIN_TIME:g} s); ratios > 1 mean jaxdl is faster.\n\n"
          + table)
  benchutil.write_and_print(
      benchutil.platform_name("boxes"), f"Pairwise IoU benchmark ({platform})",
      body,
      benchutil.environment(extra_packages=("torch",)))


if __name__ == "__main__":
  main()
