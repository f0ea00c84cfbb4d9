"""COCO bbox evaluation: jaxdl vs pycocotools vs faster-coco-eval.

Run: ``python -m experiments.bench_detection`` ->
``experiments/results/detection.md`` (``detection_<platform>.md`` on an
accelerator).

The same COCO-like data for every peer (``tests.reference.detection.
synthetic_coco``): 80 categories with COCO's ids, ~7 ground truths per image
(3% crowd, log-uniform sizes so all three area ranges are populated), 100
detections per image (jittered ground truths scored higher than random
boxes), scores rounded to 2 decimals (many ties).

Timed, in one process:
* jaxdl: ``coco_evaluate(gt, dets)`` from the dicts, all of it (validation,
  packing, jitted matching and accumulation, summary).
* pycocotools: ``COCOeval`` evaluate + accumulate + summarize on
  ``COCO`` / ``loadRes`` objects built beforehand (their construction, about
  as long as jaxdl's host parsing, is not counted).
* faster-coco-eval: the same three calls of ``COCOeval_faster``.

pycocotools runs once per size (minutes at 5000 images), faster-coco-eval
once at 5000 images; otherwise the median of ``--repeats`` runs. jaxdl's
compile time is its first call after ``jax.clear_caches()`` minus a steady
call.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import io
import logging

import jax
import numpy as np

from experiments import benchutil
from jaxdl import detection
from tests.reference.detection import synthetic_coco

SIZES = (500, 5000)
NUM_CATEGORIES = 80
DETS_PER_IMAGE = 100


def make_data(num_images: int):
  return synthetic_coco(
      np.random.default_rng(num_images), num_images=num_images,
      num_categories=NUM_CATEGORIES, dets_per_image=DETS_PER_IMAGE,
      crowded_image=False, boundary_rate=0.02, empty_gt_rate=0.02,
      empty_det_rate=0.0)


def pycocotools_runner(gt, dets):
  # pylint: disable=g-import-not-at-top
  from pycocotools.coco import COCO
  from pycocotools.cocoeval import COCOeval
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt = COCO()
    coco_gt.dataset = copy.deepcopy(gt)
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes(copy.deepcopy(dets))

  def run():
    with contextlib.redirect_stdout(io.StringIO()):
      evaluator = COCOeval(coco_gt, coco_dt, "bbox")
      evaluator.evaluate()
      evaluator.accumulate()
      evaluator.summarize()
    return np.asarray(evaluator.stats[:12])
  return run


def faster_coco_eval_runner(gt, dets):
  # pylint: disable=g-import-not-at-top
  from faster_coco_eval import COCO, COCOeval_faster
  logging.getLogger("faster_coco_eval").setLevel(logging.ERROR)
  coco_gt = COCO(copy.deepcopy(gt))
  coco_dt = coco_gt.loadRes(copy.deepcopy(dets))

  def run():
    evaluator = COCOeval_faster(coco_gt, coco_dt, "bbox",
                                print_function=lambda *args: None)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return np.asarray(evaluator.stats[:12])
  return run


def run(repeats: int, sizes=SIZES) -> tuple[str, str, float]:
  headers = ["images", "detections", "jaxdl", "pycocotools",
             "faster-coco-eval", "pycocotools / jaxdl",
             "faster-coco-eval / jaxdl", "jaxdl compile",
             "max |jaxdl - pycocotools|", "max |jaxdl - faster-coco-eval|"]
  rows, stats_rows, worst = [], [], 0.0
  for num_images in sizes:
    gt, dets = make_data(num_images)
    jaxdl_fn = functools.partial(detection.coco_evaluate, gt, dets)
    jax.clear_caches()
    first = benchutil.first_call_time(jaxdl_fn)
    t_jaxdl = benchutil.median_time(jaxdl_fn, repeats=repeats, warmup=0)
    fce_fn = faster_coco_eval_runner(gt, dets)
    # One run at the largest size keeps the script within ~6 minutes.
    t_fce = benchutil.median_time(
        fce_fn, repeats=repeats if num_images < max(sizes) else 1)
    pyco_fn = pycocotools_runner(gt, dets)
    t_pyco = benchutil.median_time(pyco_fn, repeats=1, warmup=0)
    ours, pyco, fce = jaxdl_fn(), pyco_fn(), fce_fn()
    rows.append([
        num_images, len(dets), benchutil.format_ms(t_jaxdl),
        benchutil.format_ms(t_pyco), benchutil.format_ms(t_fce),
        f"{t_pyco / t_jaxdl:.1f}x", f"{t_fce / t_jaxdl:.1f}x",
        benchutil.format_ms(max(first - t_jaxdl, 0.0)),
        f"{np.max(np.abs(ours - pyco)):.1e}",
        f"{np.max(np.abs(ours - fce)):.1e}"])
    stats_rows.append([num_images] + [f"{v:.4f}" for v in ours])
    worst = max(worst, float(np.max(np.abs(ours - pyco))))
  stats_headers = ["images", "AP", "AP50", "AP75", "APs", "APm", "APl",
                   "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
  return (benchutil.markdown_table(headers, rows),
          benchutil.markdown_table(stats_headers, stats_rows), worst)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument(
      "--sizes", default=",".join(map(str, SIZES)),
      type=lambda text: [int(n) for n in text.split(",")],
      help="comma-separated numbers of images")
  args = parser.parse_args()
  timing, stats, worst = run(args.repeats, args.sizes)
  smaller = ", ".join(map(str, sorted(args.sizes)[:-1]))
  platform = jax.devices()[0].platform
  body = (
      f"COCO bbox evaluation (the 12 `COCOeval.stats`), {NUM_CATEGORIES} "
      f"categories, {DETS_PER_IMAGE} detections per image, COCO-like "
      "synthetic data (see the script). Wall time of one evaluation: jaxdl "
      "from the dicts, pycocotools (one run) and faster-coco-eval "
      "evaluate + accumulate + summarize on prebuilt COCO objects; jaxdl "
      f"median of {args.repeats}, faster-coco-eval median of {args.repeats} "
      f"at {smaller or '-'} images and one run at {max(args.sizes)}. "
      "Ratios > 1 mean "
      "jaxdl is faster. jaxdl compile time is reported apart (first call "
      "on a cleared cache minus a steady call).\n\n" + timing +
      f"\n\njaxdl's stats (at most {worst:.1e} from pycocotools' in any "
      f"stat):\n\n" +
      stats)
  benchutil.write_and_print(
      benchutil.platform_name("detection"),
      f"COCO evaluation benchmark ({platform})", body,
      benchutil.environment(extra_packages=("pycocotools",
                                            "faster-coco-eval")))


if __name__ == "__main__":
  main()
