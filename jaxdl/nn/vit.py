"""A standard Vision Transformer classifier (ViT-B/16 and friends).

Patch embedding (a ``patch×patch`` conv with the same stride), a class token,
a learned position embedding, pre-LayerNorm encoder blocks and a linear head
on the class token, as in Dosovitskiy et al. and big_vision's ``vit.py``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl._checks import positive_int
from jaxdl.nn.dropout import dropout


def _maybe_dropout(module: nn.Module, x: jax.Array, rate: float,
                   train: bool) -> jax.Array:
  if not train or rate == 0.0:
    return x
  return dropout(module.make_rng("dropout"), x, rate)


class MlpBlock(nn.Module):
  """``Dense(mlp_dim) → GELU → Dense(D)``, with dropout after each.

  Attributes:
    mlp_dim: hidden width.
    dropout: dropout rate (train only; needs a ``"dropout"`` rng).
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.
  """
  mlp_dim: int
  dropout: float = 0.0
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    dt = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    y = nn.gelu(nn.Dense(self.mlp_dim, **dt, name="fc1")(x),
                approximate=False)
    y = _maybe_dropout(self, y, self.dropout, train)
    y = nn.Dense(x.shape[-1], **dt, name="fc2")(y)
    return _maybe_dropout(self, y, self.dropout, train)


class EncoderBlock(nn.Module):
  """Pre-LN block: ``x + MHA(LN(x))`` then ``x + MLP(LN(x))``.

  Attributes:
    num_heads: attention heads; must divide the token width.
    mlp_dim: hidden width of the MLP.
    dropout: dropout rate after the attention and MLP layers (train only).
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.
  """
  num_heads: int
  mlp_dim: int
  dropout: float = 0.0
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    dt = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if self.dtype is not None:  # the residual stream, in the compute dtype
      x = jnp.asarray(x, self.dtype)
    y = nn.LayerNorm(epsilon=1e-6, **dt, name="ln1")(x)
    y = nn.MultiHeadDotProductAttention(self.num_heads, **dt, name="attn")(
        y, y)
    x = x + _maybe_dropout(self, y, self.dropout, train)
    y = nn.LayerNorm(epsilon=1e-6, **dt, name="ln2")(x)
    return x + MlpBlock(self.mlp_dim, self.dropout, **dt, name="mlp")(
        y, train=train)


class ViT(nn.Module):
  """Vision Transformer classifier.

  ViT-Ti/16 is ``ViT(16, 192, 12, 3, 768, num_classes)`` (5,717,416
  parameters at 224 px with 1000 classes), ViT-B/16 ``ViT(16, 768, 12, 12,
  3072, num_classes)``. The number of tokens is fixed by the image size at
  ``init``.

  Attributes:
    patch_size: side of the square patches (and the embedding stride).
    hidden_size: token width ``D``.
    depth: number of encoder blocks.
    num_heads: attention heads; must divide ``hidden_size``.
    mlp_dim: hidden width of the MLPs.
    num_classes: output logits.
    dropout: dropout rate after the position embedding, attention and MLP
      layers (train only; needs a ``"dropout"`` rng).
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.

  References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021.
  """
  patch_size: int
  hidden_size: int
  depth: int
  num_heads: int
  mlp_dim: int
  num_classes: int
  dropout: float = 0.0
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Maps ``[B, H, W, C]`` images (H, W multiples of the patch size) to
    ``[B, num_classes]`` logits."""
    for name in ("patch_size", "hidden_size", "depth", "num_heads",
                 "mlp_dim", "num_classes"):
      positive_int(getattr(self, name), name)
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}.")
    if x.ndim != 4 or x.shape[1] % self.patch_size or (
        x.shape[2] % self.patch_size):
      raise ValueError(f"x must be [B, H, W, C] with H and W multiples of "
                       f"patch_size={self.patch_size}, got {x.shape}.")
    if self.hidden_size % self.num_heads:
      raise ValueError(f"num_heads={self.num_heads} must divide "
                       f"hidden_size={self.hidden_size}.")
    p = self.patch_size
    dt = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = nn.Conv(self.hidden_size, (p, p), strides=(p, p), padding="VALID",
                **dt, name="embedding")(x)
    b, h, w, d = x.shape
    x = x.reshape(b, h * w, d)
    cls = self.param("cls", nn.initializers.zeros_init(), (1, 1, d),
                     self.param_dtype)
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, d)).astype(x.dtype), x],
                        axis=1)  # [B, 1 + h·w, D]
    pos = self.param("pos_embedding", nn.initializers.normal(0.02),
                     (1, h * w + 1, d), self.param_dtype)
    if self.dtype is not None:  # else promoted with x, as Flax layers do
      pos = jnp.asarray(pos, self.dtype)
    x = _maybe_dropout(self, x + pos, self.dropout, train)
    for i in range(self.depth):
      x = EncoderBlock(self.num_heads, self.mlp_dim, self.dropout, **dt,
                       name=f"block_{i}")(x, train=train)
    x = nn.LayerNorm(epsilon=1e-6, **dt, name="ln")(x)
    return nn.Dense(self.num_classes, **dt, name="head")(x[:, 0])
