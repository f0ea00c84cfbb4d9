"""The YOLOv5 blocks of the notes: Conv-BN-SiLU, Bottleneck, C3, the
Transformer layer/block and C3TR, in Flax linen (NHWC).

Names and structure follow the notes (YOLOv5 ``models/common.py``):
``TransformerLayer`` has no LayerNorm ("removed for better performance") and
``TransformerBlock`` adds a *linear* learned position embedding ``p + W·p + b``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl._checks import (_is_int, as_rank, int_at_least, int_pair,
                           positive_int)


class ConvBNAct(nn.Module):
  """YOLOv5 ``Conv``: convolution without bias, batch norm, SiLU.

  Attributes:
    features: output channels.
    kernel_size: square kernel size.
    strides: stride.
    padding: explicit padding per side; None is YOLOv5's ``autopad``,
      ``kernel_size // 2``.
    groups: ``feature_group_count``.
    act: apply SiLU (False: identity).
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.
  """
  features: int
  kernel_size: int = 1
  strides: int = 1
  padding: int | None = None
  groups: int = 1
  act: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Maps ``[N, H, W, Cin]`` to ``[N, Ho, Wo, features]``."""
    x = as_rank(x, "x", ("N", "H", "W", "C"))
    for name in ("features", "kernel_size", "groups"):
      positive_int(getattr(self, name), name)
    int_pair(self.strides, "strides", minimum=1)
    if _is_int(self.padding) and self.padding < 0:  # else Flax's forms
      raise ValueError(f"padding must be >= 0 (torch), got {self.padding}.")
    if x.shape[-1] % self.groups or self.features % self.groups:
      raise ValueError(f"groups={self.groups} must divide the input channels "
                       f"{x.shape[-1]} and features={self.features}.")
    pad = self.kernel_size // 2 if self.padding is None else self.padding
    x = nn.Conv(self.features, (self.kernel_size,) * 2, strides=self.strides,
                padding=pad, feature_group_count=self.groups, use_bias=False,
                dtype=self.dtype, param_dtype=self.param_dtype, name="conv")(x)
    # YOLOv5: BatchNorm2d(eps=1e-3, momentum=0.03) in torch's convention.
    # Flax keeps the biased batch variance in the running variance where
    # torch keeps the unbiased one (n / (n - 1) times it): outputs agree,
    # the stored statistic drifts apart slightly in training.
    x = nn.BatchNorm(use_running_average=not train, momentum=0.97,
                     epsilon=1e-3, dtype=self.dtype,
                     param_dtype=self.param_dtype, name="bn")(x)
    return nn.silu(x) if self.act else x


def _hidden_channels(features: int, expansion: float) -> int:
  """YOLOv5's ``int(c2 * e)``, at least 1 channel."""
  positive_int(features, "features")
  hidden = int(features * expansion) if expansion > 0 else 0
  if hidden < 1:
    raise ValueError(f"expansion={expansion!r} leaves no hidden channels of "
                     f"features={features}.")
  return hidden


class Bottleneck(nn.Module):
  """1×1 then 3×3 ``ConvBNAct``, with a residual when shapes allow.

  Attributes:
    features: output channels.
    shortcut: add the input when it has ``features`` channels.
    groups: groups of the 3×3 conv.
    expansion: hidden channels ``int(features · expansion)``.
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.
  """
  features: int
  shortcut: bool = True
  groups: int = 1
  expansion: float = 0.5
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    hidden = _hidden_channels(self.features, self.expansion)
    dt = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if self.dtype is not None:  # the shortcut, in the compute dtype
      x = jnp.asarray(x, self.dtype)
    y = ConvBNAct(hidden, 1, **dt, name="cv1")(x, train=train)
    y = ConvBNAct(self.features, 3, groups=self.groups, **dt, name="cv2")(
        y, train=train)
    return x + y if self.shortcut and x.shape[-1] == self.features else y


class C3(nn.Module):
  """CSP bottleneck with 3 convs: ``cv3(concat(m(cv1(x)), cv2(x)))``.

  Attributes:
    features: output channels.
    num_blocks: number of inner blocks ``n``.
    shortcut: residuals in the inner bottlenecks.
    groups: groups of the inner 3×3 convs.
    expansion: hidden channels ``int(features · expansion)``.
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.
  """
  features: int
  num_blocks: int = 1
  shortcut: bool = True
  groups: int = 1
  expansion: float = 0.5
  dtype: Any = None
  param_dtype: Any = jnp.float32

  def inner(self, x: jax.Array, *, train: bool) -> jax.Array:
    """The ``m`` branch: ``num_blocks`` bottlenecks of ``hidden`` channels."""
    for i in range(self.num_blocks):
      x = Bottleneck(x.shape[-1], self.shortcut, self.groups, expansion=1.0,
                     dtype=self.dtype, param_dtype=self.param_dtype,
                     name=f"m_{i}")(x, train=train)
    return x

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Maps ``[N, H, W, Cin]`` to ``[N, H, W, features]``."""
    int_at_least(0, num_blocks=self.num_blocks)  # YOLOv5 allows n = 0
    hidden = _hidden_channels(self.features, self.expansion)
    dt = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    a = self.inner(ConvBNAct(hidden, 1, **dt, name="cv1")(x, train=train),
                   train=train)
    b = ConvBNAct(hidden, 1, **dt, name="cv2")(x, train=train)
    return ConvBNAct(self.features, 1, **dt, name="cv3")(
        jnp.concatenate([a, b], axis=-1), train=train)


class TransformerLayer(nn.Module):
  """YOLOv5 transformer layer (no LayerNorm): attention and a linear MLP.

  ``x = MHA(q(x), k(x), v(x)) + x; x = fc2(fc1(x)) + x`` where q, k, v, fc1,
  fc2 are bias-free ``c×c`` linears and MHA is ``torch.nn.MultiheadAttention``
  (its own input projections and output projection, with biases):
  ``9c² + 4c`` parameters.

  Attributes:
    num_heads: attention heads; must divide the channels.
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.
  """
  num_heads: int
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps ``[B, L, C]`` tokens to ``[B, L, C]``."""
    x = as_rank(x, "x", ("B", "L", "C"))
    c = x.shape[-1]
    positive_int(self.num_heads, "num_heads")
    if c % self.num_heads:
      raise ValueError(f"num_heads={self.num_heads} must divide the "
                       f"channels {c}.")
    dt = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if self.dtype is not None:  # the residual stream, in the compute dtype
      x = jnp.asarray(x, self.dtype)
    linear = lambda name: nn.Dense(c, use_bias=False, **dt, name=name)
    x = nn.MultiHeadDotProductAttention(self.num_heads, **dt, name="ma")(
        linear("q")(x), linear("k")(x), linear("v")(x)) + x
    return linear("fc2")(linear("fc1")(x)) + x


class TransformerBlock(nn.Module):
  """Vision-transformer block on a feature map (YOLOv5).

  An optional 1×1 ``ConvBNAct`` when the channels change, then the pixels as
  ``H·W`` tokens, a learned position embedding ``p + linear(p)``, and
  ``num_layers`` ``TransformerLayer``s.

  Attributes:
    features: output channels ``c2``.
    num_heads: attention heads.
    num_layers: number of ``TransformerLayer``s.
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.
  """
  features: int
  num_heads: int
  num_layers: int
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Maps ``[B, H, W, C1]`` to ``[B, H, W, features]``."""
    x = as_rank(x, "x", ("B", "H", "W", "C"))
    positive_int(self.features, "features")
    int_at_least(0, num_layers=self.num_layers)
    dt = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if self.dtype is not None:  # the residual stream, in the compute dtype
      x = jnp.asarray(x, self.dtype)
    if x.shape[-1] != self.features:
      x = ConvBNAct(self.features, **dt, name="conv")(x, train=train)
    b, h, w, c = x.shape
    p = x.reshape(b, h * w, c)  # tokens in row-major pixel order, as torch
    x = p + nn.Dense(c, **dt, name="linear")(p)
    for i in range(self.num_layers):
      x = TransformerLayer(self.num_heads, **dt, name=f"tr_{i}")(x)
    return x.reshape(b, h, w, c)


class C3TR(C3):
  """``C3`` whose inner branch is a ``TransformerBlock`` with 4 heads.

  Attributes:
    as ``C3``'s, ``dtype`` and ``param_dtype`` included.
  """

  def inner(self, x: jax.Array, *, train: bool) -> jax.Array:
    return TransformerBlock(x.shape[-1], 4, self.num_blocks, dtype=self.dtype,
                            param_dtype=self.param_dtype, name="m")(
                                x, train=train)
