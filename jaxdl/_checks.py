"""Private argument checks shared by several jaxdl modules."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def int_pair(value: int | Sequence[int], name: str, *,
             minimum: int | None = None) -> tuple[int, int]:
  """``(v, v)`` for an int, the pair itself otherwise, as Python ints.

  Raises ``ValueError`` naming ``name`` unless ``value`` is an int or a pair
  of ints, each ``>= minimum`` when ``minimum`` is given.
  """
  pair = (value, value) if isinstance(value, (int, np.integer)) else value
  try:
    pair = tuple(int(v) for v in pair)
  except (TypeError, ValueError):
    pair = ()
  if len(pair) != 2 or (minimum is not None and min(pair) < minimum):
    bound = "" if minimum is None else f" >= {minimum}"
    raise ValueError(f"{name} must be an int{bound} or a pair of them "
                     f"(height, width), got {value!r}.")
  return pair


def as_boxes(boxes: ArrayLike, name: str, *,
             flat: bool = False) -> jax.Array:
  """``boxes`` as an array; raises ``ValueError`` naming ``name`` unless its
  shape is ``[..., 4]`` (``[N, 4]`` with ``flat``)."""
  boxes = jnp.asarray(boxes)
  if (boxes.ndim != 2 if flat else boxes.ndim < 1) or boxes.shape[-1] != 4:
    shape = "[N, 4]" if flat else "[..., 4]"
    raise ValueError(
        f"{name} must have shape {shape}, got shape {tuple(boxes.shape)}.")
  return boxes
