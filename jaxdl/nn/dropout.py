"""Inverted dropout as a pure function of a PRNG key (notes: "Dropout")."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxdl._checks import is_real_scalar


def dropout(key: jax.Array, x: ArrayLike, rate: float, *,
            deterministic: bool = False) -> jax.Array:
  """Zeroes each element with probability ``rate`` and scales the rest.

  Inverted dropout: kept elements are divided by ``1 − rate`` so the
  expectation is unchanged and evaluation needs no rescaling. The notes'
  NumPy version does the same with ``np.random.binomial`` (and mutates its
  input in place); this one is pure.

  Args:
    key: a JAX PRNG key.
    x: ``[...]`` input.
    rate: drop probability, a static Python float in ``[0, 1)``.
    deterministic: if True (evaluation), return ``x`` unchanged.

  Returns:
    ``[...]`` array of the same shape and dtype as ``x``.

  Raises:
    ValueError: if ``rate`` is outside ``[0, 1)``, or ``x`` is not floating
      point when elements are dropped (scaled integers would be truncated;
      torch refuses them too).

  References:
    Srivastava et al., "Dropout", JMLR 2014; ``torch.nn.functional.dropout``.

  >>> dropout(jax.random.key(0), jnp.ones(4), 0.5, deterministic=True)
  Array([1., 1., 1., 1.], dtype=float32)
  """
  if (not is_real_scalar(rate) or isinstance(rate, jax.core.Tracer)
      or not 0.0 <= rate < 1.0):
    raise ValueError(f"rate must be a static number in [0, 1), got "
                     f"{rate!r}.")
  x = jnp.asarray(x)
  if deterministic or rate == 0.0:
    return x
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"x must be floating point, got {x.dtype}.")
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)
