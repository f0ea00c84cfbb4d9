"""Tests for jaxdl.schedules against optax, torch's schedulers and the notes.

Tolerances: schedules are a cosine and a few products in float32, compared
with optax's float32 (same formula, other operation order): atol 1e-7 on
values of magnitude <= 1 plus rtol 1e-6; against float64 formulas (the
notes' lambda, torch) rtol 1e-6, atol 1e-7.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import schedules

RTOL, ATOL = 1e-6, 1e-7


def _values(schedule, steps):
  """The schedule at every step, through ``jit`` (traced integer steps)."""
  return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)))


def _notes_one_cycle(y1=0.0, y2=1.0, steps=100):
  # The notes' OneCycleLR snippet, verbatim.
  return lambda x: ((1 - math.cos(x * math.pi / steps)) / 2) * (y2 - y1) + y1


@pytest.mark.parametrize("y1,y2,steps", [(0.0, 1.0, 100), (1.0, 0.01, 30)])
def test_cosine_ramp_equals_notes_lambda(y1, y2, steps):
  xs = np.arange(2 * steps + 1)  # also past `steps`, unclamped as the notes
  want = [_notes_one_cycle(y1, y2, steps)(x) for x in xs]
  np.testing.assert_allclose(_values(schedules.cosine_ramp(y1, y2, steps),
                                     xs), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kwargs", [
    dict(total_steps=200, peak_value=0.1),
    dict(total_steps=100, peak_value=1.0, pct_start=0.25, div_factor=10.0,
         final_div_factor=100.0),
    dict(total_steps=50, peak_value=0.5, pct_start=0.0),
    dict(total_steps=7, peak_value=2.0, pct_start=0.5),
], ids=str)
def test_one_cycle_equals_optax_at_every_step(kwargs):
  kwargs = dict(kwargs)
  total = kwargs["total_steps"]
  twin = optax.cosine_onecycle_schedule(kwargs.pop("total_steps"), **kwargs)
  steps = np.arange(2 * total)
  got = _values(schedules.one_cycle(total, **kwargs), steps)
  np.testing.assert_allclose(got, _values(twin, steps), rtol=RTOL, atol=ATOL)
  assert got.max() == pytest.approx(kwargs["peak_value"], rel=1e-6)


def test_one_cycle_matches_torch_one_cycle_lr():
  """torch's cycle ends at step total - 1 and its warm-up at pct * total - 1.

  With ``pct_start = 31 / 101`` torch's ``OneCycleLR(total_steps=101)`` and
  ``one_cycle(100, pct_start=31 / 101)`` have the same phase ends (30, 100),
  so they agree at every step.
  """
  torch = pytest.importorskip("torch")
  peak, pct = 0.1, 31 / 101
  opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)
  scheduler = torch.optim.lr_scheduler.OneCycleLR(
      opt, max_lr=peak, total_steps=101, pct_start=pct, three_phase=False,
      anneal_strategy="cos", cycle_momentum=False)
  torch_lrs = []
  for _ in range(101):
    torch_lrs.append(opt.param_groups[0]["lr"])
    opt.step()
    scheduler.step()
  got = _values(schedules.one_cycle(100, peak, pct_start=pct),
                np.arange(101))
  np.testing.assert_allclose(got, torch_lrs, rtol=1e-5, atol=ATOL)


@pytest.mark.parametrize("period,t_mult,alpha", [
    (10, 1.0, 0.0), (7, 2.0, 0.1), (5, 3.0, 0.0), (4, 1.5, 0.2)])
def test_cosine_restarts_equals_optax_sgdr(period, t_mult, alpha):
  init = 0.5
  cycles, length, covered = [], period, 0
  while covered <= 500:  # enough cycles to cover the steps compared
    cycles.append(dict(init_value=init, peak_value=init, warmup_steps=0,
                       decay_steps=length, end_value=alpha * init))
    covered += length
    length *= t_mult
  twin = optax.sgdr_schedule(cycles)
  steps = np.arange(500)
  got = _values(schedules.cosine_restarts(init, period, t_mult=t_mult,
                                          alpha=alpha), steps)
  np.testing.assert_allclose(got, _values(twin, steps), rtol=RTOL, atol=ATOL)


def test_cosine_restarts_matches_torch_warm_restarts():
  torch = pytest.importorskip("torch")
  opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
  scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
      opt, T_0=6, T_mult=2, eta_min=0.01)
  torch_lrs = []
  for _ in range(200):
    torch_lrs.append(opt.param_groups[0]["lr"])
    opt.step()
    scheduler.step()
  got = _values(schedules.cosine_restarts(0.1, 6, t_mult=2.0, alpha=0.1),
                np.arange(200))
  np.testing.assert_allclose(got, torch_lrs, rtol=1e-5, atol=ATOL)


def test_restarts_happen_at_cycle_boundaries():
  schedule = schedules.cosine_restarts(1.0, 3, t_mult=2.0)
  got = _values(schedule, np.arange(22))
  restarts = np.flatnonzero(got == 1.0)
  np.testing.assert_array_equal(restarts, [0, 3, 9, 21])  # 3, 6, 12 steps


def test_usable_as_learning_rate_without_retrace():
  from jaxdl import optim  # the schedules' main client
  opt = optim.sgd(schedules.one_cycle(10, 0.1))
  params = jnp.zeros(2)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(state):
    return opt.update(jnp.ones(2), state, params)

  state = opt.init(params)
  for want in _values(schedules.one_cycle(10, 0.1), np.arange(4)):
    updates, state = step(state)
    np.testing.assert_allclose(updates, -want, rtol=1e-6)


@pytest.mark.parametrize("make,match", [
    (lambda: schedules.cosine_ramp(steps=0), "steps"),
    (lambda: schedules.one_cycle(0, 0.1), "total_steps"),
    (lambda: schedules.one_cycle(10, -0.1), "peak_value"),
    (lambda: schedules.one_cycle(10, 0.1, pct_start=1.5), "pct_start"),
    (lambda: schedules.one_cycle(10, 0.1, div_factor=0.0), "div_factor"),
    (lambda: schedules.cosine_restarts(0.1, 0), "period"),
    (lambda: schedules.cosine_restarts(0.1, 5, t_mult=0.5), "t_mult"),
    (lambda: schedules.cosine_restarts(0.1, 5, alpha=2.0), "alpha"),
])
def test_bad_arguments_raise(make, match):
  with pytest.raises(ValueError, match=match):
    make()


# ------------------------------------------- edge cases found by review


def _sgdr_reference(step: int, period: float, t_mult: float) -> float:
  """float64 cosine with restarts, cycle by cycle (alpha 0, init 1)."""
  start, length = 0.0, float(period)
  while start + length <= step:
    start, length = start + length, length * t_mult
  return (1 + math.cos(math.pi * (step - start) / length)) / 2


@pytest.mark.parametrize("t_mult", [1.0001, 1.001])
def test_cosine_restarts_near_one_keeps_its_restarts(t_mult):
  """t**c - 1 in float32 lost its digits: 2885 of 3000 steps were off by
  more than 1e-3 at t_mult = 1.0001 (a restart at step 441 was missed)."""
  steps = np.arange(3000)
  got = np.asarray(schedules.cosine_restarts(1.0, 10, t_mult=t_mult)(steps))
  want = [_sgdr_reference(s, 10, t_mult) for s in steps]
  np.testing.assert_allclose(got, want, atol=1e-3)


def test_cosine_restarts_counts_large_integer_steps_exactly():
  step = 2 ** 25 + 1  # float32 rounds it to 2**25
  got = float(schedules.cosine_restarts(1.0, 7)(np.int32(step)))
  np.testing.assert_allclose(got, _sgdr_reference(step % 7, 7, 1.0),
                             rtol=1e-6)


@pytest.mark.parametrize("make, match", [
    (lambda: schedules.cosine_restarts(-0.1, 10), "init_value"),
    (lambda: schedules.cosine_restarts(float("nan"), 10), "init_value"),
    (lambda: schedules.cosine_restarts(0.1, 10, t_mult=float("inf")),
     "t_mult"),
    (lambda: schedules.cosine_restarts(0.1, float("inf")), "period"),
    (lambda: schedules.cosine_restarts(0.1, "5"), "period"),
    (lambda: schedules.one_cycle(None, 0.1), "total_steps"),
    (lambda: schedules.one_cycle(float("inf"), 0.1), "total_steps"),
    (lambda: schedules.cosine_ramp(steps=None), "steps"),
])
def test_schedule_arguments_must_be_finite_numbers(make, match):
  with pytest.raises(ValueError, match=match):
    make()


@pytest.mark.parametrize("t_mult", [1.0001, 1.1, 1.2, 1.5, 2.0])
@pytest.mark.parametrize("period", [3, 10, 100])
def test_cosine_restarts_restart_on_every_integer_boundary(t_mult, period):
  """t_mult rounded to float32 alike everywhere: 1.1 missed its restarts at
  10 and 21 (the boundary came out at 10.0000023)."""
  boundary, cycle, starts = 0.0, 0, []
  while boundary < 1e4:  # Float64 boundaries; the integer ones restart.
    if abs(boundary - round(boundary)) < 1e-6:
      starts.append(round(boundary))
    boundary += period * t_mult**cycle
    cycle += 1
  values = jax.jit(schedules.cosine_restarts(1.0, period, t_mult=t_mult))(
      jnp.array(starts))
  np.testing.assert_allclose(values, 1.0, atol=1e-6)


def test_cosine_restarts_before_step_zero_and_float_periods():
  growing = schedules.cosine_restarts(1.0, 10, t_mult=2.0)
  np.testing.assert_allclose(growing(jnp.array([-11, -1, 0])), 1.0)
  step = jnp.int32(401541412)  # Above 2**24: float32 steps are rounded.
  np.testing.assert_allclose(schedules.cosine_restarts(1.0, 7.0)(step),
                             schedules.cosine_restarts(1.0, 7)(step))


@pytest.mark.parametrize("call", [
    lambda: schedules.one_cycle(10, 0.1, pct_start=None),
    lambda: schedules.one_cycle(10, 0.1, pct_start="0.3"),
    lambda: schedules.cosine_restarts(1.0, 10, alpha=None),
])
def test_non_numbers_raise_value_error(call):
  with pytest.raises(ValueError, match="must be a finite number"):
    call()


def test_one_cycle_total_steps_must_be_a_whole_number():
  """optax truncates total_steps, jaxdl used the float: with 100.5 the two
  differed from step 31 on (0.616 against optax's 0.611 at step 60)."""
  with pytest.raises(ValueError, match="total_steps must be a whole number"):
    schedules.one_cycle(100.5, 1.0)
  steps = np.arange(110)
  np.testing.assert_allclose(
      _values(schedules.one_cycle(100.0, 1.0), steps),
      _values(optax.cosine_onecycle_schedule(100, 1.0), steps),
      rtol=RTOL, atol=ATOL)


def test_one_cycle_pct_start_one_reaches_the_peak():
  """The documented difference: optax's boundaries coincide at
  pct_start=1 and its schedule never reaches peak_value."""
  got = _values(schedules.one_cycle(10, 1.0, pct_start=1.0), np.arange(12))
  assert got[0] == pytest.approx(0.04) and got[9] > 0.97
  np.testing.assert_allclose(got[10:], 0.04 / 1e4, rtol=1e-6)


@pytest.mark.parametrize("period", [10, 2.5])
def test_cosine_restarts_before_step_zero_as_optax(period):
  """t_mult = 1 wrapped negative steps around to a cycle's end (0.024 at
  step -1, where optax and t_mult > 1 give init_value)."""
  twin = optax.sgdr_schedule([dict(init_value=0.5, peak_value=0.5,
                                   warmup_steps=0, decay_steps=period,
                                   end_value=0.05)] * 2)
  ours = schedules.cosine_restarts(0.5, period, alpha=0.1)
  for steps in (np.arange(-12, 3), np.linspace(-12, 2, 29)):
    np.testing.assert_allclose(_values(ours, steps), _values(twin, steps),
                               rtol=RTOL, atol=ATOL)
