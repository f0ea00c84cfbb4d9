"""Benchmark: YOLOv5-style augmentation, jaxdl (jit + vmap) vs NumPy/OpenCV.

The pipeline per sample: ``mosaic`` of four ``S x S`` uint8 tiles with boxes
-> ``random_perspective`` cropping the ``2S`` canvas back to ``S``
(``border=-S // 2``) -> ``color_jitter``. jaxdl runs a whole batch as one
jitted call, batching the same per-image function either with ``jax.vmap``
or with ``lax.map(..., batch_size=k)`` (images in groups of ``k``, the groups
one after another); every batching is timed and the fastest is reported
(all of them are listed). The peer is the notes' ``load_mosaic`` and YOLOv5's
``random_perspective`` (``cv2.warpAffine``, or ``cv2.warpPerspective`` when
``perspective > 0``) plus a ColorJitter built from OpenCV primitives
(``cv2.convertScaleAbs``, ``cv2.addWeighted``, ``cv2.cvtColor`` to HSV with a
hue lookup table, as YOLOv5's ``augment_hsv``), looped over the batch in
Python as a data loader does. Both use the same tiles and boxes; times are
medians after compilation (compile time reported separately).

Run: ``python -m experiments.bench_augment`` (writes
``experiments/results/augment.md``).
"""

from __future__ import annotations

import functools
import math
import os

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from experiments import benchutil
from jaxdl import augment
from tests.reference import augment as ref

BATCH = 64
SIZE = 320
BOXES_PER_TILE = 8
HYP = dict(degrees=10.0, translate=0.1, scale=0.5, shear=2.0)
CONFIGS = {"affine (perspective=0, warpAffine)": 0.0,
           "perspective=5e-4 (warpPerspective)": 5e-4}
BATCHINGS = ("vmap", "lax.map, batch_size=1", "lax.map, batch_size=4",
             "lax.map, batch_size=16")


# ------------------------------------------------------------ the inputs


def make_inputs(rng: np.random.Generator):
  """``BATCH`` groups of 4 tiles: smooth colour gradients plus noise."""
  yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
  tiles = np.empty((BATCH, 4, SIZE, SIZE, 3), np.uint8)
  for b in range(BATCH):
    for t in range(4):
      phase = rng.uniform(0, 2 * math.pi, 3)
      base = 127 + 100 * np.sin(6 * xx[..., None] + 4 * yy[..., None] + phase)
      tiles[b, t] = np.clip(base + rng.normal(0, 8, base.shape), 0, 255)
  xy = rng.uniform(0, SIZE * 0.7, (BATCH, 4, BOXES_PER_TILE, 2))
  wh = rng.uniform(10, SIZE * 0.3, (BATCH, 4, BOXES_PER_TILE, 2))
  boxes = np.concatenate([xy, np.minimum(xy + wh, SIZE)], -1).astype(
      np.float32)
  labels = rng.integers(0, 80, (BATCH, 4, BOXES_PER_TILE)).astype(np.int32)
  mask = np.ones((BATCH, 4, BOXES_PER_TILE), bool)
  return tiles, boxes, labels, mask


# ------------------------------------------------------------------ jaxdl


@functools.cache
def batched(fn, batching: str):
  """``fn`` over a leading batch axis, jitted: vmap or lax.map in groups.

  Cached, so a batching timed by :func:`fastest` is not compiled again when
  its outputs are checked."""
  if batching == "vmap":
    return jax.jit(jax.vmap(fn))
  size = int(batching.rsplit("=", 1)[1])
  return jax.jit(lambda *args: jax.lax.map(lambda a: fn(*a), args,
                                           batch_size=size))


def pipeline_one(key, tiles, boxes, labels, mask, *, perspective):
  """The per-image pipeline: mosaic -> random_perspective -> color_jitter."""
  k_mosaic, k_warp, k_color = jax.random.split(key, 3)
  mos = augment.mosaic(k_mosaic, tiles, boxes, labels, mask)
  warped = augment.random_perspective(
      k_warp, mos.image, mos.boxes, mos.mask, perspective=perspective,
      border=-SIZE // 2, **HYP)
  image = augment.color_jitter(k_color, warped.image)
  return image, warped.boxes, mos.labels, warped.mask


def fastest(fn, args, repeats: int = 7):
  """Times every batching of ``fn`` on ``args``: ``(best, {name: (s,
  compile_s)})``, compile times from :func:`benchutil.compile_time`."""
  timings = {}
  for batching in BATCHINGS:
    call = functools.partial(batched(fn, batching), *args)
    compile_s = benchutil.compile_time(call)
    timings[batching] = (benchutil.median_time(call, repeats=repeats),
                         compile_s)
  return min(timings, key=lambda b: timings[b][0]), timings


# ----------------------------------------------------- NumPy / OpenCV peer


def np_load_mosaic(rng, tiles, boxes, labels, mask):
  """The notes' load_mosaic for S x S tiles with pixel xyxy boxes."""
  s = SIZE
  xc, yc = (int(rng.uniform(s // 2, 2 * s - s // 2)) for _ in range(2))
  img4 = np.full((2 * s, 2 * s, 3), 114, np.uint8)
  out = []
  for i in range(4):
    h = w = s
    if i == 0:
      x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
      x1b, y1b, x2b, y2b = w - (x2a - x1a), h - (y2a - y1a), w, h
    elif i == 1:
      x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, s * 2), yc
      x1b, y1b, x2b, y2b = 0, h - (y2a - y1a), min(w, x2a - x1a), h
    elif i == 2:
      x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(s * 2, yc + h)
      x1b, y1b, x2b, y2b = w - (x2a - x1a), 0, w, min(y2a - y1a, h)
    else:
      x1a, y1a, x2a, y2a = xc, yc, min(xc + w, s * 2), min(s * 2, yc + h)
      x1b, y1b, x2b, y2b = 0, 0, min(w, x2a - x1a), min(y2a - y1a, h)
    img4[y1a:y2a, x1a:x2a] = tiles[i, y1b:y2b, x1b:x2b]
    padw, padh = x1a - x1b, y1a - y1b
    lab = np.concatenate([labels[i][mask[i], None],
                          boxes[i][mask[i]] + [padw, padh, padw, padh]], 1)
    out.append(lab)
  labels4 = np.concatenate(out, 0)
  np.clip(labels4[:, 1:], 0, 2 * s, out=labels4[:, 1:])
  return img4, labels4


def np_random_perspective(rng, img, targets, *, degrees, translate, scale,
                          shear, perspective, border):
  """YOLOv5 random_perspective (boxes only, no segments)."""
  height = img.shape[0] + border * 2
  width = img.shape[1] + border * 2
  c = np.eye(3)
  c[0, 2], c[1, 2] = -img.shape[1] / 2, -img.shape[0] / 2
  p = np.eye(3)
  p[2, 0] = rng.uniform(-perspective, perspective)
  p[2, 1] = rng.uniform(-perspective, perspective)
  r = np.eye(3)
  a = rng.uniform(-degrees, degrees)
  s = rng.uniform(1 - scale, 1 + scale)
  r[:2] = cv2.getRotationMatrix2D(angle=a, center=(0, 0), scale=s)
  sh = np.eye(3)
  sh[0, 1] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)
  sh[1, 0] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)
  t = np.eye(3)
  t[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * width
  t[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * height
  m = t @ sh @ r @ p @ c
  if perspective:
    img = cv2.warpPerspective(img, m, dsize=(width, height),
                              borderValue=(114, 114, 114))
  else:
    img = cv2.warpAffine(img, m[:2], dsize=(width, height),
                         borderValue=(114, 114, 114))
  n = len(targets)
  if n:
    xy = np.ones((n * 4, 3))
    xy[:, :2] = targets[:, [1, 2, 3, 4, 1, 4, 3, 2]].reshape(n * 4, 2)
    xy = xy @ m.T
    xy = (xy[:, :2] / xy[:, 2:3] if perspective else xy[:, :2]).reshape(n, 8)
    x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
    new = np.concatenate((x.min(1), y.min(1), x.max(1),
                          y.max(1))).reshape(4, n).T
    new[:, [0, 2]] = new[:, [0, 2]].clip(0, width)
    new[:, [1, 3]] = new[:, [1, 3]].clip(0, height)
    keep = ref.box_candidates(targets[:, 1:5] * s, new)
    targets = targets[keep]
    targets[:, 1:5] = new[keep]
  return img, targets


def cv_color_jitter(rng, img, b=0.2, c=0.2, s=0.2, h=0.05):
  """ColorJitter(0.2, 0.2, 0.2, 0.05) from OpenCV primitives."""
  factors = (rng.uniform(1 - b, 1 + b), rng.uniform(1 - c, 1 + c),
             rng.uniform(1 - s, 1 + s), rng.uniform(-h, h))
  for op in rng.permutation(4):
    f = factors[op]
    if op == 0:
      img = cv2.convertScaleAbs(img, alpha=f)
    elif op == 1:
      mean = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean()
      img = cv2.addWeighted(img, f, img, 0.0, (1 - f) * mean)
    elif op == 2:
      gray = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY),
                          cv2.COLOR_GRAY2RGB)
      img = cv2.addWeighted(img, f, gray, 1 - f, 0.0)
    else:
      hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)  # OpenCV hue: [0, 180)
      lut = ((np.arange(256) + f * 180) % 180).astype(np.uint8)
      hsv[..., 0] = cv2.LUT(hsv[..., 0], lut)
      img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
  return img


def numpy_pipeline(perspective: float, seed: int = 0):
  rng = np.random.default_rng(seed)

  def run(tiles, boxes, labels, mask):
    out = []
    for b in range(BATCH):
      img4, labels4 = np_load_mosaic(rng, tiles[b], boxes[b], labels[b],
                                     mask[b])
      img, labels4 = np_random_perspective(
          rng, img4, labels4, perspective=perspective, border=-SIZE // 2,
          **HYP)
      out.append((cv_color_jitter(rng, img), labels4))
    return out

  return run


# ------------------------------------------------------------------- main


def stage_breakdown(device_inputs, host_inputs, mos):
  """Each stage alone, jaxdl (fastest batching) and OpenCV, same batch;
  ``mos`` is jaxdl's batch of mosaics, the warp's input."""
  keys, *jax_args = device_inputs
  tiles, boxes, labels, mask = host_inputs
  rng = np.random.default_rng(1)
  warp = functools.partial(augment.random_perspective, border=-SIZE // 2,
                           **HYP)
  warped = jax.jit(jax.vmap(warp))(keys, mos.image, mos.boxes, mos.mask)
  np_mosaics = [np_load_mosaic(rng, tiles[b], boxes[b], labels[b], mask[b])
                for b in range(BATCH)]
  np_warped = [np_random_perspective(rng, img, lab, perspective=0.0,
                                     border=-SIZE // 2, **HYP)[0]
               for img, lab in np_mosaics]
  stages = [
      ("mosaic", augment.mosaic, (keys, *jax_args),
       lambda: [np_load_mosaic(rng, tiles[b], boxes[b], labels[b], mask[b])
                for b in range(BATCH)]),
      ("random_perspective", warp, (keys, mos.image, mos.boxes, mos.mask),
       lambda: [np_random_perspective(rng, img, lab.copy(), perspective=0.0,
                                      border=-SIZE // 2, **HYP)
                for img, lab in np_mosaics]),
      ("color_jitter", augment.color_jitter, (keys, warped.image),
       lambda: [cv_color_jitter(rng, img) for img in np_warped]),
  ]
  rows = []
  for name, fn, args, ref_call in stages:
    best, timings = fastest(fn, args)
    jax_s = timings[best][0]
    ref_s = benchutil.median_time(ref_call, repeats=5)
    rows.append([name, benchutil.format_ms(jax_s), best,
                 benchutil.format_ms(timings["vmap"][0]),
                 benchutil.format_ms(ref_s), f"{ref_s / jax_s:.2f}x"])
    print(rows[-1], flush=True)
  return rows


def _tap_loads(image, matrix, window: int):
  """The loads a bilinear warp cannot avoid, and nothing else.

  ``image`` ``[H, W, 3]`` uint8 is packed to one uint32 per pixel (a
  zero fourth channel, bitcast), each output pixel's source start
  ``floor(matrix^-1 (x, y, 1))`` is clipped into the image, and a
  ``window x window`` block of packed pixels is gathered there (2: the
  bilinear taps, 1: nearest neighbour) and summed (wrapping uint32 adds).
  A lower bound on any gather-based warp of the same size in XLA.
  """
  height, width, _ = image.shape
  packed = jax.lax.bitcast_convert_type(
      jnp.pad(image, ((0, 0), (0, 0), (0, 1))), jnp.uint32)
  inverse = jnp.linalg.inv(matrix)
  ys, xs = jnp.meshgrid(jnp.arange(SIZE, dtype=jnp.float32),
                        jnp.arange(SIZE, dtype=jnp.float32), indexing="ij")
  start = [jnp.clip(jnp.floor(inverse[i, 0] * xs + inverse[i, 1] * ys +
                              inverse[i, 2]), 0, n - window).astype(jnp.int32)
           for i, n in ((1, height), (0, width))]
  dims = jax.lax.GatherDimensionNumbers(
      offset_dims=(2, 3), collapsed_slice_dims=(), start_index_map=(0, 1))
  taps = jax.lax.gather(packed, jnp.stack(start, -1), dims,
                        slice_sizes=(window, window),
                        mode="promise_in_bounds")
  return taps.sum((-2, -1), dtype=jnp.uint32)


def gather_floor(keys, mosaics):
  """The warp stage against its gather floor and ``cv2.warpAffine``, on the
  same mosaics and matrices; per output pixel."""
  sample = functools.partial(augment.perspective_matrix, height=2 * SIZE,
                             width=2 * SIZE, border=-SIZE // 2, **HYP)
  matrices = jax.jit(jax.vmap(lambda k: sample(k).matrix))(keys)
  host_images, host_matrices = np.asarray(mosaics), np.asarray(
      matrices, np.float64)
  warp = functools.partial(augment.warp_image, size=SIZE, affine=True)
  calls = {
      "jaxdl `warp_image` (bilinear, 4 taps x 3 channels, blend)":
          functools.partial(jax.jit(jax.vmap(warp)), mosaics, matrices),
      "XLA gather floor: 2x2 packed-pixel taps per pixel, summed":
          functools.partial(jax.jit(jax.vmap(
              functools.partial(_tap_loads, window=2))), mosaics, matrices),
      "XLA gather floor: 1 packed-pixel tap per pixel":
          functools.partial(jax.jit(jax.vmap(
              functools.partial(_tap_loads, window=1))), mosaics, matrices),
      "OpenCV `cv2.warpAffine` (bilinear), looped over the batch":
          lambda: [cv2.warpAffine(img, m[:2], (SIZE, SIZE),
                                  borderValue=(114, 114, 114))
                   for img, m in zip(host_images, host_matrices)],
  }
  pixels = BATCH * SIZE * SIZE
  rows = []
  for name, call in calls.items():
    benchutil.first_call_time(call)
    seconds = benchutil.median_time(call, repeats=7)
    rows.append([name, benchutil.format_ms(seconds),
                 f"{seconds / pixels * 1e9:.2f} ns"])
    print(rows[-1], flush=True)
  return rows


def main() -> None:
  tiles, boxes, labels, mask = make_inputs(np.random.default_rng(0))
  keys = jax.random.split(jax.random.key(0), BATCH)
  device_inputs = jax.device_put((keys, tiles, boxes, labels, mask))
  rows, batching_rows = [], []
  for name, perspective in CONFIGS.items():
    one = functools.partial(pipeline_one, perspective=perspective)
    best, timings = fastest(one, device_inputs)
    jax_s, compile_s = timings[best]
    batching_rows += [[name, batching, benchutil.format_ms(s),
                       f"{c:.1f} s"] for batching, (s, c) in timings.items()]
    peer = numpy_pipeline(perspective)
    ref_call = functools.partial(peer, tiles, boxes, labels, mask)
    ref_s = benchutil.median_time(ref_call, repeats=5)
    other = next(b for b in timings if b != best)
    outs = {b: batched(one, b)(*device_inputs) for b in (other, best)}
    # The batchings agree up to float rounding in the warp (a few pixels
    # can differ by a few levels); boxes are checked, not just counted.
    np.testing.assert_allclose(outs[best][1], outs[other][1], atol=1e-3)
    boxes_kept = float(np.asarray(outs[best][3]).sum(1).mean())
    ref_kept = float(np.mean([len(lab) for _, lab in peer(tiles, boxes, labels,
                                                          mask)]))
    rows.append([name, best, f"{BATCH / jax_s:.0f}", f"{BATCH / ref_s:.0f}",
                 f"{ref_s / jax_s:.2f}x", benchutil.format_ms(jax_s),
                 benchutil.format_ms(ref_s), f"{compile_s:.1f} s",
                 f"{boxes_kept:.1f} / {ref_kept:.1f}"])
    print(rows[-1], flush=True)
  mos = jax.jit(jax.vmap(augment.mosaic))(*device_inputs)
  stage_rows = stage_breakdown(device_inputs, (tiles, boxes, labels, mask),
                               mos)
  floor_rows = gather_floor(keys, mos.image)
  headers = ["pipeline", "jaxdl batching (fastest)", "jaxdl samples/s",
             "NumPy/OpenCV samples/s", "speed-up (jaxdl / OpenCV)",
             f"jaxdl batch of {BATCH}", f"OpenCV batch of {BATCH}",
             "jaxdl compile",
             "boxes kept / sample (jaxdl / OpenCV, independent random draws)"]
  body = (
      f"Batch of {BATCH} samples: mosaic of four {SIZE}x{SIZE}x3 uint8 tiles"
      f" ({BOXES_PER_TILE} boxes each) -> random_perspective to {SIZE}x{SIZE}"
      f" ({', '.join(f'{k}={v}' for k, v in HYP.items())}) -> "
      "color_jitter(0.2, 0.2, 0.2, 0.05). jaxdl: one jitted call per batch "
      "of the same per-image function, batched with `jax.vmap` or "
      "`lax.map(..., batch_size=k)`; the fastest batching is reported (all "
      "are listed below). NumPy/OpenCV: the notes' `load_mosaic` + YOLOv5 "
      "`random_perspective` (cv2 warps) + an OpenCV ColorJitter, looped over "
      "the batch. Median of 7 (jaxdl) / 5 (OpenCV) runs after compilation; "
      "speed-up > 1 means jaxdl is faster.\n\n" +
      benchutil.markdown_table(headers, rows) +
      "\n\n## Per stage (affine configuration, same batch)\n\n" +
      benchutil.markdown_table(
          ["stage", f"jaxdl batch of {BATCH}", "jaxdl batching (fastest)",
           "jaxdl with vmap", f"OpenCV batch of {BATCH}",
           "speed-up (jaxdl / OpenCV)"], stage_rows) +
      "\n\n## The warp's gather floor\n\n"
      f"{BATCH} affine warps of the {2 * SIZE}x{2 * SIZE}x3 mosaics to "
      f"{SIZE}x{SIZE} (the same matrices, {BATCH * SIZE * SIZE:,} output "
      "pixels). The floor rows do only the loads a gather-based bilinear warp "
      "cannot avoid: each source pixel packed into one uint32 (so a tap is "
      "one load, not three), the 2x2 window gathered at each output pixel's "
      "source position, and summed. They run no interpolation and no "
      "channel blend.\n\n" +
      benchutil.markdown_table(
          ["warp", f"batch of {BATCH}", "per output pixel"], floor_rows) +
      "\n\n## Pipeline by batching\n\n" +
      benchutil.markdown_table(
          ["pipeline", "jaxdl batching", f"batch of {BATCH}", "compile"],
          batching_rows))
  env = benchutil.environment(["opencv-python-headless"])
  env["opencv threads"] = str(cv2.getNumThreads())
  # Other jobs on a shared machine slow both sides; record the load.
  env["load average (1, 5, 15 min)"] = ", ".join(
      f"{x:.1f}" for x in os.getloadavg())
  path = benchutil.write_results(benchutil.platform_name("augment"),
                                 "Augmentation throughput", body, env)
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
