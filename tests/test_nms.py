"""Tests for jaxdl.nms against the float64 oracles in tests/reference/nms.py.

Greedy NMS is compared for exact equality of the kept indices (and order).
jaxdl decides ``IoU > threshold`` in float32 and the oracle in float64 on the
same float32 inputs; the two can only disagree when an IoU lies within float32
rounding (~1e-7 relative) of the threshold, which the random inputs here do
not produce (checked: they agree), while the hand-made "exactly equal" cases
use exactly representable areas. Soft-NMS scores are compared with rtol 1e-5:
a float32 product of at most a few hundred decay factors.
"""

import functools

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import nms
from tests.reference import nms as ref

THRESHOLDS = [0.0, 0.3, 0.5, 0.7, 1.0]
N = 300  # Not a multiple of either tile size used below.

# Thresholds are traced, so each shape / static configuration compiles once.
_nms = jax.jit(nms.nms, static_argnames=("max_output", "fmt", "tile_size"))
_batched = jax.jit(nms.batched_nms,
                   static_argnames=("max_output", "fmt", "tile_size"))
_soft = jax.jit(nms.soft_nms, static_argnames=("method", "max_output", "fmt"))


def _kept(result) -> list[int]:
  """Kept indices, after checking the padding contract."""
  indices, valid = np.asarray(result.indices), np.asarray(result.valid)
  count = int(valid.sum())
  assert valid[:count].all() and not valid[count:].any()
  assert (indices[count:] == -1).all() and (indices[:count] >= 0).all()
  return indices[:count].tolist()


def _inputs(kind: str, rng: np.random.Generator, n: int = N):
  return ref.generated_boxes(kind, rng, n)


# ------------------------------------------------------------ oracle, greedy


@pytest.mark.parametrize("tile_size", [64, 256])
@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_matches_reference(kind, tile_size, rng):
  boxes, scores = _inputs(kind, rng)
  for threshold in THRESHOLDS:
    got = _kept(_nms(boxes, scores, iou_threshold=threshold,
                     tile_size=tile_size))
    assert got == ref.greedy_nms(boxes, scores, threshold), threshold


@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_many_rounds_match_reference(kind, rng):
  """Tiny tiles: dozens of rounds, each compacting the boxes still in play
  over several screening chunks (N = 301 is not a multiple of the chunk),
  with every block count of kept boxes, classes, padding and an output cut
  off in the middle of a round."""
  boxes, scores = _inputs(kind, rng, 301)
  classes = rng.integers(0, 3, 301)
  mask = rng.uniform(size=301) < 0.9
  for threshold in (0.3, 0.7):
    want = ref.greedy_nms(boxes, scores, threshold, mask=mask)
    got = _kept(_nms(boxes, scores, iou_threshold=threshold, mask=mask,
                     tile_size=4))
    assert got == want, threshold
    cut = _kept(_nms(boxes, scores, iou_threshold=threshold, mask=mask,
                     max_output=len(want) // 2 + 1, tile_size=4))
    assert cut == want[:len(want) // 2 + 1], threshold
    aware = _kept(_batched(boxes, scores, classes, iou_threshold=threshold,
                           tile_size=5))
    assert aware == ref.batched_nms(boxes, scores, classes, threshold)


@pytest.fixture
def fresh_traces():
  """Clears JAX's caches around a test that patches a trace-time constant
  (nms._greedy is jitted at import)."""
  jax.clear_caches()
  yield
  jax.clear_caches()


@pytest.mark.parametrize("top_k_rounds", [0, 2, 10**9])
@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_top_k_and_rank_order_rounds_match_reference(
    kind, top_k_rounds, rng, monkeypatch, fresh_traces):
  """Rounds that find their tile by top_k, in input order, and rounds on the
  ranked buffer give the same result, whenever the switch happens: 0 ranks
  before the first round, 2 switches after a few rounds, 10**9 never."""
  monkeypatch.setattr(nms, "_TOP_K_ROUNDS", top_k_rounds)
  _check_eager_tiles_of_8(*_inputs(kind, rng, 301), rng, (0.3, 0.7))


def _check_eager_tiles_of_8(boxes, scores, rng, thresholds):
  """Eager nms and batched_nms with tiles of 8 (patched constants apply)
  against the oracles, with classes and padding."""
  classes = rng.integers(0, 3, len(scores))
  mask = rng.uniform(size=len(scores)) < 0.9
  for threshold in thresholds:
    got = _kept(nms.nms(boxes, scores, iou_threshold=threshold, mask=mask,
                        tile_size=8))
    assert got == ref.greedy_nms(boxes, scores, threshold, mask=mask)
    aware = _kept(nms.batched_nms(boxes, scores, classes,
                                  iou_threshold=threshold, tile_size=8))
    assert aware == ref.batched_nms(boxes, scores, classes, threshold)


@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_top_k_rounds_match_reference(kind, rng, monkeypatch, fresh_traces):
  """Many top_k rounds, which take their tile out of play by -inf at its
  live slots only: same result, also where the tile's kept boxes do not
  suppress themselves (threshold 1, empty boxes) and where the last tiles
  hold slots past the boxes left."""
  monkeypatch.setattr(nms, "_TOP_K_ROUNDS", 1000)
  boxes, scores = _inputs(kind, rng, 301)
  boxes[::25, 2:] = boxes[::25, :2]  # Empty boxes: IoU NaN with themselves.
  _check_eager_tiles_of_8(boxes, scores, rng, (0.3, 0.7, 1.0))


def test_default_tile_follows_the_platform(rng, monkeypatch):
  """tile_size=None: TILE_SIZE for boxes on a CPU, GPU_TILE_SIZE (and the
  fixed-point loop testing every GPU_RESOLVE_STEPS steps) elsewhere. The
  accelerator's settings run here on the CPU with the same result, also
  for a chain of boxes (each suppressing only the next) that takes the
  fixed-point loop 40 steps, not a multiple of 4."""
  platform = nms._platform  # pylint: disable=protected-access
  backend = jax.default_backend()
  assert platform(jnp.zeros(3)) == platform(np.zeros(3)) == backend
  jax.jit(lambda x: np.testing.assert_equal(platform(x), backend) or x)(
      jnp.zeros(3))
  calls = []
  real = nms._hard_nms_jit  # pylint: disable=protected-access

  def spy(*args, **kwargs):
    calls.append((kwargs["tile_size"], kwargs["resolve_steps"]))
    return real(*args, **kwargs)

  monkeypatch.setattr(nms, "_hard_nms_jit", spy)
  boxes, scores = _inputs("clustered", rng, 300)
  want = ref.greedy_nms(boxes, scores, 0.5)
  assert _kept(nms.nms(boxes, scores)) == want
  monkeypatch.setattr(nms, "_platform", lambda x: "gpu")
  assert _kept(nms.nms(boxes, scores)) == want
  classes = rng.integers(0, 3, 300)
  assert _kept(nms.batched_nms(boxes, scores, classes)) == ref.batched_nms(
      boxes, scores, classes, 0.5)
  chain = np.stack([np.arange(41.), np.zeros(41), np.arange(41.) + 2.5,
                    np.ones(41)], axis=1)  # IoU 3/7 with the next, 1/9 beyond.
  steps = np.linspace(1, 0.5, 41)
  got = _kept(nms.nms(chain, steps, iou_threshold=0.3))
  assert got == ref.greedy_nms(chain, steps, 0.3) == list(range(0, 41, 2))
  accelerator = (nms.GPU_TILE_SIZE, nms.GPU_RESOLVE_STEPS)
  here = (nms.TILE_SIZE, 1) if backend == "cpu" else accelerator
  assert calls == [here] + [accelerator] * 3


def test_minus_infinite_scores_are_ranked_last(rng):
  """-inf marks boxes out of play in the top_k rounds, so -inf candidates
  send the rounds to rank order; they still come last, ties by index."""
  boxes, scores = _inputs("uniform", rng, 200)
  scores[rng.uniform(size=200) < 0.3] = -np.inf
  for threshold in (0.3, 0.7):
    got = _kept(_nms(boxes, scores, iou_threshold=threshold, tile_size=16))
    assert got == ref.greedy_nms(boxes, scores, threshold)
    assert np.isneginf(scores[got]).any()
  # A score threshold, even -inf, leaves no -inf candidate: the rounds
  # start by top_k without checking.
  got = _kept(_nms(boxes, scores, iou_threshold=0.5, tile_size=16,
                   score_threshold=-np.inf))
  assert got == ref.greedy_nms(boxes, scores, 0.5, score_threshold=-np.inf)
  assert np.isfinite(scores[got]).all()


@pytest.mark.parametrize("size", [1, 31, 32, 33, 64, 100, 128, 256])
def test_packed_running_count(rng, size):
  """The screens' running counts of live flags, packed into 32-bit words,
  equal a cumsum, bit 31 included."""
  for fraction in (0.0, 0.3, 1.0):
    flags = rng.uniform(size=size) < fraction
    got_flags, count = nms._running_count(
        nms._bit_words(jnp.asarray(flags)), size)
    np.testing.assert_array_equal(got_flags, flags)
    np.testing.assert_array_equal(count, np.cumsum(flags))


def test_packed_running_count_of_long_chunks_stays_small():
  """Beyond a few words the words' counts are a cumsum, not an unrolled
  chain of adds (one per word), which took XLA minutes to compile at large
  tile sizes."""
  words = jnp.zeros((256,), jnp.uint32)
  jaxpr = jax.make_jaxpr(lambda w: nms._running_count(w, 32 * 256))(words)
  assert len(jaxpr.eqns) < 40


@pytest.mark.parametrize("tile_size", [9, 13, 17, 33, 100])
def test_tile_sizes_whose_row_blocks_do_not_divide_the_tile(rng, tile_size):
  """A round compares its kept boxes in blocks of tile / 4 rows; the last
  block of an odd tile is cut to the tile (it raised a shape error)."""
  boxes, scores = _inputs("clustered", rng, 300)
  for threshold in (0.3, 0.7):
    got = _kept(_nms(boxes, scores, iou_threshold=threshold,
                     tile_size=tile_size))
    assert got == ref.greedy_nms(boxes, scores, threshold)


def test_notes_example_and_first_notes_bug():
  """The notes' 4-box ``dets`` keep rows 1 and 3; the first notes file's
  snippet (``xxr``/``yyr`` from ``xl``) suppresses nothing."""
  dets = ref.NOTES_DETS
  got = _kept(nms.nms(dets[:, :4], dets[:, 4], iou_threshold=0.5))
  assert got == ref.NOTES_KEEP == ref.notes_nms(dets, 0.5)
  assert ref.greedy_nms(dets[:, :4], dets[:, 4], 0.5) == ref.NOTES_KEEP
  assert sorted(ref.notes_nms_first(dets, 0.5)) == [0, 1, 2, 3]


def test_sizes_zero_one_and_max_output_beyond_n():
  empty = nms.nms(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
  chex.assert_shape(empty.indices, (0,))
  padded = nms.nms(np.zeros((0, 4)), np.zeros((0,)), max_output=3)
  assert padded.indices.tolist() == [-1, -1, -1]
  assert not padded.valid.any()
  one = nms.nms(np.array([[0., 0., 1., 1.]]), np.array([0.5]), max_output=4)
  assert one.indices.tolist() == [0, -1, -1, -1]
  assert one.valid.tolist() == [True, False, False, False]


def test_max_output_truncates_and_stops(rng):
  boxes, scores = _inputs("uniform", rng)
  want = ref.greedy_nms(boxes, scores, 0.5)
  for k in (1, 100):
    got = _nms(boxes, scores, iou_threshold=0.5, max_output=k, tile_size=64)
    assert _kept(got) == want[:k]
    chex.assert_shape(got.indices, (k,))


def test_everything_suppressed_and_ties():
  boxes = np.tile(np.array([[1., 2., 5., 7.]], np.float32), (70, 1))
  tied = np.full(70, 0.5, np.float32)
  assert _kept(_nms(boxes, tied, iou_threshold=0.5, tile_size=64)) == [0]
  rising = np.linspace(0, 1, 70).astype(np.float32)
  assert _kept(_nms(boxes, rising, iou_threshold=0.5, tile_size=64)) == [69]
  # Disjoint boxes with tied scores: all kept, by index; -0.0 ties 0.0.
  disjoint = np.stack([np.arange(70) * 10., np.zeros(70),
                       np.arange(70) * 10. + 5, np.ones(70)], -1)
  signed_zeros = np.where(np.arange(70) % 2 == 0, -0.0, 0.0).astype(np.float32)
  got = _kept(_nms(disjoint.astype(np.float32), signed_zeros,
                   iou_threshold=0.5, tile_size=64))
  assert got == list(range(70))


def test_iou_exactly_at_threshold_is_kept():
  # inter 2, union 4: IoU is exactly 0.5 in float32 and float64.
  boxes = np.array([[0., 0., 4., 1.], [0., 0., 2., 1.]], np.float32)
  scores = np.array([0.9, 0.8], np.float32)
  assert _kept(nms.nms(boxes, scores, iou_threshold=0.5)) == [0, 1]
  assert _kept(nms.nms(boxes, scores, iou_threshold=0.49)) == [0]
  # Touching boxes have IoU 0: kept at threshold 0; overlapping ones are not.
  touching = np.array([[0., 0., 1., 1.], [1., 0., 2., 1.], [0.5, 0., 1.5, 1.]])
  got = _kept(nms.nms(touching, np.array([0.9, 0.8, 0.7]), iou_threshold=0.0))
  assert got == [0, 1] == ref.greedy_nms(touching, [0.9, 0.8, 0.7], 0.0)


def test_negative_coordinates_and_origin(rng):
  boxes, scores = _inputs("clustered", rng)
  shifted = boxes - np.float32(700.0)  # Most boxes now negative.
  assert (shifted < 0).mean() > 0.5
  got = _kept(_nms(shifted, scores, iou_threshold=0.5, tile_size=64))
  assert got == ref.greedy_nms(shifted, scores, 0.5)
  # Boxes at the origin, including empty ones, which never suppress.
  origin = np.array([[0., 0., 0., 0.], [0., 0., 0., 0.], [0., 0., 2., 2.],
                     [0., 0., 2., 1.9], [-1., -1., 0., 0.]], np.float32)
  scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
  got = _kept(nms.nms(origin, scores, iou_threshold=0.5))
  assert got == [0, 1, 2, 4] == ref.greedy_nms(origin, scores, 0.5)


def test_mask_score_threshold_and_nan(rng):
  boxes, scores = _inputs("clustered", rng)
  mask = rng.uniform(size=N) < 0.7
  # Padding gets the best scores and overlaps everything: never selected.
  padded_scores = np.where(mask, scores, 2.0).astype(np.float32)
  padded_boxes = np.where(mask[:, None], boxes, [0., 0., 1000., 1000.])
  padded_boxes = padded_boxes.astype(np.float32)
  got = _kept(_nms(padded_boxes, padded_scores, iou_threshold=0.5,
                   mask=mask, score_threshold=0.4, tile_size=64))
  want = ref.greedy_nms(padded_boxes, padded_scores, 0.5, mask=mask,
                        score_threshold=0.4)
  assert got == want and set(got) <= set(np.flatnonzero(mask & (scores > 0.4)))
  # The threshold is compared in float32, as NumPy compares float32 scores
  # with a Python float: float32(0.3) is not above 0.3 (it is in float64).
  at_threshold = np.where(np.arange(N) % 2, scores, 0.3).astype(np.float32)
  got = _kept(_nms(boxes, at_threshold, iou_threshold=0.5,
                   score_threshold=0.3, tile_size=64))
  candidates = at_threshold > 0.3
  assert not candidates[::2].any()
  assert got == ref.greedy_nms(boxes, at_threshold, 0.5, mask=candidates)
  nan_scores = scores.copy()
  nan_scores[::3] = np.nan
  got = _kept(_nms(boxes, nan_scores, iou_threshold=0.5, tile_size=64))
  assert got == ref.greedy_nms(boxes, nan_scores, 0.5)
  assert not set(got) & set(range(0, N, 3))
  # A box with a NaN coordinate neither suppresses nor is suppressed.
  nan_boxes = boxes.copy()
  nan_boxes[np.argsort(-scores)[:2], 0] = np.nan
  got = _kept(_nms(nan_boxes, scores, iou_threshold=0.5, tile_size=64))
  assert got == ref.greedy_nms(nan_boxes, scores, 0.5)
  assert got[:2] == np.argsort(-scores)[:2].tolist()


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_formats_and_half_precision(fmt, rng):
  boxes, scores = ref.uniform_boxes(rng, 50)
  x1, y1, x2, y2 = boxes.T
  converted = (np.stack([x1, y1, x2 - x1, y2 - y1], -1) if fmt == "xywh" else
               np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1))
  want = ref.greedy_nms(boxes, scores, 0.5)
  assert _kept(nms.nms(converted, scores, fmt=fmt)) == want
  half = boxes.astype(np.float16)
  got = _kept(nms.nms(half, scores.astype(np.float16)))
  assert got == ref.greedy_nms(half, scores.astype(np.float16), 0.5)


@hypothesis.settings(max_examples=25)
@hypothesis.given(
    coords=st.lists(st.integers(-4, 4), min_size=4 * 40, max_size=4 * 40),
    score_levels=st.lists(st.integers(0, 3), min_size=40, max_size=40),
    threshold=st.sampled_from(THRESHOLDS + [1 / 3]))
def test_small_grid_boxes_property(coords, score_levels, threshold):
  """Integer boxes on a tiny grid: many ties, empty boxes and exact IoUs."""
  corners = np.array(coords, np.float32).reshape(40, 2, 2)
  boxes = np.concatenate([corners.min(1), corners.max(1)], -1)
  scores = np.array(score_levels, np.float32) / 3
  got = _kept(_nms(boxes, scores, iou_threshold=threshold, tile_size=16))
  assert got == ref.greedy_nms(boxes, scores, threshold)


# ------------------------------------------------- batched (class-aware) NMS


def test_batched_matches_per_class_reference(rng):
  boxes, scores, objects = ref.clustered_boxes(rng, N, num_objects=6)
  classes = (objects + rng.integers(0, 2, N)) % 4 - 2  # Overlapping classes.
  for threshold in (0.3, 0.7):
    got = _kept(_batched(boxes - 500, scores, classes,
                         iou_threshold=threshold, tile_size=64))
    assert got == ref.batched_nms(boxes - 500, scores, classes, threshold)
  # One class is plain NMS; a class per box keeps everything.
  same = _kept(_batched(boxes, scores, np.zeros(N, np.int32),
                        iou_threshold=0.5, tile_size=64))
  assert same == ref.greedy_nms(boxes, scores, 0.5)
  distinct = _kept(_batched(boxes, scores, np.arange(N), iou_threshold=0.5,
                            tile_size=64))
  assert distinct == np.argsort(-scores, kind="stable").tolist()


def test_batched_half_precision_and_max_output(rng):
  """No coordinate offsets: float16 boxes and class ids far apart are fine."""
  boxes, scores, objects = ref.clustered_boxes(rng, 80, num_objects=4)
  half = (boxes / 4).astype(np.float16)
  classes = objects * 100_000
  got = nms.batched_nms(half, scores, classes, iou_threshold=0.5,
                        max_output=10)
  want = ref.batched_nms(half, scores, classes, 0.5)[:10]
  assert _kept(got) == want


@pytest.mark.parametrize("box_dtype", [np.float32, np.float64])
def test_batched_64_bit_inputs(box_dtype, rng):
  """With x64: float64 scores and boxes, and int64 class ids that differ
  only above bit 32 (NMS packs ids as the bits of 32-bit ints next to
  float32 boxes, so such ids must be renumbered, not truncated)."""
  boxes, scores, _ = ref.clustered_boxes(rng, 90, num_objects=3)
  classes = (np.arange(90, dtype=np.int64) % 2) << 33  # Low 32 bits: 0.
  with jax.enable_x64(True):
    got = nms.batched_nms(boxes.astype(box_dtype), scores.astype(np.float64),
                          classes, iou_threshold=0.5, tile_size=16)
    assert got.indices.dtype == jnp.int32
    got = _kept(got)
  assert got == ref.batched_nms(boxes.astype(box_dtype), scores, classes, 0.5)
  assert got != ref.greedy_nms(boxes.astype(box_dtype), scores, 0.5)


# ------------------------------------------------------------------ soft-NMS


@pytest.mark.parametrize("method", nms.SOFT_NMS_METHODS)
def test_soft_nms_matches_reference(method, rng):
  boxes, scores, _ = ref.clustered_boxes(rng, 120, num_objects=5)
  mask = rng.uniform(size=120) < 0.9
  got = _soft(boxes, scores, method=method, sigma=0.5, iou_threshold=0.3,
              score_threshold=0.01, mask=mask)
  want_idx, want_scores = ref.soft_nms(boxes, scores, method=method,
                                       sigma=0.5, iou_threshold=0.3,
                                       score_threshold=0.01, mask=mask)
  assert _kept(got) == want_idx
  count = len(want_idx)
  np.testing.assert_allclose(got.scores[:count], want_scores, rtol=1e-5)
  assert (np.asarray(got.scores[count:]) == 0).all()
  assert 0 < count < mask.sum()  # Some boxes decayed below the threshold.


def test_soft_nms_64_bit_boxes_with_32_bit_scores(rng):
  """With x64, float64 boxes and float32 scores decay in float64 (the loop
  carry changed dtype before) and come back as float32."""
  boxes, scores, _ = ref.clustered_boxes(rng, 60, num_objects=3)
  with jax.enable_x64(True):
    got = nms.soft_nms(boxes.astype(np.float64), scores.astype(np.float32),
                       method="linear", score_threshold=0.01)
    assert got.scores.dtype == jnp.float32
  want_idx, want_scores = ref.soft_nms(boxes, scores.astype(np.float32),
                                       method="linear", score_threshold=0.01)
  assert _kept(got) == want_idx
  np.testing.assert_allclose(got.scores[:len(want_idx)], want_scores,
                             rtol=1e-6)


def test_soft_nms_edge_cases():
  boxes = np.array([[0., 0., 10., 10.], [0., 0., 10., 10.], [0., 0., 0., 0.],
                    [0., 0., 0., 0.], [20., 20., 30., 30.]], np.float32)
  scores = np.array([0.9, 0.9, 0.8, 0.8, 0.1], np.float32)
  got = nms.soft_nms(boxes, scores, method="linear", max_output=6)
  # An identical box decays to 0 (linear); empty boxes do not interact.
  assert _kept(got) == [0, 2, 3, 4]
  np.testing.assert_allclose(got.scores[:4], [0.9, 0.8, 0.8, 0.1], rtol=1e-6)
  empty = nms.soft_nms(np.zeros((0, 4)), np.zeros((0,)), max_output=2)
  assert empty.indices.tolist() == [-1, -1]
  # With score_threshold=-inf a -inf score stays in play: selected once,
  # after the finite one, as the reference does.
  b2, s2 = boxes[[0, 4]], np.array([1.0, -np.inf], np.float32)
  got = nms.soft_nms(b2, s2, score_threshold=-np.inf)
  assert _kept(got) == [0, 1] == ref.soft_nms(b2, s2, score_threshold=-np.inf)[0]


@pytest.mark.parametrize("method, sigma", [("linear", 0.5),
                                           ("gaussian", 1e-3)])
@pytest.mark.parametrize("first, second", [(np.inf, np.inf),
                                           (1.0, -np.inf)])
def test_soft_nms_zero_weight_zeroes_infinite_scores(method, sigma, first,
                                                     second):
  """A weight of 0 (linear at IoU 1; a Gaussian that underflows) takes any
  score to 0, as it does every finite one: an infinite score times 0 was
  NaN, which dropped the box although score_threshold=-inf keeps a 0."""
  boxes = np.array([[0., 0., 10., 10.], [0., 0., 10., 10.],
                    [20., 20., 30., 30.]], np.float32)
  scores = np.float32([first, second, 0.5])
  got = nms.soft_nms(boxes, scores, method=method, sigma=sigma,
                     score_threshold=-np.inf)
  want_idx, want_scores = ref.soft_nms(boxes, scores, method=method,
                                       sigma=sigma, score_threshold=-np.inf)
  assert _kept(got) == want_idx == [0, 2, 1]
  np.testing.assert_array_equal(got.scores, want_scores)
  np.testing.assert_array_equal(want_scores, [first, 0.5, 0.0])


# ------------------------------------------------ jit, vmap, retrace, errors


def test_vmap_equals_per_image(rng):
  batch = [_inputs(kind, rng, 200) for kind in ("uniform", "clustered") * 2]
  boxes = np.stack([b for b, _ in batch])
  scores = np.stack([s for _, s in batch])
  mask = rng.uniform(size=scores.shape) < 0.8
  run = jax.jit(jax.vmap(functools.partial(nms.nms, iou_threshold=0.5,
                                           max_output=150, tile_size=64)))
  got = run(boxes, scores, mask=mask)
  chex.assert_shape(got.indices, (4, 150))
  for i in range(4):
    want = ref.greedy_nms(boxes[i], scores[i], 0.5, mask=mask[i])[:150]
    assert _kept(jax.tree.map(lambda x, i=i: x[i], got)) == want
  classes = rng.integers(0, 3, scores.shape)
  aware = jax.vmap(functools.partial(nms.batched_nms, iou_threshold=0.5,
                                     tile_size=64))(boxes, scores, classes)
  for i in range(4):
    assert _kept(jax.tree.map(lambda x, i=i: x[i], aware)) == ref.batched_nms(
        boxes[i], scores[i], classes[i], 0.5)
  soft = jax.vmap(functools.partial(nms.soft_nms, max_output=20))(
      boxes[:, :40], scores[:, :40])
  for i in range(4):
    assert _kept(jax.tree.map(lambda x, i=i: x[i], soft)) == ref.soft_nms(
        boxes[i, :40], scores[i, :40])[0][:20]


def test_threshold_types_do_not_compile_again(rng):
  """Python ints and floats and NumPy scalars are one weakly typed float to
  the jit of a call from Python: changing their type or value does not
  compile again (None, no threshold, does)."""
  boxes, scores = _inputs("uniform", rng, 40)
  runs = [(nms.nms, nms._hard_nms_jit.tuned),  # pylint: disable=protected-access
          (nms.soft_nms, nms._soft_nms_jit.tuned)]  # pylint: disable=protected-access
  for fn, jitted in runs:
    fn(boxes, scores, iou_threshold=0.3, score_threshold=0.1)
    size = jitted._cache_size()  # pylint: disable=protected-access
    for value in (0.6, 1, np.float32(0.5), np.float64(0.5), np.array(0.2)):
      fn(boxes, scores, iou_threshold=value, score_threshold=value)
    assert jitted._cache_size() == size, fn  # pylint: disable=protected-access
  # A float32 score of 0.3 is still not above the threshold 0.3.
  at_threshold = np.full(40, 0.3, np.float32)
  for value in (0.3, np.float64(0.3), np.array(0.3)):
    assert not nms.nms(boxes, at_threshold, score_threshold=value).valid.any()


def test_no_retrace(rng):
  boxes, scores = _inputs("uniform", rng, 40)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(boxes, scores, threshold):
    return nms.nms(boxes, scores, iou_threshold=threshold, max_output=8)

  for threshold in (0.3, 0.6):
    run(boxes, scores, threshold)
    run(boxes + 1, scores * 0.5, threshold)


@pytest.mark.parametrize("call, match", [
    (lambda: nms.nms(np.zeros((3, 5)), np.zeros(3)), "boxes must have shape"),
    (lambda: nms.nms(np.zeros((4,)), np.zeros(1)), "boxes must have shape"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(2)), "scores must have shape"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), mask=np.ones(2, bool)),
     "mask must have shape"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), iou_threshold=1.5),
     "iou_threshold must be in"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), iou_threshold=-0.1),
     "iou_threshold must be in"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), max_output=0),
     "max_output must be in"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), fmt="xyzw"), "fmt"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), tile_size=0),
     "tile_size"),
    (lambda: nms.batched_nms(np.zeros((3, 4)), np.zeros(3), np.zeros(3)),
     "classes must be an integer array"),
    (lambda: nms.soft_nms(np.zeros((3, 4)), np.zeros(3), method="hard"),
     "method must be one of"),
    (lambda: nms.soft_nms(np.zeros((3, 4)), np.zeros(3), sigma=0.0),
     "sigma must be > 0"),
    (lambda: nms.soft_nms(np.zeros((3, 4)), np.zeros(3), max_output=-2),
     "max_output must be in"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3),
                     iou_threshold=np.array([0.5])), "iou_threshold must be a"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), iou_threshold=None),
     "iou_threshold must be a"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), score_threshold=np.zeros(3)),
     "score_threshold must be a"),
    (lambda: nms.soft_nms(np.zeros((3, 4)), np.zeros(3), score_threshold=None),
     "score_threshold must be a"),
    (lambda: nms.soft_nms(np.zeros((3, 4)), np.zeros(3), sigma=np.ones(2)),
     "sigma must be a"),
    (lambda: nms.nms(np.zeros((3, 4), np.complex64), np.zeros(3)),
     "boxes must be real"),
    (lambda: nms.soft_nms(np.zeros((3, 4)), np.zeros(3, np.complex64)),
     "scores must be real"),
    (lambda: nms.batched_nms(np.zeros((3, 4)), np.zeros(3), None),
     "classes must be an integer array"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), score_threshold=np.nan),
     "score_threshold must not be NaN"),
    # Bools were read as 1.0 / 0.0; text classes raised JAX's TypeError.
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), iou_threshold=True),
     "iou_threshold must be a real scalar"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3),
                     score_threshold=np.bool_(False)),
     "score_threshold must be a real scalar"),
    (lambda: nms.batched_nms(np.zeros((2, 4)), np.zeros(2), ["a", "b"]),
     "classes must be an integer array"),
    # Python ints past float range raised OverflowError.
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), iou_threshold=10**400),
     "iou_threshold must be within float range"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), score_threshold=10**400),
     "score_threshold must be within float range"),
    (lambda: nms.soft_nms(np.zeros((3, 4)), np.zeros(3), sigma=-10**400),
     "sigma must be within float range"),
    (lambda: nms.nms(np.zeros((3, 4)), np.zeros(3), max_output=2**31),
     "max_output must be in"),
    (lambda: nms.soft_nms(np.zeros((3, 4)), np.zeros(3),
                          score_threshold=float("nan")),
     "score_threshold must not be NaN"),
])
def test_bad_input_raises(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_numpy_integer_sizes_and_gradients_through_indices(rng):
  """NumPy ints work as tile_size / max_output; a loss that gathers the
  kept boxes differentiates (zero through the selection)."""
  b = np.asarray(ref.uniform_boxes(rng, 40)[0], np.float32)
  s = rng.random(40).astype(np.float32)
  want = _kept(nms.nms(b, s))
  assert _kept(nms.nms(b, s, tile_size=np.int64(8))) == want
  assert _kept(nms.nms(b, s, max_output=np.int64(3))) == want[:3]
  loss = lambda x: jnp.sum(x[nms.nms(x, s, max_output=5).indices])
  grad = jax.grad(loss)(jnp.asarray(b))
  expected = np.zeros_like(b)
  expected[want[:5]] = 1.0
  np.testing.assert_array_equal(grad, expected)
  soft = jax.grad(lambda sc: jnp.sum(nms.soft_nms(b, sc).scores))(s)
  np.testing.assert_array_equal(soft, np.zeros_like(s))


def test_calls_outside_a_jit_compile_with_the_cpu_options(rng):
  """A call from Python runs one jit compiled with XLA_CPU_OPTIONS; a call
  inside a caller's jit runs without them; both give the same indices. So do
  masks that leave no candidate (each round's tile resolves nothing)."""
  boxes, scores = _inputs("clustered", rng, 300)
  tuned = (nms._hard_nms_jit.tuned,  # pylint: disable=protected-access
           nms._soft_nms_jit.tuned)  # pylint: disable=protected-access
  before = [f._cache_size() for f in tuned]  # pylint: disable=protected-access
  got = nms.nms(boxes, scores, iou_threshold=0.5, max_output=77)
  soft = nms.soft_nms(boxes, scores, max_output=9)
  assert [f._cache_size() for f in tuned] == [n + 1 for n in before]  # pylint: disable=protected-access
  inside = jax.jit(functools.partial(nms.nms, iou_threshold=0.5,
                                     max_output=77))(boxes, scores)
  chex.assert_trees_all_equal(got, inside)
  assert _kept(got) == ref.greedy_nms(boxes, scores, 0.5)[:77]
  chex.assert_trees_all_equal(
      soft, jax.jit(functools.partial(nms.soft_nms, max_output=9))(boxes,
                                                                  scores))
  nothing = nms.nms(boxes, scores, mask=np.zeros(300, bool), tile_size=16)
  assert not nothing.valid.any() and (nothing.indices == -1).all()


def test_bad_input_raises_at_trace_time():
  with pytest.raises(ValueError, match="iou_threshold must be in"):
    jax.jit(functools.partial(nms.nms, iou_threshold=2.0))(
        jnp.zeros((3, 4)), jnp.zeros(3))


@pytest.mark.parametrize("ties", ["none", "short runs", "long runs"])
def test_rank_is_a_stable_descending_sort(ties, rng):
  """The fast int32-key ranking, its tie rounds and its fallback sort."""
  n = 500
  if ties == "none":
    scores = rng.permutation(n).astype(np.float32) - 100  # Negatives too.
  elif ties == "short runs":  # Every score 1-3 times: resolved by rounds.
    values = rng.uniform(-1, 1, n).astype(np.float32)
    scores = rng.permutation(np.repeat(values, rng.integers(1, 4, n))[:n])
  else:  # Runs of ~50 exceed the rounds: the two-key sort takes over.
    scores = rng.integers(0, 10, n).astype(np.float32)
  scores[:3] = [-0.0, 0.0, -np.inf]
  candidate = rng.uniform(size=n) < 0.9
  order = np.asarray(jax.jit(nms._rank)(scores, candidate))
  idx = np.flatnonzero(candidate)
  want = idx[np.argsort(-scores[idx], kind="stable")]
  np.testing.assert_array_equal(order[:len(idx)], want)


def test_memory_is_linear_in_n():
  """100k boxes compile to O(N + tile^2) buffers, not an N x N matrix."""
  n = 100_000
  compiled = jax.jit(functools.partial(nms.nms, iou_threshold=0.5)).lower(
      jax.ShapeDtypeStruct((n, 4), jnp.float32),
      jax.ShapeDtypeStruct((n,), jnp.float32)).compile()
  analysis = compiled.memory_analysis()
  if analysis is None:
    pytest.skip("this backend reports no memory analysis")
  # Measured 5.4 MiB (~57 bytes per box); the N x N IoU matrix is 37 GiB.
  assert analysis.temp_size_in_bytes < 16 * 2**20


def test_subnormal_scores_are_ranked_by_value():
  """XLA:CPU compares floats with subnormals flushed to zero; the ranking
  reads their bits, in top_k rounds and in rank order (a -inf candidate)."""
  b = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11]], np.float32)
  scores = np.float32([1e-40, 2e-40, 0.0])
  assert _kept(nms.nms(b, scores)) == ref.greedy_nms(b, scores, 0.5) == [1]
  with_inf = np.float32([1e-40, 2e-40, -np.inf])
  assert _kept(nms.nms(b, with_inf)) == [1]
  tiny = jnp.float32([1e-40, 2e-40, -np.inf, 0.0, -0.0, 3.0, -1e-40, np.inf])
  order = jax.jit(lambda x: nms._rank(x, ~jnp.isnan(x) & (x > -np.inf)))(tiny)
  np.testing.assert_array_equal(order[:7], [7, 5, 1, 0, 3, 4, 6])


def test_wide_numpy_class_ids_are_not_merged():
  """Without x64, JAX would wrap 2**32 to 0, the other box's class."""
  b = np.array([[0, 0, 10, 10], [1, 0, 11, 10]], np.float32)
  got = nms.batched_nms(b, np.float32([0.9, 0.8]), np.array([0, 2**32]))
  assert _kept(got) == [0, 1]


def test_gradients_through_traced_thresholds_are_zero():
  b = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40]],
               np.float32)
  s = np.float32([0.9, 0.8, 0.7])
  kept = lambda t: nms.nms(b, s, iou_threshold=t, score_threshold=t / 10)
  assert jax.grad(lambda t: t * kept(t).valid.sum())(0.5) == 2.0
  soft = lambda t: nms.soft_nms(b, s, method="linear", sigma=t[0],
                                score_threshold=t[1],
                                iou_threshold=t[2]).valid.sum()
  t = jnp.array([0.5, 0.01, 0.3])
  np.testing.assert_array_equal(jax.grad(lambda t: t.sum() * soft(t))(t),
                                [soft(t)] * 3)
  assert soft(t) > 0
