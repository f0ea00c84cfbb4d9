"""XLA:CPU fast paths for the training loop: same values, faster forms.

XLA:CPU runs some layers much slower inside a while loop (the body of
``lax.scan``) than in a top-level computation, and runs convolutions with
few channels far below its speed on wider ones. A function is traced
to a jaxpr and re-evaluated with some primitives rewritten into equivalent
forms that XLA:CPU runs fast; values change only by float rounding.

Two rewrite sets, applied in turn by :mod:`jaxdl.train` on CPU, and one
compiler option (:func:`compile`):

* :func:`fast_forward` wraps the model's forward pass, **before**
  differentiation, so that autodiff differentiates the rewritten form: a
  stride-1 convolution with few channels (an RGB first layer) becomes a
  space-to-depth convolution with 4x the channels, and the bias, relu and
  2x2 max pooling after it work on its 2x2 blocks, without the
  depth-to-space transposes in between (forward and gradient).
* :func:`fast_path` wraps the whole differentiated step: every convolution
  (including the gradient convolutions autodiff made) in the canonical
  NHWC/HWIO layout, non-overlapping max pooling and its gradient as
  reductions over tiles, and a small batch's dense weight gradients as
  outer products that XLA fuses into the optimizer's update.
* :func:`compile` compiles with XLA:CPU's own convolution kernels instead of
  YNNPACK's, which ran the rewritten convolutions several times slower.

The forms are equal for finite values. With inf or NaN activations (whose
loss is NaN anyway) they differ: a space-to-depth convolution multiplies
the zero taps of its block kernel with the inputs next to a window, so an
inf or NaN there turns neighbouring outputs into NaN, and the pooling
gradient goes to a window's first NaN, where ``select_and_scatter_add``
(whose ``ge`` is false against NaN) takes the first maximum after its last
NaN, or that NaN when it ends the window. :func:`fast_path` rewrites a
differentiated function and is not itself differentiable where it tiles
max pooling.

Outside training, :func:`jit_with_options` jits a function with compiler
options wherever JAX takes them (NMS compiles with 512-bit vectors).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.extend.core as jex_core
import jax.numpy as jnp
import numpy as np

from jaxdl._checks import half_to_float32

# NHWC input, HWIO kernel, NHWC output: the layout XLA:CPU runs with Eigen.
_CANONICAL_CONV = jax.lax.ConvDimensionNumbers(
    lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))


def _canonical_conv(primitive: Any, lhs: jax.Array, rhs: jax.Array, *,
                    dimension_numbers: jax.lax.ConvDimensionNumbers,
                    **params: Any) -> jax.Array:
  """A 2-D convolution as transposes around an NHWC/HWIO one.

  XLA:CPU canonicalises convolution layouts only in the entry computation,
  so in a loop body the kernel gradient of a convolution runs as a naive
  loop, 5-10x slower than with Eigen (jax-ml/jax#12868).
  """
  dn = dimension_numbers
  if len(dn.lhs_spec) != 4 or dn == _CANONICAL_CONV:
    return primitive.bind(lhs, rhs, dimension_numbers=dn, **params)
  l, r, o = dn.lhs_spec, dn.rhs_spec, dn.out_spec
  lhs = jax.lax.transpose(lhs, (l[0], l[2], l[3], l[1]))
  rhs = jax.lax.transpose(rhs, (r[2], r[3], r[1], r[0]))
  out = primitive.bind(lhs, rhs, dimension_numbers=_CANONICAL_CONV, **params)
  return jax.lax.transpose(out, tuple(np.argsort((o[0], o[2], o[3], o[1]))))


def _tiles(x: jax.Array, window: tuple[int, ...]) -> jax.Array | None:
  """``x`` as ``[*x.shape // window, prod(window)]`` tiles (row-major within
  a tile), or None unless the window tiles ``x`` exactly."""
  if any(n % w for n, w in zip(x.shape, window)):
    return None
  split = [d for n, w in zip(x.shape, window) for d in (n // w, w)]
  rank = x.ndim
  order = [2 * i for i in range(rank)] + [2 * i + 1 for i in range(rank)]
  tiled = jax.lax.transpose(x.reshape(split), order)
  # The tile size spelled out: reshape's -1 cannot be inferred when x is
  # empty (a batch of 0).
  return tiled.reshape(*tiled.shape[:rank], math.prod(window))


def _untile(tiles: jax.Array, window: tuple[int, ...]) -> jax.Array:
  """Inverse of :func:`_tiles`."""
  rank = len(window)
  x = tiles.reshape(*tiles.shape[:rank], *window)
  order = [i for d in range(rank) for i in (d, rank + d)]
  x = jax.lax.transpose(x, order)
  return x.reshape([n * w for n, w in zip(tiles.shape[:rank], window)])


def _is_tiling(params: dict[str, Any]) -> bool:
  """A pooling window equal to its stride, without padding or dilation."""
  return (params["window_dimensions"] == params["window_strides"]
          and all(p == (0, 0) for p in params["padding"])
          and all(d == 1 for d in params.get("base_dilation", ()))
          and all(d == 1 for d in params.get("window_dilation", ())))


def _first_max(tiles: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Max over the last axis and the index of its first occurrence, as one
  variadic reduce; a NaN counts as the max (``jnp.argmax``'s convention),
  so the max is NaN when any element is, as for ``reduce_window`` max.

  Max pooling and its gradient both call this on the same tiles, so XLA's
  CSE keeps a single reduce for the two: on ToyNet's epoch (A/B in one
  process, median of 8) 15-18% less time per step at batch size 4 and ~10%
  at 128 than a separate ``jnp.max`` (which XLA:CPU gave to YNNPACK).
  """

  def pick(a, b):
    (a_value, a_index), (b_value, b_index) = a, b
    a_first = a_index < b_index
    take_a = ((a_value > b_value) | ((a_value == b_value) & a_first)
              | (jnp.isnan(a_value) & (~jnp.isnan(b_value) | a_first)))
    return (jnp.where(take_a, a_value, b_value),
            jnp.where(take_a, a_index, b_index))

  last = tiles.ndim - 1
  index = jax.lax.broadcasted_iota(jnp.int32, tiles.shape, last)
  lowest = np.array(-np.inf, tiles.dtype)  # NaN in float8 without inf.
  if not np.isinf(lowest):
    lowest = np.array(jnp.finfo(tiles.dtype).min, tiles.dtype)
  init = (jnp.array(lowest), jnp.int32(tiles.shape[-1]))
  return jax.lax.reduce((tiles, index), init, pick, (last,))


def _window_max(primitive: Any, x: jax.Array, **params: Any) -> jax.Array:
  """``reduce_window`` max pooling of non-overlapping float windows as a
  reduce (:func:`_first_max` starts from -inf, or the lowest finite value
  of a float8 type without infinities)."""
  tiles = (_tiles(x, params["window_dimensions"])
           if _is_tiling(params) and jnp.issubdtype(x.dtype, jnp.floating)
           else None)
  if tiles is None:
    return primitive.bind(x, **params)
  return _first_max(tiles)[0]


def _window_max_scatter(primitive: Any, source: jax.Array, operand: jax.Array,
                        **params: Any) -> jax.Array:
  """Max-pooling gradient (``select_and_scatter_add`` with ``ge``): each
  window's ``source`` value goes to its first maximal element."""
  tiles = (_tiles(operand, params["window_dimensions"])
           if _is_tiling(params) and params["select_prim"] is jax.lax.ge_p
           and jnp.issubdtype(operand.dtype, jnp.floating) else None)
  if tiles is None:
    return primitive.bind(source, operand, **params)
  # A select, not a one-hot product: 0 * inf or 0 * NaN from ``source``
  # would land on the window's other elements.
  first_max = _first_max(tiles)[1][..., None] == jnp.arange(tiles.shape[-1])
  return _untile(jnp.where(first_max, source[..., None], 0).astype(
      source.dtype), params["window_dimensions"])


# Space-to-depth applies to convolutions with at most this many input and
# output channels. Measured on ToyNet's epoch inside lax.scan (2 CPU cores,
# one device, compiled by :func:`compile`, best of 5): batch 128 13.5 ms per
# step without it, 10.9 ms with conv1 (3 -> 6 channels) rewritten, 4.7 ms
# with conv2 (6 -> 16) too; batch 4 0.47, 0.45 and 0.25 ms. Wider layers
# were not measured.
_SPACE_TO_DEPTH_MAX_CHANNELS = 16


def _space_to_depth(x: jax.Array) -> jax.Array:
  """``[B, 2H, 2W, C] -> [B, H, W, 4C]``, channels ordered (row, col, c).

  Not :func:`_tiles`, whose (c, row, col) order made ToyNet's epoch 5-7%
  slower (A/B, batch 4 and 128).
  """
  b, h, w, c = x.shape
  x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


def _depth_to_space(x: jax.Array) -> jax.Array:
  """Inverse of :func:`_space_to_depth`."""
  b, h, w, c4 = x.shape
  x = x.reshape(b, h, w, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c4 // 4)


def _phase_shifts(x: jax.Array, axis: int) -> jax.Array:
  """``x`` with ``axis`` (size ``k``) replaced by ``[2, k // 2 + 1, 2]``
  (output phase r, tap a, input phase p) holding ``x[2a + p - r]``, zero
  outside ``[0, k)``; the new axes lead as ``r`` and sit at ``axis`` as
  ``a, p``.

  Two zero pads stacked, not a gather: in the epoch loop XLA:CPU fuses pads
  into one cheap copy and their gradient into slices, where the gather and
  its scatter-add gradient cost ToyNet's batch-4 step 5% (A/B, median of
  10 epochs: 0.223 -> 0.211 ms). Alone in a ``fori_loop``, conv2's kernel
  transform takes 2.5 us a step this way and 1.6 us as a gather of 16-float
  rows: under 1% of the step even before its gradient.
  """
  size = x.shape[axis]
  taps = size // 2 + 1
  zero = jnp.zeros((), x.dtype)
  shifted = []
  for r in (0, 1):
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (r, 2 * taps - size - r, 0)
    shifted.append(jax.lax.pad(x, zero, config))
  return jnp.stack(shifted).reshape(
      2, *x.shape[:axis], taps, 2, *x.shape[axis + 1:])


def _space_to_depth_kernel(kernel: jax.Array) -> jax.Array:
  """HWIO ``[kh, kw, C, O]`` -> ``[kh // 2 + 1, kw // 2 + 1, 4C, 4O]``.

  Output pixel ``(2Y + r, 2X + s)`` reads input pixel ``(2(Y + a) + p,
  2(X + b) + q)`` through ``kernel[2a + p - r, 2b + q - s]`` (zero outside
  the kernel), which is a stride-1 convolution between the space-to-depth
  input (channels ``p, q, c``) and output (channels ``r, s, o``).
  """
  kh, kw, c, o = kernel.shape
  taps = _phase_shifts(kernel, 0)  # [r, a, p, kw, C, O]
  taps = _phase_shifts(taps, 3)  # [s, r, a, p, b, q, C, O]
  taps = taps.transpose(2, 4, 3, 5, 6, 1, 0, 7)  # [a, b, p, q, C, r, s, O]
  return taps.reshape(kh // 2 + 1, kw // 2 + 1, 4 * c, 4 * o)


# Batch sizes up to which a space-to-depth kernel is gathered
# (:func:`_gathered_space_to_depth_kernel`). The pads and transpose above end
# in a rank-8 copy, 22 us of ToyNet's batch-4 step (traced, 2-vCPU Xeon). A/B
# on ToyNet's epoch there (min ms per step, 6 epochs, 2-3 runs), pads ->
# gather: batch 4 0.360-0.365 -> 0.338-0.340, 16 1.15-1.19 -> 1.12-1.13,
# but 32 2.05-2.07 -> 2.11-2.12 and 128 6.78 -> 7.14.
_GATHERED_KERNEL_MAX_BATCH = 16


@functools.cache
def _space_to_depth_rows(kh: int, kw: int,
                         c: int) -> tuple[np.ndarray, np.ndarray]:
  """Where the rows (``O`` floats each) of :func:`_space_to_depth_kernel`'s
  output come from: for each row ``[a, b, p, q, c, r, s]``, its row in
  ``kernel.reshape(kh * kw * c, O)``, or ``kh * kw * c`` (a zero row);
  and for each kernel row, the 4 output rows (one per phase ``r, s``) that
  hold it."""
  a, b, p, q, ch, r, s = np.indices(
      (kh // 2 + 1, kw // 2 + 1, 2, 2, c, 2, 2))
  i, j = 2 * a + p - r, 2 * b + q - s
  inside = (0 <= i) & (i < kh) & (0 <= j) & (j < kw)
  source = np.where(inside, (i * kw + j) * c + ch, kh * kw * c).ravel()
  holders = np.argsort(source, kind="stable")[:4 * kh * kw * c]
  return source.astype(np.int32), holders.reshape(-1, 4).astype(np.int32)


def _gathered_space_to_depth_kernel(kernel: jax.Array) -> jax.Array:
  """:func:`_space_to_depth_kernel` as a gather of the kernel's rows, whose
  gradient gathers each row's 4 copies and sums them (autodiff would make
  a scatter-add, which XLA:CPU runs slowly). A custom VJP: reverse-mode
  only, as the training step needs (forward mode raises)."""
  kh, kw, c, o = kernel.shape
  source, holders = _space_to_depth_rows(kh, kw, c)
  shape = (kh // 2 + 1, kw // 2 + 1, 4 * c, 4 * o)

  @jax.custom_vjp
  def gather(kernel):
    rows = kernel.reshape(-1, o)
    return jnp.concatenate([rows, jnp.zeros((1, o), rows.dtype)])[
        source].reshape(shape)

  def gather_vjp(_, cotangent):
    rows = cotangent.reshape(-1, o)[holders]  # [kh * kw * c, 4, O]
    return (jnp.sum(rows, axis=1).reshape(kernel.shape),)

  gather.defvjp(lambda kernel: (gather(kernel), None), gather_vjp)
  return gather(kernel)


def _space_to_depth_conv(primitive: Any, lhs: jax.Array, rhs: jax.Array,
                         **params: Any) -> jax.Array:
  """A stride-1 NHWC/HWIO convolution with few channels, computed on
  2x2 space-to-depth blocks.

  With 3 input and 6 output channels, XLA:CPU's convolution (and its kernel
  gradient) runs a contraction with 6 columns; on 2x2 blocks it has 24, at
  the cost of ``(2 * (k // 2 + 1) / k) ** 2`` times the multiply-adds (1.44
  for 5x5). Other convolutions are bound unchanged.
  """
  applies = (params["dimension_numbers"] == _CANONICAL_CONV
             and all(s == 1 for s in params["window_strides"])
             and all(d == 1 for d in params["lhs_dilation"])
             and all(d == 1 for d in params["rhs_dilation"])
             and params["feature_group_count"] == 1
             and params["batch_group_count"] == 1
             and max(rhs.shape[2:]) <= _SPACE_TO_DEPTH_MAX_CHANNELS
             and min(rhs.shape[:2]) >= 2)
  if not applies:
    return primitive.bind(lhs, rhs, **params)
  kh, kw = rhs.shape[:2]
  (top, bottom), (left, right) = params["padding"]
  out_h = lhs.shape[1] + top + bottom - kh + 1
  out_w = lhs.shape[2] + left + right - kw + 1
  # Even output size, and the input rows/columns the 2x2 taps read.
  need_h = 2 * math.ceil(out_h / 2) + 2 * (kh // 2)
  need_w = 2 * math.ceil(out_w / 2) + 2 * (kw // 2)
  x = jax.lax.pad(lhs, jnp.zeros((), lhs.dtype), (
      (0, 0, 0), (top, need_h - lhs.shape[1] - top, 0),
      (left, need_w - lhs.shape[2] - left, 0), (0, 0, 0)))
  kernel = (_gathered_space_to_depth_kernel(rhs)
            if lhs.shape[0] <= _GATHERED_KERNEL_MAX_BATCH
            else _space_to_depth_kernel(rhs))
  out = primitive.bind(_space_to_depth(x), kernel,
                       **{**params, "padding": ((0, 0), (0, 0))})
  if out_h % 2 == 0 and out_w % 2 == 0:
    return _Blocks(out)
  return _depth_to_space(out)[:, :out_h, :out_w]


# Not landed: the input gradient of such a convolution (ToyNet's conv2: a
# full convolution over the output gradient padded by 2 blocks, so half of its
# multiply-adds hit the padding) as one dot with the kernel plus an
# overlap-add, through a custom VJP. The dot took 15 us a step against the
# convolution's 32 (traced), but the overlap-add did not pay: as nine pads XLA
# fused it into the pooling gradient (82 us traced), and as a scatter-add it
# took 13 us. ToyNet batch 4 (A/B with an A/A control, min ms per step):
# 0.169 / 0.168 -> 0.231 (pads) and 0.166 / 0.168 -> 0.190 (scatter-add).


class _Blocks(NamedTuple):
  """A ``[B, 2H, 2W, C]`` value held as its ``[B, H, W, 4C]`` 2x2
  space-to-depth blocks, the output layout of a space-to-depth convolution.

  Elementwise layers and 2x2 max pooling after such a convolution work on
  the blocks (:data:`_BLOCK_REWRITES`); any other consumer gets
  :meth:`dense`.
  """
  blocks: jax.Array

  def dense(self) -> jax.Array:
    return _depth_to_space(self.blocks)


def _dense(x: Any) -> Any:
  return x.dense() if isinstance(x, _Blocks) else x


def _per_block(x: Any, channels: int) -> Any:
  """An operand of an elementwise op with a :class:`_Blocks` value, in
  block layout: a scalar as is, a ``[1, 1, 1, C]`` (bias) tiled over the
  4 block phases, a :class:`_Blocks` as its blocks; else None."""
  if isinstance(x, _Blocks):
    return x.blocks
  if np.ndim(x) == 0:
    return x
  if np.shape(x) == (1, 1, 1, channels):
    return jnp.tile(x, (1, 1, 1, 4))
  return None


def _blocks_elementwise(primitive: Any, *inputs: Any,
                        **params: Any) -> _Blocks | None:
  """A bias add, activation or other binary elementwise op on blocks.

  Blocks with different channel counts (one broadcast over the other's
  channels) get the dense layout: their blocks do not broadcast.
  """
  channels = {x.blocks.shape[-1] // 4 for x in inputs
              if isinstance(x, _Blocks)}
  if len(channels) != 1:
    return None
  (channels,) = channels
  operands = [_per_block(x, channels) for x in inputs]
  if any(x is None for x in operands):
    return None
  return _Blocks(primitive.bind(*operands, **params))


def _traced_source(params: dict[str, Any]) -> str | None:
  """Where the function of a ``custom_jvp_call`` was defined."""
  jaxpr = getattr(params.get("call_jaxpr"), "jaxpr", None)
  return getattr(getattr(jaxpr, "debug_info", None), "func_src_info", None)


@functools.cache
def _relu_source() -> str | None:
  (eqn,) = jax.make_jaxpr(jax.nn.relu)(1.0).eqns
  return _traced_source(eqn.params)


def _blocks_relu(primitive: Any, *inputs: Any,
                 **params: Any) -> _Blocks | None:
  """``jax.nn.relu`` on blocks. A ``custom_jvp`` call is traced for the
  dense shape, so relu (told by where it was defined) is applied anew, which
  keeps its derivative (0 at 0); other ``custom_jvp`` calls (any number of
  inputs, as ``jnp.logaddexp``'s two) get dense inputs."""
  del primitive
  source = _traced_source(params)
  if (len(inputs) != 1 or not isinstance(inputs[0], _Blocks)
      or source is None or source != _relu_source()):
    return None
  return _Blocks(jax.nn.relu(inputs[0].blocks))


def _blocks_max_pool(primitive: Any, x: Any, **params: Any) -> jax.Array | None:
  """2x2 max pooling with stride 2 of blocks: a max over each block's 4
  phases, which are in window order (row, column), as a ``reduce_window``
  max of ``[B, H, W, 4, C]`` with window ``(1, 1, 1, 4, 1)``, so that its
  gradient goes to the first maximum as before and :func:`fast_path` tiles
  it."""
  if (not isinstance(x, _Blocks) or not _is_tiling(params)
      or params["window_dimensions"] != (1, 2, 2, 1)):
    return None
  b, h, w, c4 = x.blocks.shape
  phases = x.blocks.reshape(b, h, w, 4, c4 // 4)
  window = (1, 1, 1, 4, 1)
  pooled = primitive.bind(
      phases, window_dimensions=window, window_strides=window,
      padding=((0, 0),) * 5, base_dilation=(1,) * 5, window_dilation=(1,) * 5)
  return pooled.reshape(b, h, w, c4 // 4)


# Dots that contract at most this many elements (a small batch's weight
# gradient, x^T dy) are written as sums of outer products. On ToyNet's epoch
# (2 CPU cores, A/B in one process, min ms per step over 8-10 rounds):
# batch 4 0.199-0.240 -> 0.164-0.170, batch 16 0.54-0.58 -> 0.49-0.54; at
# batch 32 the outer products ran 3% slower, so 16 it is. Not with a batch
# sharded over devices: each product then needs one device's row on all of
# them (batch 4 on 2 CPU devices: 0.93-1.04 -> 2.6-3.1 ms).
_OUTER_PRODUCTS_MAX = 16


def _outer_product_dot(primitive: Any, lhs: jax.Array, rhs: jax.Array, *,
                       dimension_numbers: Any, **params: Any) -> jax.Array:
  """A 2-D dot over a short contraction as elementwise products, which XLA
  fuses into their consumer (the optimizer's update of the weight) instead
  of writing the gradient out from a matmul call."""
  (lhs_contract, rhs_contract), batch = dimension_numbers
  if (any(batch) or lhs.ndim != 2 or rhs.ndim != 2
      or len(lhs_contract) != 1 or len(rhs_contract) != 1
      or not 1 <= lhs.shape[lhs_contract[0]] <= _OUTER_PRODUCTS_MAX):
    return primitive.bind(lhs, rhs, dimension_numbers=dimension_numbers,
                          **params)
  dtype = params.get("preferred_element_type") or jnp.result_type(lhs, rhs)
  # Sums of half-precision products in float32, rounded once, as the dot.
  accumulate = half_to_float32(dtype)
  a = jnp.moveaxis(lhs, lhs_contract[0], 0).astype(accumulate)  # [K, M]
  b = jnp.moveaxis(rhs, rhs_contract[0], 0).astype(accumulate)  # [K, N]
  out = a[0][:, None] * b[0][None, :]
  for k in range(1, a.shape[0]):
    out = out + a[k][:, None] * b[k][None, :]
  return out.astype(dtype)


Rewrites = Mapping[str, Callable[..., jax.Array]]

# Each rewrite is called as ``rewrite(primitive, *inputs, **params)`` with the
# equation's own primitive (select_and_scatter_add is not public), which it
# binds unchanged when its special form does not apply.
_STEP_REWRITES: Rewrites = {
    "conv_general_dilated": _canonical_conv,
    "dot_general": _outer_product_dot,
    "reduce_window_max": _window_max,
    "select_and_scatter_add": _window_max_scatter,
}
_FORWARD_REWRITES: Rewrites = {
    "conv_general_dilated": _space_to_depth_conv,
}
# Called for equations with a _Blocks input; None: bind with dense inputs.
# On ToyNet's epoch (2 CPU cores, A/B in one process, min ms per step over
# 8-10 rounds) against depth-to-space after every such convolution: batch 4
# 0.204-0.214 -> 0.196-0.202, batch 128 3.98 -> 3.61.
_BLOCK_REWRITES: Rewrites = {
    **{name: _blocks_elementwise
       for name in ("add", "sub", "mul", "max", "min")},
    "custom_jvp_call": _blocks_relu,
    "reduce_window_max": _blocks_max_pool,
}


def _evaluate(jaxpr: jex_core.Jaxpr, consts: list[Any], args: list[Any],
              rewrites: Rewrites) -> list[Any]:
  """Evaluates a jaxpr with ``rewrites`` applied (nested jits inlined).

  Values, outputs included, may be :class:`_Blocks`; an equation that
  :data:`_BLOCK_REWRITES` does not handle gets them dense.
  """
  env: dict[Any, Any] = {}

  def read(var):
    return var.val if isinstance(var, jex_core.Literal) else env[var]

  env.update(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  for eqn in jaxpr.eqns:
    inputs = [read(v) for v in eqn.invars]
    outputs = _evaluate_equation(eqn, inputs, rewrites)
    env.update((v, x) for v, x in zip(eqn.outvars, outputs)
               if not isinstance(v, jex_core.DropVar))
  return [read(v) for v in jaxpr.outvars]


def _evaluate_equation(eqn: jex_core.JaxprEqn, inputs: list[Any],
                       rewrites: Rewrites) -> list[Any]:
  """The outputs of one equation of :func:`_evaluate`."""
  name = eqn.primitive.name
  if name in ("jit", "pjit"):
    inner = eqn.params["jaxpr"]
    return _evaluate(inner.jaxpr, inner.consts, inputs, rewrites)
  if any(isinstance(x, _Blocks) for x in inputs):
    rewrite = _BLOCK_REWRITES.get(name)
    out = rewrite and rewrite(eqn.primitive, *inputs, **eqn.params)
    if out is not None:
      return [out]
    inputs = [_dense(x) for x in inputs]
  if name in rewrites:
    return [rewrites[name](eqn.primitive, *inputs, **eqn.params)]
  outputs = eqn.primitive.bind(
      *inputs, **eqn.primitive.get_bind_params(eqn.params))
  return outputs if eqn.primitive.multiple_results else [outputs]


def _rewritten(fn: Callable[..., Any],
               rewrites: Rewrites) -> Callable[..., Any]:
  """``fn`` traced and re-evaluated with ``rewrites``. Array leaves of the
  arguments are traced; every other leaf (flags, names) stays static."""

  def wrapped(*args, **kwargs):
    leaves, tree = jax.tree.flatten((args, kwargs))
    traced = [isinstance(x, (jax.Array, np.ndarray)) for x in leaves]
    arrays = [x for x, t in zip(leaves, traced) if t]

    def flat_fn(*arrays):
      given = iter(arrays)
      a, k = jax.tree.unflatten(
          tree, [next(given) if t else x for x, t in zip(leaves, traced)])
      return fn(*a, **k)

    closed, out_shapes = jax.make_jaxpr(flat_fn, return_shape=True)(*arrays)
    outputs = [_dense(x) for x in
               _evaluate(closed.jaxpr, closed.consts, arrays, rewrites)]
    return jax.tree.unflatten(jax.tree.structure(out_shapes), outputs)

  return wrapped


def fast_forward(apply_fn: Callable[..., Any]) -> Callable[..., Any]:
  """A model's ``apply_fn`` with few-channel convolutions on space-to-depth
  blocks; differentiate the result, not the other way round. Reverse mode
  only for batches up to :data:`_GATHERED_KERNEL_MAX_BATCH` (their kernel
  gather has a custom VJP): ``jax.jvp`` raises there."""
  return _rewritten(apply_fn, _FORWARD_REWRITES)


# Not rewritten: XLA copies the dense layers' weights once per step, as
# copy insertion cannot order the in-place optimizer update after the
# backward dot that also reads the weight. Making the update read the weight
# through a later gradient (w + 0 * g) removes the copies but holds every
# update until the backward pass ends: ToyNet batch 4 0.163 -> 0.169 ms
# (A/B, min of 10 rounds); an optimization_barrier left the copies in place.
# Making each dense weight's gradient depend on that layer's own input
# gradient, evaluated first, removed two of the three copies without holding
# the other updates: 0.1784 against 0.1748 and 0.1727 (A/A). Later, on a
# 2-vCPU Xeon: each outer-product weight gradient made to read its operands
# through an integer zero from its layer's ``dy W^T`` removed every weight
# and bias copy from the compiled step, yet ran no faster (batch 4, 30
# alternating epochs in one process, min ms per step: 0.3437 and 0.3312
# against 0.3459 and 0.3304 without).


def fast_path(fn: Callable[..., Any], *,
              outer_products: bool = True) -> Callable[..., Any]:
  """``fn`` with convolutions and max pooling (forward and gradient) in the
  forms XLA:CPU runs fast inside ``lax.scan``, and (``outer_products``, for
  one device) short dense contractions as outer products; same values.

  Measured on ToyNet inside the epoch scan (2 CPU cores): the canonical
  convolution layout makes a batch-128 step ~8x faster, tiled pooling a
  further ~25%.
  """
  rewrites = dict(_STEP_REWRITES)
  if not outer_products:
    del rewrites["dot_general"]
  return _rewritten(fn, rewrites)


# XLA:CPU hands convolutions with more than 16 channels on a side (every
# space-to-depth convolution and kernel gradient), dots and reductions to
# YNNPACK ("ynn fusions") by default. Its convolutions were the slow part;
# the option below keeps the other two default types. Measured on epochs of
# the main job's models (2 CPU cores, best of 4, ms per step), default / no
# YNNPACK fusion at all / no YNNPACK convolution: ToyNet batch 128 11.3 /
# 5.6 / 6.1, batch 4 0.40 / 0.32 / 0.32; ResNeXt batch 16 86 / 92 / 67;
# ViT batch 16 17.9 / 20.4 / 16.5. No other option made ToyNet's batch-4
# step faster (A/B, min ms per step, default -> option): 512-bit vectors
# (xla_cpu_prefer_vector_width=512) 0.213 -> 0.210, region-analysis copy
# insertion 0.219 -> 0.237, Eigen single-threaded 0.216 -> 0.212, XNNPACK
# or oneDNN 0.206 -> 0.205-0.207; the older fusion emitters, MLIR tiling
# and flattening after fusion were 1.2-1.4x slower. Repeated later with an
# A/A control: Eigen single-threaded 0.1654 -> 0.1653, the concurrency-
# optimized scheduler on or off 0.165-0.166 against 0.164-0.165; sibling
# multi-output fusion (settable only through XLA_FLAGS, as
# xla_backend_extra_options=xla_cpu_use_multi_output_fusion=true) 0.16 ->
# 0.19.
_COMPILER_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type":
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}


def compile(lowered: jax.stages.Lowered) -> jax.stages.Compiled:  # pylint: disable=redefined-builtin
  """``lowered.compile()`` with :data:`_COMPILER_OPTIONS`, for CPU only.

  An XLA that does not know the option (it is experimental) compiles with
  its defaults.
  """
  try:
    return lowered.compile(compiler_options=_COMPILER_OPTIONS)
  except RuntimeError as error:  # jax.errors.JaxRuntimeError.
    if not _unknown_option(error):
      raise
    return lowered.compile()


def _unknown_option(error: Exception) -> bool:
  """Whether XLA refused a compile option ("No such compile option")."""
  return "compile option" in str(error)


def jit_with_options(fun: Callable[..., Any],
                     compiler_options: Mapping[str, str],
                     **jit_kwargs: Any) -> Callable[..., Any]:
  """``jax.jit(fun, **jit_kwargs)``, compiled with ``compiler_options`` where
  JAX allows it.

  JAX takes compiler options on a top-level jit only, and raises a
  ``ValueError`` when such a jit is staged into another computation (a
  caller's ``jax.jit``, ``jax.grad``). Those calls run ``jax.jit(fun)``
  instead, inlined into the caller's computation, whose options apply.
  Calls from Python and under an eager ``jax.vmap`` keep the options. An XLA
  that does not know an option (the options are experimental) makes every
  later call run without them.

  >>> double = jit_with_options(lambda x: 2 * x,
  ...                           {"xla_cpu_prefer_vector_width": "512"})
  >>> double(jnp.ones(2)), jax.jit(double)(jnp.ones(2))
  (Array([2., 2.], dtype=float32), Array([2., 2.], dtype=float32))
  """
  plain = jax.jit(fun, **jit_kwargs)
  try:
    tuned = jax.jit(fun, compiler_options=dict(compiler_options),
                    **jit_kwargs)
  except TypeError:  # A JAX whose jit takes no compiler options.
    tuned = None
  unknown_option = tuned is None

  @functools.wraps(fun)
  def call(*args: Any, **kwargs: Any) -> Any:
    nonlocal unknown_option
    if not unknown_option:
      try:
        return tuned(*args, **kwargs)
      except ValueError as error:  # Staged into another trace.
        if "compiler_options" not in str(error):
          raise
      except RuntimeError as error:  # jax.errors.JaxRuntimeError.
        if not _unknown_option(error):
          raise
        unknown_option = True
    return plain(*args, **kwargs)

  call.plain, call.tuned = plain, tuned
  return call
