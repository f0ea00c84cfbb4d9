"""Learning-rate schedules: the notes' cosine ramp, one-cycle, SGDR restarts.

A schedule is a pure function ``step -> value`` that accepts a Python int or
an integer array (also traced, inside ``jit``) and returns a float32 value,
so it can be passed as ``learning_rate`` to any optimizer in
:mod:`jaxdl.optim` or optax.

>>> one_cycle(100, 0.1)(30)
Array(0.1, dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxdl._checks import _is_int, is_real_scalar

Schedule = Callable[[ArrayLike], jax.Array]


def _check_finite(value: Any, name: str) -> None:
  """Raises ``ValueError`` naming ``name`` unless ``value`` is a finite real
  number (Python, NumPy or a concrete 0-d array)."""
  if not is_real_scalar(value) or not math.isfinite(float(value)):
    raise ValueError(f"{name} must be a finite number, got {value!r}.")


def _check_positive(value: float, name: str) -> None:
  _check_finite(value, name)
  if not value > 0:
    raise ValueError(f"{name} must be > 0, got {value}.")


def _half_cosine(fraction: jax.Array) -> jax.Array:
  """``(1 + cos(pi f)) / 2``: 1 at ``f = 0``, 0 at ``f = 1``."""
  return (1 + jnp.cos(jnp.pi * fraction)) / 2


def cosine_ramp(y1: float = 0.0, y2: float = 1.0,
                steps: int = 100) -> Schedule:
  """The notes' (and YOLOv5's) ``one_cycle`` lambda: a half-cosine ramp.

  ``f(x) = (1 - cos(pi x / steps)) / 2 * (y2 - y1) + y1``: ``y1`` at
  ``x = 0``, ``y2`` at ``x = steps``. As in the notes the formula is not
  clamped: past ``steps`` it continues along the cosine. YOLOv5 uses it as a
  learning-rate *multiplier*, ``cosine_ramp(1.0, lrf, epochs)``.

  Args:
    y1: value at step 0.
    y2: value at step ``steps``.
    steps: ``> 0``, length of the ramp.

  Returns:
    A schedule ``x -> value`` (float32).

  References:
    ``utils/general.py::one_cycle`` in YOLOv5 (Ultralytics).

  >>> cosine_ramp(1.0, 0.1, 10)(5)
  Array(0.55, dtype=float32)
  """
  _check_positive(steps, "steps")
  _check_finite(y1, "y1")
  _check_finite(y2, "y2")

  def schedule(x: ArrayLike) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    return (1 - _half_cosine(x / steps)) * (y2 - y1) + y1

  return schedule


def one_cycle(total_steps: int, peak_value: float, *, pct_start: float = 0.3,
              div_factor: float = 25.0,
              final_div_factor: float = 1e4) -> Schedule:
  """One-cycle schedule with cosine phases, ``optax.cosine_onecycle_schedule``.

  From ``init = peak_value / div_factor`` up to ``peak_value`` over the first
  ``int(pct_start * total_steps)`` steps, then down to
  ``init / final_div_factor`` at ``total_steps``; constant after (and 0
  before step 0, as optax). Each phase is a half cosine. With
  ``pct_start=1`` the warm-up takes the whole cycle and the value drops to
  the final one at ``total_steps``; there optax's two boundaries coincide
  and it decays from ``init`` instead, never reaching ``peak_value``
  (which its docstring promises). This is
  ``torch.optim.lr_scheduler.OneCycleLR``'s ``anneal_strategy="cos"``
  learning rate up to where the phases end: torch
  ends the warm-up at step ``pct_start * total_steps - 1`` and the cycle at
  ``total_steps - 1``. With the same arguments the two differ by about 3%
  of the peak over 100 steps; ``OneCycleLR(total_steps=T + 1,
  pct_start=(P + 1) / (T + 1))`` matches a cycle of ``T`` steps whose
  warm-up is ``P`` steps.

  Args:
    total_steps: ``> 0``, a whole number, length of the cycle (static).
    peak_value: the maximum, ``>= 0``.
    pct_start: fraction of the cycle spent increasing, in [0, 1].
    div_factor: ``> 0``, ``init = peak_value / div_factor``.
    final_div_factor: ``> 0``, ``final = init / final_div_factor``.

  Returns:
    A schedule ``step -> value`` (float32).

  References:
    Smith & Topin, "Super-Convergence", 2017.
  """
  _check_positive(total_steps, "total_steps")
  if not float(total_steps).is_integer():  # optax truncates: int(...)
    raise ValueError(
        f"total_steps must be a whole number, got {total_steps}.")
  total_steps = int(total_steps)
  _check_positive(div_factor, "div_factor")
  _check_positive(final_div_factor, "final_div_factor")
  _check_finite(peak_value, "peak_value")
  if not peak_value >= 0:
    raise ValueError(f"peak_value must be >= 0, got {peak_value}.")
  _check_finite(pct_start, "pct_start")
  if not 0.0 <= pct_start <= 1.0:
    raise ValueError(f"pct_start must be in [0, 1], got {pct_start}.")
  init_value = peak_value / div_factor
  final_value = init_value / final_div_factor
  warmup_end = int(pct_start * total_steps)

  def phase(step, start, end, begin_value, end_value):
    # Inside [start, end): a half cosine from begin_value to end_value.
    fraction = (step - start) / max(end - start, 1)
    value = end_value + (begin_value - end_value) * _half_cosine(fraction)
    return jnp.where((start <= step) & (step < end), value, 0.0)

  def schedule(step: ArrayLike) -> jax.Array:
    step = jnp.asarray(step, jnp.float32)
    return (phase(step, 0, warmup_end, init_value, peak_value) +
            phase(step, warmup_end, total_steps, peak_value, final_value) +
            jnp.where(step >= total_steps, final_value, 0.0))

  return schedule


def cosine_restarts(init_value: float, period: int, *, t_mult: float = 1.0,
                    alpha: float = 0.0) -> Schedule:
  """Cosine annealing with warm restarts (SGDR), an endless cycle.

  Cycle ``i`` lasts ``T_i = period * t_mult**i`` steps; within it, at
  ``t_cur`` steps since the restart, the value is
  ``init_value * (alpha + (1 - alpha) (1 + cos(pi t_cur / T_i)) / 2)``.
  It equals ``optax.sgdr_schedule`` with cycles
  ``dict(init_value=init_value, peak_value=init_value, warmup_steps=0,
  decay_steps=T_i, end_value=alpha * init_value)`` and
  ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0=period,
  T_mult=t_mult, eta_min=alpha * init_value)``. Computed in float32: a
  cycle boundary that lands within 2 float32 ulps above an integer step
  restarts at that step. Steps before 0 give ``init_value``, as optax.

  Args:
    init_value: the value at each restart.
    period: ``> 0``, length ``T_0`` of the first cycle.
    t_mult: ``>= 1``, growth factor of the cycle length.
    alpha: in [0, 1], the minimum as a fraction of ``init_value``.

  Returns:
    A schedule ``step -> value`` (float32).

  References:
    Loshchilov & Hutter, "SGDR: Stochastic gradient descent with warm
    restarts", ICLR 2017.

  >>> jnp.round(cosine_restarts(1.0, 10)(jnp.array([0, 5, 10])), 4)
  Array([1. , 0.5, 1. ], dtype=float32)
  """
  _check_positive(period, "period")
  _check_finite(init_value, "init_value")
  if not init_value >= 0:
    raise ValueError(f"init_value must be >= 0, got {init_value}.")
  _check_finite(t_mult, "t_mult")
  if not t_mult >= 1:
    raise ValueError(f"t_mult must be >= 1, got {t_mult}.")
  _check_finite(alpha, "alpha")
  if not 0.0 <= alpha <= 1.0:
    raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
  int_period = int(period) if float(period).is_integer() else None
  # Steps before cycle c: period * (1 + t + ... + t**(c - 1)), with the
  # numerator and the denominator rounded alike, so that the first restart
  # falls exactly on `period` (a float64 denominator put the restart of
  # t_mult = 1.1 at 10.0000023). Near t = 1, t**c - 1 in float32 loses its
  # digits (t = 1.0001 missed restarts), so expm1 of a float32 log there;
  # elsewhere the float32 power, exact for integer t.
  if t_mult < 1.1:
    log_t = jnp.float32(math.log(t_mult))
    growth = jnp.expm1(log_t)  # t - 1
    cycle_start = lambda c: period * jnp.expm1(c * log_t) / growth
    cycle_length = lambda c: period * jnp.exp(c * log_t)
  else:
    t = jnp.float32(t_mult)
    log_t, growth = jnp.log(t), t - 1
    cycle_start = lambda c: period * (t**c - 1) / growth
    cycle_length = lambda c: period * t**c

  def schedule(step: ArrayLike) -> jax.Array:
    # Before step 0 the first cycle has not begun (log1p below would be
    # NaN, and t_mult = 1 wrapped around to the end of a cycle).
    step = jnp.maximum(jnp.asarray(step), 0)
    if t_mult == 1:
      if jnp.issubdtype(step.dtype, jnp.integer) and int_period is not None:
        # In integers: float32 steps above 2**24 are rounded.
        t_cur = (step % int_period).astype(jnp.float32)
      else:
        step = step.astype(jnp.float32)
        t_cur = step - period * jnp.floor(step / period)
      return init_value * (alpha + (1 - alpha) * _half_cosine(
          t_cur / period))
    step = step.astype(jnp.float32)
    cycle = jnp.floor(jnp.log1p(step * growth / period) / log_t)
    # The closed form can be one cycle off at a boundary in float32, and a
    # boundary can come out a few ulps late: a restart within 2 ulps of
    # the step counts as reached.
    reached = step + jnp.maximum(step, 1.0) * 2.0**-22
    cycle = jnp.where(cycle_start(cycle) > reached, cycle - 1, cycle)
    cycle = jnp.where(cycle_start(cycle + 1) <= reached, cycle + 1, cycle)
    t_cur = jnp.maximum(step - cycle_start(cycle), 0.0)
    return init_value * (alpha + (1 - alpha) * _half_cosine(
        t_cur / cycle_length(cycle)))

  return schedule
