"""The CIFAR-10 tutorial network of the notes ("构建Toy模型"), in Flax linen."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl._checks import positive_int


class ToyNet(nn.Module):
  """LeNet-style CIFAR-10 net: conv5-pool-conv5-pool-fc120-fc84-fc.

  Same layers and parameter count as the PyTorch tutorial ``Net``
  (62,006 parameters for 10 classes), in NHWC. The flatten is over
  (H, W, C) rather than torch's (C, H, W): a permutation of ``fc1``'s rows.

  Attributes:
    num_classes: number of output logits.
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.
  """
  num_classes: int = 10
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Maps ``[B, 32, 32, C]`` images to ``[B, num_classes]`` logits."""
    del train  # No dropout or batch norm; kept for a uniform model interface.
    if x.ndim != 4 or x.shape[1:3] != (32, 32):
      # Other sizes would silently size fc1 differently from the tutorial's
      # 16 * 5 * 5 inputs (torch's Net raises at its view).
      raise ValueError(f"x must have shape [B, 32, 32, C], got {x.shape}.")
    positive_int(self.num_classes, "num_classes")
    dt = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = nn.max_pool(nn.relu(nn.Conv(6, (5, 5), padding="VALID", **dt)(x)),
                    (2, 2), strides=(2, 2))  # [B, 14, 14, 6]
    x = nn.max_pool(nn.relu(nn.Conv(16, (5, 5), padding="VALID", **dt)(x)),
                    (2, 2), strides=(2, 2))  # [B, 5, 5, 16]
    x = x.reshape(x.shape[0], -1)  # [B, 400]
    x = nn.relu(nn.Dense(120, **dt)(x))
    x = nn.relu(nn.Dense(84, **dt)(x))
    return nn.Dense(self.num_classes, **dt)(x)
