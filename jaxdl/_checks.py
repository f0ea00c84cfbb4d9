"""Private argument checks shared by several jaxdl modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def _is_int(value: Any, *, allow_bool: bool = False) -> bool:
  """A Python or NumPy integer (a bool only with ``allow_bool``)."""
  return (isinstance(value, (int, np.integer))
          and (allow_bool or not isinstance(value, bool)))


def is_real_scalar(value: Any) -> bool:
  """A real number: Python, NumPy or a 0-d array (traced too), not None,
  text, a sequence or complex. Its value is not looked at."""
  return (value is not None and not isinstance(value, (str, bytes))
          and np.ndim(value) == 0 and not np.iscomplexobj(value))


def real_scalar(value: Any, name: str) -> None:
  """Raises ``ValueError`` naming ``name`` unless :func:`is_real_scalar`."""
  if not is_real_scalar(value):
    raise ValueError(f"{name} must be a real scalar, got {value!r}.")


def boolean(value: Any, name: str) -> None:
  """Raises ``ValueError`` naming ``name`` unless ``value`` is a Python or
  NumPy bool (an int such as 2 is refused, not read as True)."""
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{name} must be a bool, got {value!r}.")


def int_at_least(minimum: int, **values: Any) -> None:
  """Raises ``ValueError`` naming the first of ``values`` that is not a
  Python or NumPy int (bools excluded) ``>= minimum``."""
  for name, value in values.items():
    if not _is_int(value) or value < minimum:
      raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")


def int_pair(value: int | Sequence[int], name: str, *,
             minimum: int | None = None) -> tuple[int, int]:
  """``(v, v)`` for an int, the pair itself otherwise, as Python ints.

  Raises ``ValueError`` naming ``name`` unless ``value`` is an int or a pair
  of ints, each ``>= minimum`` when ``minimum`` is given.
  """
  pair = (value, value) if _is_int(value) else value
  if isinstance(pair, (tuple, list)) and all(_is_int(v) for v in pair):
    pair = tuple(int(v) for v in pair)
  else:  # Floats, strings, arrays: not silently truncated or split.
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
  if not isinstance(boxes, jax.Array):  # jnp.asarray of one took ~8 us.
    boxes = jnp.asarray(boxes)
  if (boxes.ndim != 2 if flat else boxes.ndim < 1) or boxes.shape[-1] != 4:
    shape = "[N, 4]" if flat else "[..., 4]"
    raise ValueError(
        f"{name} must have shape {shape}, got shape {tuple(boxes.shape)}.")
  return boxes


def as_rank(x: ArrayLike, name: str, dims: Sequence[str]) -> jax.Array:
  """``x`` as an array; raises ``ValueError`` naming ``name`` unless it has
  one axis per entry of ``dims`` (the axis names, for the message).

  >>> as_rank([[1.0, 2.0]], "x", ("N", "D")).shape
  (1, 2)
  >>> as_rank([1.0, 2.0], "x", ("N", "D"))
  Traceback (most recent call last):
  ...
  ValueError: x must have shape [N, D], got (2,).
  """
  x = jnp.asarray(x)
  if x.ndim != len(dims):
    raise ValueError(f"{name} must have shape [{', '.join(dims)}], got "
                     f"{tuple(x.shape)}.")
  return x


def one_of(value, options: Sequence, name: str, *,
           alternative: str = "") -> None:
  """Raises ``ValueError`` naming ``name`` unless ``value`` is in ``options``.

  Args:
    value: the static choice to check (a format, variant, reduction, ...).
    options: the accepted choices.
    name: the argument's name, for the message.
    alternative: what else the caller accepts and checks itself (e.g.
      ``"a [k, D] array"``); the message then reads ``one of ... or ...``.

  >>> one_of("sum", ("none", "mean", "sum"), "reduction")
  >>> one_of("max", ("none", "mean", "sum"), "reduction")
  Traceback (most recent call last):
  ...
  ValueError: reduction must be one of ('none', 'mean', 'sum'), got 'max'.
  """
  if value not in options:
    alternative = f" or {alternative}" if alternative else ""
    raise ValueError(
        f"{name} must be one of {tuple(options)}{alternative}, got {value!r}.")


def positive_int(value: int, name: str, *, allow_bool: bool = False) -> None:
  """Raises ``ValueError`` naming ``name`` unless ``value`` is an int ``>= 1``.

  Python and NumPy integers pass; floats and arrays do not. ``bool`` is
  rejected unless ``allow_bool`` (``True`` then counts as 1).

  >>> positive_int(3, "num_classes")
  >>> positive_int(0, "num_classes")
  Traceback (most recent call last):
  ...
  ValueError: num_classes must be a positive int, got 0.
  """
  if not _is_int(value, allow_bool=allow_bool) or value < 1:
    raise ValueError(f"{name} must be a positive int, got {value!r}.")


def class_ids(ids: jax.Array, num: int, name: str, *,
              num_name: str = "num_classes", allow_bool: bool = False,
              mask: jax.Array | None = None) -> None:
  """Raises ``ValueError`` naming ``name`` unless ``ids`` lie in ``[0, num)``.

  The dtype must be integer (or bool, with ``allow_bool``). The range is
  checked only when the values are known (outside ``jit``), and only where
  ``mask`` (already checked to have ``ids``' shape) is True, so padding may
  hold any id (e.g. ``-1``); under ``jit`` the caller documents what
  happens to out-of-range ids.

  Args:
    ids: ``[...]`` class (or cluster) ids.
    num: the number of ids, ``num_name`` in the message.
    name: the argument's name, for the message.
    num_name: the name of the argument that gave ``num``.
    allow_bool: accept a bool array (False / True read as 0 / 1).
    mask: optional bool array of ``ids``' shape; only True entries count.

  >>> class_ids(jnp.array([0, 2]), 3, "labels")
  >>> class_ids(jnp.array([0, 3]), 3, "labels")
  Traceback (most recent call last):
  ...
  ValueError: labels must lie in [0, num_classes=3), got values in [0, 3].
  """
  if not (jnp.issubdtype(ids.dtype, jnp.integer)
          or (allow_bool and ids.dtype == bool)):
    kind = "an integer (or bool)" if allow_bool else "an integer"
    raise ValueError(f"{name} must be {kind} array, got {ids.dtype}.")
  if isinstance(ids, jax.core.Tracer) or isinstance(mask, jax.core.Tracer):
    return
  values = np.asarray(ids)
  if mask is not None:
    values = values[np.asarray(mask, bool)]
  if values.size and (values.min() < 0 or values.max() >= num):
    raise ValueError(
        f"{name} must lie in [0, {num_name}={num}), got values in "
        f"[{values.min()}, {values.max()}].")


def half_to_float32(dtype: Any) -> jnp.dtype:
  """float32 for half-precision floats; every other dtype unchanged."""
  if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
    return jnp.dtype(jnp.float32)
  return jnp.dtype(dtype)


def compute_dtype(dtype: Any) -> jnp.dtype:
  """float32 for half precision and integers; float32/float64 unchanged."""
  if jnp.issubdtype(dtype, jnp.floating):
    return half_to_float32(dtype)
  return jnp.dtype(jnp.float32)


def signed_ids(ids: jax.Array) -> jax.Array:
  """Integer ids as a signed type at least int32 wide, so that negative
  markers (``-1``, ``ignore_index=-100``) compare as negatives: in uint8,
  -100 would be 156. ``jnp.promote_types`` gives no integer for uint64 (it
  gives float64), so 64-bit ids become int64; ids of 2**63 and above wrap
  to negatives, which every caller treats as outside the classes.

  >>> signed_ids(jnp.array([0, 255], jnp.uint8))
  Array([  0, 255], dtype=int32)
  """
  if ids.dtype.itemsize == 8:
    return ids.astype(jnp.int64)
  return ids.astype(jnp.promote_types(ids.dtype, jnp.int32))


def mask_or_ones(mask: ArrayLike | None, shape: tuple[int, ...], *,
                 name: str = "mask") -> jax.Array:
  """``mask`` as a bool array of ``shape`` (all True when None).

  Raises ``ValueError`` naming ``name`` unless ``mask`` has exactly
  ``shape`` (no broadcasting).

  >>> mask_or_ones(None, (2,))
  Array([ True,  True], dtype=bool)
  >>> mask_or_ones([1, 0, 1], (2,))
  Traceback (most recent call last):
  ...
  ValueError: mask must have shape (2,), got (3,).
  """
  if mask is None:
    return jnp.ones(shape, bool)
  mask = jnp.asarray(mask)
  if mask.shape != tuple(shape):
    raise ValueError(
        f"{name} must have shape {tuple(shape)}, got {tuple(mask.shape)}.")
  return mask.astype(bool)
