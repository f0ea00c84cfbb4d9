"""Order-preserving integer keys of floats, for sorting by score.

XLA:CPU sorts integers faster than floats through a comparator, and compares
floats with subnormals flushed to zero (1e-40 == 0 there); keys made from
the bits keep every value apart.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def float_bits(x: jax.Array) -> jax.Array:
  """The bits of float ``x`` as signed integers of its width, with -0.0's
  pattern read as 0.0's (they tie).

  Only -0.0 is tested, by its exact pattern: a test for both zeros
  (``x == 0``, or its bits without the sign being 0, which LLVM turns
  back into a float compare) is also True for subnormals on XLA:CPU.
  """
  int_dtype = jnp.dtype(f"int{8 * x.dtype.itemsize}")
  bits = lax.bitcast_convert_type(x, int_dtype)
  return jnp.where(bits == jnp.iinfo(int_dtype).min, 0, bits)


def descending_keys(x: jax.Array) -> jax.Array:
  """Integer keys of ``x``'s width whose ascending order is the descending
  order of the float ``x`` (0.0 and -0.0 tie). No non-NaN value gets the
  dtype's maximum, which callers can use for "last"."""
  bits = float_bits(x)
  top = jnp.iinfo(bits.dtype).max
  # Sign-magnitude to two's complement order, then reversed (~).
  return ~jnp.where(bits < 0, bits ^ top, bits)


def key_to_float(key: jax.Array, dtype) -> jax.Array:
  """The float of :func:`descending_keys` ``key`` (-0.0 comes back 0.0)."""
  ascending = ~key
  top = jnp.iinfo(key.dtype).max
  return lax.bitcast_convert_type(
      jnp.where(ascending < 0, ascending ^ top, ascending), dtype)
