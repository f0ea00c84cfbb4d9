"""Tests for jaxdl.boxes against the float64 oracle in tests/reference/boxes.py.

Tolerances: jaxdl computes in float32; the oracle gets the same
float32-rounded inputs in float64, so differences are float32 rounding of a
handful of operations on values of magnitude <= ~1e4: atol 2e-6 on the
[-1, 1] outputs (1e-5 where huge coordinates enter squared distances).
"""

import chex
import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import boxes
from jaxdl._checks import int_pair
from tests.reference import boxes as ref

VARIANTS = boxes.VARIANTS
FORMATS = boxes.FORMATS


def _from_xyxy(xyxy: np.ndarray, fmt: str) -> np.ndarray:
  x1, y1, x2, y2 = np.moveaxis(np.asarray(xyxy, np.float64), -1, 0)
  if fmt == "xywh":
    return np.stack([x1, y1, x2 - x1, y2 - y1], -1)
  if fmt == "cxcywh":
    return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)
  return np.asarray(xyxy, np.float64)


# ---------------------------------------------------------------- the oracle


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("pixel_offset", [0.0, 1.0])
def test_pairwise_matches_oracle_random(variant, fmt, pixel_offset, rng):
  a = _from_xyxy(ref.random_boxes(rng, 23), fmt).astype(np.float32)
  b = _from_xyxy(ref.random_boxes(rng, 17), fmt).astype(np.float32)
  got = boxes.pairwise_iou(a, b, variant=variant, fmt=fmt,
                           pixel_offset=pixel_offset)
  want = ref.pairwise(a.astype(np.float64), b.astype(np.float64),
                      variant=variant, fmt=fmt, pixel_offset=pixel_offset)
  chex.assert_shape(got, (23, 17))
  np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("pixel_offset", [0.0, 1.0])
def test_pairwise_matches_oracle_adversarial(variant, pixel_offset):
  a = ref.adversarial_boxes().astype(np.float32)
  got = np.asarray(boxes.pairwise_iou(a, a, variant=variant,
                                      pixel_offset=pixel_offset))
  want = ref.pairwise(a.astype(np.float64), a.astype(np.float64),
                      variant=variant, pixel_offset=pixel_offset)
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_notes_example_overlaps():
  """The notes' gt_bbox vs five pred_bboxes, with the notes' "+1" pixels."""
  want, want_max, want_argmax = ref.notes_get_max_iou(ref.NOTES_PRED_BBOXES,
                                                      ref.NOTES_GT_BBOX)
  got = boxes.pairwise_iou(ref.NOTES_PRED_BBOXES.astype(np.float32),
                           ref.NOTES_GT_BBOX[None].astype(np.float32),
                           pixel_offset=1.0)[:, 0]
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert int(jnp.argmax(got)) == want_argmax == 2
  np.testing.assert_allclose(jnp.max(got), want_max, atol=1e-6)
  for pred, overlap in zip(ref.NOTES_PRED_BBOXES, want):
    np.testing.assert_allclose(
        ref.notes_iou_xyxy(pred, ref.NOTES_GT_BBOX), overlap, rtol=1e-12)


def test_notes_xywh_bug_is_a_regression_case():
  """The notes' centre-format IoU uses ``y2 + h2/2`` for ``down``; jaxdl's
  "cxcywh" agrees with the corrected formula and with "xyxy"."""
  a = np.array([50.0, 50.0, 20.0, 20.0])  # cx, cy, w, h
  b = np.array([55.0, 52.0, 20.0, 16.0])
  got_cxcywh = boxes.iou(a, b, fmt="cxcywh")
  got_xyxy = boxes.iou(boxes.convert(a, "cxcywh", "xyxy"),
                       boxes.convert(b, "cxcywh", "xyxy"))
  want = ref.bbox_iou(a, b, fmt="cxcywh")
  np.testing.assert_allclose(got_cxcywh, got_xyxy, atol=1e-7)
  np.testing.assert_allclose(got_cxcywh, want, atol=1e-6)
  # inter = 15 * 16 = 240, union = 400 + 320 - 240 = 480.
  np.testing.assert_allclose(got_cxcywh, 0.5, atol=1e-6)
  assert ref.notes_iou_xywh(*a, *b) != pytest.approx(0.5, abs=0.05)


# ------------------------------------------------------- formats and helpers


@pytest.mark.parametrize("src", FORMATS)
@pytest.mark.parametrize("dst", FORMATS)
def test_convert_round_trip_and_oracle(src, dst, rng):
  xyxy = ref.random_boxes(rng, 11, dtype=np.float64)
  x = _from_xyxy(xyxy, src).astype(np.float32)
  converted = boxes.convert(x, src, dst)
  np.testing.assert_allclose(ref.to_xyxy(np.asarray(converted), dst),
                             ref.to_xyxy(x, src), atol=1e-4)
  np.testing.assert_allclose(boxes.convert(converted, dst, src), x, atol=1e-4)
  assert converted.dtype == jnp.float32


def test_convert_example():
  np.testing.assert_array_equal(
      boxes.convert(jnp.array([10.0, 20.0, 4.0, 6.0]), "cxcywh", "xyxy"),
      [8.0, 17.0, 12.0, 23.0])
  np.testing.assert_array_equal(
      boxes.convert(jnp.array([1.0, 2.0, 4.0, 6.0]), "xyxy", "xywh"),
      [1.0, 2.0, 3.0, 4.0])


def test_area():
  b = jnp.array([[0, 0, 10, 5], [3, 3, 3, 9], [5, 5, 0, 0]], jnp.float32)
  np.testing.assert_array_equal(boxes.area(b), [50.0, 0.0, 0.0])
  np.testing.assert_array_equal(boxes.area(b, pixel_offset=1.0),
                                [66.0, 7.0, 0.0])
  np.testing.assert_array_equal(
      boxes.area(jnp.array([1.0, 1.0, 4.0, 2.0]), fmt="xywh"), 8.0)
  # Integers are promoted to float32.
  assert boxes.area(jnp.array([0, 0, 2, 3])).dtype == jnp.float32


def test_clip():
  b = jnp.array([[-5.0, 2.0, 30.0, 50.0], [1.0, 1.0, 2.0, 2.0]])
  np.testing.assert_array_equal(
      boxes.clip(b, 40, 20), [[0, 2, 20, 40], [1, 1, 2, 2]])
  cxcywh = boxes.convert(b, "xyxy", "cxcywh")
  np.testing.assert_allclose(
      boxes.clip(cxcywh, 40, 20, fmt="cxcywh"),
      boxes.convert(boxes.clip(b, 40, 20), "xyxy", "cxcywh"), atol=1e-6)


def test_is_valid():
  b = jnp.array([[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 1, 0], [2, 2, 1, 1],
                 [0, 0, jnp.nan, 1], [0, 0, 3, 3]], jnp.float32)
  np.testing.assert_array_equal(boxes.is_valid(b),
                                [True, False, False, False, False, True])
  np.testing.assert_array_equal(boxes.is_valid(b, min_size=1.0),
                                [False, False, False, False, False, True])
  for min_size in (np.ones(2), None, "1", 1j):
    with pytest.raises(ValueError, match="min_size must be a real scalar"):
      boxes.is_valid(b, min_size=min_size)



@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_area_and_is_valid_read_the_given_sides(fmt):
  # Through corners, float32 rounds 1e8 + 1 back to 1e8 (a width of 0) and
  # 4097.3 + 0.1 to 4097.4004.
  b = jnp.array([[4097.3, 0.0, 0.1, 1.0], [1e8, 0.0, 1.0, 1.0],
                 [0.0, 0.0, -1.0, 1.0]], jnp.float32)
  np.testing.assert_array_equal(boxes.area(b, fmt=fmt),
                                np.float32([0.1, 1.0, 0.0]))
  np.testing.assert_array_equal(
      boxes.area(b, fmt=fmt, pixel_offset=1.0),
      np.maximum(np.float32([0.1, 1.0, -1.0]) + 1, 0) * np.float32(2))
  np.testing.assert_array_equal(boxes.is_valid(b, fmt=fmt),
                                [True, True, False])

# ------------------------------------------------------------- broadcasting


def test_elementwise_broadcasting(rng):
  a = ref.random_boxes(rng, 3, dtype=np.float64)[:, None, :]  # [3, 1, 4]
  b = ref.random_boxes(rng, 5, dtype=np.float64)[None, :, :]  # [1, 5, 4]
  got = boxes.iou(a, b, variant="giou")
  chex.assert_shape(got, (3, 5))
  np.testing.assert_allclose(got, ref.bbox_iou(a, b, variant="giou"),
                             atol=2e-6)
  # A single box against a set, as the notes' get_max_IoU.
  chex.assert_shape(boxes.iou(a[0, 0], b[0]), (5,))


def test_integer_cxcywh_boxes_keep_their_halves():
  """As torchvision's box_convert: centres and sides of integer boxes can
  give half-pixel corners, so cxcywh conversions of integers are float32."""
  b = jnp.array([5, 5, 3, 3])
  got = boxes.convert(b, "cxcywh", "xyxy")
  assert got.dtype == jnp.float32
  np.testing.assert_array_equal(got, [3.5, 3.5, 6.5, 6.5])
  np.testing.assert_array_equal(boxes.convert(jnp.array([3, 3, 6, 8]), "xyxy",
                                              "cxcywh"), [4.5, 5.5, 3, 5])
  # Inside the image: clip leaves it; a 1x1 box is valid.
  np.testing.assert_array_equal(boxes.clip(b, 100, 100, fmt="cxcywh"), b)
  assert boxes.is_valid(jnp.array([0, 0, 1, 1]), fmt="cxcywh")
  # xywh <-> xyxy stays exact in integers.
  assert boxes.convert(b, "xywh", "xyxy").dtype == b.dtype


def test_inverted_box_stays_in_range():
  """DIoU's distance penalty is at most 1, as for any valid pair, though an
  inverted box's centre lies outside the enclosing box (was DIoU -5e8)."""
  a, b = jnp.array([10.0, 10.0, 0.0, 0.0]), jnp.zeros(4)
  for variant in VARIANTS:
    value = float(boxes.iou(a, b, variant=variant))
    low = {"iou": 0.0, "giou": -1.0, "diou": -1.0, "ciou": -1.5}[variant]
    assert low <= value <= 1.0, (variant, value)


def test_giou_of_boxes_inverted_along_one_axis_stays_in_range():
  """Two boxes inverted in x (heights > 0) have a negative enclosing width:
  the enclosing area was negative, and at -eps GIoU was +inf with NaN
  gradients. Clamped like the boxes' sides, it is 0: GIoU = IoU = 0."""
  a = jnp.array([[1.0, 0.0, 0.0, 2e-7], [1.0, 0.0, 0.0, 1.0]])
  b = jnp.array([[1.0, 0.0, 0.5, 2e-7], [1.0, 0.0, 1 - 1e-7, 1.0]])
  giou = lambda x: boxes.iou(x, b, variant="giou")
  np.testing.assert_array_equal(giou(a), [0.0, 0.0])
  assert np.all(np.isfinite(jax.jacobian(lambda x: jnp.sum(giou(x)))(a)))
  np.testing.assert_array_equal(
      ref.bbox_iou(np.asarray(a, np.float64), np.asarray(b, np.float64),
                   variant="giou"), [0.0, 0.0])


@pytest.mark.parametrize("value", [(2.5, 3), "12", 2.0, True, (1, 2, 3)])
def test_int_pair_rejects_what_is_not_ints(value):
  with pytest.raises(ValueError, match="strides must be an int"):
    int_pair(value, "strides")


def test_integer_input_gives_float32():
  got = boxes.iou(jnp.array([0, 0, 2, 2]), jnp.array([1, 0, 3, 2]))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, 1 / 3, rtol=1e-6)


# ------------------------------------------------------------- properties

_coords = st.floats(-100, 100, allow_nan=False, width=32)
_box_sets = hnp.arrays(np.float32, (16, 4), elements=_coords)


def _valid(raw: np.ndarray) -> np.ndarray:
  """Sorts each box's corners so that x1 <= x2 and y1 <= y2."""
  xs = np.sort(raw[:, [0, 2]], axis=1)
  ys = np.sort(raw[:, [1, 3]], axis=1)
  return np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], -1)


_iou_jit = jax.jit(boxes.iou, static_argnames=("variant", "fmt"))


@hypothesis.given(_box_sets, _box_sets)
def test_ranges_and_symmetry(raw_a, raw_b):
  a, b = _valid(raw_a), _valid(raw_b)
  for variant in VARIANTS:
    ab = np.asarray(_iou_jit(a, b, variant=variant))
    ba = np.asarray(_iou_jit(b, a, variant=variant))
    assert np.all(np.isfinite(ab))
    low = {"iou": 0.0, "giou": -1.0, "diou": -1.0, "ciou": -1.5}[variant]
    assert np.all(ab >= low - 1e-6) and np.all(ab <= 1.0 + 1e-6), variant
    np.testing.assert_allclose(ab, ba, atol=1e-6, err_msg=variant)


def test_ciou_lower_bound_is_minus_one_and_a_half():
  """DIoU > -1 and alpha * v = v^2 / (1 - iou + v) <= 1/2, so CIoU > -1.5.

  Valid, far-apart boxes of opposite aspect ratio come close to -1.5: the
  often-quoted [-1, 1] range holds for IoU-based GIoU and DIoU, not CIoU.
  """
  tall = jnp.array([0.0, 0.0, 1.0, 1000.0])
  wide = jnp.array([1e5, 1e5, 1e5 + 1000.0, 1e5 + 1.0])
  value = boxes.iou(tall, wide, variant="ciou")
  assert -1.5 < value < -1.4
  np.testing.assert_allclose(value, ref.bbox_iou(np.asarray(tall, np.float64),
                                                 np.asarray(wide, np.float64),
                                                 variant="ciou"), atol=1e-5)


@hypothesis.given(_box_sets)
def test_identical_boxes_give_one(raw):
  a = _valid(raw)
  a[:, 2:] = np.maximum(a[:, 2:], a[:, :2] + 1.0)  # Area >= 1, so eps is tiny.
  for variant in VARIANTS:
    np.testing.assert_allclose(_iou_jit(a, a, variant=variant), 1.0,
                               atol=1e-6, err_msg=variant)


@hypothesis.given(_box_sets)
def test_format_round_trips(raw):
  a = _valid(raw)
  for fmt in ("xywh", "cxcywh"):
    back = boxes.convert(boxes.convert(a, "xyxy", fmt), fmt, "xyxy")
    np.testing.assert_allclose(back, a, atol=1e-4)
    np.testing.assert_allclose(
        _iou_jit(boxes.convert(a, "xyxy", fmt), boxes.convert(a[::-1],
                                                              "xyxy", fmt),
                 variant="ciou", fmt=fmt),
        _iou_jit(a, a[::-1], variant="ciou"), atol=2e-5)


@hypothesis.settings(max_examples=20)
@hypothesis.given(_box_sets, _box_sets)
def test_pairwise_is_iou_of_each_pair(raw_a, raw_b):
  a, b = _valid(raw_a)[:5], _valid(raw_b)[:7]
  for variant in VARIANTS:
    pair = np.asarray(boxes.pairwise_iou(a, b, variant=variant))
    loop = np.array([[boxes.iou(a[i], b[j], variant=variant)
                      for j in range(7)] for i in range(5)])
    np.testing.assert_allclose(pair, loop, atol=1e-6)


# --------------------------------------------------------- jit, vmap, traces


@pytest.mark.parametrize("variant", VARIANTS)
def test_jit_equals_eager_and_vmap_equals_loop(variant, rng):
  a = ref.random_boxes(rng, 6 * 5).reshape(6, 5, 4)
  b = ref.random_boxes(rng, 6 * 7).reshape(6, 7, 4)
  fn = lambda x, y: boxes.pairwise_iou(x, y, variant=variant)
  eager = np.stack([fn(a[i], b[i]) for i in range(6)])
  np.testing.assert_allclose(jax.jit(fn)(a[0], b[0]), eager[0], atol=1e-6)
  np.testing.assert_allclose(jax.vmap(fn)(a, b), eager, atol=1e-6)


def test_no_retrace_on_second_call(rng):
  @jax.jit
  @chex.assert_max_traces(n=1)
  def fn(x, y):
    return boxes.pairwise_iou(x, y, variant="ciou")

  a, b = ref.random_boxes(rng, 8), ref.random_boxes(rng, 9)
  fn(a, b)
  fn(a + 1.0, b * 2.0)  # Same shapes and dtypes: no new trace.


# -------------------------------------------------------------- gradients

_DEGENERATE_PAIRS = [
    ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]),      # all-zero boxes
    ([1.0, 1.0, 1.0, 5.0], [0.0, 0.0, 2.0, 2.0]),      # zero width
    ([1.0, 1.0, 5.0, 1.0], [1.0, 1.0, 5.0, 1.0]),      # zero height, identical
    ([0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.0]),      # identical
    ([0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 3.0, 3.0]),      # coincident centres
    ([5.0, 5.0, 1.0, 1.0], [0.0, 0.0, 4.0, 4.0]),      # x1 > x2
    ([2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0]),      # identical points
    ([0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 2.0, 1.0]),      # touching edges
    ([0.0, 0.0, 1e-20, 0.0], [0.0, 0.0, 1.0, 2.0]),    # w**2 underflows
    ([0.0, 0.0, 1e-25, 1e-25], [0.0, 0.0, 1.0, 2.0]),  # tiny square
    ([0.0, 0.0, 1e-39, 0.0], [0.0, 0.0, 1.0, 2.0]),    # subnormal side
    ([10.0, 10.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]),    # inverted vs point
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("pixel_offset", [0.0, 1.0])
def test_gradients_finite_on_degenerate_boxes(variant, pixel_offset):
  a = jnp.array([p[0] for p in _DEGENERATE_PAIRS])
  b = jnp.array([p[1] for p in _DEGENERATE_PAIRS])
  loss = lambda x, y: jnp.sum(boxes.iou(x, y, variant=variant,
                                        pixel_offset=pixel_offset))
  value = jax.jit(loss)(a, b)
  ga, gb = jax.jit(jax.grad(loss, argnums=(0, 1)))(a, b)
  assert np.isfinite(value)
  assert np.all(np.isfinite(ga)) and np.all(np.isfinite(gb))


def test_ciou_alpha_is_constant():
  """With alpha under stop_gradient, d CIoU = d DIoU - alpha * d v."""
  a = jnp.array([0.0, 0.0, 4.0, 2.0])
  b = jnp.array([1.0, 0.5, 3.0, 4.0])
  grad_ciou = jax.grad(lambda x: boxes.iou(x, b, variant="ciou"))(a)

  def with_alpha_differentiated(x):
    diou = boxes.iou(x, b, variant="diou")
    iou = boxes.iou(x, b, variant="iou")
    wa, ha = x[2] - x[0], x[3] - x[1]
    wb, hb = b[2] - b[0], b[3] - b[1]
    v = (4 / jnp.pi ** 2) * (jnp.arctan2(wb, hb) - jnp.arctan2(wa, ha)) ** 2
    return diou - v ** 2 / (1 - iou + v + 1e-7)

  value_ciou = boxes.iou(a, b, variant="ciou")
  np.testing.assert_allclose(value_ciou, with_alpha_differentiated(a),
                             atol=1e-6)
  assert not np.allclose(grad_ciou, jax.grad(with_alpha_differentiated)(a),
                         atol=1e-4)


# ----------------------------------------------------------- half precision


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("variant", VARIANTS)
def test_half_precision_within_dtype_precision(dtype, variant, rng):
  a = jnp.asarray(ref.random_boxes(rng, 12) * 10, dtype)  # up to ~1000 px
  b = jnp.asarray(ref.random_boxes(rng, 12) * 10, dtype)
  got = boxes.iou(a, b, variant=variant)
  want = boxes.iou(a.astype(jnp.float32), b.astype(jnp.float32),
                   variant=variant)
  assert got.dtype == dtype
  # Only the final rounding differs: half an ulp of values in [-1, 1].
  np.testing.assert_allclose(got.astype(np.float32), want,
                             atol=float(jnp.finfo(dtype).eps))


def test_float16_large_coordinates_do_not_overflow():
  # 300 x 300 boxes: areas of 9e4 overflow float16 (max 65504).
  a = jnp.array([0.0, 0.0, 300.0, 300.0], jnp.float16)
  b = jnp.array([0.0, 0.0, 300.0, 150.0], jnp.float16)
  np.testing.assert_allclose(boxes.iou(a, b).astype(np.float32), 0.5,
                             atol=1e-3)


# -------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, match", [
    (lambda: boxes.iou(jnp.zeros((3, 5)), jnp.zeros((3, 4))), "a must"),
    (lambda: boxes.iou(jnp.zeros((3, 4)), jnp.zeros((3,))), "b must"),
    (lambda: boxes.iou(jnp.zeros((3, 4)), jnp.zeros((2, 4))), "broadcast"),
    (lambda: boxes.iou(jnp.zeros(4), jnp.zeros(4), fmt="yxyx"), "fmt"),
    (lambda: boxes.iou(jnp.zeros(4), jnp.zeros(4), variant="eiou"),
     "variant"),
    (lambda: boxes.pairwise_iou(jnp.zeros((2, 3, 4)), jnp.zeros((3, 4))),
     r"a must have shape \[N, 4\]"),
    (lambda: boxes.pairwise_iou(jnp.zeros((2, 4)), jnp.zeros(4)),
     r"b must have shape \[N, 4\]"),
    (lambda: boxes.convert(jnp.zeros(4), "xyxy", "xyz"), "dst"),
    (lambda: boxes.convert(jnp.zeros(4), "ltrb", "xyxy"), "src"),
    (lambda: boxes.area(jnp.zeros((2, 3))), "boxes must"),
    (lambda: boxes.clip(jnp.zeros(5), 1, 1), "boxes must"),
    (lambda: boxes.is_valid(jnp.zeros(4), min_size=-1.0), "min_size"),
])
def test_bad_input_raises_value_error(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def _central_difference(f, x, h=1e-6):
  """Numerical gradient of a scalar float64 function of ``x``."""
  x = np.asarray(x, np.float64)
  grad = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    step = np.zeros_like(x)
    step[i] = h
    grad[i] = (f(x + step) - f(x - step)) / (2 * h)
  return grad


def _aspect_term(a, b):
  """CIoU's ``v`` of xyxy boxes, float64 NumPy."""
  wa, ha = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
  wb, hb = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
  return (4 / np.pi**2) * (np.arctan2(wb, hb) - np.arctan2(wa, ha))**2


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_match_finite_differences_of_the_reference(rng, variant):
  """Overlapping and disjoint pairs away from ties; CIoU's alpha is held
  constant, as torchvision's loss computes it without gradient."""
  a = ref.random_boxes(rng, 6, scale=50.0).astype(np.float64)
  b = a + rng.uniform(-8, 8, a.shape)
  b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
  b[-1] += 200.0  # A disjoint pair too.
  if variant == "ciou":
    alpha = ((ref.bbox_iou(a, b, variant="diou") -
              ref.bbox_iou(a, b, variant="ciou")) / _aspect_term(a, b))
    reference = lambda x: np.sum(ref.bbox_iou(x, b, variant="diou") -
                                 alpha * _aspect_term(x, b))
  else:
    reference = lambda x: np.sum(ref.bbox_iou(x, b, variant=variant))
  with jax.enable_x64(True):
    got = jax.grad(lambda x: jnp.sum(boxes.iou(x, b, variant=variant)))(
        jnp.asarray(a))
  np.testing.assert_allclose(got, _central_difference(reference, a),
                             rtol=1e-5, atol=1e-8)


def test_is_valid_takes_a_traced_min_size():
  b = jnp.array([[0.0, 0.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0]])
  valid = jax.jit(lambda m: boxes.is_valid(b, min_size=m))(2.0)
  np.testing.assert_array_equal(valid, [True, False])
  per_row = jax.vmap(lambda x, m: boxes.is_valid(x, min_size=m))(
      b, jnp.array([3.0, 0.5]))
  np.testing.assert_array_equal(per_row, [False, True])


def test_convert_computes_half_precision_in_float32():
  # (40000 + 40000) / 2 overflows float16; the centre does not.
  got = boxes.convert(jnp.array([40000.0, 0.0, 40000.0, 10.0], jnp.float16),
                      "xyxy", "cxcywh")
  assert got.dtype == jnp.float16
  np.testing.assert_array_equal(got, [40000.0, 5.0, 0.0, 10.0])


def test_clip_of_integer_boxes_keeps_a_fractional_image_size():
  int_boxes = jnp.array([0, 0, 11, 11])
  got = boxes.clip(int_boxes, 10.5, 10.5)
  assert got.dtype == jnp.float32
  np.testing.assert_array_equal(got, [0.0, 0.0, 10.5, 10.5])
  same = boxes.clip(int_boxes, 10, 10)
  assert same.dtype == int_boxes.dtype
  np.testing.assert_array_equal(same, [0, 0, 10, 10])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16])
def test_clip_of_narrow_integer_boxes_to_a_larger_image(dtype):
  """uint8 boxes clipped to a 300 px image raised OverflowError (300 cast
  to uint8); sizes beyond the dtype's range leave every box as it is."""
  info = np.iinfo(dtype)
  corners = np.array([[0, 0, 20, 30], [5, 1, info.max, info.max],
                      [info.min, 2, 9, 9]], dtype)
  want = np.clip(corners.astype(np.int64), 0, 300).astype(dtype)
  for fmt in ("xyxy", "xywh"):
    got = boxes.clip(boxes.convert(corners, "xyxy", fmt), 300, 300, fmt=fmt)
    assert got.dtype == dtype
    np.testing.assert_array_equal(boxes.convert(got, fmt, "xyxy"), want)
  got = jax.jit(boxes.clip)(corners, jnp.int32(300), jnp.int32(10))
  np.testing.assert_array_equal(got, np.clip(corners.astype(np.int64), 0,
                                             [10, 300, 10, 300]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-1e-7), "eps must be >= 0"),
    (dict(eps=float("nan")), "eps must be >= 0"),
    (dict(eps=jnp.array([1e-7, 1e-7])), "eps must be a real scalar"),
    (dict(pixel_offset=None), "pixel_offset must be a real scalar"),
])
def test_iou_rejects_bad_eps_and_pixel_offset(kwargs, match):
  """A negative eps gave IoU 0.4 for 1/3; an array eps broadcast [1] to
  [2]; pixel_offset=None raised TypeError."""
  a, b = jnp.array([[0.0, 0.0, 2.0, 2.0]]), jnp.array([[1.0, 0.0, 3.0, 2.0]])
  with pytest.raises(ValueError, match=match):
    boxes.iou(a, b, **kwargs)
  with pytest.raises(ValueError, match=match):
    boxes.pairwise_iou(a, b, **kwargs)
  if "pixel_offset" in kwargs:
    with pytest.raises(ValueError, match=match):
      boxes.area(a, **kwargs)
  # eps=0 (torchvision's box_iou) and a traced eps are fine.
  np.testing.assert_allclose(boxes.iou(a, b, eps=0.0), [1 / 3], rtol=1e-6)
  traced = jax.jit(lambda e: boxes.iou(a, b, eps=e))(0.0)
  np.testing.assert_allclose(traced, [1 / 3], rtol=1e-6)


def test_is_valid_of_inverted_unsigned_boxes():
  """x2 - x1 of an inverted uint8 box wrapped around to 251: valid."""
  b = jnp.array([[5, 5, 0, 0], [0, 0, 5, 5], [5, 0, 5, 3], [0, 9, 4, 2]],
                jnp.uint8)
  np.testing.assert_array_equal(boxes.is_valid(b), [False, True, False,
                                                    False])
  np.testing.assert_array_equal(boxes.is_valid(b, min_size=4.5),
                                [False, True, False, False])
  np.testing.assert_array_equal(boxes.is_valid(b.astype(jnp.int32)),
                                boxes.is_valid(b))
