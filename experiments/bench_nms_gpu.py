"""Benchmark on a CUDA GPU: jaxdl's ``nms`` vs ``torchvision.ops.nms``.

The GPU half of the NMS benchmark (``experiments/bench_nms.py`` is the CPU
half): the same uniform and clustered boxes, float32, IoU threshold 0.5,
score threshold 0, N = 1k to 100k. jaxdl's jitted ``nms`` runs on JAX's
first GPU and torchvision's CUDA NMS on PyTorch's first GPU (the same one on
a one-GPU machine). Inputs are on the GPU before the timing; every jaxdl call
ends with ``block_until_ready`` and every torchvision call with
``torch.cuda.synchronize()``. Also: ``jax.vmap(nms)`` over 16 images of 5k
boxes against 16 torchvision calls and against one
``torchvision.ops.batched_nms`` call with the image as the category (the
usual way to batch it), and jaxdl's tile size on the GPU.

Run ``python -m experiments.bench_nms_gpu [--sizes 1000,5000]`` where JAX and
PyTorch both see a CUDA GPU and torchvision is installed (OpenCV is not
needed); writes ``experiments/results/nms_gpu.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from experiments import benchutil
from experiments.bench_nms import (IOU_THRESHOLD, SIZES, compare_tile_sizes,
                                   jaxdl_fn, kept_indices, make_inputs)
from jaxdl import nms

GPU_TILE_SIZES = (128, 1024, 2048, 4096, 8192)
VMAP_BATCH, VMAP_BOXES = 16, 5_000
_SCRIPT = "experiments.bench_nms_gpu"


def synchronized(torch, fn: Callable[[], Any]) -> Callable[[], Any]:
  """``fn`` followed by ``torch.cuda.synchronize()``: PyTorch returns before
  the GPU is done, as JAX does before ``block_until_ready``."""

  def run():
    out = fn()
    torch.cuda.synchronize()
    return out

  return run


def agreement(kept: np.ndarray, reference: np.ndarray) -> str:
  """'yes' for equal index lists, else how they differ. torchvision sorts
  scores with CUDA's unstable sort, so tied scores may come in another
  order."""
  if np.array_equal(kept, reference):
    return "yes"
  if set(kept.tolist()) == set(reference.tolist()):
    return "same boxes, other order"
  differ = len(set(kept.tolist()) ^ set(reference.tolist()))
  return f"NO ({differ} boxes in one only)"


def compare_sizes(torch, ops, sizes: Sequence[int]) -> list[list]:
  rows = []
  for kind in ("uniform", "clustered"):
    for n in sizes:
      boxes, scores = make_inputs(kind, n)
      jboxes, jscores = jnp.asarray(boxes), jnp.asarray(scores)
      tboxes, tscores = (torch.as_tensor(x, device="cuda")
                         for x in (boxes, scores))
      run = jaxdl_fn()
      compile_s = benchutil.compile_time(lambda: run(jboxes, jscores))
      torchvision = synchronized(
          torch, lambda: ops.nms(tboxes, tscores, IOU_THRESHOLD))
      torchvision()  # Warm-up: CUDA context and kernels.
      jax_s, tv_s = benchutil.timed_in_turns(lambda: run(jboxes, jscores),
                                             torchvision)
      kept = kept_indices(run(jboxes, jscores))
      rows.append([kind, n, len(kept), benchutil.format_ms(jax_s),
                   benchutil.format_ms(tv_s), f"{tv_s / jax_s:.2f}x",
                   f"{compile_s:.2f} s",
                   agreement(kept, torchvision().cpu().numpy())])
      print(rows[-1], flush=True)
  return rows


def compare_vmap(torch, ops, batch: int = VMAP_BATCH,
                 n: int = VMAP_BOXES) -> list[list]:
  rows = []
  run = jaxdl_fn(batched=True)
  for kind in ("uniform", "clustered"):
    inputs = [make_inputs(kind, n, seed) for seed in range(batch)]
    boxes = np.stack([b for b, _ in inputs])
    scores = np.stack([s for _, s in inputs])
    jboxes, jscores = jnp.asarray(boxes), jnp.asarray(scores)
    tboxes, tscores = (torch.as_tensor(x, device="cuda")
                       for x in (boxes, scores))
    image = torch.arange(batch, device="cuda").repeat_interleave(n)
    one_by_one = synchronized(torch, lambda: [
        ops.nms(tboxes[i], tscores[i], IOU_THRESHOLD) for i in range(batch)])
    as_categories = synchronized(torch, lambda: ops.batched_nms(
        tboxes.reshape(-1, 4), tscores.reshape(-1), image, IOU_THRESHOLD))
    compile_s = benchutil.compile_time(lambda: run(jboxes, jscores))
    compiled = f"{compile_s:.2f} s" if kind == "uniform" else "(cached)"
    one_by_one(), as_categories()  # Warm-up.
    jax_s, loop_s, batched_s = benchutil.timed_in_turns(
        lambda: run(jboxes, jscores), one_by_one, as_categories)
    answers = [agreement(kept, reference.cpu().numpy()) for kept, reference
               in zip(kept_indices(run(jboxes, jscores)), one_by_one())]
    first_difference = next((a for a in answers if a != "yes"), "yes")
    rows.append([kind, f"{batch} x {n}", benchutil.format_ms(jax_s),
                 benchutil.format_ms(loop_s), benchutil.format_ms(batched_s),
                 f"{min(loop_s, batched_s) / jax_s:.2f}x",
                 compiled, first_difference])
    print(rows[-1], flush=True)
  return rows


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
      "--sizes", default=",".join(map(str, SIZES)),
      type=lambda text: [int(n) for n in text.split(",")],
      help="comma-separated box counts of the first table")
  args = parser.parse_args(argv)
  torch = benchutil.torch_on_gpu(_SCRIPT)
  try:
    import torchvision  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise SystemExit(f"{_SCRIPT} needs torchvision: {error}.") from error
  ops = torchvision.ops
  env = benchutil.environment(["torch", "torchvision"])
  env["torch device"] = torch.cuda.get_device_name(0)
  title = f"NMS benchmark on {env['torch device']}: jaxdl vs torchvision"
  sections = [
      f"GPU ({env['device']}), float32, IoU threshold {IOU_THRESHOLD}, score "
      "threshold 0. Median wall time per call after compilation, inputs "
      "already on the GPU, each call waited for (`block_until_ready`, "
      "`torch.cuda.synchronize()`). The contenders of a row are timed in "
      "turn over three rounds and each one's fastest round counts "
      "(`benchutil.timed_in_turns`). Ratios are time / jaxdl time (> 1: "
      "jaxdl faster). Same inputs as `experiments/results/nms.md`."]

  def add(*parts: str) -> str:
    """Appends ``parts`` and rewrites the results file, so that a run cut
    short (a time limit on a lent GPU) keeps the tables it finished."""
    sections.extend(parts)
    return benchutil.write_results("nms_gpu", title, "\n\n".join(sections),
                                   env)

  add("## jaxdl `nms` vs `torchvision.ops.nms` (CUDA)",
      benchutil.markdown_table(
          ["boxes", "N", "kept", "jaxdl", "torchvision", "torchvision / jaxdl",
           "jaxdl compile", "same as torchvision"],
          compare_sizes(torch, ops, args.sizes)))
  add("## `jax.vmap(nms)` vs torchvision on a batch of images",
      "torchvision has no batched NMS over images: one `nms` call per image, "
      "or one `batched_nms` call on the boxes of all images with the image "
      "as the category. The ratio uses the faster of the two.",
      benchutil.markdown_table(
          ["boxes", "batch", "jaxdl vmap", "torchvision, one call per image",
           "torchvision batched_nms", "faster torchvision / jaxdl",
           "jaxdl compile", "same as torchvision"], compare_vmap(torch, ops)))
  path = add(
      "## Tile size on the GPU (median time, ratio to the best in the row)",
      f"`jaxdl.nms.GPU_TILE_SIZE` = {nms.GPU_TILE_SIZE} is the default on "
      f"a GPU (`TILE_SIZE` = {nms.TILE_SIZE}, chosen on a 2-core CPU, on "
      "CPU): each round's loop steps cost kernel launches and each "
      "while-loop test a copy to the host, so larger tiles (fewer rounds "
      "and steps) win.",
      benchutil.markdown_table(
          ["boxes", "N"] + [f"tile {t}" for t in GPU_TILE_SIZES],
          compare_tile_sizes(GPU_TILE_SIZES, sizes=(1_000, 5_000, 20_000))))
  with open(path) as f:
    print(f.read())


if __name__ == "__main__":
  main()
