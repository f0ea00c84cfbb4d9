"""FLOPs and parameters: XLA's cost analysis and the formulas it reconciles.

Three conventions count the cost of a convolution or a dense layer:

* ``"xla"``: 2 FLOPs per multiply-add over the *valid* (non-padded) taps, plus
  one per output for a bias. This is what XLA's ``HloCostAnalysis`` counts, so
  ``conv2d_flops(..., convention="xla") == xla_cost(conv).flops`` exactly for
  float32 on CPU (for float16 / bfloat16 XLA:CPU adds the conversions it
  inserts to compute in float32).
* ``"notes"``: the notes' ``(2·Ci/g·K² − 1)·Ho·Wo·Co`` (n products need n − 1
  additions), ``+ Ho·Wo·Co`` with a bias. It counts padded taps as real work,
  so a ``SAME`` convolution costs less in XLA than the formula says.
* ``"macs"``: multiply-accumulates over all taps, bias ignored (fvcore, thop).

Shapes follow Flax: images NHWC, kernels HWIO ``[kh, kw, Ci/g, Co]``. The
output-size formulas are PyTorch's (with ``floor`` and dilation).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import numpy as np
from jax import lax

from jaxdl._checks import _is_int, boolean, int_at_least, int_pair, one_of

CONVENTIONS = ("xla", "notes", "macs")

IntOrPair = int | Sequence[int]
Padding = str | int | Sequence[int] | Sequence[tuple[int, int]]


class Cost(NamedTuple):
  """XLA's cost estimate of one compiled executable (NaN when unavailable)."""
  flops: float
  transcendentals: float
  bytes_accessed: float


def _cost_dict(analysis: Any) -> dict[str, float] | None:
  """``cost_analysis()`` is a dict, a list of dicts, or None across versions."""
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  return dict(analysis) if analysis is not None else None


def xla_cost(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Cost:
  """XLA's FLOPs, transcendentals and bytes accessed for ``fn(*args, **kwargs)``.

  ``fn`` is jitted with ``kwargs`` bound as static (Python) values and compiled
  for ``args`` on the default backend; nothing is executed, so ``args`` may be
  ``jax.ShapeDtypeStruct`` leaves. Keys missing from the analysis (XLA omits
  zero transcendentals) are 0; a backend without cost analysis gives NaN.

  Args:
    fn: a function of arrays (or pytrees of arrays).
    *args: its array arguments, concrete or ``jax.ShapeDtypeStruct``.
    **kwargs: static keyword arguments (e.g. ``train=False``).

  Returns:
    A ``Cost(flops, transcendentals, bytes_accessed)`` of Python floats.

  References:
    ``jax.stages.Compiled.cost_analysis`` (XLA ``HloCostAnalysis``).

  >>> a, b = np.ones((3, 7), np.float32), np.ones((7, 5), np.float32)
  >>> xla_cost(lambda a, b: a @ b, a, b).flops
  210.0
  """
  compiled = jax.jit(functools.partial(fn, **kwargs)).lower(*args).compile()
  return compiled_cost(compiled)


def compiled_cost(compiled: jax.stages.Compiled) -> Cost:
  """:class:`Cost` of an already compiled executable (see :func:`xla_cost`).

  For callers that keep the ``Compiled`` object for other uses (its HLO
  text, or running it), so it is not compiled twice.

  Args:
    compiled: ``jax.jit(f).lower(*args).compile()``.

  Returns:
    ``Cost(flops, transcendentals, bytes_accessed)``; NaN fields when the
    backend gives no cost analysis.
  """
  costs = _cost_dict(compiled.cost_analysis())
  if costs is None:
    return Cost(math.nan, math.nan, math.nan)
  return Cost(float(costs.get("flops", 0.0)),
              float(costs.get("transcendentals", 0.0)),
              float(costs.get("bytes accessed", 0.0)))


def _check_groups(groups: int, c_in: int, c_out: int) -> None:
  int_at_least(1, c_in=c_in, c_out=c_out)
  if not _is_int(groups) or groups < 1 or c_in % groups or c_out % groups:
    raise ValueError(f"groups must divide c_in={c_in} and c_out={c_out}, "
                     f"got {groups}.")


def resolve_padding(padding: Padding, in_hw: IntOrPair, kernel: IntOrPair, *,
                    strides: IntOrPair = 1,
                    dilation: IntOrPair = 1) -> tuple[tuple[int, int], ...]:
  """Explicit ``((top, bottom), (left, right))`` padding, as Flax and lax pad.

  Args:
    padding: ``"SAME"``, ``"VALID"``, an int (all sides), or a pair (rows,
      columns) whose entries are ints or ``(low, high)`` pairs (Flax's
      ``canonicalize_padding`` forms).
    in_hw: input height and width (an int for square inputs).
    kernel: kernel size, int or ``(kh, kw)``.
    strides: int or pair.
    dilation: kernel (rhs) dilation, int or pair.

  Returns:
    Two ``(low, high)`` pairs. ``"SAME"`` puts the odd pixel at the end,
    as ``lax.padtype_to_pads``.
  """
  in_hw = int_pair(in_hw, "in_hw", minimum=1)
  kernel = int_pair(kernel, "kernel", minimum=1)
  strides = int_pair(strides, "strides", minimum=1)
  dilation = int_pair(dilation, "dilation", minimum=1)
  if isinstance(padding, str):
    if padding.upper() not in ("SAME", "VALID"):
      raise ValueError(
          f"padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}.")
    window = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    return tuple(tuple(p) for p in lax.padtype_to_pads(
        in_hw, window, strides, padding.upper()))
  def side(p):  # an int or a (low, high) pair of ints, else None
    if _is_int(p):
      return int(p), int(p)
    if (isinstance(p, (tuple, list)) and len(p) == 2
        and all(_is_int(v) for v in p)):
      return int(p[0]), int(p[1])
    return None

  sides = ((side(padding),) * 2 if _is_int(padding) else
           tuple(side(p) for p in padding)
           if isinstance(padding, (tuple, list)) else ())
  if len(sides) != 2 or None in sides:
    raise ValueError(
        f"padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}.")
  return sides


def conv_output_size(i: int, k: int, *, s: int = 1, p: int | tuple[int, int] = 0,
                     d: int = 1) -> int:
  """Output length of a convolution, ``⌊(i + 2p − d(k − 1) − 1)/s⌋ + 1``.

  The notes' ``(i + 2p − k)/s + 1`` lacks the floor and the dilation.

  Args:
    i: input length.
    k: kernel size.
    s: stride.
    p: padding on each side, or a ``(low, high)`` pair.
    d: dilation.

  Returns:
    The output length (torch.nn.Conv2d's ``H_out``), at least 0.

  Raises:
    ValueError: ``k``, ``s`` or ``d`` below 1, ``i`` below 0, or ``p``
      not ints (negative padding crops, as in ``lax``).

  >>> conv_output_size(32, 5), conv_output_size(7, 3, s=2, p=1, d=2)
  (28, 3)
  """
  int_at_least(0, i=i)
  int_at_least(1, k=k, s=s, d=d)
  pair = (p, p) if _is_int(p) else p
  if not (isinstance(pair, (tuple, list)) and len(pair) == 2
          and all(_is_int(v) for v in pair)):  # negative: cropped, as lax
    raise ValueError(f"p must be an int or a (low, high) pair, got {p!r}.")
  lo, hi = pair
  return max((i + lo + hi - d * (k - 1) - 1) // s + 1, 0)


def conv_transpose_output_size(i: int, k: int, *, s: int = 1, p: int = 0,
                               output_padding: int = 0, d: int = 1) -> int:
  """Output length of ``torch.nn.ConvTranspose2d``.

  ``(i − 1)s − 2p + d(k − 1) + output_padding + 1``. ``output_padding``
  (``< max(s, d)``) picks one of the ``s`` input sizes that a strided
  convolution maps to ``i``; the notes' "(o + 2p − k) % s" case is the same.

  Args:
    i: input length.
    k: kernel size.
    s: stride.
    p: padding removed from each side.
    output_padding: extra rows added at the end.
    d: dilation.

  Returns:
    The output length, at least 0 (0: ``p`` crops everything).

  Raises:
    ValueError: a size below 1, a negative ``p`` or ``output_padding``, or an
      ``output_padding`` of ``max(s, d)`` or more.

  >>> conv_transpose_output_size(3, 3, s=2, p=1, output_padding=1)
  6
  """
  int_at_least(1, i=i, k=k, s=s, d=d)
  int_at_least(0, p=p, output_padding=output_padding)
  if not output_padding < max(s, d):
    raise ValueError("output_padding must be in [0, max(s, d)), got "
                     f"{output_padding} with s={s}, d={d}.")
  return max((i - 1) * s - 2 * p + d * (k - 1) + output_padding + 1, 0)


def _valid_taps(n: int, k: int, s: int, d: int, lo: int, hi: int,
                ld: int = 1) -> int:
  """(output position, kernel tap) pairs that read a real input element.

  The input of length ``n`` is dilated by ``ld`` (``ld − 1`` holes between
  elements, as a transposed convolution does) and padded by ``(lo, hi)``;
  taps on padding or on holes do no work.
  """
  n = (n - 1) * ld + 1
  out = conv_output_size(n, k, s=s, p=(lo, hi), d=d)
  o = np.arange(out)[:, None] * s + np.arange(k)[None, :] * d - lo
  return int(np.count_nonzero((o >= 0) & (o < n) & (o % ld == 0)))


def _conv_geometry(in_hw: IntOrPair, kernel: IntOrPair, strides: IntOrPair,
                   dilation: IntOrPair, convention: str):
  """Checks a convention; ``(in_hw, kernel, strides, dilation)`` as pairs."""
  one_of(convention, CONVENTIONS, "convention")
  return (int_pair(in_hw, "in_hw", minimum=1),
          int_pair(kernel, "kernel", minimum=1),
          int_pair(strides, "strides", minimum=1),
          int_pair(dilation, "dilation", minimum=1))


def conv2d_flops(in_hw: IntOrPair, c_in: int, c_out: int, kernel: IntOrPair,
                 *, strides: IntOrPair = 1, padding: Padding = "SAME",
                 dilation: IntOrPair = 1, groups: int = 1, bias: bool = False,
                 batch: int = 1, convention: str = "xla") -> int:
  """FLOPs of a 2-D convolution ``[batch, H, W, c_in] -> [batch, Ho, Wo, c_out]``.

  Conventions (see the module docstring): ``"xla"`` counts 2 per multiply-add
  over valid taps only, ``+ Ho·Wo·c_out`` for the bias, and equals XLA's count
  exactly (float32 on CPU). XLA rewrites one case as an elementwise
  multiply, costed at 1 FLOP per product: a 1x1, stride-1, unpadded,
  undilated depthwise convolution with ``groups == c_in == c_out``;
  ``"xla"`` follows it. ``"notes"`` is
  ``(2·c_in/g·K² − 1)·Ho·Wo·c_out (+ Ho·Wo·c_out)`` per image; ``"macs"`` is
  ``c_in/g·K²·Ho·Wo·c_out`` per image.

  Args:
    in_hw: input ``(H, W)``, or an int for square inputs.
    c_in: input channels.
    c_out: output channels.
    kernel: kernel size, int or ``(kh, kw)``.
    strides: int or pair.
    padding: as ``resolve_padding`` (``"SAME"``, ``"VALID"``, ints, pairs).
    dilation: kernel dilation, int or pair.
    groups: ``feature_group_count``; must divide ``c_in`` and ``c_out``.
    bias: whether a bias is added.
    batch: batch size.
    convention: ``"xla"``, ``"notes"`` or ``"macs"``.

  Returns:
    The FLOPs (MACs for ``"macs"``) as a Python int.

  References:
    XLA ``HloCostAnalysis::HandleConvolution``; fvcore ``conv_flop_count``.

  >>> conv2d_flops(8, 4, 5, 3), conv2d_flops(8, 4, 5, 3, convention="notes")
  (19360, 22720)
  """
  _check_groups(groups, c_in, c_out)
  boolean(bias, "bias")  # 2 counted the bias twice.
  int_at_least(0, batch=batch)
  in_hw, kernel, strides, dilation = _conv_geometry(in_hw, kernel, strides,
                                                   dilation, convention)
  pads = resolve_padding(padding, in_hw, kernel, strides=strides,
                         dilation=dilation)
  out_hw = [conv_output_size(n, k, s=s, p=p, d=d) for n, k, s, p, d in
            zip(in_hw, kernel, strides, pads, dilation)]
  outputs = batch * out_hw[0] * out_hw[1] * c_out
  taps = kernel[0] * kernel[1] * (c_in // groups)
  if convention == "macs":
    return outputs * taps
  if convention == "notes":
    return outputs * (2 * taps - 1 + int(bias))
  elementwise = (kernel == (1, 1) and strides == (1, 1) and
                 dilation == (1, 1) and pads == ((0, 0), (0, 0)) and
                 groups == c_in == c_out)
  if elementwise:
    return outputs * (1 + int(bias))
  valid = math.prod(_valid_taps(n, k, s, d, *p) for n, k, s, p, d in
                    zip(in_hw, kernel, strides, pads, dilation))
  return 2 * batch * valid * (c_in // groups) * c_out + outputs * int(bias)


def _transpose_padding(padding: Padding, kernel: tuple[int, int],
                       strides: tuple[int, int],
                       dilation: tuple[int, int]) -> tuple[tuple[int, int], ...]:
  """Padding of the dilated input in ``lax.conv_transpose`` (and so Flax's
  ``nn.ConvTranspose``): explicit ``(low, high)`` pairs are used as given;
  ``"SAME"`` gives an output ``s`` times the input, ``"VALID"`` one of
  ``(i − 1)s + max(k', s)`` for the dilated kernel size ``k'``."""
  if not isinstance(padding, str):
    try:  # Not int(v): 1.5 was truncated to 1 and "1" parsed.
      pads = tuple(tuple(int(v) if _is_int(v) else None for v in p)
                   for p in padding)
    except TypeError:  # Not pairs of ints, e.g. an int.
      pads = ()
    if len(pads) != 2 or any(len(p) != 2 or None in p for p in pads):
      raise ValueError(
          f"padding must be 'SAME', 'VALID' or two (low, high) pairs, got "
          f"{padding!r}.")
    return pads
  one_of(padding, ("SAME", "VALID"), "padding",
         alternative="two (low, high) pairs")
  pads = []
  for k, s, d in zip(kernel, strides, dilation):
    k = (k - 1) * d + 1
    if padding == "SAME":
      total, low = k + s - 2, (k - 1 if s > k - 1 else -(-(k + s - 2) // 2))
    else:
      total, low = k + s - 2 + max(k - s, 0), k - 1
    pads.append((low, total - low))
  return tuple(pads)


def conv_transpose2d_flops(in_hw: IntOrPair, c_in: int, c_out: int,
                           kernel: IntOrPair, *, strides: IntOrPair = 1,
                           padding: str | Sequence[tuple[int, int]] = "SAME",
                           dilation: IntOrPair = 1, bias: bool = False,
                           batch: int = 1, convention: str = "xla") -> int:
  """FLOPs of a 2-D transposed convolution (Flax ``nn.ConvTranspose``).

  ``[batch, H, W, c_in] -> [batch, Ho, Wo, c_out]``. XLA runs it as a
  stride-1 convolution over the input dilated by ``strides``. ``"xla"``
  counts 2 per multiply-add over the taps that land on a real input element
  (not on padding or on the holes of the dilation), ``+ Ho·Wo·c_out`` for the
  bias, and equals XLA's count exactly (float32 on CPU). ``"macs"`` is
  fvcore's count for transposed convolutions, every input element times
  every tap, ``H·W·c_in·K²·c_out`` per image (it ignores the outputs that
  ``"SAME"`` crops away). ``"notes"`` generalises the notes' ``2n − 1`` per
  output: ``2·macs − Ho·Wo·c_out`` (``+ Ho·Wo·c_out`` with a bias).

  Args:
    in_hw: input ``(H, W)``, or an int for square inputs.
    c_in: input channels.
    c_out: output channels.
    kernel: kernel size, int or ``(kh, kw)``.
    strides: the upsampling factor, int or pair.
    padding: ``"SAME"`` (output ``H·s``), ``"VALID"`` or two ``(low,
      high)`` pairs, with ``lax.conv_transpose``'s meaning.
    dilation: kernel dilation, int or pair.
    bias: whether a bias is added.
    batch: batch size.
    convention: ``"xla"``, ``"notes"`` or ``"macs"``.

  Returns:
    The FLOPs (MACs for ``"macs"``) as a Python int.

  References:
    ``jax.lax.conv_transpose``; XLA ``HloCostAnalysis::HandleConvolution``;
    fvcore ``conv_flop_count`` (``transposed=True``).

  >>> conv_transpose2d_flops(8, 4, 5, 3, strides=2)
  21160
  >>> conv_transpose2d_flops(8, 4, 5, 3, strides=2, convention="macs")
  11520
  """
  int_at_least(1, c_in=c_in, c_out=c_out)
  boolean(bias, "bias")  # 2 counted the bias twice.
  int_at_least(0, batch=batch)
  in_hw, kernel, strides, dilation = _conv_geometry(in_hw, kernel, strides,
                                                   dilation, convention)
  pads = _transpose_padding(padding, kernel, strides, dilation)
  out_hw = [conv_output_size((n - 1) * s + 1, k, p=p, d=d) for n, k, s, p, d
            in zip(in_hw, kernel, strides, pads, dilation)]
  outputs = batch * out_hw[0] * out_hw[1] * c_out
  macs = batch * in_hw[0] * in_hw[1] * c_in * kernel[0] * kernel[1] * c_out
  if convention == "macs":
    return macs
  if convention == "notes":
    return 2 * macs - outputs + outputs * int(bias)
  valid = math.prod(_valid_taps(n, k, 1, d, *p, ld=s) for n, k, s, p, d in
                    zip(in_hw, kernel, strides, pads, dilation))
  return 2 * batch * valid * c_in * c_out + outputs * int(bias)


def dense_flops(in_features: int, out_features: int, *, batch: int = 1,
                bias: bool = True, convention: str = "xla") -> int:
  """FLOPs of a dense layer ``[batch, in_features] -> [batch, out_features]``.

  ``"xla"``: ``2·I·O (+ O)`` per row; ``"notes"``: ``(2I − 1)·O (+ O)``;
  ``"macs"``: ``I·O``.

  Args:
    in_features: ``I``.
    out_features: ``O``.
    batch: number of rows (the product of all leading dimensions).
    bias: whether a bias is added.
    convention: ``"xla"``, ``"notes"`` or ``"macs"``.

  Returns:
    The FLOPs (MACs for ``"macs"``).

  >>> dense_flops(400, 120), dense_flops(400, 120, convention="notes")
  (96120, 96000)
  """
  one_of(convention, CONVENTIONS, "convention")
  int_at_least(1, in_features=in_features, out_features=out_features)
  boolean(bias, "bias")  # 2 counted the bias twice.
  int_at_least(0, batch=batch)
  if convention == "macs":
    return batch * in_features * out_features
  per_output = 2 * in_features - int(convention == "notes") + int(bias)
  return batch * out_features * per_output


def conv2d_params(c_in: int, c_out: int, kernel: IntOrPair, *, groups: int = 1,
                  bias: bool = True) -> int:
  """Parameters of a convolution: ``kh·kw·c_in/g·c_out (+ c_out)``.

  The notes' ``K²·Ci·Co + Co`` is the ``groups=1`` case.

  Args:
    c_in: input channels.
    c_out: output channels.
    kernel: ``k`` or ``(kh, kw)``.
    groups: feature groups, dividing ``c_in`` and ``c_out``.
    bias: whether the layer has a bias.

  Returns:
    The parameter count (Python int), as ``torch.nn.Conv2d`` has.

  >>> conv2d_params(128, 128, 3, groups=32, bias=False)
  4608
  """
  _check_groups(groups, c_in, c_out)
  boolean(bias, "bias")  # 2 counted the bias twice.
  kh, kw = int_pair(kernel, "kernel", minimum=1)
  return kh * kw * (c_in // groups) * c_out + (c_out if bias else 0)


def count_params(params: Any) -> int:
  """Number of scalars in a pytree of arrays (or ``ShapeDtypeStruct``).

  Args:
    params: a pytree whose leaves have ``.shape`` (e.g. Flax ``params``).

  Returns:
    The sum of the leaves' sizes (Python int).
  """
  return int(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params)))


# ----------------------------------------------------------------- summary


class LayerCost(NamedTuple):
  """One module call in a ``summary``.

  Attributes:
    path: module path, e.g. ``"Conv_0"`` or ``"block/attn/query"``.
    type: the module's class name.
    output_shape: shape of the (first) output.
    params: parameters owned by the module and its children.
    formula_flops: ``conv2d_flops``/``dense_flops`` for ``nn.Conv``,
      ``nn.Dense`` and ``nn.DenseGeneral``; None for other modules.
    xla_flops: XLA's count for this call alone (NaN if it cannot be
      compiled on its own).
  """
  path: str
  type: str
  output_shape: tuple[int, ...]
  params: int
  formula_flops: int | None
  xla_flops: float


@dataclasses.dataclass(frozen=True)
class Summary:
  """Per-layer costs of a model and its totals.

  Attributes:
    layers: one ``LayerCost`` per module call, in call order.
    params: parameters of the whole model.
    formula_flops: sum of ``formula_flops`` over leaf layers with a formula.
    xla_flops: XLA's count of the whole forward pass.
    training_flops: XLA's count of forward plus VJP with respect to the
      parameters (one training step's gradient, without the optimizer).
    convention: the formula convention used.
  """
  layers: tuple[LayerCost, ...]
  params: int
  formula_flops: int
  xla_flops: float
  training_flops: float
  convention: str

  def to_markdown(self, *, max_depth: int | None = None) -> str:
    """The table as GitHub markdown.

    Args:
      max_depth: keep only layers at most this many levels deep (1: the
        model's direct children); totals always cover the whole model.
    """
    lines = ["| path | type | output shape | params | formula FLOPs | "
             "XLA FLOPs |", "|---|---|---|---:|---:|---:|"]
    for layer in self.layers:
      if max_depth is not None and layer.path.count("/") >= max_depth:
        continue
      formula = "" if layer.formula_flops is None else f"{layer.formula_flops:,}"
      xla = "n/a" if math.isnan(layer.xla_flops) else f"{layer.xla_flops:,.0f}"
      lines.append(f"| {layer.path} | {layer.type} | {layer.output_shape} | "
                   f"{layer.params:,} | {formula} | {xla} |")
    lines.append(f"| **total** | | | {self.params:,} | "
                 f"{self.formula_flops:,} | {self.xla_flops:,.0f} |")
    lines.append(f"| **training (fwd + VJP)** | | | | | "
                 f"{self.training_flops:,.0f} |")
    return "\n".join(lines)


def _abstract(tree: Any) -> Any:
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)
      if hasattr(x, "shape") and hasattr(x, "dtype") else x, tree)


def _formula_flops(module: nn.Module, x: Any, convention: str) -> int | None:
  """Analytic FLOPs of one call of a Conv / ConvTranspose (Flax's or
  jaxdl's ConvTranspose2d) / Dense / DenseGeneral, else None."""
  if not hasattr(x, "shape"):
    return None
  if type(module) is nn.Conv:
    kernel = module.kernel_size
    kernel = (kernel,) if isinstance(kernel, int) else tuple(kernel)  # Flax
    if (len(kernel) != 2 or len(x.shape) < 3 or (  # [H, W, C]: batch 1
        isinstance(module.padding, str)  # lax reads "same" as "SAME"
        and module.padding.upper() not in ("SAME", "VALID"))  # CIRCULAR...
        or module.input_dilation not in (None, 1)):
      return None
    return conv2d_flops(
        x.shape[-3:-1], x.shape[-1], module.features, kernel,
        strides=module.strides or 1, padding=module.padding,
        dilation=module.kernel_dilation or 1,
        groups=module.feature_group_count, bias=module.use_bias,
        batch=math.prod(x.shape[:-3]), convention=convention)
  from jaxdl.nn import conv as jaxdl_conv  # pylint: disable=g-import-not-at-top
  if type(module) is jaxdl_conv.ConvTranspose2d:
    return conv_transpose2d_flops(
        x.shape[-3:-1], x.shape[-1], module.features, module.kernel_size,
        strides=module.strides, padding=module.dilated_input_padding(),
        dilation=module.dilation, bias=module.use_bias,
        batch=math.prod(x.shape[:-3]), convention=convention)
  if type(module) is nn.ConvTranspose:
    kernel = module.kernel_size
    kernel = (kernel,) if isinstance(kernel, int) else tuple(kernel)
    if len(kernel) != 2 or len(x.shape) < 3 or module.padding == "CIRCULAR":
      return None
    padding = module.padding
    if isinstance(padding, str) and padding not in ("SAME", "VALID"):
      # lax.conv_transpose passes other strings ("same", "valid") on to
      # conv_general_dilated as a plain convolution's padding (stride 1).
      padding = resolve_padding(padding, x.shape[-3:-1], kernel,
                                dilation=module.kernel_dilation or 1)
    elif not isinstance(padding, str):
      padding = nn.linear.canonicalize_padding(padding, 2)
    return conv_transpose2d_flops(
        x.shape[-3:-1], x.shape[-1], module.features, kernel,
        strides=module.strides or 1, padding=padding,
        dilation=module.kernel_dilation or 1, bias=module.use_bias,
        batch=math.prod(x.shape[:-3]), convention=convention)
  if type(module) is nn.Dense:
    return dense_flops(x.shape[-1], module.features,
                       batch=math.prod(x.shape[:-1]), bias=module.use_bias,
                       convention=convention)
  if type(module) is nn.DenseGeneral:
    axes = (module.axis,) if isinstance(module.axis, int) else module.axis
    axes = [a % len(x.shape) for a in axes]
    features = ((module.features,) if isinstance(module.features, int)
                else module.features)
    in_features = math.prod(x.shape[a] for a in axes)
    return dense_flops(in_features, math.prod(features),
                       batch=math.prod(x.shape) // in_features,
                       bias=module.use_bias, convention=convention)
  return None


def _subtree(variables: Any, path: tuple[str, ...]) -> dict[str, Any]:
  """The variables of the module at ``path``, in every collection."""
  out = {}
  for collection, tree in variables.items():
    for name in path:
      tree = tree.get(name) if hasattr(tree, "get") else None
      if tree is None:
        break
    if tree is not None:
      out[collection] = tree
  return out


def summary(module: nn.Module, *inputs: Any, convention: str = "xla",
            **apply_kwargs: Any) -> Summary:
  """Per-layer table of a Flax model: params, formula FLOPs and XLA FLOPs.

  Only shapes are used: the model is initialised with ``jax.eval_shape`` and
  every cost comes from compiling (not running) the model, each layer on its
  own, and the VJP of the whole forward with respect to ``params``.

  Lifted loops are not unrolled: XLA's cost analysis counts a loop body once,
  so the XLA totals of a model with ``nn.scan`` (or ``lax.scan``,
  ``fori_loop``) count one iteration of it, and the layers inside
  ``nn.scan`` are listed as Flax traces them (twice), not once per
  iteration, so the formula total counts two iterations of an
  ``nn.scan`` body, whatever the scan's length.

  Args:
    module: an unbound Flax module.
    *inputs: its positional inputs (arrays or ``jax.ShapeDtypeStruct``).
    convention: the convention of the ``formula_flops`` column.
    **apply_kwargs: passed to ``module.init`` and ``module.apply`` (e.g.
      ``train=False``); they must be static Python values.

  Returns:
    A ``Summary``; ``Summary.to_markdown()`` renders the table.

  References:
    ``flax.linen.Module.tabulate`` (which this extends with formulas and
    training FLOPs).
  """
  one_of(convention, CONVENTIONS, "convention")
  inputs = _abstract(inputs)
  # init takes the model's own kwargs; "mutable" and "rngs" are apply's.
  init_kwargs = {k: v for k, v in apply_kwargs.items()
                 if k not in ("mutable", "rngs")}
  layer_kwargs = {k: v for k, v in apply_kwargs.items()
                  if k in ("mutable", "rngs")}
  init_rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
  variables = jax.eval_shape(
      lambda *x: module.init(init_rngs, *x, **init_kwargs), *inputs)
  calls, root_calls = [], []

  def record(next_fun, args, kwargs, context):
    if context.method_name != "__call__":
      return next_fun(*args, **kwargs)
    call = [context.module, _abstract(args), kwargs, None]
    # In call order: parents before their children.
    (calls if context.module.path else root_calls).append(call)
    out = next_fun(*args, **kwargs)
    call[3] = _abstract(out)
    return out

  def forward(variables, *inputs):
    return module.apply(variables, *inputs, **apply_kwargs)

  with nn.intercept_methods(record):
    out = jax.eval_shape(forward, variables, *inputs)
  if not calls:  # The model is a single layer (a Dense, a Conv): its own row.
    calls = root_calls

  layers = []
  cache = {}  # Repeated identical layers (e.g. transformer blocks) compile once.
  for sub, args, kwargs, layer_out in calls:
    path = tuple(sub.path)
    sub_vars = _subtree(variables, path)
    unbound = sub.clone(parent=None, name=None)
    key = repr((unbound, args, kwargs, _abstract(sub_vars)))
    if key not in cache:
      try:
        cache[key] = xla_cost(
            lambda v, *a, m=unbound, kw=kwargs: m.apply(v, *a, **kw,
                                                        **layer_kwargs),
            sub_vars, *args).flops
      except Exception:  # pylint: disable=broad-except
        cache[key] = math.nan  # A module that needs its parent's context.
    xla = cache[key]
    leaves = jax.tree.leaves(layer_out)
    first_out = leaves[0] if leaves else None
    layers.append(LayerCost(
        path="/".join(path), type=type(sub).__name__,
        output_shape=tuple(getattr(first_out, "shape", ())),
        params=count_params(sub_vars.get("params", {})),
        formula_flops=_formula_flops(  # Flax layers name it "inputs"
            sub, args[0] if args else kwargs.get("inputs"), convention),
        xla_flops=xla))

  leaf_paths = {layer.path for layer in layers}
  is_leaf = lambda p: not any(q.startswith(p + "/") for q in leaf_paths)
  formula_total = sum(layer.formula_flops for layer in layers
                      if layer.formula_flops is not None and
                      is_leaf(layer.path))
  return Summary(
      layers=tuple(layers), params=count_params(variables.get("params", {})),
      formula_flops=formula_total,
      xla_flops=xla_cost(forward, variables, *inputs).flops,
      training_flops=_training_flops(forward, variables, inputs,
                                     _model_output(out)),
      convention=convention)


def _model_output(y: Any) -> Any:
  """The output of ``apply``, without the state ``apply(..., mutable=...)``
  returns next to it."""
  if isinstance(y, tuple) and len(y) == 2 and isinstance(y[1], dict):
    return y[0]
  return y


def _training_flops(forward: Callable[..., Any], variables: Any,
                    inputs: tuple[Any, ...], out: Any) -> float:
  """XLA FLOPs of forward + VJP with respect to ``variables["params"]``.

  ``out`` is the (abstract) model output, the shape of the cotangent.
  """
  def loss_grad(variables, cotangent, *inputs):
    def f(params):
      return _model_output(forward({**variables, "params": params}, *inputs))
    y, vjp = jax.vjp(f, variables.get("params", {}))
    return y, vjp(cotangent)  # With y, XLA keeps all of the forward pass.

  return xla_cost(loss_grad, variables, out, *inputs).flops
