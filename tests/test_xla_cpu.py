"""Tests for jaxdl._xla_cpu: the training loop's CPU rewrites keep values."""

from __future__ import annotations

import functools
import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import _xla_cpu, optim, train
from jaxdl.nn import ToyNet


def _close(a, b, rtol, atol=0.0):
  chex.assert_trees_all_close(a, b, rtol=rtol, atol=atol)


def _convolutions(fn, *args):
  jaxpr = jax.make_jaxpr(fn)(*args)
  return [e for e in jaxpr.eqns if e.primitive.name == "conv_general_dilated"]


def test_cpu_fast_path_keeps_values_and_gradients(rng):
  """The CPU scan rewrites (convolutions, max pooling) change no value."""
  # Rounded inputs make ties inside pooling windows: the gradient must go to
  # the first maximum, as XLA's select_and_scatter does.
  x = jnp.asarray(np.round(rng.normal(size=(2, 8, 8, 4))), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 2, 6)), jnp.float32)

  def loss(x, k):
    y = jax.lax.conv_general_dilated(
        x, k, (2, 1), ((1, 1), (0, 2)), rhs_dilation=(1, 2),
        feature_group_count=2, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    z = jax.lax.conv_general_dilated(  # Non-canonical layouts.
        jnp.transpose(x, (0, 3, 1, 2)), jnp.transpose(k[..., :2], (3, 2, 0, 1)),
        (1, 1), "SAME", feature_group_count=2,
        dimension_numbers=("NCHW", "OIHW", "NCHW"))
    tiled = nn.max_pool(x, (2, 2), strides=(2, 2))  # Rewritten.
    overlapping = nn.max_pool(x, (3, 3), strides=(2, 2))  # Left as is.
    return (jnp.sum(jnp.sin(y)) + jnp.sum(z ** 2) + jnp.sum(tiled ** 3)
            + jnp.sum(jnp.cos(overlapping)))

  grad = jax.value_and_grad(loss, argnums=(0, 1))
  expected = jax.jit(grad)(x, k)

  @jax.jit
  def in_scan(x, k):
    fn = _xla_cpu.fast_path(grad)
    return jax.lax.scan(lambda c, _: (c, fn(x, k)), 0.0, length=2)[1]

  got = jax.tree.map(lambda a: a[1], in_scan(x, k))
  # float32 with reordered accumulation: 1e-5 relative, 1e-5 absolute.
  _close(got, expected, rtol=1e-5, atol=1e-5)
  # The rewrite happened: every convolution is NHWC/HWIO, and only the
  # overlapping pool keeps its reduce_window / select_and_scatter pair.
  rewritten = _xla_cpu.fast_path(grad)
  jaxpr = jax.make_jaxpr(rewritten)(x, k)
  names = [e.primitive.name for e in jaxpr.eqns]
  assert names.count("reduce_window_max") == 1
  assert names.count("select_and_scatter_add") == 1
  convs = [e for e in jaxpr.eqns if e.primitive.name == "conv_general_dilated"]
  assert convs and all(e.params["dimension_numbers"] == (
      _xla_cpu._CANONICAL_CONV) for e in convs)  # pylint: disable=protected-access


def test_tiled_max_pool_propagates_nan_and_infinities():
  """The rewritten pooling is reduce_window's max: NaN wins, -inf stays."""
  x = jnp.asarray([[1.0, np.nan, -np.inf, -np.inf],
                   [3.0, 2.0, -np.inf, -np.inf],
                   [np.inf, 0.0, -0.0, 0.0],
                   [5.0, np.nan, 0.0, -1.0]], jnp.float32)[None, :, :, None]
  pool = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  got = jax.jit(_xla_cpu.fast_path(pool))(x)
  np.testing.assert_array_equal(got[0, ..., 0], [[np.nan, -np.inf],
                                                 [np.nan, 0.0]])
  np.testing.assert_array_equal(got, pool(x))


def test_tiled_max_pool_gradient_keeps_nan_and_inf_in_their_slot():
  """An inf or NaN cotangent goes to its window's maximum only, as
  select_and_scatter_add (a one-hot product spread NaN over the window)."""
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  cotangent = jnp.asarray([[np.inf, np.nan], [-np.inf, 2.0]],
                          jnp.float32)[None, :, :, None]
  pool = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  grad = lambda x: jax.vjp(pool, x)[1](cotangent)[0]
  want = jax.jit(grad)(x)
  np.testing.assert_array_equal(jax.jit(_xla_cpu.fast_path(grad))(x), want)
  np.testing.assert_array_equal(_xla_cpu.fast_path(grad)(x), want)
  assert np.sum(np.isnan(want)) == 1


@pytest.mark.parametrize("dtype", [jnp.float8_e4m3fn, jnp.float8_e5m2,
                                   jnp.bfloat16])
def test_tiled_max_pool_of_float8_without_infinities(dtype):
  """float8_e4m3fn has no -inf: a reduce started from -inf started from
  NaN and pooled every window to NaN, with a zero gradient. A window of
  the lowest finite value keeps it, its gradient on the first element."""
  lowest = float(jnp.finfo(dtype).min)
  x = jnp.asarray(np.r_[np.arange(12.0) - 8, [lowest] * 4].reshape(
      2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(1, 4, 4, 1), dtype)
  pool = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  grad = jax.grad(lambda x: jnp.sum(pool(x)).astype(jnp.float32))
  np.testing.assert_array_equal(
      jax.jit(_xla_cpu.fast_path(pool))(x).astype(jnp.float32),
      pool(x).astype(jnp.float32))
  np.testing.assert_array_equal(
      jax.jit(_xla_cpu.fast_path(grad))(x).astype(jnp.float32),
      jax.jit(grad)(x).astype(jnp.float32))


def test_tiled_max_pool_of_an_empty_batch():
  """A batch of 0 pools to an empty array (the tiles' reshape inferred its
  last size from an empty array: ZeroDivisionError)."""
  x = jnp.ones((0, 8, 8, 3))
  pool = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  grad = jax.value_and_grad(lambda x: jnp.sum(pool(x)))
  assert jax.jit(_xla_cpu.fast_path(pool))(x).shape == (0, 4, 4, 3)
  value, dx = jax.jit(_xla_cpu.fast_path(grad))(x)
  assert value == 0.0 and dx.shape == x.shape


def test_tiled_max_pool_gradient_with_nan_operands_as_documented():
  """The module docstring: the tiled gradient goes to a window's first NaN;
  select_and_scatter_add to the first maximum after the last NaN, or to
  that NaN when it ends the window."""
  windows = [[np.nan, 1.0, 2.0, 3.0], [1.0, np.nan, 0.0, -1.0],
             [1.0, 2.0, np.nan, np.nan], [np.nan, np.nan, 1.0, 0.0]]
  x = jnp.asarray(windows, jnp.float32).reshape(1, 2, 2, 2, 2).transpose(
      0, 1, 3, 2, 4).reshape(1, 4, 4, 1)  # One window per 2x2 tile.
  grad = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (2, 2), strides=(2, 2))))
  tiles = lambda g: np.asarray(g).reshape(2, 2, 2, 2).transpose(
      0, 2, 1, 3).reshape(4, 4).argmax(axis=1)
  np.testing.assert_array_equal(tiles(jax.jit(_xla_cpu.fast_path(grad))(x)),
                                [0, 1, 2, 0])
  np.testing.assert_array_equal(tiles(jax.jit(grad)(x)), [3, 2, 3, 2])


@pytest.mark.parametrize("kernel,padding,in_hw", [
    ((5, 5), "VALID", (12, 12)),  # ToyNet's first layer, even output.
    ((5, 5), "VALID", (11, 12)),  # Odd output height.
    ((3, 3), "SAME", (9, 8)),
    ((2, 4), ((1, 0), (2, 3)), (7, 6)),  # Even kernel, explicit padding.
    ((4, 3), ((-1, 2), (0, -1)), (10, 9)),  # Negative padding crops.
])
@pytest.mark.parametrize("batch", [2, 17])  # Gathered kernel, or padded.
def test_space_to_depth_conv_keeps_values_and_gradients(rng, kernel, padding,
                                                        in_hw, batch):
  x = jnp.asarray(rng.normal(size=(batch, *in_hw, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(*kernel, 3, 5)), jnp.float32)

  def loss(x, k):
    y = jax.lax.conv_general_dilated(
        x, k, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(jnp.sin(y)), y

  expected = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, k)
  fast = jax.value_and_grad(_xla_cpu.fast_forward(loss), argnums=(0, 1),
                            has_aux=True)
  got = jax.jit(fast)(x, k)
  assert got[0][1].shape == expected[0][1].shape
  _close(got, expected, rtol=1e-4, atol=1e-4)
  # The rewrite happened: one convolution, on 4x the input channels.
  (conv,) = _convolutions(_xla_cpu.fast_forward(loss), x, k)
  assert conv.invars[0].aval.shape[-1] == 12
  gathers = [e for e in jax.make_jaxpr(_xla_cpu.fast_forward(loss))(
      x, k).eqns if e.primitive.name == "custom_vjp_call"]
  assert len(gathers) == (batch <= _xla_cpu._GATHERED_KERNEL_MAX_BATCH)  # pylint: disable=protected-access


@pytest.mark.parametrize("shape", [(5, 5, 3, 6), (5, 5, 6, 16), (2, 4, 3, 5),
                                   (4, 3, 2, 7), (3, 3, 1, 1)])
def test_gathered_space_to_depth_kernel_equals_the_padded_one(rng, shape):
  """Same values, and its custom VJP (4 gathered copies summed) equals the
  autodiff of the pads and transpose."""
  # pylint: disable=protected-access
  k = jnp.asarray(rng.normal(size=shape), jnp.float32)
  gathered = _xla_cpu._gathered_space_to_depth_kernel
  padded = _xla_cpu._space_to_depth_kernel
  np.testing.assert_array_equal(jax.jit(gathered)(k), padded(k))
  cotangent = jnp.asarray(rng.normal(size=padded(k).shape), jnp.float32)
  _close(jax.vjp(gathered, k)[1](cotangent),
         jax.vjp(padded, k)[1](cotangent), rtol=1e-6, atol=1e-6)


def _conv_layer(x, k, b, activation, pool):
  y = jax.lax.conv_general_dilated(
      x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return pool(activation(y + b.reshape(1, 1, 1, -1)))


@pytest.mark.parametrize("activation,pool", [
    (jax.nn.relu, lambda y: nn.max_pool(y, (2, 2), strides=(2, 2))),
    (lambda y: jnp.maximum(y, 0.5) * 2.0, lambda y: y),  # Ends in blocks.
    (jax.nn.relu6, lambda y: nn.max_pool(y, (2, 2), strides=(2, 2))),
    (jax.nn.relu, lambda y: nn.max_pool(y, (3, 3), strides=(2, 2))),
    (jax.nn.relu, lambda y: y + jnp.linspace(0, 1, y.size).reshape(y.shape)),
    # A two-input custom_jvp (jnp.logaddexp(y, 0)) on blocks: the relu
    # rewrite took one input and raised a TypeError.
    (jax.nn.softplus, lambda y: nn.max_pool(y, (2, 2), strides=(2, 2))),
])
def test_layers_after_space_to_depth_conv_keep_values_and_gradients(
    rng, activation, pool):
  """Bias, activation and 2x2 pooling run on the blocks of a space-to-depth
  convolution; anything else gets the dense layout. Integer inputs and a
  zero bias make exact zeros before relu (derivative 0) and ties in the
  pooling windows (gradient to the first maximum)."""
  x = np.round(rng.normal(size=(2, 12, 12, 3))).astype(np.float32)
  x[:, :6] = 0.0
  k = np.round(rng.normal(size=(5, 5, 3, 4))).astype(np.float32)
  args = (jnp.asarray(x), jnp.asarray(k), jnp.zeros(4))
  loss = lambda *args: jnp.sum(jnp.sin(_conv_layer(*args, activation, pool)))
  expected = jax.value_and_grad(loss, argnums=(0, 1, 2))(*args)
  fast = jax.value_and_grad(_xla_cpu.fast_forward(loss), argnums=(0, 1, 2))
  _close(jax.jit(fast)(*args), expected, rtol=1e-5, atol=1e-5)


def test_blocks_with_different_channels_broadcast_densely(rng):
  """A 1-channel space-to-depth convolution gating a 4-channel one (lax
  broadcasts the size-1 channel axis): their blocks ([B, H, W, 4] and
  [B, H, W, 16]) do not broadcast, so the product runs dense (it raised a
  TypeError). Integer inputs: exact convolutions, whatever the order of
  their sums."""
  x = jnp.asarray(np.round(rng.normal(size=(2, 12, 12, 3))), jnp.float32)
  k = jnp.asarray(np.round(rng.normal(size=(5, 5, 3, 4))), jnp.float32)
  conv = lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def loss(x, k):
    gate, y = conv(x, k[..., :1]), conv(x, k)  # [2, 8, 8, 1], [2, 8, 8, 4]
    return jnp.sum(jnp.sin(gate * y + jnp.maximum(y, gate)))

  expected = jax.value_and_grad(loss, argnums=(0, 1))(x, k)
  fast = jax.value_and_grad(_xla_cpu.fast_forward(loss), argnums=(0, 1))
  _close(jax.jit(fast)(x, k), expected, rtol=1e-5, atol=1e-4)


def test_relu_and_pooling_after_space_to_depth_conv_skip_depth_to_space(rng):
  """ToyNet's conv-bias-relu-pool: no transpose between the convolution and
  the pooling, which reduces over the block phases."""
  x = jnp.asarray(rng.normal(size=(2, 12, 12, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(5, 5, 3, 4)), jnp.float32)
  layer = functools.partial(
      _conv_layer, activation=jax.nn.relu,
      pool=lambda y: nn.max_pool(y, (2, 2), strides=(2, 2)))
  eqns = jax.make_jaxpr(_xla_cpu.fast_forward(layer))(x, k, jnp.zeros(4)).eqns
  names = [e.primitive.name for e in eqns]
  after_conv = names[names.index("conv_general_dilated"):]
  assert "transpose" not in after_conv
  (pool,) = [e for e in eqns if e.primitive.name == "reduce_window_max"]
  assert pool.params["window_dimensions"] == (1, 1, 1, 4, 1)
  _close(_xla_cpu.fast_forward(layer)(x, k, jnp.zeros(4)),
         layer(x, k, jnp.zeros(4)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(5, 5, 3, 6), (4, 2, 2, 3), (2, 3, 1, 2)])
def test_space_to_depth_kernel_places_every_tap(rng, shape):
  """Block tap (a, b), input phase (p, q), output phase (r, s) holds
  kernel[2a + p - r, 2b + q - s], and zero outside the kernel."""
  kernel = rng.normal(size=shape).astype(np.float32)
  kh, kw, c, o = shape
  expected = np.zeros((kh // 2 + 1, kw // 2 + 1, 2, 2, c, 2, 2, o),
                      np.float32)
  for a, b, p, q, r, s in np.ndindex(*expected.shape[:4], 2, 2):
    i, j = 2 * a + p - r, 2 * b + q - s
    if 0 <= i < kh and 0 <= j < kw:
      expected[a, b, p, q, :, r, s, :] = kernel[i, j]
  got = _xla_cpu._space_to_depth_kernel(jnp.asarray(kernel))  # pylint: disable=protected-access
  np.testing.assert_array_equal(got, expected.reshape(got.shape))


@pytest.mark.parametrize("case", ["wide_input", "strided", "dilated",
                                  "grouped", "one_by_one"])
def test_space_to_depth_conv_leaves_other_convolutions(rng, case):
  channels, strides, dilation, groups, kernel = 3, (1, 1), (1, 1), 1, (3, 3)
  if case == "wide_input":
    channels = 32
  elif case == "strided":
    strides = (2, 1)
  elif case == "dilated":
    dilation = (2, 2)
  elif case == "grouped":
    channels, groups = 4, 2
  else:
    kernel = (1, 1)
  x = jnp.asarray(rng.normal(size=(1, 8, 8, channels)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(*kernel, channels // groups, 4)),
                  jnp.float32)
  conv = lambda x, k: jax.lax.conv_general_dilated(
      x, k, strides, "SAME", rhs_dilation=dilation,
      feature_group_count=groups, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  (eqn,) = _convolutions(_xla_cpu.fast_forward(conv), x, k)
  assert eqn.invars[0].aval.shape == x.shape
  _close(_xla_cpu.fast_forward(conv)(x, k), conv(x, k), rtol=0)


@pytest.mark.parametrize("k", [1, 4, 16, 17])
@pytest.mark.parametrize("contract", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_short_contractions_as_outer_products_keep_values(rng, k, contract):
  """A 2-D dot over at most 16 elements (a small batch's weight gradient)
  becomes elementwise products; longer ones stay dots."""
  lhs_shape = (k, 5) if contract[0] == 0 else (5, k)
  rhs_shape = (k, 3) if contract[1] == 0 else (3, k)
  a = jnp.asarray(rng.normal(size=lhs_shape), jnp.float32)
  b = jnp.asarray(rng.normal(size=rhs_shape), jnp.float32)
  dot = lambda a, b: jax.lax.dot_general(
      a, b, (((contract[0],), (contract[1],)), ((), ())))
  fast = _xla_cpu.fast_path(dot)
  _close(jax.jit(fast)(a, b), dot(a, b), rtol=1e-5, atol=1e-5)
  names = [e.primitive.name for e in jax.make_jaxpr(fast)(a, b).eqns]
  assert ("dot_general" in names) == (k > 16)
  # Off for a batch sharded over devices (fit with a mesh of several).
  one_device_only = _xla_cpu.fast_path(dot, outer_products=False)
  assert "dot_general" in [
      e.primitive.name for e in jax.make_jaxpr(one_device_only)(a, b).eqns]
  # bfloat16 operands with a float32 result, as mixed precision has them.
  mixed = lambda a, b: jax.lax.dot_general(
      a, b, (((contract[0],), (contract[1],)), ((), ())),
      preferred_element_type=jnp.float32)
  a16, b16 = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
  got = _xla_cpu.fast_path(mixed)(a16, b16)
  assert got.dtype == jnp.float32
  _close(got, mixed(a16, b16), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("contract", [((0, 1), (0, 1)), ((), ())])
def test_dots_without_exactly_one_contraction_stay_dots(rng, contract):
  """tensordot(axes=2) is a scalar and an outer einsum has no contraction:
  the outer-product form (one contracting axis) gave an [8, 8] matrix and
  an IndexError."""
  a = jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)
  dot = lambda a, b: jax.lax.dot_general(a, b, (contract, ((), ())))
  got = jax.jit(_xla_cpu.fast_path(dot))(a, b)
  _close(got, dot(a, b), rtol=1e-5, atol=1e-5)


def test_fit_on_cpu_matches_plain_train_steps(rng):
  """The epoch scan (both rewrites) equals train_step applied batch by batch
  without them, for ToyNet, whose first layer is rewritten."""
  images = rng.normal(size=(8, 32, 32, 3)).astype(np.float32)
  labels = rng.integers(0, 10, 8).astype(np.int32)
  state = train.create_train_state(jax.random.key(0), ToyNet(),
                                   optim.sgd(0.01, momentum=0.9),
                                   jnp.zeros((1, 32, 32, 3)))
  fast = jax.jit(train._for_cpu(train.train_step))  # pylint: disable=protected-access
  plain = jax.jit(train.train_step)
  fast_state, plain_state = state, state
  for batch in range(2):
    x, y = images[4 * batch:4 * batch + 4], labels[4 * batch:4 * batch + 4]
    fast_state, fast_metrics = fast(fast_state, x, y)
    plain_state, plain_metrics = plain(plain_state, x, y)
    _close(fast_metrics, plain_metrics, rtol=1e-5, atol=1e-5)
  assert fast_state.apply_fn is state.apply_fn
  _close(fast_state.params, plain_state.params, rtol=1e-4, atol=1e-6)


def _ynnpack_convolutions(hlo: str) -> int:
  """Convolutions inside the YNNPACK fusions of compiled HLO text."""
  called = re.findall(r'calls=(%[\w.\-]+)[^\n]*"__ynn_fusion"', hlo)
  bodies = dict(re.findall(r"\n(%[\w.\-]+) [^\n]*\{\n(.*?)\n\}", hlo, re.S))
  return sum(bodies.get(name, "").count(" convolution(") for name in called)


def test_compile_without_ynnpack_convolutions_keeps_values(rng):
  """The compiler option changes kernels, not results."""
  x = jnp.asarray(rng.normal(size=(4, 16, 16, 12)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 12, 24)), jnp.float32)

  def loss(x, k):
    def body(carry, _):  # In a loop body, as in fit's epoch scan.
      y = jax.lax.conv_general_dilated(
          x + carry, k, (1, 1), "VALID",
          dimension_numbers=("NHWC", "HWIO", "NHWC"))
      return 1e-3 * jnp.sum(jnp.tanh(y)), None
    return jax.lax.scan(body, 0.0, None, length=2)[0]

  # With this XLA (jaxlib 0.10.2), the default compile of this program puts
  # its convolution in a YNNPACK fusion.
  grad = jax.jit(jax.value_and_grad(loss, argnums=1))
  lowered = grad.lower(x, k)
  compiled = _xla_cpu.compile(lowered)
  _close(compiled(x, k), lowered.compile()(x, k), rtol=1e-5, atol=1e-4)
  try:
    lowered.compile(compiler_options=_xla_cpu._COMPILER_OPTIONS)  # pylint: disable=protected-access
  except RuntimeError:
    pytest.skip("this XLA has no YNNPACK fusion option")
  assert " convolution(" in compiled.as_text()
  assert _ynnpack_convolutions(compiled.as_text()) == 0


def test_compile_drops_only_an_unknown_option(monkeypatch):
  """An XLA without the option compiles with its defaults; any other
  compile error (out of memory, a bug) propagates, not retried."""
  class Lowered:
    def __init__(self, message):
      self.message, self.calls = message, []

    def compile(self, **kwargs):
      self.calls.append(kwargs)
      if kwargs:
        raise jax.errors.JaxRuntimeError(self.message)
      return "compiled"

  unknown = Lowered("INVALID_ARGUMENT: No such compile option: 'xla_x'")
  assert _xla_cpu.compile(unknown) == "compiled" and len(unknown.calls) == 2
  other = Lowered("RESOURCE_EXHAUSTED: out of memory")
  with pytest.raises(jax.errors.JaxRuntimeError, match="out of memory"):
    _xla_cpu.compile(other)
  assert len(other.calls) == 1


def test_jit_with_options_falls_back_where_jax_refuses_them():
  """Options apply to calls from Python and under an eager vmap; a caller's
  jit or grad runs the function without them; an unknown option is dropped;
  other errors propagate."""
  square = _xla_cpu.jit_with_options(lambda x: x * x,
                                     {"xla_cpu_prefer_vector_width": "512"})
  x = jnp.arange(4.0)
  np.testing.assert_array_equal(square(x), x * x)
  np.testing.assert_array_equal(jax.vmap(square)(x[:, None]), (x * x)[:, None])
  assert square.tuned._cache_size() == 1 and square.plain._cache_size() == 0  # pylint: disable=protected-access
  with pytest.raises(jax.errors.JaxRuntimeError, match="compile option"):
    jax.vmap(jax.jit(lambda x: x, compiler_options={  # Options under vmap.
        "xla_cpu_no_such_option": "1"}))(x)
  np.testing.assert_array_equal(jax.jit(square)(x), x * x)
  np.testing.assert_array_equal(jax.grad(lambda v: square(v).sum())(x), 2 * x)
  unknown = _xla_cpu.jit_with_options(lambda x: x + 1,
                                      {"xla_cpu_no_such_option": "1"})
  for _ in range(2):
    np.testing.assert_array_equal(unknown(x), x + 1)
  assert unknown.plain._cache_size() == 1  # pylint: disable=protected-access

  def bad(x):
    raise ValueError("bad input")

  with pytest.raises(ValueError, match="bad input"):
    _xla_cpu.jit_with_options(bad, {"xla_cpu_prefer_vector_width": "512"})(x)


def test_jit_with_options_on_a_jax_without_them(monkeypatch):
  """A jax.jit that takes no compiler_options (older JAX) gives a plain
  jit."""
  real_jit = jax.jit

  def old_jit(fun, **kwargs):
    if "compiler_options" in kwargs:
      raise TypeError("jit() got an unexpected keyword 'compiler_options'")
    return real_jit(fun, **kwargs)

  monkeypatch.setattr(jax, "jit", old_jit)
  double = _xla_cpu.jit_with_options(lambda x: 2 * x,
                                     {"xla_cpu_prefer_vector_width": "512"})
  assert double.tuned is None
  np.testing.assert_array_equal(double(jnp.ones(2)), 2 * jnp.ones(2))


def test_max_pooling_of_bool_and_int_falls_back():
  """The tiled reduce starts from -inf: True for bool, an error for ints."""
  pool = lambda x: jax.lax.reduce_window(x, False if x.dtype == bool else
                                         jnp.iinfo(x.dtype).min, jax.lax.max,
                                         (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  for x in (jnp.zeros((1, 4, 4, 1), bool),
            jnp.arange(16, dtype=jnp.int32).reshape(1, 4, 4, 1)):
    np.testing.assert_array_equal(_xla_cpu.fast_path(pool)(x), pool(x))


def test_outer_product_dot_of_half_precision_and_empty_contraction():
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.normal(size=(16, 64)), jnp.bfloat16)
  b = jnp.asarray(rng.normal(size=(16, 32)), jnp.bfloat16)
  dot = lambda a, b: a.T @ b
  # Summed in float32 and rounded once, as the dot (summed in bfloat16,
  # the error was 4x the dot's).
  np.testing.assert_allclose(
      np.asarray(jax.jit(_xla_cpu.fast_path(dot))(a, b), np.float32),
      np.asarray(jax.jit(dot)(a, b), np.float32), rtol=1e-2, atol=1e-2)
  empty = _xla_cpu.fast_path(lambda a, b: a @ b)(jnp.ones((3, 0)),
                                                 jnp.ones((0, 4)))
  np.testing.assert_array_equal(empty, np.zeros((3, 4)))
