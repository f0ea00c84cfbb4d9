"""Fixed-shape non-maximum suppression: greedy, class-aware and soft.

Every function runs under ``jax.jit`` with static shapes and batches with
``jax.vmap`` (``[B, N, 4]`` boxes). Variable-length results are fixed-size
index arrays padded with ``-1`` plus a ``valid`` mask.

Greedy NMS is exact: it returns the same indices, in the same order, as
``torchvision.ops.nms`` (and the corrected NumPy loop of the notes), without
an ``N x N`` IoU matrix, for boxes of the dtype JAX computes in (NumPy
float64 boxes are float32 without x64, where torchvision would keep
float64; float64 scores under x64 take the slower sorted path, 1.5-4.4x at
20k-100k boxes). One exception, at ties with a threshold float32
cannot represent: jaxdl compares the float32 IoU with the threshold rounded
to float32, so an IoU of exactly 3/10 at ``iou_threshold=0.3`` is kept, as
by OpenCV's ``NMSBoxes`` (an IoU equal to the threshold is kept), while
torchvision's CPU kernel compares its float32 IoU (0.30000001) with the
threshold as a double and suppresses it. Boxes are processed in rounds:
each round resolves the best-ranked boxes still in play (found by
``top_k`` while rounds clear boxes fast, else read off the boxes ranked
once) with a ``[tile, tile]`` IoU block and a small fixed-point loop, then
removes every other box that one of the round's kept boxes suppresses, so a
kept box is compared with each box left once and suppressed boxes are
never looked at again. The tile size defaults to 128 on CPU and 4096 on a
GPU (:data:`TILE_SIZE`, :data:`GPU_TILE_SIZE`). Peak memory is
``O(N + tile_size**2)`` and the loop stops once ``max_output`` boxes are
kept or the candidates run out. Under ``jax.vmap`` the images are processed
one after another (``lax.map``), which keeps each image's early exits.

A call from Python runs one jit compiled with :data:`XLA_CPU_OPTIONS`
(512-bit vectors on CPU); inside a caller's ``jax.jit`` the functions
compile with that jit's options, so pass ``compiler_options=XLA_CPU_OPTIONS``
to it for the same speed.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxdl import _keys, _xla_cpu
from jaxdl import boxes as box_ops
from jaxdl._checks import (as_boxes, mask_or_ones, one_of, positive_int,
                           real_scalar)

# Measured on a 2-core CPU by experiments/bench_nms.py (table "Tile size" in
# experiments/results/nms.md). Larger tiles mean fewer rounds, each
# screening the rest of the boxes once: uniform boxes, where most boxes are
# kept, want 128-512 (32 and 64 were 1.6-4.5x slower at 5k-100k); clustered
# 5k boxes ran fastest at 128 (whose top_k rounds use tiles of 64), 256 and
# 512 1.35-1.9x slower (four runs), and clustered 100k ran within 1.1x of
# the best at 128 and at 512 (the last two runs). A tile's fixed-point loop
# can take up to tile_size steps over its [tile, tile] block, which a chain
# of boxes (each overlapping only the next, in score order) reaches: then a
# run costs O(N * tile_size**2), measured 16x the uniform time at tile 512
# and 2x at the default 128 (20k boxes, a review on 2026-11-23).
TILE_SIZE = 128

# The default on other platforms (measured on one H100 only, by a sweep on
# 2026-11-23 of the inputs of experiments/bench_nms_gpu.py): on a GPU every
# loop step costs kernel launches and each while-loop test a copy to the
# host, so fewer, larger rounds win. Median ms at tiles of 1024, 2048,
# 4096 and 8192: uniform 5k 2.72, 1.57, 1.30, 1.17; 20k 5.56, 5.19, 3.07,
# 2.54; 100k 24.0, 14.7, 12.0, 7.9; clustered 1k 0.77, 0.62, 0.62, 1.18;
# 5k 1.34, 1.06, 1.06, 1.50; 20k 3.14, 2.29, 1.82, 2.28; 100k 9.8, 5.5,
# 4.1, 3.7. Tiles of 128, the CPU's default, took 16, 101 and 869 ms on
# uniform 5k-100k and 5.0, 17.6 and 82 ms on clustered boxes (the first
# bench_nms_gpu run). Tiles of 8192 win on uniform boxes from 20k but
# lose on clustered ones up to 20k.
# XLA's command buffers for while loops and conditionals (XLA_FLAGS
# --xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL, jax 0.11.2) ran
# tiles of 2048 1.0-2.0x faster in the same sweep but returned indices
# other than torchvision's in 20 of 24 runs (three tile settings, each
# wrong at every N from 5k), where every run without them matched.
GPU_TILE_SIZE = 4096
# ... with _resolve_tile's fixed-point loop testing for its end every this
# many steps there (a test is a copy to the host): against every step, on
# the same GPU, tiles of 4096, clustered 1k, 5k and 20k took 0.60, 1.07 and
# 1.68 against 0.72, 1.22 and 1.87 ms; uniform boxes 0.92-1.0x the time;
# every 2 steps about as fast as every 4. On CPU every step: A/B on the
# 2-core Xeon, median of 15 rounds' best, every 1 / 2 / 4 steps, clustered
# 1k 0.223 / 0.219 / 0.227 ms, 5k 0.499 / 0.502 / 0.510, 20k 1.65 / 1.68 /
# 1.68; uniform 1k-20k within 1%.
GPU_RESOLVE_STEPS = 4

SOFT_NMS_METHODS = ("gaussian", "linear")

# Compiler options of the functions below when called from Python (a
# caller's jit compiles with its own options: pass these to it for the same
# code). 512-bit vectors, XLA:CPU's default being 256 (CPUs without AVX-512
# ignore the option), run the pair tests about 1.9x faster: 64 x 128 boxes
# in 1.2 instead of 2.3 us on one core. A/B on 2 cores, async dispatch, time
# against 256-bit vectors: clustered 1k 0.94x, 5k and 20k 0.84x, uniform 1k
# 0.89x, 5k 0.73x (sync dispatch: 0.75-0.87x).
XLA_CPU_OPTIONS = {"xla_cpu_prefer_vector_width": "512"}

# Longest run of tied candidate scores that _rank resolves without a full
# two-key sort.
_MAX_TIE_ROUNDS = 8

# A round screens the buffer this many tiles at a time, against its kept
# boxes in blocks of tile_size / _ROW_BLOCKS (only the blocks it filled).
# XLA:CPU splits a pair test of more than about 10k pairs over its threads;
# profiled on 2 cores, such a [64, 512] test took 5-35 us, mostly waiting
# for the second thread. Sizes within 2x of these ran within noise. Nor
# did chunks sized to the round's kept boxes pay (A/B on 2 cores, one loop
# per block size, chunks of up to 512 boxes under 8192 pairs, against these
# sizes): clustered 1k-20k 0.64-0.75x, uniform 0.74-0.87x; with the same
# chunks, that loop-per-block layout alone 0.77-0.95x. A body unrolled to two
# chunks (17 thunks, see below) ran 0.85-0.99x. Nor, in one loop, did
# chunks of 256 or 512 whose running counts are one [chunk / 128, 128] x
# [128, 128] product plus row offsets, which keeps the body at 8 thunks
# (A/B, quiet 2 cores, speed against these sizes): clustered 1k-20k
# 0.61-0.86x, with kept boxes in blocks of 8 rows too. Blocks of 8 rows
# alone (11 rounds): clustered 1k 0.94x, 5k-100k 1.02-1.09x, uniform
# 0.95-0.96x. Nor did one pass per round over the shortest power-of-two
# prefix that holds the live boxes (a switch over prefix and block sizes):
# clustered 1k and 5k 0.57-0.69x, as XLA:CPU copies the whole buffer into
# the branch that scatters into it. With the packed running counts below
# (A/B, 2 cores, time against these sizes, clustered 1k / 5k / 20k): one
# tile per chunk 1.09 / 0.97 / 1.01x, four 1.57 / 1.19 / 1.10x; pair tests
# of at most 32 kept rows at a time, which XLA:CPU does not split, 0.85 /
# 0.97 / 1.00x against 0.84 / 0.96 / 0.96x for the -inf check alone (see
# start_by_score), uniform 1.11-1.14x; chunk boxes in a row-major loop
# state (no layout copy in the branch), 1.05-1.07x, or sliced from the
# transposed buffer, within noise; the live flags written in place into a
# scratch buffer (a dynamic_update_slice root, which XLA:CPU never splits)
# 1.04-1.15x. With 512-bit vectors (XLA_CPU_OPTIONS): the any over kept
# rows in parts of 32 (XLA:CPU splits a longer one into a reduce-window and
# a pair test of its own, which it runs on both threads) 0.96-1.03x on
# clustered boxes, uniform 1.11-1.13x; chunks of 4 or 8 tiles had their pair
# tests split over threads, also as two-output (tuple-shaped) fusions, and
# with column groups of 128 that XLA:CPU did not split, clustered 5k took
# 1.10 / 1.21x the time, uniform 1.5-1.8x; the words' running counts
# computed in the branch (7 body thunks, not 8): within noise.
_SCREEN_TILES = 2
_ROW_BLOCKS = 4

# A screen finds the survivors' slots from running counts of its live
# flags, packed into 32-bit words (:func:`_bit_words`) by the branch that
# tests the chunk and counted by population counts (:func:`_running_count`),
# which XLA fuses into the slot computation. With a buffer compacted by one
# scatter, the loop body that screens a chunk is then 8 XLA:CPU thunks,
# which XLA:CPU runs inline on one thread; a body of more runs as a task
# graph across its threads, with an allocation per iteration (unless its
# buffers are all at most 512 bytes or its thunks form a chain). A/B on 2
# cores against the buffer as separate arrays (18-23 thunks): clustered 20k
# 1.8 against 2.0 ms, 100k 8.3-8.7 against 10.2-11.7 ms; 1k and 5k the same
# while the machine was quiet, 10-20% faster while it was loaded; uniform
# boxes and one core unchanged. The counts were a product with a triangular
# [chunk, chunk] matrix (top_k rounds; 0.6 us per 128-box chunk alone in a
# loop, the packed count 0.13 us) and a cumsum (rank-order rounds, 3 thunks
# more): the packed count ran clustered 5k-100k and uniform 5k-20k in
# 0.87-0.91x their time, 1k in 0.97-0.98x (A/B, 2 cores, A/A control within
# 1%). The words' counts are summed by an unrolled chain up to this many
# words (chunks of 256 boxes, the default's largest), by a cumsum beyond.
_UNROLLED_WORDS = 8

# Rounds find their tiles by top_k while they clear the buffer fast. Once
# the boxes left would take more than this many rounds at the last round's
# pace, they are ranked once instead, and the rounds use full-size tiles:
# each round screens every box left, and a sort costs about as much as a
# few such screens. A/B on a 2-core CPU against ranking first: with 16,
# uniform 1k boxes (92% kept) stayed in the top_k rounds and took 2x as
# long; with 8 they take ~1.25x, while clustered 5k boxes never leave the
# top_k rounds and take 0.7x.
_TOP_K_ROUNDS = 8
# ... and use tiles of tile_size / _TOP_K_TILE_DIVISOR: clustered boxes,
# which stay in those rounds, ran fastest with tiles of 64, uniform boxes,
# which soon leave them, with 128 (experiments/results/nms.md, "Tile size").
# A/B on 2 cores: a first round with tiles of 128 or 256 ran clustered 5k
# at 0.89x (20k 1.14-1.17x, 1k 0.72-0.74x); a two-level top_k (maxima of
# blocks of 8, then the best 64 blocks' entries) ran 0.89-1.04x, as fast
# alone as XLA:CPU's TopK over 5248 floats (12-14 against 9-16 us).
# Repeated on a quiet machine (speed against tiles of 64, clustered 1k, 5k,
# 20k): tiles of 128 0.66, 0.65, 0.94x; tiles of 32 0.95, 0.89, 1.06x.
# Growing them to 128 once a round keeps more than half its tile (2 rounds
# fewer at 5k, 3 at 20k) took 1.46, 1.26, 1.07x the time: XLA:CPU splits
# their [128, 128] and [96-128, 256] pair tests over its threads.
_TOP_K_TILE_DIVISOR = 2


class NmsResult(NamedTuple):
  """Kept boxes of :func:`nms` / :func:`batched_nms`.

  Attributes:
    indices: ``[K]`` int32 indices into the input boxes, by descending score
      (ties: lower index first), ``-1`` in unused slots.
    valid: ``[K]`` bool, True for the slots that hold a kept box.
  """
  indices: jax.Array
  valid: jax.Array


class SoftNmsResult(NamedTuple):
  """Selected boxes of :func:`soft_nms`.

  Attributes:
    indices: ``[K]`` int32 indices in selection order, ``-1`` in unused slots.
    scores: ``[K]`` the decayed score of each box when it was selected,
      0 in unused slots.
    valid: ``[K]`` bool, True for the slots that hold a selected box.
  """
  indices: jax.Array
  scores: jax.Array
  valid: jax.Array


def _check_scalar(value, name: str) -> None:
  real_scalar(value, name)
  # A bool is refused as max_output and tile_size refuse it (True read 1.0).
  if isinstance(value, bool) or getattr(value, "dtype", None) == bool:
    raise ValueError(f"{name} must be a real scalar, got {value!r}.")
  if not isinstance(value, jax.core.Tracer):
    try:
      float(value)
    except OverflowError:  # A Python int past float range (10**400).
      raise ValueError(f"{name} must be within float range, got "
                       f"{value!r}.") from None


def _check_score_threshold(value) -> None:
  _check_scalar(value, "score_threshold")
  if not isinstance(value, jax.core.Tracer) and np.isnan(float(value)):
    raise ValueError(f"score_threshold must not be NaN, got {value}.")


def _check_unit_interval(value, name: str) -> None:
  _check_scalar(value, name)
  if isinstance(value, jax.core.Tracer):
    return  # Only concrete values can be checked at trace time.
  if not 0.0 <= float(value) <= 1.0:
    raise ValueError(f"{name} must be in [0, 1], got {value}.")


def _check_inputs(boxes: ArrayLike, scores: ArrayLike, mask: ArrayLike | None,
                  fmt: str) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Validates the scores and mask against boxes that :func:`_checked`
  passed; returns xyxy float boxes, float scores, bool mask."""
  scores = jnp.asarray(scores)
  n = boxes.shape[0]
  if scores.shape != (n,):
    raise ValueError(
        f"scores must have shape [N] = ({n},), got {tuple(scores.shape)}.")
  for name, x in (("boxes", boxes), ("scores", scores)):
    if not (jnp.issubdtype(x.dtype, jnp.floating) or
            jnp.issubdtype(x.dtype, jnp.integer)):
      raise ValueError(f"{name} must be real numbers, got {x.dtype}.")
  mask = mask_or_ones(mask, (n,))
  compute = jnp.promote_types(boxes.dtype, jnp.float32)
  boxes = box_ops.convert(boxes.astype(compute), fmt, "xyxy")
  scores = scores.astype(jnp.promote_types(scores.dtype, jnp.float32))
  # Nothing is differentiated through NMS (its results are indices, or
  # scores from a while loop); this also lets a loss that gathers by the
  # kept indices take gradients (the per-image vmap rule has no JVP).
  return lax.stop_gradient(boxes), lax.stop_gradient(scores), mask


def _output_size(max_output: int | None, n: int) -> int:
  if max_output is None:
    return n
  if isinstance(max_output, bool) or not isinstance(max_output,
                                                     (int, np.integer)):
    raise ValueError(
        f"max_output must be a positive int or None, got {max_output!r}.")
  if not 1 <= max_output <= np.iinfo(np.int32).max:
    raise ValueError(
        f"max_output must be in [1, 2**31 - 1], got {max_output}.")
  return int(max_output)


def _descending_keys(scores: jax.Array, candidate: jax.Array) -> jax.Array:
  """``[N]`` sort keys: the candidates by descending score
  (:func:`jaxdl._keys.descending_keys`), then every other box (the key
  dtype's maximum, which no candidate reaches)."""
  keys = _keys.descending_keys(scores)
  return jnp.where(candidate, keys, jnp.iinfo(keys.dtype).max)


def _stable_rank(keys: jax.Array) -> jax.Array:
  """The ranking of :func:`_rank` by a stable sort of (key, index)."""
  return lax.sort((keys, jnp.arange(keys.shape[0], dtype=jnp.int32)),
                  num_keys=1, is_stable=True)[1]


def _rank(scores: jax.Array, candidate: jax.Array) -> jax.Array:
  """``[N]`` input indices: candidates first, by descending score, ties by
  index. Entries after the candidates are unspecified.

  XLA:CPU sorts a lone int32 array with ``std::sort`` several times faster
  than it sorts (key, index) pairs through its comparator (about 10 ms
  against 40-100 ms at 100k). So the scores become order-preserving int32
  keys (:func:`_descending_keys`), the keys alone are sorted, and each
  candidate finds the first slot of its key by binary search. Candidates
  with tied keys (frequent at large N: float32 has ~2^23 values per octave)
  share a run of slots; they claim them in rounds, lowest index first. Runs
  longer than ``_MAX_TIE_ROUNDS`` (and float64 scores) fall back to a
  stable sort of (key, index).
  """
  keys = _descending_keys(scores, candidate)
  if scores.dtype != jnp.float32:
    return _stable_rank(keys)
  n = scores.shape[0]
  index = jnp.arange(n, dtype=jnp.int32)
  slot = jnp.searchsorted(lax.sort(keys), keys, method="scan")

  def claim_round(state):
    order, slot, placed, rounds = state
    order = order.at[jnp.where(placed, n, slot)].min(index, mode="drop")
    won = ~placed & (order[jnp.minimum(slot, n - 1)] == index)
    placed |= won
    return order, jnp.where(placed, slot, slot + 1), placed, rounds + 1

  def unfinished(state):
    _, _, placed, rounds = state
    return ~jnp.all(placed) & (rounds < _MAX_TIE_ROUNDS)

  order, _, placed, _ = lax.while_loop(
      unfinished, claim_round,
      (jnp.full((n,), n, jnp.int32), slot, ~candidate, jnp.int32(0)))
  return lax.cond(jnp.all(placed), lambda: jnp.minimum(order, n - 1),
                  lambda: _stable_rank(keys))


def _suppresses(a: jax.Array, b: jax.Array, iou_threshold: jax.Array,
                a_classes: jax.Array | None,
                b_classes: jax.Array | None) -> jax.Array:
  """``[M, T]`` bool: box ``a[:, m]`` would suppress box ``b[:, t]``.

  Boxes are coordinate-major, ``[5, M]`` and ``[5, T]``: rows x1, y1, x2,
  y2 and the area (as :func:`jaxdl.boxes.area`), so the pair test reads
  contiguous rows and computes no area per pair. IoU is
  computed as :func:`jaxdl.boxes.iou` with ``eps=0`` (torchvision), so two
  empty boxes have IoU NaN and never suppress each other. Callers reduce
  over axis 0: on CPU, XLA vectorizes a reduction over the major axis many
  times better than one over the minor axis.
  """
  inter = box_ops._intersection(  # pylint: disable=protected-access
      tuple(a[:4, :, None]), tuple(b[:4, None, :]))
  union = a[4][:, None] + b[4][None, :] - inter
  overlap = inter / union > iou_threshold
  if a_classes is not None:
    overlap &= a_classes[:, None] == b_classes[None, :]
  return overlap


def _bit_words(flags: jax.Array) -> jax.Array:
  """``[C]`` bool -> ``[ceil(C / 32)]`` uint32 whose bit ``i`` of word ``k``
  is ``flags[32 * k + i]`` (padding bits 0)."""
  c = flags.shape[0]
  num_words = -(-c // 32)
  bits = jnp.pad(flags, (0, 32 * num_words - c)).astype(jnp.uint32)
  return jnp.sum(bits.reshape(num_words, 32)
                 << jnp.arange(32, dtype=jnp.uint32), axis=1,
                 dtype=jnp.uint32)  # Disjoint bits: their sum is their OR.


def _running_count(words: jax.Array,
                   c: int) -> tuple[jax.Array, jax.Array]:
  """The first ``c`` flags packed by :func:`_bit_words` (``[c]`` bool) and
  their inclusive running count (``[c]`` int32), as population counts of
  each word's low bits: elementwise, so that XLA fuses it into its
  consumers, where ``jnp.cumsum`` is three to seven XLA:CPU kernels."""
  per_word = lax.population_count(words).astype(jnp.int32)
  if words.shape[0] <= _UNROLLED_WORDS:
    before = [jnp.int32(0)]
    for k in range(words.shape[0] - 1):
      before.append(before[-1] + per_word[k])
    before = jnp.stack(before)
  else:  # An unrolled chain of thousands of adds took minutes to compile.
    before = jnp.cumsum(per_word) - per_word
  bit = jnp.arange(32, dtype=jnp.uint32)
  low_bits = (jnp.uint32(2) << bit) - 1  # Bits 0..i; 2 << 31 wraps to 0.
  count = before[:, None] + lax.population_count(
      words[:, None] & low_bits).astype(jnp.int32)
  flags = (words[:, None] >> bit) & 1 == 1
  return flags.reshape(-1)[:c], count.reshape(-1)[:c]


def _resolve_tile(tile_boxes: jax.Array, tile_classes: jax.Array | None,
                  alive: jax.Array, iou_threshold: jax.Array,
                  steps_per_test: int) -> jax.Array:
  """Exact greedy NMS inside one score-sorted tile.

  ``keep[j] = alive[j] and no kept i < j suppresses j`` has one solution; the
  iteration below reaches it because after k steps the first k entries are
  final. It stops at the first fixed point, usually after a few steps,
  which it tests for every ``steps_per_test`` steps (a fixed point stays).
  """
  t = tile_boxes.shape[-1]
  earlier = jnp.arange(t)[:, None] < jnp.arange(t)[None, :]  # [T, T]

  def resolve(tile_boxes, tile_classes):
    edges = _suppresses(tile_boxes, tile_boxes, iou_threshold, tile_classes,
                        tile_classes) & earlier & alive[:, None]

    def step(state):
      keep, _ = state
      for _ in range(steps_per_test):
        last, keep = keep, alive & ~jnp.any(edges & keep[:, None], axis=0)
      return keep, jnp.any(keep != last)

    return lax.while_loop(lambda s: s[1], step, (alive, jnp.array(True)))[0]

  # In a branch, the coordinate-major tile is a buffer of its own. Without
  # one, XLA:CPU fused the transpose from the buffer's rows into the pair
  # test, which then took 3.2 instead of 2.3 us for 64 boxes (8.0 against
  # 1.8 us with 512-bit vectors, one core). A/B on 2 cores, time against
  # the fused transpose: uniform 1k 0.81-0.95x, others within noise
  # (0.98-1.05x); with 512-bit vectors (XLA_CPU_OPTIONS), 0.76-0.90x.
  return lax.cond(jnp.any(alive), resolve, lambda *_: alive, tile_boxes,
                  tile_classes)


def _one_image_at_a_time(fn):
  """``fn`` of arrays, which ``jax.vmap`` runs on one example after another.

  NMS is a loop whose length depends on the data. Batched by plain
  ``vmap``, every example runs as many iterations as the slowest, the
  data-dependent ``cond`` shortcuts turn into ``select`` (both sides run) and
  slices become gathers: 16 images of 5k boxes took 3-5x longer than 16
  single-image calls on CPU. ``lax.map`` keeps every example on the fast path.
  """

  @jax.custom_batching.custom_vmap
  def wrapped(*args):
    return fn(*args)

  @wrapped.def_vmap
  def rule(axis_size, in_batched, *args):
    args = tuple(x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
                 for x, batched in zip(map(jnp.asarray, args), in_batched))
    out = lax.map(lambda xs: wrapped(*xs), args)
    return out, jax.tree.map(lambda _: True, out)

  return wrapped


def _greedy(boxes: jax.Array, scores: jax.Array, classes: jax.Array | None,
            candidate: jax.Array, iou_threshold: jax.Array, *,
            max_output: int, tile_size: int, resolve_steps: int,
            neg_inf_candidates: bool) -> jax.Array:
  """:func:`_greedy_one`, one image at a time under ``jax.vmap``."""
  run = functools.partial(_greedy_one, max_output=max_output,
                          tile_size=tile_size, resolve_steps=resolve_steps,
                          neg_inf_candidates=neg_inf_candidates)
  if classes is None:
    return _one_image_at_a_time(
        lambda b, s, c, t: run(b, s, None, c, t))(boxes, scores, candidate,
                                                  iou_threshold)
  return _one_image_at_a_time(run)(boxes, scores, classes, candidate,
                                   iou_threshold)


def _greedy_one(boxes: jax.Array, scores: jax.Array,
                classes: jax.Array | None, candidate: jax.Array,
                iou_threshold: jax.Array, *, max_output: int,
                tile_size: int, resolve_steps: int,
                neg_inf_candidates: bool) -> jax.Array:
  """Exact greedy NMS of one image, by rounds of suppression ahead.

  The candidates sit in a buffer of the boxes still in play. A round takes
  the ``T`` best-ranked of them and resolves them exactly (no box kept
  earlier suppresses a box in the buffer, so only the tile's own boxes
  can), then drops every other box that one of the round's kept boxes
  suppresses and compacts the survivors to the front. Dropping a box that a
  kept box suppresses cannot change the result: it is never kept, and only
  kept boxes suppress. Each box is compared with the kept boxes above it
  until one suppresses it, as in the greedy loop; on clustered boxes a
  round clears whole clusters.

  The buffer starts in input order, and each round finds its tile with
  ``lax.top_k`` over the buffer's live prefix, so that clustered boxes,
  which leave the buffer fast, are never sorted. Once the rounds remove too
  few boxes for that to pay (uniform boxes: most are kept), the rest of the
  buffer is ranked once and the tiles are read off its front.

  The buffer is one ``[size, R]`` array, a row per box: x1, y1, x2, y2,
  area, score (-inf: out of play), then the input index and the class as
  the bits of integers, so that compacting it is one scatter (see
  ``_SCREEN_TILES``). A/B on 2 cores against two other layouts, same
  indices: the buffer coordinate-major (``[R, size]``, no transpose before
  the pair test, but XLA:CPU transposes each chunk for the scatter) ran
  1-5% slower at 1k-20k boxes; a pair test of the rows as read (``[chunk,
  kept]``, reduced over the minor axis) ran 1-8% slower on clustered
  boxes and 6-22% on uniform ones.

  Args:
    boxes: ``[N, 4]`` xyxy boxes.
    scores: ``[N]`` scores.
    classes: ``[N]`` int classes, or None for one class.
    candidate: ``[N]`` bool, boxes that may be kept.
    iou_threshold: scalar.
    max_output: ``K``, the loop stops once this many boxes are kept.
    tile_size: ``T``, boxes resolved per round in rank order (rounds that
      find their tile by top_k resolve ``T / _TOP_K_TILE_DIVISOR``). A
      round with tiles of ``t`` screens the buffer ``_SCREEN_TILES * t``
      boxes at a time, against its kept boxes in blocks of
      ``t / _ROW_BLOCKS``.
    resolve_steps: steps of a tile's fixed-point loop per test for its end
      (:func:`_resolve_tile`).
    neg_inf_candidates: whether a candidate may score -inf (static; not
      when candidates need ``score > score_threshold``).

  Returns:
    ``[K]`` int32 input indices of the kept boxes in rank order, ``-1``
    padded.
  """
  n = boxes.shape[0]
  t = tile_size
  # Every chunk that is screened lies inside the buffer (XLA would clamp the
  # start of a dynamic slice that does not); the read after the last chunk
  # may be clamped, but it is not used.
  size = t + -(-n // (_SCREEN_TILES * t)) * _SCREEN_TILES * t
  positions = jnp.arange(size)
  # Scores keep their precision; boxes are compared in their own dtype.
  dtype = jnp.promote_types(boxes.dtype, scores.dtype)
  int_dtype = jnp.int64 if dtype == jnp.float64 else jnp.int32
  score_col, index_col, class_col = 5, 6, 7

  def padded(x, fill=0):
    return jnp.full((size, *x.shape[1:]), fill, x.dtype).at[:n].set(x)

  def as_bits(x):
    return lax.bitcast_convert_type(x.astype(int_dtype), dtype)

  def from_bits(column):
    return lax.bitcast_convert_type(column, int_dtype)

  if classes is not None and jnp.iinfo(classes.dtype).bits > jnp.iinfo(
      int_dtype).bits:  # Wider ids than the buffer holds: number them.
    classes = jnp.unique(classes, return_inverse=True, size=n)[1]
  # -0.0 is 0.0, a tie, which top_k would order below it.
  in_play = jnp.where(
      candidate, lax.bitcast_convert_type(_keys.float_bits(scores),
                                          scores.dtype),
      -jnp.inf)
  columns = [padded(boxes), padded(box_ops.area(boxes))[:, None],
             padded(in_play, -jnp.inf)[:, None]]
  columns = [c.astype(dtype) for c in columns] + [as_bits(positions)[:, None]]
  if classes is not None:
    columns.append(as_bits(padded(classes))[:, None])
  buffer = jnp.concatenate(columns, axis=1)
  top_k_tile = max(1, t // _TOP_K_TILE_DIVISOR)
  # A round can overshoot max_output by up to T - 1 boxes.
  capacity = min(max_output, n) + t

  def boxes_of(rows):
    """``[5, M]`` coordinate-major boxes of ``_suppresses``."""
    return rows[:, :5].T.astype(boxes.dtype)

  def classes_of(rows):
    return None if classes is None else from_bits(rows[:, class_col])

  def put(into, slot, rows):
    return into.at[slot].set(rows, mode="drop")  # Out-of-range: dropped.

  def top_tile(buffer, num_left, t):
    """Slots of the ``t`` best live entries, by top_k over a prefix that
    holds every live entry (the shortest of t, 2t, 4t, ..., the buffer);
    entries past the live ones are stale."""
    prefixes = [t << i for i in range(max(1, (size - 1) // t).bit_length())]
    prefixes.append(size)

    def best(x, p):
      return lax.top_k(jnp.where(positions[:p] < num_left, x[:p], -jnp.inf),
                       t)[1]

    return lax.switch(jnp.sum(jnp.asarray(prefixes[:-1]) < num_left),
                      [functools.partial(best, p=p) for p in prefixes],
                      buffer[:, score_col])

  def screen(kept, num_kept, start, num_left, by_score, buffer):
    """Drops the boxes of buffer[start:num_left] that a kept box suppresses
    (and, if ``by_score``, those out of play) and compacts the rest to the
    front; returns their number and the buffer."""
    t = kept.shape[0]
    chunk = _SCREEN_TILES * t
    rows = max(1, t // _ROW_BLOCKS)
    kept_boxes, kept_classes = boxes_of(kept), classes_of(kept)

    def live_if_first(part, part_boxes, counters, block):
      """:func:`_bit_words` of the entries that are live and that none of
      the first ``block`` kept boxes suppresses."""
      hit = _suppresses(kept_boxes[:, :block], part_boxes, iou_threshold,
                        None if kept_classes is None else
                        kept_classes[:block], classes_of(part))
      live = counters[0] + jnp.arange(chunk) < num_left
      if by_score:
        live &= part[:, score_col] > -jnp.inf
      live &= ~jnp.any(hit & (jnp.arange(block) < num_kept)[:, None], axis=0)
      return _bit_words(live)

    # Only as many blocks of kept boxes as the round kept are compared.
    by_blocks = [functools.partial(live_if_first,
                                   block=min((i + 1) * rows, t))
                 for i in range(-(-t // rows))]

    def read(buffer, start):
      """The next chunk and its boxes for the pair test, stored in the loop
      state: fused into the pair test, the dynamic slice makes XLA:CPU's
      kernel several times slower and the transpose about 2x."""
      part = lax.dynamic_slice_in_dim(buffer, start, chunk)
      return part, boxes_of(part)

    def body(state):
      counters, buffer, part, part_boxes = state  # Counters: start, kept.
      live, count = _running_count(
          lax.switch(jnp.maximum(num_kept - 1, 0) // rows, by_blocks, part,
                     part_boxes, counters), chunk)
      slot = jnp.where(live, counters[1] + count - 1, size)
      buffer = put(buffer, slot, part)
      counters += jnp.stack([jnp.int32(chunk), count[-1]])
      return (counters, buffer, *read(buffer, counters[0]))

    counters, buffer, _, _ = lax.while_loop(
        lambda state: state[0][0] < num_left, body,
        (jnp.stack([start, jnp.int32(0)]), buffer, *read(buffer, start)))
    return counters[1], buffer

  def unfinished(state):
    num_left, num_kept = state[:2]
    return (num_left > 0) & (num_kept < max_output)

  def round_(state, by_score):
    """Resolves the next tile and screens the buffer against its kept boxes.
    ``by_score`` (static): the tile is found by top_k and leaves play by its
    score (see ``_TOP_K_ROUNDS``); else the buffer is in rank order and the
    tile is its front."""
    num_left, num_kept, buffer, kept, _ = state
    t = top_k_tile if by_score else tile_size
    slots = top_tile(buffer, num_left, t) if by_score else jnp.arange(t)
    tile = buffer[slots]
    alive = slots < num_left
    if by_score:
      alive &= tile[:, score_col] > -jnp.inf
    keep = _resolve_tile(boxes_of(tile), classes_of(tile), alive,
                         iou_threshold, resolve_steps)
    # Among the round's kept boxes. As a product with a triangular [t, t]
    # matrix (one kernel) it ran clustered 1k and 5k at 0.89-0.93x the
    # speed of a cumsum (five); packed (two) in 0.98-1.01x its time.
    count = _running_count(_bit_words(keep), t)[1]
    rank = count - 1
    kept = kept.at[jnp.where(keep, num_kept + rank, capacity)].set(
        from_bits(tile[:, index_col]).astype(jnp.int32), mode="drop")
    kept_rows = put(jnp.zeros_like(tile), jnp.where(keep, rank, t), tile)
    num_new = count[-1]
    if by_score:
      # The tile leaves play: -inf at its live slots only, so that the
      # scatter reads the tile and runs after the tile's read, and XLA:CPU
      # writes the buffer in place. Written at every slot, it did not wait
      # for the read, and XLA:CPU copied the whole buffer twice per round.
      # A/B on 2 cores, best of 20 rounds, against those copies (and, from
      # 12288 rows, a [size] mask of the tile's slots that the screen read
      # instead): clustered 5k 0.343-0.349 against 0.362-0.366 ms in three
      # runs; clustered 1k, 20k and 100k and uniform boxes within noise.
      buffer = buffer.at[jnp.where(alive, slots, size), score_col].set(
          -jnp.inf, mode="drop")
    num_left_new, buffer = screen(kept_rows, num_new,
                                  jnp.int32(0 if by_score else t), num_left,
                                  by_score, buffer)
    return (num_left_new, num_kept + num_new, buffer, kept,
            num_left - num_left_new)

  def top_k_pays(state):
    num_left, _, _, _, removed = state
    return unfinished(state) & (num_left <= _TOP_K_ROUNDS * removed)

  def to_rank_order(state, live):
    """The state with its buffer's ``live`` entries first in rank order."""
    _, num_kept, buffer, kept, removed = state
    return (jnp.sum(live, dtype=jnp.int32), num_kept,
            buffer[_rank(buffer[:, score_col], live)], kept, removed)

  # top_k orders float32 scores (and is fast for them only); -inf marks
  # the boxes out of play, so -inf candidates start in rank order. Checked
  # as a count: XLA:CPU split the [N] bool test of jnp.any over its two
  # threads (A/B on 2 cores, two runs, time against jnp.any's: clustered 5k
  # 0.94-0.96x, 1k and 20k 0.84-1.02x, within noise).
  start_by_score = dtype == jnp.float32
  if neg_inf_candidates and start_by_score:
    start_by_score = jnp.sum(candidate & (scores == -jnp.inf),
                             dtype=jnp.int32) == 0
  # The buffer is in input order, so tied scores stay ordered by input
  # index when they are ranked. In input order the non-candidates are out
  # of play by their score; if the rounds start in rank order, the first
  # loop (which needs the last round's count) does not start, and ranking
  # counts the candidates.
  state = (jnp.int32(n), jnp.int32(0), buffer,
           jnp.full((capacity,), -1, jnp.int32),
           jnp.where(start_by_score, n, 0).astype(jnp.int32))
  state = lax.while_loop(top_k_pays,
                         functools.partial(round_, by_score=True), state)
  # By score, the entries in play are the live prefix's with a score above
  # -inf (entries past it are stale).
  in_prefix = positions < state[0]
  live = jnp.where(start_by_score,
                   (state[2][:, score_col] > -jnp.inf) & in_prefix,
                   padded(candidate))
  state = lax.cond(unfinished(state), to_rank_order,
                   lambda state, _: state, state, live)
  _, num_kept, _, kept, _ = lax.while_loop(
      unfinished, functools.partial(round_, by_score=False), state)
  kept = jnp.pad(kept, (0, max(0, max_output - capacity)),
                 constant_values=-1)[:max_output]
  return jnp.where(jnp.arange(max_output) < num_kept, kept, -1)


def _arrays(*values: ArrayLike | None) -> tuple[Any, ...]:
  """Each value as an array (None stays None) that a jit takes as one
  argument; arrays pass as they are (``jnp.asarray`` of a ``jax.Array``
  took about 8 us)."""
  return tuple(v if v is None or isinstance(v, (jax.Array, np.ndarray))
               else jnp.asarray(v) for v in values)


def _number(value: Any) -> Any:
  """A Python or NumPy scalar as a Python float, which a jit takes weakly
  typed, like a literal: so that its type (int, np.float32, ...) does not
  key a new compile, and it is compared in the array's dtype. Arrays and
  tracers pass as they are."""
  if isinstance(value, (int, float, np.number)) or (
      isinstance(value, np.ndarray) and value.ndim == 0):
    return float(value)
  return value


def _checked(boxes: ArrayLike, *others: ArrayLike | None, iou_threshold,
             max_output: int | None, fmt: str) -> tuple[Any, ...]:
  """The checks of every NMS that a jit cannot make (a concrete threshold,
  static sizes, ``fmt``, the boxes' shape): ``(boxes, *others, K)`` as the
  jit takes them, ``K`` the number of output slots."""
  _check_unit_interval(iou_threshold, "iou_threshold")
  box_ops._check_format(fmt)  # pylint: disable=protected-access
  boxes, *others = _arrays(boxes, *others)
  boxes = as_boxes(boxes, "boxes", flat=True)
  return (boxes, *others, _output_size(max_output, boxes.shape[0]))


def _numbered_if_narrowed(classes: ArrayLike | None) -> ArrayLike | None:
  """Host class ids that JAX would narrow (64-bit values outside int32 with
  x64 off, which would wrap and merge classes) as int32 ``np.unique``
  numbers, which keep which boxes share a class; other ids as given."""
  if classes is None or isinstance(classes, jax.Array):
    return classes  # JAX arrays (and tracers) are already narrowed.
  ids = np.asarray(classes)
  wide = jax.dtypes.canonicalize_dtype(np.int64) != np.int64
  if not (wide and ids.dtype.kind in "iu" and ids.size):
    return classes
  limits = np.iinfo(np.int32)
  if limits.min <= ids.min() and ids.max() <= limits.max:
    return classes
  return np.unique(ids, return_inverse=True)[1].astype(np.int32).reshape(
      ids.shape)


def _platform(x: Any) -> str:
  """The platform of a concrete ``jax.Array``'s devices; else (NumPy, Python
  values, tracers) JAX's default backend, which a jit compiles for."""
  if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer):
    return next(iter(x.devices())).platform
  return jax.default_backend()


def _hard_nms(boxes, scores, classes, *, iou_threshold, score_threshold,
              max_output, mask, fmt, tile_size) -> NmsResult:
  """Shared body of :func:`nms` and :func:`batched_nms`: checks what a jit
  cannot, then runs one jit."""
  on_cpu = _platform(boxes) == "cpu"
  if tile_size is None:
    tile_size = TILE_SIZE if on_cpu else GPU_TILE_SIZE
  positive_int(tile_size, "tile_size")
  if score_threshold is not None:
    _check_score_threshold(score_threshold)
  boxes, scores, classes, mask, k = _checked(
      boxes, scores, _numbered_if_narrowed(classes), mask,
      iou_threshold=iou_threshold, max_output=max_output, fmt=fmt)
  return _hard_nms_jit(boxes, scores, classes, mask, _number(iou_threshold),
                       _number(score_threshold), max_output=k, fmt=fmt,
                       tile_size=int(tile_size),
                       resolve_steps=1 if on_cpu else GPU_RESOLVE_STEPS)


def _hard_nms_traced(boxes, scores, classes, mask, iou_threshold,
                     score_threshold, *, max_output, fmt, tile_size,
                     resolve_steps) -> NmsResult:
  """:func:`_hard_nms` after its checks, traced."""
  boxes, scores, mask = _check_inputs(boxes, scores, mask, fmt)
  n = boxes.shape[0]
  if classes is not None and (classes.shape != (n,) or not jnp.issubdtype(
      classes.dtype, jnp.integer)):
    raise ValueError(
        f"classes must be an integer array of shape [N] = ({n},), got "
        f"{classes.dtype}{list(classes.shape)}.")
  if n == 0:
    return NmsResult(jnp.full((max_output,), -1, jnp.int32),
                     jnp.zeros((max_output,), bool))
  # Traced thresholds take no gradient either (the vmap rule has no JVP).
  iou_threshold = lax.stop_gradient(iou_threshold)
  candidate = mask & ~jnp.isnan(scores)
  if score_threshold is not None:
    candidate &= scores > lax.stop_gradient(score_threshold)
  indices = _greedy(boxes, scores, classes, candidate,
                    jnp.asarray(iou_threshold, boxes.dtype),
                    max_output=max_output, tile_size=tile_size,
                    resolve_steps=resolve_steps,
                    neg_inf_candidates=score_threshold is None)
  return NmsResult(indices, indices >= 0)


_hard_nms_jit = _xla_cpu.jit_with_options(
    _hard_nms_traced, XLA_CPU_OPTIONS,
    static_argnames=("max_output", "fmt", "tile_size", "resolve_steps"))


def nms(boxes: ArrayLike, scores: ArrayLike, *, iou_threshold: float = 0.5,
        score_threshold: float | None = None, max_output: int | None = None,
        mask: ArrayLike | None = None, fmt: str = "xyxy",
        tile_size: int | None = None) -> NmsResult:
  """Exact greedy non-maximum suppression with a fixed-size output.

  Boxes are visited by descending score (ties: lower index first); a box is
  kept unless a kept box has IoU ``> iou_threshold`` with it (so IoU exactly
  equal to the threshold is kept). Only boxes with ``mask`` True and
  ``score > score_threshold`` are candidates; the others are never kept and
  never suppress. NaN scores are never candidates. Two zero-area boxes have
  IoU NaN and do not suppress each other (as torchvision), nor does a box
  with a NaN coordinate suppress or get suppressed. Not differentiable: the
  result is a set of indices.

  ``max_output``, ``fmt``, ``tile_size`` and the shapes are static: changing
  them recompiles. ``iou_threshold`` and ``score_threshold`` may be traced.

  Args:
    boxes: ``[N, 4]`` boxes in ``fmt``, any order.
    scores: ``[N]`` scores, ranked as float32 (float64 for float64 scores):
      integer scores above 2**24 can tie.
    iou_threshold: suppress when IoU is strictly greater, in [0, 1].
    score_threshold: a real scalar, not NaN; candidates need ``score >
      score_threshold``. A Python float is compared in float32 (float64
      for float64 scores), as NumPy compares a float32 array with a Python
      float: a float32 score of 0.3 is not above 0.3; half-precision scores
      are compared in float32 too, where NumPy would round the threshold to
      their dtype (an array threshold follows JAX's type promotion). On
      CPU, XLA compares floats with subnormals flushed to zero, so a
      float32 score below 1.2e-38 is not above 0 (it is still ranked by its
      value). None keeps every (non-NaN) score.
    max_output: ``K``, the number of output slots (default ``N``); the search
      stops once ``K`` boxes are kept.
    mask: ``[N]`` bool, False for padding boxes.
    fmt: ``"xyxy" | "xywh" | "cxcywh"``.
    tile_size: boxes processed per block; changes speed, never the result.
      None: :data:`TILE_SIZE` (128) for boxes on a CPU, else
      :data:`GPU_TILE_SIZE` (4096; measured on a GPU only). Where the boxes
      are: a ``jax.Array``'s device, else (NumPy, tracers under a caller's
      ``jax.jit``) JAX's default backend.

  Returns:
    ``NmsResult(indices [K] int32, valid [K] bool)``: kept indices by
    descending score, ``-1`` after the last kept box.

  References:
    ``torchvision.ops.nms``; the padded, tiled formulation of
    ``tf.image.non_max_suppression_padded``.

  >>> b = jnp.array([[0., 0., 10., 10.], [1., 0., 11., 10.],
  ...                [20., 20., 30., 30.]])
  >>> nms(b, jnp.array([0.9, 0.8, 0.7]), max_output=3).indices
  Array([ 0,  2, -1], dtype=int32)
  """
  return _hard_nms(boxes, scores, None, iou_threshold=iou_threshold,
                   score_threshold=score_threshold, max_output=max_output,
                   mask=mask, fmt=fmt, tile_size=tile_size)


def batched_nms(boxes: ArrayLike, scores: ArrayLike, classes: ArrayLike, *,
                iou_threshold: float = 0.5,
                score_threshold: float | None = None,
                max_output: int | None = None, mask: ArrayLike | None = None,
                fmt: str = "xyxy",
                tile_size: int | None = None) -> NmsResult:
  """Class-aware greedy NMS: boxes suppress only boxes of their own class.

  Equals running :func:`nms` on each class separately and merging the kept
  boxes by descending score (ties: lower index), i.e.
  ``torchvision.ops.batched_nms``. Classes are compared directly, not by the
  coordinate-offset trick, so negative coordinates and half precision are
  safe. Arguments are those of :func:`nms`.

  Args:
    boxes: ``[N, 4]`` boxes in ``fmt``.
    scores: ``[N]`` scores.
    classes: ``[N]`` integer class ids (any values; NumPy int64 ids outside
      int32 are renumbered on the host when JAX runs without x64, in a
      direct call only: under ``jax.jit`` or ``jax.vmap`` JAX has already
      wrapped them to int32, so renumber them first, e.g. with
      ``np.unique(classes, return_inverse=True)``).
    iou_threshold: as in :func:`nms`.
    score_threshold: as in :func:`nms`.
    max_output: as in :func:`nms`.
    mask: as in :func:`nms`.
    fmt: as in :func:`nms`.
    tile_size: as in :func:`nms`.

  Returns:
    ``NmsResult(indices [K], valid [K])`` as :func:`nms`.

  References:
    ``torchvision.ops.batched_nms``.

  >>> b = jnp.array([[0., 0., 10., 10.], [1., 0., 11., 10.]])
  >>> batched_nms(b, jnp.array([0.9, 0.8]), jnp.array([0, 1])).indices
  Array([0, 1], dtype=int32)
  """
  dtype = (None if classes is None else getattr(classes, "dtype", None)
           or np.asarray(classes).dtype)
  if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
    # Text raised JAX's TypeError, not naming classes.
    raise ValueError(f"classes must be an integer array of shape [N], got "
                     f"{'None' if dtype is None else dtype}.")
  return _hard_nms(boxes, scores, classes, iou_threshold=iou_threshold,
                   score_threshold=score_threshold, max_output=max_output,
                   mask=mask, fmt=fmt, tile_size=tile_size)


def _soft_weight(overlap: jax.Array, method: str, sigma: float,
                 iou_threshold: jax.Array) -> jax.Array:
  """The Soft-NMS score decay for IoU ``overlap`` with the selected box."""
  if method == "linear":
    return jnp.where(overlap > iou_threshold, 1.0 - overlap, 1.0)
  return jnp.exp(-(overlap * overlap) / sigma)


def _soft_nms_traced(boxes, scores, mask, iou_threshold, sigma,
                     score_threshold, *, method, max_output,
                     fmt) -> SoftNmsResult:
  """:func:`soft_nms` after its checks, traced."""
  out_dtype = scores.dtype
  if not jnp.issubdtype(out_dtype, jnp.floating):
    out_dtype = jnp.float32
  boxes, scores, mask = _check_inputs(boxes, scores, mask, fmt)
  if boxes.shape[0] == 0:
    return SoftNmsResult(jnp.full((max_output,), -1, jnp.int32),
                         jnp.zeros((max_output,), out_dtype),
                         jnp.zeros((max_output,), bool))
  iou_threshold, sigma, score_threshold = lax.stop_gradient(
      (iou_threshold, sigma, score_threshold))
  active = mask & (scores >= score_threshold)  # NaN: False.
  # Scores decay in the wider of the two dtypes (float64 boxes, float32
  # scores: the loop's scores would change dtype).
  scores = scores.astype(jnp.promote_types(scores.dtype, boxes.dtype))
  indices, selected = _one_image_at_a_time(functools.partial(
      _soft_loop_one, method=method, max_output=max_output))(
          boxes, scores, active, jnp.asarray(iou_threshold, boxes.dtype),
          sigma, score_threshold)
  return SoftNmsResult(indices, selected.astype(out_dtype), indices >= 0)


_soft_nms_jit = _xla_cpu.jit_with_options(
    _soft_nms_traced, XLA_CPU_OPTIONS,
    static_argnames=("method", "max_output", "fmt"))


def _soft_loop_one(boxes: jax.Array, scores: jax.Array, active: jax.Array,
                   iou_threshold: jax.Array, sigma: jax.Array,
                   score_threshold: jax.Array, *, method: str,
                   max_output: int) -> tuple[jax.Array, jax.Array]:
  """The Soft-NMS selection loop; ``[K]`` indices and selection scores."""

  def cond(state):
    step, active = state[:2]
    return (step < max_output) & jnp.any(active)

  def body(state):
    step, active, current, indices, selected = state
    best = jnp.argmax(jnp.where(active, current, -jnp.inf))  # Ties: first.
    # If every active score is -inf (score_threshold=-inf), argmax found an
    # inactive -inf first: take the first active box instead.
    best = jnp.where(active[best], best, jnp.argmax(active))
    indices = indices.at[step].set(best.astype(jnp.int32))
    selected = selected.at[step].set(current[best])
    active = active.at[best].set(False)
    overlap = box_ops.iou(boxes[best], boxes, eps=0.0)  # [N]
    overlap = jnp.where(jnp.isnan(overlap), 0.0, overlap)
    weight = _soft_weight(overlap, method, sigma, iou_threshold)
    # A weight of 0 (linear at IoU 1; a Gaussian that underflows) takes any
    # score to 0, an infinite one too: inf * 0 would be NaN.
    decayed = jnp.where(weight == 0, 0.0, current * weight)
    current = jnp.where(active, decayed, current)
    active &= current >= score_threshold
    return step + 1, active, current, indices, selected

  init = (jnp.int32(0), active, scores,
          jnp.full((max_output,), -1, jnp.int32),
          jnp.zeros((max_output,), scores.dtype))
  _, _, _, indices, selected = lax.while_loop(cond, body, init)
  return indices, selected


def soft_nms(boxes: ArrayLike, scores: ArrayLike, *, method: str = "gaussian",
             sigma: float = 0.5, iou_threshold: float = 0.3,
             score_threshold: float = 1e-3, max_output: int | None = None,
             mask: ArrayLike | None = None,
             fmt: str = "xyxy") -> SoftNmsResult:
  """Soft-NMS: decays the scores of overlapping boxes instead of removing them.

  Repeatedly selects the remaining box with the highest current score (ties:
  lower index), then multiplies every remaining score by
  ``exp(-iou**2 / sigma)`` (``"gaussian"``) or, where ``iou >
  iou_threshold``, by ``1 - iou`` (``"linear"``), a weight of 0 taking any
  score, an infinite one too, to 0; boxes whose score falls below
  ``score_threshold`` are discarded. As in the paper's reference code a
  box remains while ``score >= score_threshold``; unlike it, every box must
  start with ``score >= score_threshold`` (``cpu_soft_nms`` discards only
  the boxes it decays below it), and areas are continuous (it adds 1
  pixel). On CPU, XLA compares floats with subnormals flushed to zero, so
  scores decayed below 1.2e-38 (float32) compare as 0.
  ``iou_threshold`` is unused by ``"gaussian"``. The weights lie in
  ``[0, 1]``, so a negative score (possible with ``score_threshold < 0``)
  decays towards 0, upwards, as in ``cpu_soft_nms``. A pair of zero-area boxes
  (or with a NaN coordinate) counts as IoU 0. Cost ``O(K * N)``. The scores
  are not differentiated through (the selection is a ``while_loop``).

  Args:
    boxes: ``[N, 4]`` boxes in ``fmt``.
    scores: ``[N]`` initial scores.
    method: ``"gaussian" | "linear"`` (static).
    sigma: Gaussian width, a real scalar > 0 (checked when concrete; a
      traced sigma < 0 gives weights above 1, and 0 NaN weights where
      the IoU is 0).
    iou_threshold: the linear method's overlap threshold, in [0, 1].
    score_threshold: a real scalar, not NaN; boxes below it are discarded.
    max_output: ``K``, output slots (default ``N``, static).
    mask: ``[N]`` bool, False for padding boxes.
    fmt: ``"xyxy" | "xywh" | "cxcywh"``.

  Returns:
    ``SoftNmsResult(indices [K] int32, scores [K], valid [K] bool)`` in
    selection order; ``scores`` are the decayed scores at selection.

  References:
    Bodla et al., "Soft-NMS -- Improving Object Detection With One Line of
    Code", ICCV 2017 (``cpu_soft_nms``).

  >>> b = jnp.array([[0., 0., 10., 10.], [1., 0., 11., 10.]])
  >>> r = soft_nms(b, jnp.array([0.9, 0.8]), method="linear")
  >>> r.indices.tolist(), round(float(r.scores[1]), 4)  # 0.8 * (1 - 9 / 11)
  ([0, 1], 0.1455)
  """
  one_of(method, SOFT_NMS_METHODS, "method")
  _check_scalar(sigma, "sigma")
  _check_score_threshold(score_threshold)
  if not isinstance(sigma, jax.core.Tracer) and not float(sigma) > 0:
    raise ValueError(f"sigma must be > 0, got {sigma}.")
  boxes, scores, mask, k = _checked(boxes, scores, mask,
                                    iou_threshold=iou_threshold,
                                    max_output=max_output, fmt=fmt)
  return _soft_nms_jit(boxes, scores, mask, _number(iou_threshold),
                       _number(sigma), _number(score_threshold), method=method,
                       max_output=k, fmt=fmt)
