"""Tests for jaxdl.flops: formulas reconciled with XLA's cost analysis."""

from __future__ import annotations

import functools
import itertools
import math

import flax.linen as nn
import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st
from jax import lax

from jaxdl import flops
from jaxdl import nn as jnn
from jaxdl.nn import ToyNet

_DN = ("NHWC", "HWIO", "NHWC")


def _conv(x, w, b, *, strides, padding, dilation, groups):
  y = lax.conv_general_dilated(x, w, (strides,) * 2, padding,
                               rhs_dilation=(dilation,) * 2,
                               dimension_numbers=_DN,
                               feature_group_count=groups)
  return y if b is None else y + b


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_conv2d_flops_xla_equals_cost_analysis(kernel):
  """Exact equality over strides, paddings, dilations, groups, bias, batch."""
  h, w, c_in = 9, 10, 8
  for strides, padding, dilation, groups, bias, batch in itertools.product(
      [1, 2], ["SAME", "VALID", ((2, 1), (0, 2))], [1, 2], [1, 4, c_in],
      [False, True], [1, 8]):
    c_out = c_in if groups == c_in else 16  # depthwise keeps channels
    pads = flops.resolve_padding(padding, (h, w), kernel, strides=strides,
                                 dilation=dilation)
    x = jax.ShapeDtypeStruct((batch, h, w, c_in), jnp.float32)
    k = jax.ShapeDtypeStruct((kernel, kernel, c_in // groups, c_out),
                             jnp.float32)
    b = jax.ShapeDtypeStruct((c_out,), jnp.float32) if bias else None
    got = flops.xla_cost(_conv, x, k, b, strides=strides, padding=pads,
                         dilation=dilation, groups=groups).flops
    want = flops.conv2d_flops((h, w), c_in, c_out, kernel, strides=strides,
                              padding=padding, dilation=dilation, groups=groups,
                              bias=bias, batch=batch)
    assert got == want, (strides, padding, dilation, groups, bias, batch)


@pytest.mark.parametrize("batch_shape,bias", [((1,), True), ((8,), False),
                                              ((2, 3), True)])
def test_dense_flops_xla_equals_cost_analysis(batch_shape, bias):
  layer = nn.Dense(7, use_bias=bias)
  x = jax.ShapeDtypeStruct((*batch_shape, 5), jnp.float32)
  variables = jax.eval_shape(layer.init, jax.random.key(0), x)
  got = flops.xla_cost(layer.apply, variables, x).flops
  assert got == flops.dense_flops(5, 7, batch=math.prod(batch_shape),
                                  bias=bias)


def test_flax_conv_xla_equals_formula_and_params_equal_count():
  """The real nn.Conv module: FLOPs and params against the formulas."""
  for kernel, strides, padding, groups, bias in [
      (3, 1, "SAME", 1, True), (5, 2, "VALID", 4, False),
      (3, 2, 1, 8, True), (3, 1, ((0, 2), (1, 1)), 2, False)]:
    conv = nn.Conv(16 if groups != 8 else 8, (kernel, kernel), strides=strides,
                   padding=padding, feature_group_count=groups, use_bias=bias)
    x = jax.ShapeDtypeStruct((2, 11, 12, 8), jnp.float32)
    variables = jax.eval_shape(conv.init, jax.random.key(0), x)
    c_out = conv.features
    assert flops.count_params(variables) == flops.conv2d_params(
        8, c_out, kernel, groups=groups, bias=bias)
    assert flops.xla_cost(conv.apply, variables, x).flops == flops.conv2d_flops(
        (11, 12), 8, c_out, kernel, strides=strides, padding=padding,
        groups=groups, bias=bias, batch=2)


def test_notes_convention_reproduces_notes_formula():
  # Notes: (2·Ci·K² − 1)·H·W·Co; with bias the −1 is cancelled.
  ci, co, k, hw = 3, 6, 5, 28
  assert flops.conv2d_flops(32, ci, co, k, padding="VALID",
                            convention="notes") == (2 * ci * k * k - 1) * hw * hw * co
  assert flops.conv2d_flops(32, ci, co, k, padding="VALID", bias=True,
                            convention="notes") == 2 * ci * k * k * hw * hw * co
  # Notes: fully connected (2I − 1)·O.
  assert flops.dense_flops(400, 120, bias=False,
                           convention="notes") == (2 * 400 - 1) * 120
  assert flops.dense_flops(400, 120, convention="macs") == 400 * 120
  # Groups divide the cost (notes 004: "计算量是普通卷积的 1/group").
  dense = flops.conv2d_flops(16, 32, 32, 3, convention="macs")
  assert flops.conv2d_flops(16, 32, 32, 3, groups=4, convention="macs") == dense // 4


def test_same_padding_costs_less_than_notes_formula():
  """The gap notes − xla is exactly the padded taps (plus the −1 per output)."""
  h = w = 8
  ci, co, k = 4, 5, 3
  xla = flops.conv2d_flops(h, ci, co, k, padding="SAME")
  notes = flops.conv2d_flops(h, ci, co, k, padding="SAME", convention="notes")
  # Border: 4 corners miss 5 taps each, 4*(h-2) edge pixels miss 3 each.
  padded_taps = 4 * 5 + 4 * (h - 2) * 3
  assert notes - xla == 2 * padded_taps * ci * co - h * w * co
  assert flops.conv2d_flops(h, ci, co, k, padding="VALID") == flops.conv2d_flops(
      h, ci, co, k, padding="VALID", convention="notes") + 6 * 6 * co


def test_conv2d_params():
  assert flops.conv2d_params(3, 6, 5) == 5 * 5 * 3 * 6 + 6  # notes 004
  assert flops.conv2d_params(128, 128, 3, groups=32, bias=False) == 9 * 4 * 128
  assert flops.conv2d_params(8, 16, (1, 3), bias=False) == 3 * 8 * 16


def _torch_conv_out(i, k, s, p, d):
  torch = pytest.importorskip("torch")
  conv = torch.nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d)
  return conv(torch.zeros(1, 1, i)).shape[-1]


def test_conv_output_size_matches_torch_and_fixes_notes():
  pytest.importorskip("torch")
  for i, k, s, p, d in itertools.product([7, 8], [1, 3, 5], [1, 2, 3],
                                         [0, 2], [1, 2]):
    if i + 2 * p < d * (k - 1) + 1:
      continue
    assert flops.conv_output_size(i, k, s=s, p=p, d=d) == _torch_conv_out(
        i, k, s, p, d)
  # The notes' (i + 2p − k)/s + 1 is not even an integer here.
  assert (8 + 2 * 1 - 3) / 2 + 1 == 4.5
  assert flops.conv_output_size(8, 3, s=2, p=1) == 4


def test_conv_transpose_output_size_matches_torch():
  torch = pytest.importorskip("torch")
  for i, k, s, p, d in itertools.product([3, 4], [1, 3, 4], [1, 2, 3], [0, 1],
                                         [1, 2]):
    for op in range(max(s, d)):
      want = torch.nn.ConvTranspose1d(1, 1, k, stride=s, padding=p,
                                      output_padding=op, dilation=d)
      if (i - 1) * s - 2 * p + d * (k - 1) + op + 1 <= 0:
        continue
      got = flops.conv_transpose_output_size(i, k, s=s, p=p, output_padding=op,
                                             d=d)
      assert got == want(torch.zeros(1, 1, i)).shape[-1]
  # It inverts the conv size: every output_padding gives a size that a
  # strided conv maps back to i (the notes' "(o + 2p − k) % s" case).
  for op in range(2):
    o = flops.conv_transpose_output_size(5, 3, s=2, p=1, output_padding=op)
    assert flops.conv_output_size(o, 3, s=2, p=1) == 5


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="convention"):
    flops.conv2d_flops(8, 4, 4, 3, convention="fvcore")
  with pytest.raises(ValueError, match="groups"):
    flops.conv2d_flops(8, 6, 4, 3, groups=4)
  with pytest.raises(ValueError, match="padding"):
    flops.conv2d_flops(8, 4, 4, 3, padding="FULL")
  with pytest.raises(ValueError, match="kernel"):
    flops.conv2d_flops(8, 4, 4, 0)
  with pytest.raises(ValueError, match="output_padding"):
    flops.conv_transpose_output_size(4, 3, s=2, output_padding=2)
  with pytest.raises(ValueError, match="groups"):
    flops.conv2d_params(6, 4, 3, groups=4)


def test_cost_dict_handles_every_jax_version():
  d = {"flops": 3.0}
  assert flops._cost_dict(d) == d
  assert flops._cost_dict([d]) == d
  assert flops._cost_dict(None) is None
  assert flops._cost_dict([]) is None


def test_xla_cost_fields_and_static_kwargs():
  def f(x, *, scale):
    return jnp.exp(x) * scale

  cost = flops.xla_cost(f, jnp.ones((4, 5)), scale=2.0)
  assert cost.transcendentals == 20.0
  assert cost.flops == 20.0  # the multiply; exp is a transcendental
  assert cost.bytes_accessed == 2 * 4 * 20  # read x, write y (float32)
  # Matmul: 2·M·K·N.
  assert flops.xla_cost(jnp.matmul, jnp.ones((3, 7)),
                        jnp.ones((7, 5))).flops == 2 * 3 * 7 * 5


def test_count_params():
  tree = {"a": jnp.ones((3, 4)), "b": [jnp.ones(5), jax.ShapeDtypeStruct(
      (2, 2), jnp.float32)]}
  assert flops.count_params(tree) == 12 + 5 + 4
  assert flops.count_params({}) == 0


@pytest.mark.parametrize("kernel", [1, 2, 3])
def test_conv_transpose2d_flops_xla_equals_cost_analysis(kernel):
  """nn.ConvTranspose: exact over strides, paddings, dilations, bias."""
  h, w = 7, 5
  for strides, padding, dilation, bias in itertools.product(
      [1, 2, 3], ["SAME", "VALID", ((1, 2), (0, 1)), ((0, 0), (3, 3))],
      [1, 2], [False, True]):
    layer = nn.ConvTranspose(6, (kernel, kernel), strides=(strides,) * 2,
                             padding=padding, kernel_dilation=(dilation,) * 2,
                             use_bias=bias)
    x = jax.ShapeDtypeStruct((2, h, w, 3), jnp.float32)
    variables = jax.eval_shape(layer.init, jax.random.key(0), x)
    got = flops.xla_cost(layer.apply, variables, x).flops
    want = flops.conv_transpose2d_flops(
        (h, w), 3, 6, kernel, strides=strides, padding=padding,
        dilation=dilation, bias=bias, batch=2)
    assert got == want, (strides, padding, dilation, bias)


def test_jaxdl_conv_transpose2d_in_summary_equals_xla():
  """jaxdl.nn.ConvTranspose2d (torch padding, output_padding, cropping)."""
  x = jax.ShapeDtypeStruct((2, 5, 6, 3), jnp.float32)
  for kernel, strides, padding, output_padding, dilation in [
      (3, 2, 1, 1, 1), (4, 2, 1, 0, 1), (3, 1, 0, 0, 2), (2, 3, 3, 2, 1),
      (1, 2, 0, 1, 1)]:
    layer = functools.partial(
        jnn.ConvTranspose2d, 4, kernel, strides=strides, padding=padding,
        output_padding=output_padding, dilation=dilation)

    class Model(nn.Module):
      @nn.compact
      def __call__(self, x, *, train=False):
        del train
        return layer()(x)  # pylint: disable=cell-var-from-loop

    s = flops.summary(Model(), x, train=False)
    assert [l.type for l in s.layers] == ["ConvTranspose2d"]
    assert s.formula_flops == s.layers[0].xla_flops == s.xla_flops, (
        kernel, strides, padding)


def test_conv_transpose2d_flops_macs_and_notes():
  # SAME upsamples by the stride: a 4x6 input gives 8x12 outputs at s=2.
  macs = flops.conv_transpose2d_flops((4, 6), 3, 5, 3, strides=2,
                                      convention="macs", batch=2)
  assert macs == 2 * 4 * 6 * 3 * 9 * 5  # fvcore: every input x every tap
  outputs = 2 * 8 * 12 * 5
  for bias in (False, True):
    assert flops.conv_transpose2d_flops(
        (4, 6), 3, 5, 3, strides=2, bias=bias, batch=2,
        convention="notes") == 2 * macs - outputs + bias * outputs
  # VALID keeps every product, so XLA's count is 2 x MACs.
  assert flops.conv_transpose2d_flops(
      (4, 6), 3, 5, 3, strides=2, padding="VALID", batch=2) == 2 * macs
  # SAME crops the border, so XLA counts less.
  assert flops.conv_transpose2d_flops((4, 6), 3, 5, 3, strides=2,
                                      batch=2) < 2 * macs


def test_conv_transpose2d_flops_bad_input():
  with pytest.raises(ValueError, match="padding"):
    flops.conv_transpose2d_flops(8, 3, 5, 3, padding="FULL")
  with pytest.raises(ValueError, match="padding"):
    flops.conv_transpose2d_flops(8, 3, 5, 3, padding=((1, 1),))
  with pytest.raises(ValueError, match="padding"):
    flops.conv_transpose2d_flops(8, 3, 5, 3, strides=2, padding=1)
  with pytest.raises(ValueError, match="convention"):
    flops.conv_transpose2d_flops(8, 3, 5, 3, convention="flops")
  with pytest.raises(ValueError, match="kernel"):
    flops.conv_transpose2d_flops(8, 3, 5, 0)
  with pytest.raises(ValueError, match="strides"):
    flops.conv_transpose2d_flops(8, 3, 5, 3, strides=0)


def test_summary_formula_for_conv_transpose():
  class Decoder(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      del train
      x = nn.ConvTranspose(4, (3, 3), strides=(2, 2))(x)
      return nn.ConvTranspose(2, (2, 2), strides=(2, 2), padding=1)(x)

  x = jax.ShapeDtypeStruct((1, 5, 5, 3), jnp.float32)
  s = flops.summary(Decoder(), x, train=False)
  layers = [l for l in s.layers if l.type == "ConvTranspose"]
  assert len(layers) == 2
  for layer in layers:
    assert layer.formula_flops == layer.xla_flops, layer.path
  assert s.formula_flops == flops.conv_transpose2d_flops(
      5, 3, 4, 3, strides=2, bias=True) + flops.conv_transpose2d_flops(
          10, 4, 2, 2, strides=2, padding=((1, 1), (1, 1)), bias=True)


def test_summary_toynet():
  s = flops.summary(ToyNet(), jnp.ones((2, 32, 32, 3)), train=False)
  assert s.params == 62006
  assert [l.path for l in s.layers] == ["Conv_0", "Conv_1", "Dense_0",
                                        "Dense_1", "Dense_2"]
  assert [l.output_shape for l in s.layers] == [
      (2, 28, 28, 6), (2, 10, 10, 16), (2, 120), (2, 84), (2, 10)]
  assert sum(l.params for l in s.layers) == 62006
  for layer in s.layers:  # Per layer, the "xla" formula is XLA's count.
    assert layer.formula_flops == layer.xla_flops, layer.path
  # relu and max-pool are the only work outside convs and matmuls:
  # 1 FLOP per relu output, 3 comparisons per 2x2 pooled output.
  extra = 2 * (28 * 28 * 6 + 10 * 10 * 16 + 120 + 84) + 2 * 3 * (
      14 * 14 * 6 + 5 * 5 * 16)
  assert s.xla_flops == s.formula_flops + extra
  assert 2 * s.xla_flops < s.training_flops < 4 * s.xla_flops
  table = s.to_markdown()
  assert "| Conv_0 | Conv | (2, 28, 28, 6) | 456 |" in table
  assert "62,006" in table


def test_summary_notes_convention_and_nested_paths():
  class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.Conv(4, (3, 3))(x)
      return nn.Dense(3)(nn.relu(x))

  class Model(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      del train
      return Block(name="block")(x)

  s = flops.summary(Model(), jax.ShapeDtypeStruct((1, 6, 6, 2), jnp.float32),
                    convention="notes", train=True)
  paths = [l.path for l in s.layers]
  assert paths == ["block", "block/Conv_0", "block/Dense_0"]
  conv = flops.conv2d_flops(6, 2, 4, 3, bias=True, convention="notes")
  dense = flops.dense_flops(4, 3, batch=36, convention="notes")
  assert s.layers[0].formula_flops is None
  assert s.formula_flops == conv + dense  # containers are not double counted
  assert s.layers[0].xla_flops == s.xla_flops
  assert s.params == s.layers[0].params == (9 * 2 * 4 + 4) + (4 * 3 + 3)


def test_summary_of_a_single_layer_model():
  """A model that is itself one Dense is its own row, counted in the total;
  training counts the whole forward plus the weight and bias gradients."""
  s = flops.summary(nn.Dense(3), jax.ShapeDtypeStruct((2, 5), jnp.float32))
  assert [(l.path, l.type, l.output_shape) for l in s.layers] == [
      ("", "Dense", (2, 3))]
  assert s.formula_flops == flops.dense_flops(5, 3, batch=2) == s.xla_flops
  grads = 2 * 2 * 5 * 3  # dW = x^T dy; db adds a few more.
  assert s.training_flops >= s.xla_flops + grads


def test_summary_skips_formulas_for_other_paddings():
  """Flax's REFLECT / CIRCULAR padding pad the input themselves: no formula
  row, no error; the SAME conv beside them keeps its formula."""
  class Model(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.Conv(4, (3, 3), padding="REFLECT")(x)
      x = nn.Conv(4, (3, 3), padding="CIRCULAR")(x)
      return nn.Conv(2, (3, 3), padding="SAME")(x)

  s = flops.summary(Model(), jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32))
  assert [l.formula_flops is None for l in s.layers] == [True, True, False]
  assert s.formula_flops == flops.conv2d_flops(8, 4, 2, 3, padding="SAME",
                                              bias=True)
  assert not any(math.isnan(l.xla_flops) for l in s.layers)


def test_summary_formula_for_lowercase_padding_and_keyword_inputs():
  """lax reads padding "same" as "SAME", and a layer may be called with
  inputs=x: both had no formula row."""
  class Model(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.Conv(4, (3, 3), padding="same")(x)
      return nn.Dense(2)(inputs=x)

  s = flops.summary(Model(), jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32))
  assert [l.formula_flops for l in s.layers] == [
      flops.conv2d_flops(8, 3, 4, 3, padding="SAME", bias=True),
      flops.dense_flops(4, 2, batch=64)]
  assert [l.formula_flops for l in s.layers] == [l.xla_flops
                                                 for l in s.layers]


def test_summary_train_mode_with_batch_stats():
  x = jax.ShapeDtypeStruct((2, 8, 8, 8), jnp.float32)
  block = jnn.ResNeXtBlock(16, cardinality=2, group_width=4)
  s = flops.summary(block, x, train=True, mutable=["batch_stats"])
  assert s.params == flops.count_params(jax.eval_shape(
      block.init, jax.random.key(0), x)["params"])
  assert not any(math.isnan(l.xla_flops) for l in s.layers)
  assert sum(l.xla_flops for l in s.layers if l.type == "Conv") == sum(
      l.formula_flops for l in s.layers if l.type == "Conv")
  assert s.training_flops > s.xla_flops > s.formula_flops > 0


@hypothesis.given(i=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4),
                  p=st.integers(0, 3), d=st.integers(1, 3), data=st.data())
def test_transpose_size_inverts_conv_size(i, k, s, p, d, data):
  op = data.draw(st.integers(0, s - 1))
  hypothesis.assume(op < max(s, d))
  o = flops.conv_transpose_output_size(i, k, s=s, p=p, output_padding=op, d=d)
  hypothesis.assume(o >= 1 and o + 2 * p >= d * (k - 1) + 1)
  assert flops.conv_output_size(o, k, s=s, p=p, d=d) == i


@hypothesis.given(hw=st.integers(1, 20), k=st.integers(1, 5),
                  s=st.integers(1, 3), d=st.integers(1, 3),
                  padding=st.sampled_from(["SAME", "VALID", 0, 1, 2]),
                  bias=st.booleans())
def test_xla_convention_is_notes_minus_padded_taps(hw, k, s, d, padding, bias):
  """0 <= 2·MACs − (xla − bias) with equality iff no tap is padded."""
  kw = dict(strides=s, dilation=d, padding=padding, bias=bias)
  pads = flops.resolve_padding(padding, hw, k, strides=s, dilation=d)
  out = flops.conv_output_size(hw, k, s=s, p=pads[0], d=d)
  hypothesis.assume(out >= 1)
  xla = flops.conv2d_flops(hw, 4, 6, k, **kw)
  macs = flops.conv2d_flops(hw, 4, 6, k, convention="macs", **kw)
  notes = flops.conv2d_flops(hw, 4, 6, k, convention="notes", **kw)
  outputs = out * out * 6
  padded = 2 * macs - (xla - outputs * bias)
  assert padded >= 0 and padded % (2 * 4 * 6) == 0
  assert notes - xla == padded - outputs
  if padding in ("VALID", 0):
    assert padded == 0


# ------------------------------------------- edge cases found by review

_F32 = functools.partial(jax.ShapeDtypeStruct, dtype=jnp.float32)


class _MeanHead(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(4)(x).mean(-1)


class _TupleOut(nn.Module):
  @nn.compact
  def __call__(self, x):
    y = nn.Dense(4)(x)
    return y, jnp.argmax(y, -1)


class _NoParams(nn.Module):
  def __call__(self, x):
    return nn.relu(x)


@pytest.mark.parametrize("model", [_MeanHead(), _TupleOut(), _NoParams()])
def test_summary_of_outputs_other_than_the_last_layers(model):
  """The model's output, not its last layer's, shapes the VJP's cotangent;
  a model without parameters has a forward-only training count."""
  s = flops.summary(model, _F32((2, 3)))
  assert s.training_flops >= s.xla_flops >= 0
  assert not math.isnan(s.training_flops)


def test_summary_int_kernel_size_is_flax_1d():
  """Flax reads ``kernel_size=3`` as the 1-D kernel ``(3,)``; the 2-D
  formula would count 11872 FLOPs where XLA counts 4480."""
  for layer in (nn.Conv(4, kernel_size=3), nn.ConvTranspose(4, kernel_size=3)):
    (row,) = flops.summary(layer, _F32((1, 8, 8, 3))).layers
    assert row.formula_flops is None and row.xla_flops > 0


def test_mixed_int_and_pair_padding_as_flax():
  assert flops.resolve_padding((1, (0, 2)), 8, 3) == ((1, 1), (0, 2))
  conv = nn.Conv(4, (3, 3), padding=(1, (0, 2)))
  (row,) = flops.summary(conv, _F32((1, 8, 8, 3))).layers
  assert row.formula_flops == row.xla_flops
  for bad in (None, 1.5, (1, 2, 3), ((0, 1, 2), 1), "FULL"):
    with pytest.raises(ValueError, match="padding"):
      flops.resolve_padding(bad, 8, 3)


@pytest.mark.parametrize("call, match", [
    (lambda: flops.conv_output_size(8, 3, s=0), "s must be"),
    (lambda: flops.conv_output_size(8, 0), "k must be"),
    (lambda: flops.conv_output_size(8, 3, d=0), "d must be"),
    (lambda: flops.conv_output_size(8.0, 3), "i must be"),
    (lambda: flops.conv_transpose_output_size(1, 1, p=-1), "p must be"),
    (lambda: flops.conv_output_size(8, 3, p=1.5), "p must be"),
    (lambda: flops.conv_output_size(8, 3, p=(1,)), "p must be"),
    (lambda: flops.conv_output_size(8, 3, p=None), "p must be"),
    (lambda: flops.conv2d_flops(8, -4, 4, 3), "c_in must be"),
    (lambda: flops.conv2d_flops(8, 4, 4, 3, batch=-1), "batch must be"),
    (lambda: flops.conv2d_flops(8, 4, 4, 3, groups=2.0), "groups must"),
    (lambda: flops.conv_transpose2d_flops(8, 4, 0, 3), "c_out must be"),
    (lambda: flops.dense_flops(-3, 4), "in_features must be"),
    (lambda: flops.dense_flops(3, 4, batch=1.5), "batch must be"),
    (lambda: flops.conv2d_params(3, 0, 3), "c_out must be"),
])
def test_formula_helpers_reject_bad_sizes(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_transposed_size_is_never_negative():
  assert flops.conv_transpose_output_size(1, 1, p=1) == 0
  # Negative padding crops, as lax pads: still a valid output length.
  assert flops.conv_output_size(8, 3, p=(-1, 0)) == 5


@pytest.mark.parametrize("layer, shape", [
    (nn.ConvTranspose(4, (3, 2), padding="same"), (2, 5, 6, 3)),
    (nn.ConvTranspose(4, (3, 2), padding="valid", kernel_dilation=(1, 2)),
     (2, 5, 6, 3)),
    (nn.ConvTranspose(4, (3, 3), strides=2), (5, 6, 3)),
    (nn.Conv(6, (3, 3), strides=2, feature_group_count=3), (5, 6, 3)),
], ids=["transpose-same", "transpose-valid", "transpose-hwc", "conv-hwc"])
def test_summary_lowercase_transpose_padding_and_unbatched_inputs(layer,
                                                                  shape):
  """lax.conv_transpose hands "same" / "valid" to conv_general_dilated as a
  plain convolution's padding (Flax allows it at stride 1): summary raised
  ValueError there. Flax adds the batch axis of an [H, W, C] input: those
  rows had no formula."""
  (row,) = flops.summary(layer, _F32(shape)).layers
  assert row.formula_flops == row.xla_flops


@pytest.mark.parametrize("call", [
    lambda b: flops.conv2d_flops(8, 4, 4, 3, bias=b),
    lambda b: flops.conv_transpose2d_flops(8, 4, 4, 3, bias=b),
    lambda b: flops.dense_flops(8, 4, bias=b),
    lambda b: flops.conv2d_params(8, 4, 3, bias=b),
])
@pytest.mark.parametrize("bias", [2, None, "yes"])
def test_bias_must_be_a_bool(call, bias):
  """bias=2 counted the bias twice; None and "yes" raised other errors."""
  with pytest.raises(ValueError, match="bias must be a bool"):
    call(bias)
  assert call(np.bool_(True)) == call(True)


@pytest.mark.parametrize("padding", [((1.5, 1), (1, 1)), (("1", "1"), (1, 1)),
                                     ("ab", "cd")])
def test_conv_transpose2d_padding_must_be_int_pairs(padding):
  """1.5 was truncated to 1 and "1" parsed; "ab" raised int()'s message."""
  with pytest.raises(ValueError, match="padding must be"):
    flops.conv_transpose2d_flops(8, 4, 4, 3, padding=padding)
