"""Tests for jaxdl.nn: conv variants, dropout, YOLO blocks, ViT, ToyNet."""

from __future__ import annotations

import functools
import itertools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxdl import flops
from jaxdl import nn as jnn

_DN = ("NHWC", "HWIO", "NHWC")


def _n_params(module, *inputs, **kwargs):
  shapes = jax.eval_shape(module.init, jax.random.key(0), *inputs, **kwargs)
  return flops.count_params(shapes["params"])


# --------------------------------------------------------------- im2col


_im2col = jax.jit(jnn.conv2d_im2col,
                  static_argnames=("strides", "padding", "dilation", "groups"))


def test_conv2d_im2col_equals_lax_conv(rng):
  """atol 1e-5: float32 sums of <= 72 products, weights scaled to O(1) output."""
  x = rng.standard_normal((2, 9, 10, 8)).astype(np.float32)
  cases = itertools.product([1, 2], ["SAME", "VALID", 1, ((2, 1), (0, 2))],
                            [1, 2])
  for i, (strides, padding, dilation) in enumerate(cases):
    # Every (groups, kernel) pair occurs: i cycles through them mod 6.
    groups, kernel = (1, 2, 8)[i % 3], (3, (1, 2))[i % 2]
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    fan_in = kh * kw * 8 // groups
    k = (rng.standard_normal((kh, kw, 8 // groups, 8)) /
         np.sqrt(fan_in)).astype(np.float32)
    pads = flops.resolve_padding(padding, (9, 10), (kh, kw), strides=strides,
                                 dilation=dilation)
    want = lax.conv_general_dilated(
        x, k, (strides,) * 2, pads, rhs_dilation=(dilation,) * 2,
        dimension_numbers=_DN, feature_group_count=groups)
    got = _im2col(x, k, strides=strides, padding=padding, dilation=dilation,
                  groups=groups)
    chex.assert_trees_all_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("strides, padding", [(1, "VALID"), (2, "VALID"),
                                              (1, ((0, -1), (0, 0)))])
def test_conv2d_im2col_kernel_larger_than_input_is_empty(strides, padding):
  x, k = jnp.ones((1, 2, 2, 1)), jnp.ones((3, 3, 1, 1))
  pads = flops.resolve_padding(padding, (2, 2), (3, 3), strides=strides)
  want = lax.conv_general_dilated(x, k, (strides,) * 2, pads,
                                  dimension_numbers=_DN)
  got = _im2col(x, k, strides=strides, padding=padding)
  assert got.shape == want.shape and got.dtype == want.dtype
  assert 0 in got.shape


def test_conv2d_im2col_empty_batch_equals_lax():
  """An empty batch (N = 0) raised ZeroDivisionError: reshape(..., -1) of a
  size-0 array; lax returns an empty [0, Ho, Wo, Cout]."""
  x, k = jnp.ones((0, 5, 5, 4)), jnp.ones((3, 3, 2, 6))
  want = lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=_DN,
                                  feature_group_count=2)
  got = jnn.conv2d_im2col(x, k, groups=2)
  assert got.shape == want.shape == (0, 5, 5, 6) and got.dtype == want.dtype


def test_conv2d_im2col_jit_vmap_grad_no_retrace(rng):
  x = jnp.asarray(rng.standard_normal((3, 2, 6, 6, 4)), jnp.float32)
  k = jnp.asarray(rng.standard_normal((3, 3, 2, 6)), jnp.float32)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(x, k):
    return jnn.conv2d_im2col(x, k, strides=2, padding="SAME", groups=2)

  batched = jax.vmap(f, in_axes=(0, None))(x, k)
  f(x[0], k)  # same shapes as the traced per-example call: no retrace
  for i in range(3):
    chex.assert_trees_all_close(batched[i], f(x[i], k), atol=1e-6)

  def loss(conv, k):
    return jnp.sum(jnp.sin(conv(x[0], k)))

  ref = lambda x, k: lax.conv_general_dilated(
      x, k, (2, 2), "SAME", dimension_numbers=_DN, feature_group_count=2)
  chex.assert_trees_all_close(jax.grad(loss, 1)(f, k), jax.grad(loss, 1)(ref, k),
                              atol=1e-4)


def test_conv2d_im2col_bad_input():
  x = jnp.ones((1, 5, 5, 4))
  with pytest.raises(ValueError, match="x must have shape"):
    jnn.conv2d_im2col(x[0], jnp.ones((3, 3, 4, 4)))
  with pytest.raises(ValueError, match="groups"):
    jnn.conv2d_im2col(x, jnp.ones((3, 3, 4, 4)), groups=2)
  with pytest.raises(ValueError, match="kernel must have shape"):
    jnn.conv2d_im2col(x, jnp.ones((3, 4, 4)))
  with pytest.raises(ValueError, match="padding"):
    jnn.conv2d_im2col(x, jnp.ones((3, 3, 4, 4)), padding="FULL")


# ------------------------------------------------------ transpose conv


def _np_conv_transpose(x, w, b, s, p, op, d):
  """torch.nn.ConvTranspose2d by its definition, float64, NHWC.

  ``w`` is torch's ``[Cin, Cout, kh, kw]``: every input pixel scatters
  ``x[i] · w[:, :, t]`` to ``s·i + d·t − p``; ``output_padding`` extends the
  end (only the size: those rows get only the bias unless reached).
  """
  n, h, wd, _ = x.shape
  _, c_out, kh, kw = w.shape
  ho = (h - 1) * s[0] - 2 * p[0] + d[0] * (kh - 1) + op[0] + 1
  wo = (wd - 1) * s[1] - 2 * p[1] + d[1] * (kw - 1) + op[1] + 1
  full = np.zeros((n, ho + 2 * p[0] + kh * d[0], wo + 2 * p[1] + kw * d[1],
                   c_out))
  for i, j, ti, tj in itertools.product(range(h), range(wd), range(kh),
                                        range(kw)):
    full[:, s[0] * i + d[0] * ti, s[1] * j + d[1] * tj] += (
        x[:, i, j] @ w[:, :, ti, tj])
  return full[:, p[0]:p[0] + ho, p[1]:p[1] + wo] + b


_TRANSPOSE_CASES = [  # kernel, strides, padding, output_padding, dilation
    (3, 1, 0, 0, 1), (3, 2, 1, 1, 1), (4, 2, 1, 0, 1), ((3, 2), (2, 3), (1, 0),
                                                        (1, 2), 1),
    (3, 2, 2, 1, 2), (2, 3, 0, 2, 1), (5, 1, 3, 0, 1)]


@pytest.mark.parametrize("kernel,strides,padding,output_padding,dilation",
                         _TRANSPOSE_CASES)
def test_conv_transpose_matches_torch_definition(rng, kernel, strides, padding,
                                                 output_padding, dilation):
  pair = lambda v: (v, v) if isinstance(v, int) else v
  k, s, p, op, d = map(pair, (kernel, strides, padding, output_padding,
                              dilation))
  x = rng.standard_normal((2, 4, 5, 3))
  w = rng.standard_normal((3, 6, *k))  # torch layout [Cin, Cout, kh, kw]
  b = rng.standard_normal(6)
  module = jnn.ConvTranspose2d(6, kernel, strides=strides, padding=padding,
                               output_padding=output_padding, dilation=dilation)
  variables = {"params": {"kernel": jnp.asarray(w.transpose(2, 3, 0, 1),
                                                jnp.float32),
                          "bias": jnp.asarray(b, jnp.float32)}}
  got = jax.jit(module.apply)(variables, jnp.asarray(x, jnp.float32))
  want = _np_conv_transpose(x, w, b, s, p, op, d)
  assert got.shape[1:3] == tuple(
      flops.conv_transpose_output_size(n, k_, s=s_, p=p_, output_padding=o_,
                                       d=d_)
      for n, k_, s_, p_, o_, d_ in zip((4, 5), k, s, p, op, d))
  # float32 sums of <= 75 products of N(0, 1) terms: 1e-4 absolute.
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
  torch = pytest.importorskip("torch")
  layer = torch.nn.ConvTranspose2d(3, 6, k, stride=s, padding=p,
                                   output_padding=op, dilation=d).double()
  with torch.no_grad():
    layer.weight.copy_(torch.from_numpy(w))
    layer.bias.copy_(torch.from_numpy(b))
    t = layer(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
  np.testing.assert_allclose(t.transpose(0, 2, 3, 1), want, atol=1e-9)


def test_conv_transpose_inverts_conv_size_and_rejects_bad_args():
  x = jnp.ones((1, 7, 7, 2))
  for op in (0, 1):
    up = jnn.ConvTranspose2d(3, 3, strides=2, padding=1, output_padding=op)
    y = jax.eval_shape(lambda x: up.init_with_output(jax.random.key(0), x)[0],
                       x)
    assert y.shape == (1, 13 + op, 13 + op, 3)
    assert flops.conv_output_size(13 + op, 3, s=2, p=1) == 7
  with pytest.raises(ValueError, match="output_padding"):
    jnn.ConvTranspose2d(3, 3, strides=2, output_padding=2).init(
        jax.random.key(0), x)
  with pytest.raises(ValueError, match="padding"):
    jnn.ConvTranspose2d(3, 3, padding=-1).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="x must have shape"):
    jnn.ConvTranspose2d(3, 3).init(jax.random.key(0), x[0])


# -------------------------------------------------------- pixel shuffle


def test_pixel_shuffle_torch_order(rng):
  r, c = 3, 2
  x = rng.standard_normal((2, 4, 5, c * r * r)).astype(np.float32)
  want = np.zeros((2, 4 * r, 5 * r, c), np.float32)
  for h, w, ch, i, j in itertools.product(range(4), range(5), range(c),
                                          range(r), range(r)):
    want[:, h * r + i, w * r + j, ch] = x[:, h, w, ch * r * r + i * r + j]
  np.testing.assert_array_equal(jnn.pixel_shuffle(x, r), want)
  np.testing.assert_array_equal(
      jnn.PixelShuffle(r).apply({}, jnp.asarray(x)), want)
  torch = pytest.importorskip("torch")
  t = torch.nn.functional.pixel_shuffle(
      torch.from_numpy(x.transpose(0, 3, 1, 2)), r).numpy()
  np.testing.assert_array_equal(t.transpose(0, 2, 3, 1), want)


def test_pixel_shuffle_bad_upscale():
  # A NumPy int works (its message had claimed it did not divide); a bool
  # is no factor.
  assert jnn.pixel_shuffle(jnp.ones((1, 2, 2, 4)), np.int64(2)).shape == (
      1, 4, 4, 1)
  with pytest.raises(ValueError, match="upscale"):
    jnn.pixel_shuffle(jnp.ones((1, 2, 2, 4)), True)
  with pytest.raises(ValueError, match="groups"):
    jnn.conv2d_im2col(jnp.ones((1, 4, 4, 2)), jnp.ones((1, 1, 1, 2)),
                      groups=2.0)
  with pytest.raises(ValueError, match="upscale"):
    jnn.pixel_shuffle(jnp.ones((1, 2, 2, 6)), 2)
  with pytest.raises(ValueError, match="upscale"):
    jnn.pixel_shuffle(jnp.ones((1, 2, 2, 4)), 0)
  with pytest.raises(ValueError, match="x must have shape"):
    jnn.pixel_shuffle(jnp.ones((2, 2, 4)), 2)


# ------------------------------------------ grouped / separable / ResNeXt


def test_depthwise_separable_params_and_values(rng):
  module = jnn.DepthwiseSeparableConv(8, kernel_size=3, dilation=2)
  x = jnp.asarray(rng.standard_normal((2, 9, 9, 4)), jnp.float32)
  variables = jax.jit(module.init)(jax.random.key(0), x)
  # Notes 004: K·K·c1 + 1·1·c1·c2, against K·K·c1·c2 for a plain conv.
  assert flops.count_params(variables) == 3 * 3 * 4 + 4 * 8
  p = variables["params"]
  want = _im2col(_im2col(x, p["depthwise"]["kernel"], dilation=2, groups=4),
                 p["pointwise"]["kernel"])
  chex.assert_trees_all_close(jax.jit(module.apply)(variables, x), want,
                              atol=1e-5)


def test_dilated_conv_receptive_field():
  """A 3x3 kernel with dilation d sees a (2d + 1)-wide window, 9 taps."""
  for d in (1, 2, 3):
    conv = lambda x: jnn.conv2d_im2col(x, jnp.ones((3, 3, 1, 1)), dilation=d)
    grad = jax.jit(jax.grad(lambda x: conv(x)[0, 7, 7, 0]))(
        jnp.ones((1, 15, 15, 1)))
    rows, cols = np.nonzero(np.asarray(grad[0, :, :, 0]))
    assert np.ptp(rows) + 1 == np.ptp(cols) + 1 == 2 * d + 1
    assert len(rows) == 9


def _resnext_formula(c_in, features, cardinality, group_width, project):
  width = cardinality * group_width
  convs = (flops.conv2d_params(c_in, width, 1, bias=False) +
           flops.conv2d_params(width, width, 3, groups=cardinality, bias=False)
           + flops.conv2d_params(width, features, 1, bias=False))
  bn = 2 * (width + width + features)
  if project:
    convs += flops.conv2d_params(c_in, features, 1, bias=False)
    bn += 2 * features
  return convs + bn


def test_resnext_params_equal_formula_and_notes_claim():
  x = jax.ShapeDtypeStruct((1, 56, 56, 256), jnp.float32)
  block = jnn.ResNeXtBlock(256, cardinality=32, group_width=4)
  n = _n_params(block, x)
  assert n == _resnext_formula(256, 256, 32, 4, project=False)
  assert _n_params(jnn.ResNeXtBlock(256, strides=2),
                   jax.ShapeDtypeStruct((1, 56, 56, 64), jnp.float32)) == (
                       _resnext_formula(64, 256, 32, 4, project=True))
  # strides=(1, 1) is strides=1: no projection when the shape is kept.
  assert _n_params(jnn.ResNeXtBlock(256, strides=(1, 1)), x) == n
  # Notes 1.4: 128 channels as 32 groups of 4 -> the 3x3 conv has 1/32 of
  # a plain 3x3 conv's weights and FLOPs ...
  grouped = flops.conv2d_params(128, 128, 3, groups=32, bias=False)
  plain = flops.conv2d_params(128, 128, 3, bias=False)
  assert (grouped, plain) == (4608, 147456) and plain == 32 * grouped
  assert flops.conv2d_flops(56, 128, 128, 3, groups=32) * 32 == (
      flops.conv2d_flops(56, 128, 128, 3))
  # ... so the 32x4d block keeps the parameters of a ResNet-50 bottleneck
  # (1x1 256->64, 3x3 64->64, 1x1 64->256): 70,144 vs 69,632 conv weights.
  bn = 2 * (128 + 128 + 256)
  assert n == 70144 + bn
  resnet_bn = 2 * (64 + 64 + 256)
  assert _resnext_formula(256, 256, 1, 64, project=False) == 69632 + resnet_bn
  assert abs(70144 / 69632 - 1) < 0.008  # +0.74% weights, same FLOPs ratio
  macs = functools.partial(flops.conv2d_flops, 56, convention="macs")
  assert macs(128, 128, 3, groups=32) + 2 * macs(256, 128, 1) == 56 * 56 * 70144
  assert macs(64, 64, 3) + 2 * macs(256, 64, 1) == 56 * 56 * 69632


def test_resnext_shapes_train_and_grad(rng):
  block = jnn.ResNeXtBlock(32, cardinality=4, group_width=4, strides=2)
  x = jnp.asarray(rng.standard_normal((2, 8, 8, 16)), jnp.float32)

  @jax.jit
  def init_train_grad(key):  # one compilation for init, train step and grad
    variables = block.init(key, x)

    def loss(params):
      y, updates = block.apply({**variables, "params": params}, x, train=True,
                               mutable=["batch_stats"])
      return jnp.sum(y ** 2), (y, updates)

    grads, (y, updates) = jax.grad(loss, has_aux=True)(variables["params"])
    return variables, grads, y, updates

  variables, grads, y, updates = init_train_grad(jax.random.key(0))
  assert y.shape == (2, 4, 4, 32) and bool(jnp.all(y >= 0))
  moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                       updates["batch_stats"], variables["batch_stats"])
  assert all(jax.tree.leaves(moved))
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


# ------------------------------------------------------------- dropout


def test_dropout_is_inverted_and_unbiased(key):
  x = jnp.full((200_000,), 2.0)
  rate = 0.3
  y = jax.jit(jnn.dropout, static_argnums=2)(key, x, rate)
  kept = y != 0
  # Kept values are scaled by 1/(1 - rate), as the notes' x *= sample / p.
  np.testing.assert_allclose(y[kept], 2.0 / 0.7, rtol=1e-6)
  # Binomial(200k, 0.7): sd of the kept fraction is 1.02e-3; 5 sd.
  assert abs(float(kept.mean()) - 0.7) < 5.2e-3
  assert abs(float(y.mean()) - 2.0) < 2.0 / 0.7 * 5.2e-3
  grad = jax.grad(lambda x: jnp.sum(jnn.dropout(key, x, rate)))(x)
  np.testing.assert_allclose(grad, jnp.where(kept, 1 / 0.7, 0.0), rtol=1e-6)


def test_dropout_identity_cases_vmap_and_bad_rate(key):
  x = jnp.arange(6.0).reshape(2, 3)
  np.testing.assert_array_equal(jnn.dropout(key, x, 0.5, deterministic=True), x)
  np.testing.assert_array_equal(jnn.dropout(key, x, 0.0), x)
  keys = jax.random.split(key, 2)
  batched = jax.vmap(lambda k, r: jnn.dropout(k, r, 0.5))(keys, x)
  for i in range(2):
    np.testing.assert_array_equal(batched[i], jnn.dropout(keys[i], x[i], 0.5))
  assert jnn.dropout(key, x.astype(jnp.bfloat16), 0.5).dtype == jnp.bfloat16
  # None, text and a traced rate raised TypeError / a tracer error.
  for rate in (-0.1, 1.0, 1.5, float("nan"), None, "0.5", np.ones(2)):
    with pytest.raises(ValueError, match="rate"):
      jnn.dropout(key, x, rate)
  with pytest.raises(ValueError, match="rate must be a static number"):
    jax.jit(lambda r: jnn.dropout(key, x, r))(0.5)


# -------------------------------------------------------- YOLO blocks


def _notes_transformer_layer(torch, c, num_heads):
  """The notes' (YOLOv5) TransformerLayer, verbatim in PyTorch."""

  class TransformerLayer(torch.nn.Module):

    def __init__(self, c, num_heads):
      super().__init__()
      self.q = torch.nn.Linear(c, c, bias=False)
      self.k = torch.nn.Linear(c, c, bias=False)
      self.v = torch.nn.Linear(c, c, bias=False)
      self.ma = torch.nn.MultiheadAttention(embed_dim=c, num_heads=num_heads)
      self.fc1 = torch.nn.Linear(c, c, bias=False)
      self.fc2 = torch.nn.Linear(c, c, bias=False)

    def forward(self, x):
      x = self.ma(self.q(x), self.k(x), self.v(x))[0] + x
      x = self.fc2(self.fc1(x)) + x
      return x

  return TransformerLayer(c, num_heads)


def _torch_layer_params(layer, c, heads):
  """Flax params of ``jnn.TransformerLayer`` from the torch layer's weights."""
  t = lambda p: p.detach().numpy().astype(np.float32)
  w_in, b_in = t(layer.ma.in_proj_weight), t(layer.ma.in_proj_bias)
  attn = {}
  for i, name in enumerate(("query", "key", "value")):
    attn[name] = {
        "kernel": w_in[i * c:(i + 1) * c].T.reshape(c, heads, c // heads),
        "bias": b_in[i * c:(i + 1) * c].reshape(heads, c // heads)}
  attn["out"] = {"kernel": t(layer.ma.out_proj.weight).T.reshape(
      heads, c // heads, c), "bias": t(layer.ma.out_proj.bias)}
  params = {n: {"kernel": t(getattr(layer, n).weight).T}
            for n in ("q", "k", "v", "fc1", "fc2")}
  return {**params, "ma": attn}


def test_transformer_layer_and_block_match_notes_torch(rng):
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  c, heads = 8, 4
  layers = [_notes_transformer_layer(torch, c, heads) for _ in range(2)]
  linear = torch.nn.Linear(c, c)
  x = rng.standard_normal((2, 3, 5, c)).astype(np.float32)
  # The notes' TransformerBlock (c1 == c2): tokens (w·h, b, c), p + linear(p).
  with torch.no_grad():
    p = torch.from_numpy(x).flatten(1, 2).transpose(0, 1)  # [L, B, C]
    y = p + linear(p)
    for layer in layers:
      y = layer(y)
    want = y.transpose(0, 1).reshape(2, 3, 5, c).numpy()
    want_layer = layers[0](p).transpose(0, 1).numpy()
  params = {f"tr_{i}": _torch_layer_params(l, c, heads)
            for i, l in enumerate(layers)}
  params["linear"] = {"kernel": linear.weight.detach().numpy().T,
                      "bias": linear.bias.detach().numpy()}
  block = jnn.TransformerBlock(c, heads, 2)
  # float32 in both; 1e-5 absolute on O(1) outputs.
  np.testing.assert_allclose(
      block.apply({"params": params}, x), want, atol=1e-5)
  np.testing.assert_allclose(
      jnn.TransformerLayer(heads).apply({"params": params["tr_0"]},
                                        x.reshape(2, 15, c)),
      want_layer, atol=1e-5)
  assert _n_params(jnn.TransformerLayer(heads),
                   jnp.ones((1, 4, c))) == sum(
                       q.numel() for q in layers[0].parameters()) == (
                           9 * c * c + 4 * c)


def test_c3_c3tr_bottleneck_shapes_params_and_grads(rng):
  x = jnp.asarray(rng.standard_normal((2, 4, 4, 16)), jnp.float32)
  conv_bn = lambda ci, co, k: flops.conv2d_params(ci, co, k, bias=False) + 2 * co
  assert _n_params(jnn.ConvBNAct(8, 3), x) == conv_bn(16, 8, 3)
  assert _n_params(jnn.Bottleneck(16), x) == conv_bn(16, 8, 1) + conv_bn(8, 16, 3)
  c3 = 2 * conv_bn(16, 8, 1) + conv_bn(16, 16, 1)
  assert _n_params(jnn.C3(16, 2), x) == c3 + 2 * (conv_bn(8, 8, 1) +
                                                  conv_bn(8, 8, 3))
  # C3TR: the m branch is TransformerBlock(c_, c_, 4, n): 8x8 linear + layers.
  assert _n_params(jnn.C3TR(16, 2), x) == c3 + (8 * 8 + 8) + 2 * (
      9 * 64 + 4 * 8)
  # TransformerBlock's 1x1 ConvBNAct when the channels change (16 -> 12).
  assert _n_params(jnn.TransformerBlock(12, 4, 1), x) == conv_bn(16, 12, 1) + (
      12 * 12 + 12) + 9 * 144 + 4 * 12
  for module in (jnn.C3(16, 1, shortcut=False, groups=2), jnn.C3TR(24, 1)):

    @jax.jit
    def init_and_grad(key, module=module):
      variables = module.init(key, x)

      def loss(params):
        out, _ = module.apply({**variables, "params": params}, x, train=True,
                              mutable=["batch_stats"])
        return jnp.mean(out ** 2), out

      return jax.grad(loss, has_aux=True)(variables["params"])

    grads, out = init_and_grad(jax.random.key(0))  # one compile per module
    assert out.shape == (2, 4, 4, module.features)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert any(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grads))
  with pytest.raises(ValueError, match="num_heads"):
    jnn.TransformerLayer(3).init(jax.random.key(0), jnp.ones((1, 4, 8)))


# ------------------------------------------------------- ViT, ToyNet


def test_vit_tiny_param_count():
  """ViT-Ti/16 at 224 px, 1000 classes: 5,717,416 (timm/big_vision)."""
  d, mlp, depth, patches = 192, 768, 12, 196
  block = 2 * 2 * d + 4 * (d * d + d) + (d * mlp + mlp) + (mlp * d + d)
  want = (16 * 16 * 3 * d + d) + d + (patches + 1) * d + depth * block + 2 * d + (
      d * 1000 + 1000)
  assert want == 5_717_416
  vit = jnn.ViT(16, 192, 12, 3, 768, 1000)
  assert _n_params(vit, jax.ShapeDtypeStruct((1, 224, 224, 3),
                                             jnp.float32)) == want


def test_vit_shapes_jit_dropout_grads(rng):
  vit = jnn.ViT(4, 32, 1, 4, 64, 10, dropout=0.2)
  x = jnp.asarray(rng.standard_normal((2, 16, 16, 3)), jnp.float32)
  shapes = jax.eval_shape(vit.init, jax.random.key(0), x)
  assert shapes["params"]["pos_embedding"].shape == (1, 17, 32)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(key):
    """Init, eval logits, and train logits and gradients with dropout."""
    params = vit.init(jax.random.key(0), x)["params"]
    y_eval = vit.apply({"params": params}, x)

    def train_loss(params):
      y = vit.apply({"params": params}, x, train=True, rngs={"dropout": key})
      return jnp.sum(y ** 2), y

    grads, y_train = jax.grad(train_loss, has_aux=True)(params)
    return y_eval, y_train, grads

  y, y_train, grads = step(jax.random.key(1))
  assert y.shape == y_train.shape == (2, 10)
  assert not np.allclose(y_train, y)  # dropout active in training only
  _, y_train2, _ = step(jax.random.key(1))  # no retrace
  np.testing.assert_array_equal(y_train2, y_train)  # same key, same mask
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  with pytest.raises(ValueError, match="patch_size"):
    vit.init(jax.random.key(0), jnp.ones((1, 15, 16, 3)))


@pytest.mark.parametrize("module,shape,match", [
    (lambda: jnn.ViT(0, 8, 1, 2, 16, 10), (1, 8, 8, 3), "patch_size"),
    (lambda: jnn.ViT(-4, 8, 1, 2, 16, 10), (1, 8, 8, 3), "patch_size"),
    (lambda: jnn.ViT(4, 8, 1, 0, 16, 10), (1, 8, 8, 3), "num_heads"),
    (lambda: jnn.TransformerLayer(0), (1, 4, 8), "num_heads"),
    (lambda: jnn.ResNeXtBlock(8, cardinality=0), (1, 8, 8, 3),
     "cardinality"),
    (lambda: jnn.ResNeXtBlock(8, group_width=0), (1, 8, 8, 3),
     "group_width"),
    (lambda: jnn.ConvBNAct(4, 3, groups=2), (1, 8, 8, 3), "groups"),
    (lambda: jnn.ConvBNAct(4, 3, groups=0), (1, 8, 8, 4), "groups"),
    (lambda: jnn.Bottleneck(6, groups=4), (1, 8, 8, 6), "groups"),
    # Silently run with zero blocks, cropped, or crashed unnamed before.
    (lambda: jnn.ViT(4, 8, -1, 2, 16, 10), (1, 8, 8, 3), "depth"),
    (lambda: jnn.ViT(4, 0, 1, 2, 16, 10), (1, 8, 8, 3), "hidden_size"),
    (lambda: jnn.ViT(4, 8, 1, 2, 16, 0), (1, 8, 8, 3), "num_classes"),
    (lambda: jnn.ViT(4, 8, 1, 2, 16, 10, dropout=1.5), (1, 8, 8, 3),
     "dropout"),
    (lambda: jnn.C3(8, num_blocks=-2), (1, 8, 8, 8), "num_blocks"),
    (lambda: jnn.C3(8, expansion=0.0), (1, 8, 8, 8), "expansion"),
    (lambda: jnn.C3(8, expansion=-1.0), (1, 8, 8, 8), "expansion"),
    (lambda: jnn.TransformerBlock(8, 2, -1), (1, 4, 4, 8), "num_layers"),
    (lambda: jnn.ConvBNAct(8, 3, padding=-1), (1, 8, 8, 8), "padding"),
    (lambda: jnn.ConvBNAct(8, 0), (1, 8, 8, 8), "kernel_size"),
    (lambda: jnn.ConvBNAct(8, 3, strides=0), (1, 8, 8, 8), "strides"),
    (lambda: jnn.ConvBNAct(8, 3), (8, 8, 8), "x must have shape"),
    (lambda: jnn.ResNeXtBlock(8, strides=0), (1, 8, 8, 3), "strides"),
    (lambda: jnn.DepthwiseSeparableConv(8), (1, 1, 8, 8, 8),
     "x must have shape"),
])
def test_block_hyperparameters_raise_value_error(module, shape, match):
  with pytest.raises(ValueError, match=match):
    module().init(jax.random.key(0), jnp.ones(shape))


@pytest.mark.parametrize("module,shape,match", [
    # ZeroDivisionError / TypeError from the initialiser before.
    (lambda: jnn.ConvTranspose2d(0, 3), (1, 4, 4, 2), "features"),
    (lambda: jnn.ConvTranspose2d(-1, 3), (1, 4, 4, 2), "features"),
    (lambda: jnn.ConvTranspose2d(2.0, 3), (1, 4, 4, 2), "features"),
    (lambda: jnn.ToyNet(0), (1, 32, 32, 3), "num_classes"),
    # A feature map [B, H, W, C] attended over W alone, silently.
    (lambda: jnn.TransformerLayer(2), (1, 5, 7, 4), "x must have shape"),
])
def test_unnamed_errors_and_silent_ranks_raise_value_error(module, shape,
                                                           match):
  with pytest.raises(ValueError, match=match):
    module().init(jax.random.key(0), jnp.ones(shape))


def test_toynet_param_count_equals_pytorch_net():
  n = _n_params(jnn.ToyNet(), jax.ShapeDtypeStruct((1, 32, 32, 3),
                                                   jnp.float32))
  assert n == 62_006
  for shape in [(1, 28, 28, 3), (32, 32, 3)]:  # fc1 would not be 400 x 120
    with pytest.raises(ValueError, match=r"\[B, 32, 32, C\]"):
      _n_params(jnn.ToyNet(), jax.ShapeDtypeStruct(shape, jnp.float32))
  assert n == sum(flops.conv2d_params(*a) for a in [(3, 6, 5), (6, 16, 5)]) + (
      sum(i * o + o for i, o in [(400, 120), (120, 84), (84, 10)]))
  torch = pytest.importorskip("torch")

  class Net(torch.nn.Module):  # the notes' CIFAR-10 Net (layers only)

    def __init__(self):
      super().__init__()
      self.conv1 = torch.nn.Conv2d(3, 6, 5)
      self.conv2 = torch.nn.Conv2d(6, 16, 5)
      self.fc1 = torch.nn.Linear(16 * 5 * 5, 120)
      self.fc2 = torch.nn.Linear(120, 84)
      self.fc3 = torch.nn.Linear(84, 10)

  assert n == sum(p.numel() for p in Net().parameters())


# ------------------------------------------------ dtypes and weight ports


def test_conv_transpose_promotes_integer_and_half_inputs():
  """Integer inputs had truncated the float kernel to their dtype (0.5 -> 0),
  half ones computed in half precision and returned float32 only with a
  bias; now both promote to float32 as Flax's layers do."""
  kernel = {"kernel": jnp.full((2, 2, 1, 1), 0.5, jnp.float32)}
  layer = jnn.ConvTranspose2d(1, 2, strides=2, use_bias=False)
  ones = jnp.ones((1, 2, 2, 1))
  want = layer.apply({"params": kernel}, ones)
  for dtype in (jnp.int32, jnp.bfloat16, jnp.float16):
    got = layer.apply({"params": kernel}, ones.astype(dtype))
    assert got.dtype == jnp.float32
    np.testing.assert_array_equal(got, want)
  biased = jnn.ConvTranspose2d(1, 1)
  params = {"kernel": jnp.full((1, 1, 1, 1), 1.001, jnp.float32),
            "bias": jnp.zeros(1, jnp.float32)}
  x = jnp.full((1, 1, 1, 1), 1000.0, jnp.bfloat16)
  for layer, p in ((biased, params), (jnn.ConvTranspose2d(1, 1, use_bias=False),
                                      {"kernel": params["kernel"]})):
    y = layer.apply({"params": p}, x)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, 1001.0, rtol=1e-6)


def test_dropout_rejects_integer_inputs(key):
  with pytest.raises(ValueError, match="x must be floating point"):
    jnn.dropout(key, jnp.ones(8, jnp.int32), 0.3)
  ints = jnp.arange(4)  # Nothing dropped: returned as is, as torch does.
  assert jnn.dropout(key, ints, 0.3, deterministic=True) is ints
  assert jnn.dropout(key, ints, 0.0) is ints


def test_blocks_take_flax_pair_forms_and_zero_blocks():
  """The size checks keep what Flax (and YOLOv5's n = 0) accept."""
  x = jnp.ones((1, 8, 8, 8))
  for module, shape in (
      (jnn.ConvBNAct(8, 3, padding=(1, 1)), (1, 8, 8, 8)),
      (jnn.DepthwiseSeparableConv(8, strides=(2, 2)), (1, 4, 4, 8)),
      (jnn.ResNeXtBlock(8, strides=(2, 2), cardinality=2, group_width=2),
       (1, 4, 4, 8)),
      (jnn.C3(8, num_blocks=0), (1, 8, 8, 8))):
    out = module.apply(module.init(jax.random.key(0), x), x)
    assert out.shape == shape, module


def test_vit_equals_torch_pre_norm_encoder(rng):
  """ViT with ported weights equals torch's pre-norm TransformerEncoderLayer
  stack (exact GELU, LayerNorm eps 1e-6, class-token head)."""
  torch = pytest.importorskip("torch")
  patch, dim, depth, heads, mlp, classes = 4, 16, 2, 4, 32, 5
  torch.manual_seed(0)
  embed = torch.nn.Conv2d(3, dim, patch, patch)
  cls = torch.randn(1, 1, dim)
  pos = torch.randn(1, 17, dim) * 0.5
  blocks = [torch.nn.TransformerEncoderLayer(
      dim, heads, mlp, dropout=0.0, activation="gelu", layer_norm_eps=1e-6,
      batch_first=True, norm_first=True).eval() for _ in range(depth)]
  norm, head = torch.nn.LayerNorm(dim, eps=1e-6), torch.nn.Linear(dim, classes)
  for module in [norm, *blocks]:  # LayerNorm affine terms away from 1 / 0.
    for sub in module.modules():
      if isinstance(sub, torch.nn.LayerNorm):
        torch.nn.init.normal_(sub.weight, 1.0, 0.3)
        torch.nn.init.normal_(sub.bias, 0.0, 0.3)
  t = lambda a: a.detach().numpy()
  split = dim // heads

  def attention(m):
    w, b = t(m.in_proj_weight), t(m.in_proj_bias)
    qkv = {name: {"kernel": w[i * dim:(i + 1) * dim].T.reshape(
        dim, heads, split), "bias": b[i * dim:(i + 1) * dim].reshape(
            heads, split)} for i, name in enumerate(("query", "key", "value"))}
    qkv["out"] = {"kernel": t(m.out_proj.weight).T.reshape(heads, split, dim),
                  "bias": t(m.out_proj.bias)}
    return qkv

  dense = lambda m: {"kernel": t(m.weight).T, "bias": t(m.bias)}
  layer_norm = lambda m: {"scale": t(m.weight), "bias": t(m.bias)}
  params = {"embedding": {"kernel": t(embed.weight).transpose(2, 3, 1, 0),
                          "bias": t(embed.bias)},
            "cls": t(cls), "pos_embedding": t(pos), "ln": layer_norm(norm),
            "head": dense(head)}
  for i, b in enumerate(blocks):
    params[f"block_{i}"] = {
        "ln1": layer_norm(b.norm1), "ln2": layer_norm(b.norm2),
        "attn": attention(b.self_attn),
        "mlp": {"fc1": dense(b.linear1), "fc2": dense(b.linear2)}}
  x = rng.standard_normal((2, 16, 16, 3)).astype(np.float32)
  with torch.no_grad():
    tokens = embed(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    tokens = torch.cat([cls.expand(2, -1, -1),
                        tokens.flatten(2).transpose(1, 2)], 1) + pos
    for b in blocks:
      tokens = b(tokens)
    want = t(head(norm(tokens)[:, 0]))
  got = jnn.ViT(patch, dim, depth, heads, mlp, classes).apply(
      {"params": params}, x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_c3_equals_yolov5_in_eval_and_train(rng):
  """C3 (grouped bottlenecks) with ported weights equals a port of YOLOv5's
  common.py Conv / Bottleneck / C3: outputs in eval and train mode, and the
  running mean after a training step (BatchNorm eps 1e-3, momentum 0.03)."""
  torch = pytest.importorskip("torch")
  tnn = torch.nn
  torch.manual_seed(0)

  def conv(c1, c2, k=1, g=1):  # YOLOv5 Conv: conv, BN, SiLU
    return tnn.Sequential(tnn.Conv2d(c1, c2, k, 1, k // 2, groups=g,
                                     bias=False),
                          tnn.BatchNorm2d(c2, eps=1e-3, momentum=0.03),
                          tnn.SiLU())

  hidden = 4  # C3(8, 8, n=2, g=2): c_ = int(8 * 0.5)
  cv1, cv2, cv3 = conv(8, hidden), conv(8, hidden), conv(2 * hidden, 8)
  blocks = [(conv(hidden, hidden), conv(hidden, hidden, 3, g=2))
            for _ in range(2)]
  layers = [cv1, cv2, cv3, *[c for pair in blocks for c in pair]]
  for c in layers:
    with torch.no_grad():
      bn = c[1]
      bn.running_mean.normal_(0, 0.5)
      bn.running_var.uniform_(0.5, 2.0)
      bn.weight.normal_(1.0, 0.2)
      bn.bias.normal_(0.0, 0.2)

  def forward(x):
    y = cv1(x)
    for a, b in blocks:
      y = y + b(a(y))
    return cv3(torch.cat([y, cv2(x)], 1))

  t = lambda a: a.detach().numpy().copy()

  def ported(c):
    return ({"conv": {"kernel": t(c[0].weight).transpose(2, 3, 1, 0)},
             "bn": {"scale": t(c[1].weight), "bias": t(c[1].bias)}},
            {"bn": {"mean": t(c[1].running_mean), "var": t(c[1].running_var)}})

  def variables():
    params, stats = {}, {}
    for name, c in (("cv1", cv1), ("cv2", cv2), ("cv3", cv3)):
      params[name], stats[name] = ported(c)
    for i, pair in enumerate(blocks):
      params[f"m_{i}"], stats[f"m_{i}"] = {}, {}
      for name, c in zip(("cv1", "cv2"), pair):
        params[f"m_{i}"][name], stats[f"m_{i}"][name] = ported(c)
    return {"params": params, "batch_stats": stats}

  x = rng.standard_normal((2, 5, 6, 8)).astype(np.float32)
  tx = torch.from_numpy(x.transpose(0, 3, 1, 2))
  c3 = jnn.C3(8, num_blocks=2, groups=2)
  before = variables()
  for module in layers:
    module.eval()
  with torch.no_grad():
    want = t(forward(tx)).transpose(0, 2, 3, 1)
  np.testing.assert_allclose(c3.apply(before, x), want, rtol=1e-5,
                             atol=1e-5)
  for module in layers:
    module.train()
  with torch.no_grad():
    want = t(forward(tx)).transpose(0, 2, 3, 1)
  got, updates = c3.apply(before, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  after = variables()["batch_stats"]
  means = lambda tree: [leaf for path, leaf in
                        jax.tree_util.tree_leaves_with_path(tree)
                        if "mean" in jax.tree_util.keystr(path)]
  for got_mean, want_mean in zip(means(updates["batch_stats"]), means(after)):
    np.testing.assert_allclose(got_mean, want_mean, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- mixed precision


# (name, module factory taking dtype keywords, input shape, has BatchNorm,
# takes a ``train`` flag).
_DTYPE_CASES = [
    ("ConvTranspose2d",
     lambda **kw: jnn.ConvTranspose2d(6, 3, strides=2, padding=1, **kw),
     (1, 8, 8, 4), False, False),
    ("DepthwiseSeparableConv",
     lambda **kw: jnn.DepthwiseSeparableConv(6, use_bias=True, **kw),
     (1, 8, 8, 4), False, False),
    ("ResNeXtBlock",
     lambda **kw: jnn.ResNeXtBlock(8, cardinality=2, group_width=2, **kw),
     (2, 8, 8, 4), True, True),
    ("ToyNet", lambda **kw: jnn.ToyNet(**kw), (1, 32, 32, 3), False, True),
    ("MlpBlock", lambda **kw: jnn.vit.MlpBlock(16, **kw), (1, 5, 8), False,
     True),
    ("EncoderBlock", lambda **kw: jnn.vit.EncoderBlock(2, 16, **kw),
     (1, 5, 8), False, True),
    ("ViT", lambda **kw: jnn.ViT(4, 16, 2, 2, 32, 5, **kw), (1, 8, 8, 4),
     False, True),
    ("ConvBNAct", lambda **kw: jnn.ConvBNAct(6, 3, **kw), (2, 8, 8, 4), True,
     True),
    ("Bottleneck", lambda **kw: jnn.Bottleneck(4, **kw), (2, 8, 8, 4), True,
     True),
    ("C3", lambda **kw: jnn.C3(8, num_blocks=2, **kw), (2, 8, 8, 4), True,
     True),
    ("TransformerLayer", lambda **kw: jnn.TransformerLayer(2, **kw),
     (1, 5, 8), False, False),
    ("TransformerBlock", lambda **kw: jnn.TransformerBlock(8, 2, 2, **kw),
     (2, 8, 8, 4), True, True),
    ("C3TR", lambda **kw: jnn.C3TR(8, **kw), (2, 8, 8, 4), True, True),
]


def _dtypes(tree):
  return {leaf.dtype for leaf in jax.tree.leaves(tree)}


@pytest.mark.parametrize("make,shape,has_bn,takes_train",
                         [case[1:] for case in _DTYPE_CASES],
                         ids=[case[0] for case in _DTYPE_CASES])
def test_modules_dtype_and_param_dtype(rng, make, shape, has_bn, takes_train):
  """``dtype`` sets the compute/output dtype with float32 parameters,
  ``param_dtype`` the parameters' dtype, as in Flax's layers.

  Tolerance: bfloat16 keeps 8 significant bits (relative rounding 2^-9 per
  operation); through the few layers here the largest error measured was
  2.4e-2 of the output scale (max |float32 output|, at least 1), in
  TransformerBlock; most cases are near 4e-3.
  """
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  key = jax.random.key(0)
  # Jitted (eager Flax dispatch op by op took 11 s for ViT); shapes and
  # dtypes alone by eval_shape.
  init = lambda module: jax.jit(module.init)(key, x)
  apply = lambda module, v: jax.jit(module.apply)(v, x)
  f32 = make()
  variables = init(f32)
  want = apply(f32, variables)
  assert want.dtype == jnp.float32
  assert _dtypes(variables["params"]) == {jnp.dtype(jnp.float32)}

  # (d) Defaults are dtype=None, param_dtype=float32: the same tree.
  explicit = make(dtype=None, param_dtype=jnp.float32)
  chex.assert_trees_all_equal_shapes_and_dtypes(
      jax.eval_shape(f32.init, key, x), jax.eval_shape(explicit.init, key, x))

  # (a) bfloat16 compute, float32 parameters.
  bf16 = make(dtype=jnp.bfloat16)
  chex.assert_trees_all_equal_shapes_and_dtypes(
      jax.eval_shape(bf16.init, key, x), variables)
  got = apply(bf16, variables)
  assert got.dtype == jnp.bfloat16
  # (c) Close to the float32 output.
  scale = max(1.0, float(jnp.max(jnp.abs(want))))
  np.testing.assert_allclose(np.asarray(got, np.float32), want,
                             atol=5e-2 * scale, rtol=5e-2)

  # (b) bfloat16 parameters.
  half = make(param_dtype=jnp.bfloat16)
  half_vars = jax.eval_shape(half.init, key, x)
  assert _dtypes(half_vars["params"]) == {jnp.dtype(jnp.bfloat16)}
  chex.assert_trees_all_equal_structs(half_vars["params"],
                                      variables["params"])
  assert jax.eval_shape(half.apply, half_vars, x).dtype == jnp.float32

  if takes_train:
    got = jax.eval_shape(functools.partial(
        bf16.apply, train=True, mutable=["batch_stats"]), variables, x)[0]
    assert got.dtype == jnp.bfloat16
  if not has_bn:
    assert "batch_stats" not in variables
    return
  # Batch statistics: whatever Flax's BatchNorm keeps for the same dtypes.
  for module, kwargs, init_vars in (
      (bf16, {"dtype": jnp.bfloat16}, variables),
      (half, {"param_dtype": jnp.bfloat16}, half_vars)):
    ref = jax.eval_shape(nn.BatchNorm(use_running_average=False,
                                      **kwargs).init,
                         key, jnp.ones((2, 3)))["batch_stats"]
    _, updates = jax.eval_shape(functools.partial(
        module.apply, train=True, mutable=["batch_stats"]), init_vars, x)
    assert _dtypes(init_vars["batch_stats"]) == _dtypes(ref)
    assert _dtypes(updates["batch_stats"]) == _dtypes(ref)
