"""Tests for jaxdl.losses against float64 NumPy oracles and PyTorch.

Tolerances: jaxdl computes in float32 on float32-rounded inputs; the oracle
recomputes the same inputs in float64. Losses are O(1)-O(10) sums of a few
float32 roundings of log/exp: rtol 2e-5, atol 1e-6. Against torch (float64
inputs, float32 jaxdl) the same. bfloat16 results are compared with float32
ones at bfloat16's precision (rtol 2e-2).
"""

import functools

import chex
import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import boxes, losses
from tests.reference import boxes as ref_boxes
from tests.reference import losses as ref

RTOL, ATOL = 2e-5, 1e-6
REDUCTIONS = losses.REDUCTIONS
N, C = 7, 5


def _close(got, want, rtol=RTOL, atol=ATOL):
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol,
                             atol=atol)


@pytest.fixture
def data(rng):
  logits = (3 * rng.standard_normal((N, C))).astype(np.float32)
  labels = rng.integers(0, C, N).astype(np.int32)
  labels[[1, 4]] = -100  # ignored
  probs = rng.dirichlet(np.ones(C), N).astype(np.float32)
  weight = rng.uniform(0.2, 2.0, C).astype(np.float32)
  binary = (rng.random((N, C)) < 0.3).astype(np.float32)
  return logits, labels, probs, weight, binary


# ------------------------------------------------------ cross-entropy / NLL


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_index_labels_match_oracle(data, reduction, use_weight,
                                                 smoothing):
  logits, labels, _, weight, _ = data
  weight = weight if use_weight else None
  got = losses.cross_entropy(logits, labels, weight=weight,
                             label_smoothing=smoothing, reduction=reduction)
  want = ref.cross_entropy(logits, labels, weight, -100, smoothing, reduction)
  _close(got, want)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("use_weight", [False, True])
def test_cross_entropy_probability_labels_match_oracle(data, reduction,
                                                       use_weight):
  logits, _, probs, weight, _ = data
  weight = weight if use_weight else None
  got = losses.cross_entropy(logits, probs, weight=weight,
                             label_smoothing=0.2, reduction=reduction)
  want = ref.cross_entropy(logits, probs, weight, -100, 0.2, reduction)
  _close(got, want)


def test_cross_entropy_spatial_and_custom_ignore_index(rng):
  logits = rng.standard_normal((2, 3, 4, C)).astype(np.float32)
  labels = rng.integers(0, C, (2, 3, 4)).astype(np.int32)
  labels[0, 1] = 255
  got = losses.cross_entropy(logits, labels, ignore_index=255)
  _close(got, ref.cross_entropy(logits, labels, ignore_index=255))
  per_pixel = losses.cross_entropy(logits, labels, ignore_index=255,
                                   reduction="none")
  chex.assert_shape(per_pixel, (2, 3, 4))
  np.testing.assert_array_equal(per_pixel[0, 1], 0.0)


@pytest.mark.parametrize("fn", [losses.cross_entropy, losses.nll_loss])
@pytest.mark.parametrize("ignore_index", [2**40, -2**40, 300])
def test_ignore_index_beyond_the_labels_dtype_ignores_nothing(
    rng, fn, ignore_index):
  """No label can equal it (PyTorch compares in int64): it raised
  OverflowError for int32 labels, or wrapped into a class of uint8 ones."""
  logits = rng.standard_normal((5, C)).astype(np.float32)
  labels = rng.integers(0, C, 5).astype(np.uint8)
  got = fn(logits, labels, ignore_index=ignore_index, reduction="none")
  _close(got, fn(logits, labels, reduction="none"))
  _close(jax.jit(lambda x, y: fn(x, y, ignore_index=ignore_index))(
      logits, labels.astype(np.int32)), fn(logits, labels))


@pytest.mark.parametrize("fn", [losses.cross_entropy, losses.nll_loss])
@pytest.mark.parametrize("ignore_index", [1.5, None, "1", True,
                                          np.array(1)])
def test_ignore_index_must_be_an_int(fn, ignore_index):
  with pytest.raises(ValueError, match="ignore_index"):
    fn(jnp.zeros((2, C)), jnp.array([0, 1]), ignore_index=ignore_index)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_narrow_integer_labels_keep_every_class(dtype):
  """-100 must not wrap to a real class of the labels' dtype (uint8: 156)."""
  logits = jnp.zeros((2, 200)).at[1, 156].set(5.0)
  want = losses.cross_entropy(logits, np.array([0, 156], np.int32),
                              reduction="none")
  got = losses.cross_entropy(logits, np.array([0, 156], dtype),
                             reduction="none")
  _close(got, want)
  assert got[1] > 0


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_oracle(data, reduction):
  logits, labels, _, weight, _ = data
  log_probs = jax.nn.log_softmax(logits)
  got = losses.nll_loss(log_probs, labels, weight=weight, reduction=reduction)
  _close(got, ref.nll_loss(log_probs, labels, weight, -100, reduction))


def test_cross_entropy_is_nll_of_log_softmax(data):
  logits, labels, _, weight, _ = data
  chex.assert_trees_all_close(
      losses.cross_entropy(logits, labels, weight=weight),
      losses.nll_loss(jax.nn.log_softmax(logits), labels, weight=weight),
      rtol=1e-6)


@pytest.mark.parametrize("fn", [losses.cross_entropy, losses.nll_loss])
def test_all_ignored_batch(fn, data):
  """PyTorch: mean is 0/0 = NaN, sum 0, none zeros; gradients are zero."""
  logits, _, _, weight, _ = data
  labels = np.full(N, -100, np.int32)
  assert np.isnan(fn(logits, labels, weight=weight))
  assert fn(logits, labels, reduction="sum") == 0
  np.testing.assert_array_equal(fn(logits, labels, reduction="none"), 0.0)
  grad = jax.grad(lambda x: fn(x, labels, weight=weight))(logits)
  np.testing.assert_array_equal(grad, 0.0)


def test_cross_entropy_gradient_is_softmax_minus_onehot(data):
  logits, labels, _, _, _ = data
  valid = labels != -100
  grad = jax.grad(losses.cross_entropy)(logits, labels)
  onehot = np.eye(C)[np.where(valid, labels, 0)]
  want = (ref_softmax(logits) - onehot) * valid[:, None] / valid.sum()
  _close(grad, want, atol=1e-6)


def ref_softmax(x):
  x = np.asarray(x, np.float64)
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


# ------------------------------------------------------ BCE and focal loss


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", ["plain", "weight", "pos_weight", "both"])
def test_bce_with_logits_matches_oracle(data, rng, reduction, options):
  logits, _, _, _, targets = data
  weight = rng.uniform(0, 2, (N, 1)).astype(np.float32)  # broadcast over C
  pos_weight = rng.uniform(0.5, 4, C).astype(np.float32)  # one per class
  kwargs = {
      "plain": {}, "weight": {"weight": weight},
      "pos_weight": {"pos_weight": pos_weight},
      "both": {"weight": weight, "pos_weight": pos_weight}}[options]
  got = losses.binary_cross_entropy_with_logits(logits, targets,
                                                reduction=reduction, **kwargs)
  want = ref.binary_cross_entropy_with_logits(logits, targets,
                                              reduction=reduction, **kwargs)
  _close(got, want)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0),
                                         (0.5, 0.5), (0.25, 0.0)])
def test_sigmoid_focal_loss_matches_oracle(data, reduction, alpha, gamma):
  logits, _, _, _, targets = data
  got = losses.sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma,
                                  reduction=reduction)
  want = ref.sigmoid_focal_loss(logits, targets, alpha, gamma, reduction)
  _close(got, want)


def test_focal_with_gamma_0_no_alpha_is_bce(data):
  logits, _, _, _, targets = data
  chex.assert_trees_all_close(
      losses.sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0.0),
      losses.binary_cross_entropy_with_logits(logits, targets,
                                              reduction="none"))


def test_focal_down_weights_easy_examples():
  """An easy negative (logit -5) loses far more weight than a hard one."""
  x = jnp.array([-5.0, 0.0])
  t = jnp.zeros(2)
  ratio = (losses.sigmoid_focal_loss(x, t, alpha=-1) /
           losses.binary_cross_entropy_with_logits(x, t, reduction="none"))
  _close(ratio, [(1 / (1 + np.exp(5))) ** 2, 0.25])


# ------------------------------------------------------ dice, L1, IoU


@pytest.mark.parametrize("axis", [None, (1, 2)])
def test_dice_loss_matches_oracle(rng, axis):
  probs = rng.random((3, 8, 8)).astype(np.float32)
  targets = (rng.random((3, 8, 8)) < 0.4).astype(np.float32)
  got = losses.dice_loss(probs, targets, axis=axis)
  _close(got, ref.dice_loss(probs, targets, 1.0, axis))
  chex.assert_shape(got, () if axis is None else (3,))


def test_dice_empty_vs_empty_is_zero_not_notes_minus_one():
  empty = np.zeros((4, 4), np.float32)
  assert losses.dice_loss(empty, empty) == 0.0
  assert losses.dice_loss(empty, empty, smooth=0.0) == 0.0
  np.testing.assert_allclose(ref.notes_dice_loss(empty, empty), -1.0,
                             atol=1e-6)


def test_dice_perfect_and_disjoint():
  mask = np.zeros((8, 8), np.float32)
  mask[2:6, 2:6] = 1
  assert losses.dice_loss(mask, mask, smooth=0.0) == 0.0
  assert losses.dice_loss(mask, 1 - mask, smooth=0.0) == 1.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_l1_loss_matches_oracle(data, rng, reduction):
  logits = data[0]
  target = rng.standard_normal((N, C)).astype(np.float32)
  _close(losses.l1_loss(logits, target, reduction=reduction),
         ref.l1_loss(logits, target, reduction))
  grad = jax.grad(losses.l1_loss)(jnp.ones(3), jnp.ones(3))
  np.testing.assert_array_equal(grad, 0.0)  # PyTorch's sign(0) = 0


@pytest.mark.parametrize("variant", boxes.VARIANTS)
def test_iou_loss_is_one_minus_iou(rng, variant):
  a = ref_boxes.random_boxes(rng, 9).astype(np.float32)
  b = ref_boxes.random_boxes(rng, 9).astype(np.float32)
  got = losses.iou_loss(a, b, variant=variant)
  want = 1 - ref_boxes.bbox_iou(a.astype(np.float64), b.astype(np.float64),
                                variant=variant)
  _close(got, want, atol=2e-6)
  _close(losses.iou_loss(a, b, variant=variant, reduction="mean"),
         want.mean(), atol=2e-6)


def test_iou_loss_mean_of_no_boxes_is_zero():
  """torchvision's box losses return 0 (zero gradient) for empty input."""
  empty = jnp.zeros((0, 4))
  for variant in boxes.VARIANTS:
    assert losses.iou_loss(empty, empty, variant=variant,
                           reduction="mean") == 0
    grad = jax.grad(lambda p: losses.iou_loss(
        p, empty, variant=variant, reduction="mean"))(empty)
    chex.assert_shape(grad, (0, 4))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_iou_loss_of_half_precision_boxes_is_computed_in_float32(dtype):
  """1 - IoU was taken after rounding the IoU to half precision: for an IoU
  of 0.995 bfloat16 gave 2**-8 = 0.0039 (float16: 0.00147 for 0.00125)."""
  pred = jnp.array([[0.0, 0.0, 100.0, 100.0]], dtype)
  target = jnp.array([[0.0, 0.0, 100.0, 99.5], [0.0, 0.0, 100.0, 99.9]],
                     dtype)
  for variant in boxes.VARIANTS:
    for reduction in REDUCTIONS:
      got = losses.iou_loss(pred, target, variant=variant,
                            reduction=reduction)
      want = losses.iou_loss(pred.astype(jnp.float32),
                             target.astype(jnp.float32), variant=variant,
                             reduction=reduction)
      assert got.dtype == dtype
      _close(np.float32(got), want, rtol=float(jnp.finfo(dtype).eps) / 2,
             atol=0)


def test_iou_loss_gradient_finite_for_degenerate_boxes():
  pred = jnp.array([[0., 0., 0., 0.], [1., 1., 3., 3.], [2., 2., 2., 5.]])
  target = jnp.array([[0., 0., 0., 0.], [1., 1., 3., 3.], [0., 0., 4., 4.]])
  for variant in boxes.VARIANTS:
    grad = jax.jit(jax.grad(lambda p: losses.iou_loss(
        p, target, variant=variant, reduction="sum")))(pred)
    assert np.all(np.isfinite(grad)), variant


# ------------------------------------------------------ numerical stability

_STABILITY_CASES = {
    "cross_entropy": lambda x, t: losses.cross_entropy(
        x, jnp.argmax(t, -1), label_smoothing=0.1),
    "bce": lambda x, t: losses.binary_cross_entropy_with_logits(
        x, t, pos_weight=jnp.full(C, 3.0)),
    "focal": lambda x, t: losses.sigmoid_focal_loss(x, t, reduction="mean"),
    "focal_gamma_half": lambda x, t: losses.sigmoid_focal_loss(
        x, t, gamma=0.5, reduction="mean"),
}


@pytest.mark.parametrize("name", sorted(_STABILITY_CASES))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_finite_values_and_gradients_at_huge_logits(rng, name, dtype):
  fn = _STABILITY_CASES[name]
  signs = rng.choice([-1.0, 1.0], (N, C))
  logits = jnp.asarray(1e4 * signs, dtype)
  targets = jnp.asarray(np.eye(C)[rng.integers(0, C, N)], dtype)
  value, grad = jax.value_and_grad(fn)(logits, targets)
  assert value.dtype == dtype and grad.dtype == dtype
  assert np.isfinite(np.float32(value))
  assert np.all(np.isfinite(np.float32(grad)))


def test_bce_saturated_values_are_exact():
  x = jnp.array([1e4, -1e4, 1e4, -1e4])
  t = jnp.array([1.0, 0.0, 0.0, 1.0])
  _close(losses.binary_cross_entropy_with_logits(x, t, reduction="none"),
         [0.0, 0.0, 1e4, 1e4])
  _close(losses.cross_entropy(jnp.array([[1e4, -1e4]]), jnp.array([1])),
         2e4)


def test_bce_and_focal_keep_their_digits_for_confident_negatives():
  """For t = 0 and x << 0 the loss is softplus(x) and its gradient
  sigmoid(x), both tiny but representable; written as x + softplus(-x) they
  cancelled (gradient 0 from x = -17). Same for t = 1, x >> 0."""
  x = jnp.array([-5.0, -10.0, -17.0, -30.0])
  for sign, t in [(1.0, 0.0), (-1.0, 1.0)]:
    logits, targets = sign * x, jnp.full(4, t)
    for pos_weight in (None, jnp.float32(3.0)):
      loss = functools.partial(losses.binary_cross_entropy_with_logits,
                               targets=targets, pos_weight=pos_weight)
      scale = 1.0 if pos_weight is None or t == 0 else 3.0
      _close(loss(logits, reduction="none"),
             scale * np.log1p(np.exp(np.float64(x))), rtol=1e-6, atol=0)
      grad = jax.grad(lambda z, loss=loss: loss(z, reduction="sum"))(logits)
      _close(grad, sign * scale * (1 / (1 + np.exp(-np.float64(x)))),
             rtol=1e-6, atol=0)
  focal = jax.grad(lambda z: losses.sigmoid_focal_loss(
      z, jnp.zeros(4), alpha=-1, gamma=1.0, reduction="sum"))(x)
  p = 1 / (1 + np.exp(-np.float64(x)))  # d/dx [p softplus(x)]
  _close(focal, p * (1 - p) * np.log1p(np.exp(np.float64(x))) + p * p,
         rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_agrees_with_float32(data, dtype):
  logits, labels, _, weight, targets = data
  for fn, y in [(losses.cross_entropy, labels),
                (losses.binary_cross_entropy_with_logits, targets)]:
    low = fn(jnp.asarray(logits, dtype), y)
    assert low.dtype == dtype
    _close(np.float32(low), np.float32(fn(logits, y)), rtol=2e-2)


# ------------------------------------------------------ properties

_finite = st.floats(-30, 30, width=32)
_unit = st.floats(0, 1, width=32)


@jax.jit
def _properties(logits, probs, targets, perm):
  bce = losses.binary_cross_entropy_with_logits(logits, targets,
                                                reduction="none")
  focal = losses.sigmoid_focal_loss(logits, targets, alpha=-1, gamma=1.5)
  labels = jnp.argmax(targets, -1)
  ce = losses.cross_entropy(logits, labels, reduction="none")
  # Permuting the classes (and relabelling) leaves cross-entropy unchanged.
  ce_perm = losses.cross_entropy(logits[:, perm], jnp.argsort(perm)[labels],
                                 reduction="none")
  return dict(bce=bce, focal=focal, ce=ce, ce_perm=ce_perm,
              dice=losses.dice_loss(probs, targets, axis=-1))


@hypothesis.settings(max_examples=30)
@hypothesis.given(
    logits=hnp.arrays(np.float32, (3, 4), elements=_finite),
    probs=hnp.arrays(np.float32, (3, 4), elements=_unit),
    targets=hnp.arrays(np.float32, (3, 4), elements=st.sampled_from([0., 1.])),
    perm=st.permutations(range(4)))
def test_loss_properties(logits, probs, targets, perm):
  out = _properties(logits, probs, targets, np.asarray(perm))
  assert np.all(out["bce"] >= 0)
  assert np.all(out["focal"] <= out["bce"] + 1e-6)  # (1 - p_t)**gamma <= 1
  assert np.all((out["dice"] >= -1e-6) & (out["dice"] <= 1 + 1e-6))
  np.testing.assert_allclose(out["ce_perm"], out["ce"], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------ jit, vmap, retrace


def test_jit_vmap_and_no_retrace(data):
  logits, labels, _, weight, _ = data

  @jax.jit
  @chex.assert_max_traces(n=1)
  def per_row(x, y):
    return jax.vmap(functools.partial(losses.cross_entropy, weight=weight,
                                      reduction="sum"))(x, y)

  got = per_row(logits, labels)
  per_row(logits + 1, labels)  # same shapes: no retrace
  want = [losses.cross_entropy(logits[i], labels[i], weight=weight,
                               reduction="sum") for i in range(N)]
  _close(got, np.asarray(want), rtol=1e-6)


# ------------------------------------------------------ bad input


@pytest.mark.parametrize("call,match", [
    (lambda: losses.cross_entropy(jnp.zeros((2, 3)), jnp.zeros(2, int),
                                  reduction="avg"), "reduction"),
    (lambda: losses.cross_entropy(jnp.zeros((2, 3)), jnp.zeros(3, int)),
     "labels"),
    (lambda: losses.cross_entropy(jnp.zeros((2, 3)), jnp.zeros(2)),
     "labels"),
    (lambda: losses.cross_entropy(jnp.zeros((2, 3)), jnp.zeros(2, int),
                                  weight=jnp.ones(2)), "weight"),
    (lambda: losses.cross_entropy(jnp.zeros((2, 3)), jnp.zeros(2, int),
                                  label_smoothing=1.5), "label_smoothing"),
    (lambda: losses.nll_loss(jnp.zeros(()), jnp.zeros((), int)),
     "log_probs"),
    (lambda: losses.binary_cross_entropy_with_logits(
        jnp.zeros((2, 3)), jnp.zeros((2, 3)), pos_weight=jnp.ones(2)),
     "pos_weight"),
    (lambda: losses.binary_cross_entropy_with_logits(
        jnp.zeros((2, 3)), jnp.zeros((3,))), "targets"),
    (lambda: losses.sigmoid_focal_loss(jnp.zeros(2), jnp.zeros(2),
                                       gamma=-1.0), "gamma"),
    (lambda: losses.sigmoid_focal_loss(jnp.zeros(2), jnp.zeros(2),
                                       reduction="max"), "reduction"),
    (lambda: losses.sigmoid_focal_loss(jnp.zeros(2), jnp.zeros(2),
                                       alpha=float("nan")), "alpha"),
    (lambda: losses.dice_loss(jnp.zeros(2), jnp.zeros(2), smooth=-1.0),
     "smooth"),
    (lambda: losses.dice_loss(jnp.zeros(2), jnp.zeros(3)), "targets"),
    (lambda: losses.l1_loss(jnp.zeros(2), jnp.zeros(3)), "pred and target"),
    (lambda: losses.iou_loss(jnp.zeros((2, 4)), jnp.zeros((2, 4)),
                             variant="eiou"), "variant"),
    (lambda: losses.iou_loss(jnp.zeros((2, 5)), jnp.zeros((2, 4))),
     r"pred must have shape \[\.\.\., 4\]"),
    (lambda: losses.iou_loss(jnp.zeros((2, 4)), jnp.zeros(3)),
     r"target must have shape \[\.\.\., 4\]"),
    (lambda: losses.iou_loss(jnp.zeros((2, 4)), jnp.zeros((3, 4))),
     "pred and target must broadcast"),
])
def test_bad_input_raises(call, match):
  with pytest.raises(ValueError, match=match):
    call()


@pytest.mark.parametrize("call,match", [
    (lambda: losses.dice_loss(jnp.zeros(2), jnp.zeros(2), smooth=None),
     "smooth"),
    (lambda: losses.dice_loss(jnp.zeros(2), jnp.zeros(2),
                              smooth=float("inf")), "smooth"),
    (lambda: losses.sigmoid_focal_loss(jnp.zeros(2), jnp.zeros(2),
                                       alpha=None), "alpha"),
    (lambda: losses.sigmoid_focal_loss(jnp.zeros(2), jnp.zeros(2),
                                       gamma="2"), "gamma"),
    (lambda: losses.cross_entropy(jnp.zeros((2, 3)), jnp.zeros(2, int),
                                  label_smoothing=None), "label_smoothing"),
])
def test_non_number_hyper_parameters_raise_value_error(call, match):
  """None or text once raised a TypeError from a comparison, and an infinite
  smooth gave NaN for every input (inf / inf)."""
  with pytest.raises(ValueError, match=match):
    call()


# ------------------------------------------------------ PyTorch itself


def _torch_focal(F, x, t, alpha=0.25, gamma=2.0, reduction="none"):
  """torchvision.ops.sigmoid_focal_loss as in the notes, written in torch."""
  p = x.sigmoid()
  ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
  p_t = p * t + (1 - p) * (1 - t)
  loss = (alpha * t + (1 - alpha) * (1 - t)) * ce * (1 - p_t) ** gamma
  return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_agrees_with_torch(data, rng, reduction):
  """Values and gradients (of the sum of the output) against torch float64."""
  torch = pytest.importorskip("torch")
  F = torch.nn.functional
  logits, labels, probs, weight, targets = data
  f64 = lambda a: torch.tensor(np.asarray(a, np.float64))
  y_t = torch.tensor(labels, dtype=torch.long)
  pos_weight = rng.uniform(0.5, 4, C).astype(np.float32)
  r = reduction
  cases = {
      "ce_weight_ignore_smooth": (
          lambda x: losses.cross_entropy(x, labels, weight=weight,
                                         label_smoothing=0.1, reduction=r),
          lambda x: F.cross_entropy(x, y_t, weight=f64(weight),
                                    label_smoothing=0.1, reduction=r)),
      "ce_probs": (
          lambda x: losses.cross_entropy(x, probs, weight=weight,
                                         reduction=r),
          lambda x: F.cross_entropy(x, f64(probs), weight=f64(weight),
                                    reduction=r)),
      "nll": (lambda x: losses.nll_loss(x, labels, weight=weight,
                                        reduction=r),
              lambda x: F.nll_loss(x, y_t, weight=f64(weight), reduction=r)),
      "bce_weight_pos_weight": (
          lambda x: losses.binary_cross_entropy_with_logits(
              x, targets, weight=weight, pos_weight=pos_weight, reduction=r),
          lambda x: F.binary_cross_entropy_with_logits(
              x, f64(targets), weight=f64(weight), pos_weight=f64(pos_weight),
              reduction=r)),
      "focal": (lambda x: losses.sigmoid_focal_loss(x, targets, reduction=r),
                lambda x: _torch_focal(F, x, f64(targets), reduction=r)),
      "l1": (lambda x: losses.l1_loss(x, probs, reduction=r),
             lambda x: F.l1_loss(x, f64(probs), reduction=r)),
  }
  for name, (ours, theirs) in cases.items():
    x = f64(logits).requires_grad_(True)
    want = theirs(x)
    want.sum().backward()
    grad = jax.grad(lambda z: jnp.sum(ours(z)))(logits)
    np.testing.assert_allclose(ours(logits), want.detach().numpy(),
                               rtol=RTOL, atol=ATOL, err_msg=name)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=RTOL, atol=1e-6,
                               err_msg=name)


def test_all_ignored_mean_is_nan_in_torch_too(data):
  torch = pytest.importorskip("torch")
  logits = data[0]
  all_ignored = np.full(N, -100, np.int64)
  assert torch.isnan(torch.nn.functional.cross_entropy(
      torch.tensor(logits), torch.tensor(all_ignored)))
  assert np.isnan(losses.cross_entropy(logits, all_ignored))


@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_dice_gradient_matches_finite_differences(rng, smooth):
  probs = rng.uniform(0.05, 0.95, (2, 4, 4))
  targets = (rng.random((2, 4, 4)) < 0.4).astype(np.float64)
  with jax.enable_x64(True):
    got = jax.grad(lambda p: jnp.sum(losses.dice_loss(
        p, targets, smooth=smooth, axis=(1, 2))))(jnp.asarray(probs))
  h, numeric = 1e-6, np.zeros_like(probs)
  for i in np.ndindex(probs.shape):
    step = np.zeros_like(probs)
    step[i] = h
    numeric[i] = np.sum(
        ref.dice_loss(probs + step, targets, smooth, (1, 2)) -
        ref.dice_loss(probs - step, targets, smooth, (1, 2))) / (2 * h)
  np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("fn", [losses.nll_loss, losses.cross_entropy])
def test_uint64_labels_under_x64(fn):
  """promote_types(uint64, int32) is float64: labels must stay integers."""
  logits = np.log(np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]]))
  with jax.enable_x64(True):
    got = fn(jnp.asarray(logits), jnp.array([0, 2**64 - 100], jnp.uint64))
    want = fn(jnp.asarray(logits), jnp.array([0, -100], jnp.int64))
  np.testing.assert_allclose(got, want)
  np.testing.assert_allclose(got, -np.log(0.5))
