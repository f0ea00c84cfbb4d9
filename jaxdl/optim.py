"""Hand-written optimizers as ``optax.GradientTransformation`` pairs.

Each optimizer is an ``(init, update)`` pair over a pytree of parameters, with
a ``NamedTuple`` state, written out in plain ``jax.numpy`` so the update rule
is readable in one place. optax is only the interface (and the reference the
tests compare against); no optax transform is used inside.

* :func:`sgd` follows ``torch.optim.SGD`` (momentum, dampening, Nesterov,
  coupled weight decay); without dampening it equals ``optax.sgd``.
* :func:`ema_momentum` is the notes' momentum ``v = b v + (1 - b) g``,
  ``w -= lr v``; torch and optax use ``v = b v + g`` (:func:`sgd`). The two
  differ by the factor ``1 - b`` on the effective learning rate.
* :func:`rmsprop`, :func:`adam`, :func:`adamw` follow optax.

``learning_rate`` is a non-negative float or a schedule ``step -> lr``
(e.g. from :mod:`jaxdl.schedules`), evaluated at the number of updates done
so far (0 on the first update), as optax does.

Under ``optax.inject_hyperparams`` and ``jit``, the hyper-parameters that
shape the state or the update rule (``momentum``, ``dampening``,
``nesterov``, ``weight_decay``, ``centered``, ``eps_in_sqrt``) must be named
in ``static_args``; the others (learning rate, decays, ``eps``) may be
traced.

The notes' Adam swaps ``b1`` and ``b2`` between the moments and has no bias
correction and no ``eps``; :func:`adam` is the algorithm of Kingma & Ba.

Example:

>>> import optax
>>> params = {"w": jnp.array([1.0, -2.0])}
>>> opt = adam(0.1)
>>> state = opt.init(params)
>>> grads = {"w": jnp.array([0.5, -0.5])}
>>> updates, state = opt.update(grads, state, params)
>>> jnp.round(optax.apply_updates(params, updates)["w"], 4)
Array([ 0.9, -1.9], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl._checks import is_real_scalar

Schedule = Callable[[jax.Array], jax.typing.ArrayLike]
ScalarOrSchedule = float | jax.typing.ArrayLike | Schedule


# --------------------------------------------------------------------------
# Validation (static hyper-parameters, checked when the optimizer is built).


def _check_learning_rate(learning_rate: ScalarOrSchedule) -> None:
  if callable(learning_rate):
    return
  if not is_real_scalar(learning_rate):
    raise ValueError(
        f"learning_rate must be a number or a schedule, got {learning_rate!r}.")
  try:
    value = float(learning_rate)
  except jax.errors.ConcretizationTypeError:
    return  # a traced value: cannot be checked here.
  except TypeError:
    raise ValueError(f"learning_rate must be a number or a schedule, got "
                     f"{learning_rate!r}.") from None
  if not value >= 0:  # also rejects NaN
    raise ValueError(
        f"learning_rate must be >= 0 or a schedule, got {learning_rate}.")


def _check_number(value: Any, name: str) -> None:
  if not is_real_scalar(value):
    raise ValueError(
        f"{name} must be a number, got {value!r}"
        + (" (0 turns it off, where optax takes None)." if value is None
           else "."))


def _check_decay(value: float, name: str) -> None:
  _check_number(value, name)
  if isinstance(value, jax.core.Tracer):
    return  # optax.inject_hyperparams under jit: checked when concrete.
  if not 0.0 <= value < 1.0:
    raise ValueError(f"{name} must be in [0, 1), got {value}.")


def _check_non_negative(value: float, name: str) -> None:
  _check_number(value, name)
  if isinstance(value, jax.core.Tracer):
    return
  if not value >= 0.0:
    raise ValueError(f"{name} must be >= 0, got {value}.")


def _switch(value: Any, name: str) -> bool:
  """Whether a hyper-parameter that shapes the state or the update rule
  (momentum, dampening, weight decay, centering) is on. It must be
  concrete: ``optax.inject_hyperparams`` traces every numeric argument
  under ``jit`` unless ``static_args`` names it."""
  if isinstance(value, jax.core.Tracer):
    raise ValueError(
        f"{name} decides the optimizer's state and update rule, so it cannot "
        f"be traced: with optax.inject_hyperparams, pass "
        f"static_args=({name!r}, ...).")
  return bool(value)


def _require_params(params: Any, name: str) -> None:
  if params is None:
    raise ValueError(
        f"{name} with weight_decay > 0 needs params: call "
        "update(grads, state, params).")


# --------------------------------------------------------------------------
# Shared pieces of the update rules.


def _zeros_like(params: Any) -> Any:
  return jax.tree.map(jnp.zeros_like, params)


def _scale_by_learning_rate(updates: Any, learning_rate: ScalarOrSchedule,
                            count: jax.Array) -> Any:
  """``-lr * u`` with ``lr`` evaluated at ``count`` for a schedule."""
  lr = learning_rate(count) if callable(learning_rate) else learning_rate

  def scale(u):  # integer leaves step in float32, as optax (not lr -> int)
    dtype = u.dtype if jnp.issubdtype(u.dtype, jnp.inexact) else jnp.float32
    return jnp.asarray(-lr, dtype) * u

  return jax.tree.map(scale, updates)


def _abs_square(x: jax.Array) -> jax.Array:
  """``|x|**2``: the second moments of complex parameters are real, as in
  optax."""
  if jnp.iscomplexobj(x):
    return (x * jnp.conj(x)).real.astype(x.dtype)
  return jnp.square(x)


def _ema(values: Any, average: Any, decay: float) -> Any:
  """``(1 - decay) * value + decay * average`` leaf by leaf."""
  return jax.tree.map(lambda g, m: (1 - decay) * g + decay * m,
                      values, average)


def _bias_correction(moment: Any, decay: float, count: jax.Array) -> Any:
  """``moment / (1 - decay**count)``, the factor computed in float32."""
  correction = 1 - decay ** count
  return jax.tree.map(lambda m: m / correction.astype(m.dtype), moment)


def _heavy_ball(updates: Any, buffer: Any, *, momentum: float,
                dampening: float = 0.0, nesterov: bool = False,
                first: jax.Array | None = None) -> tuple[Any, Any]:
  """torch's momentum: ``b = m b + (1 - dampening) g``; returns (update, b).

  On the first step (``first`` True) torch sets ``b = g`` without dampening;
  with ``dampening == 0`` that equals the general rule from ``b = 0``.
  """
  def new_buffer(g, b):
    b = momentum * b + (1 - dampening) * g if dampening else g + momentum * b
    return b if first is None else jnp.where(first, g, b)

  buffer = jax.tree.map(new_buffer, updates, buffer)
  if nesterov:
    updates = jax.tree.map(lambda g, b: g + momentum * b, updates, buffer)
  else:
    updates = buffer
  return updates, buffer


# --------------------------------------------------------------------------
# SGD (torch.optim.SGD) and the notes' EMA momentum.


class SgdState(NamedTuple):
  """State of :func:`sgd`.

  Attributes:
    count: number of updates done, int32 scalar.
    momentum_buffer: torch's ``momentum_buffer`` per parameter, or ``None``
      when ``momentum == 0``.
  """
  count: jax.Array
  momentum_buffer: Any


def sgd(learning_rate: ScalarOrSchedule, *, momentum: float = 0.0,
        dampening: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Stochastic gradient descent with the update rule of ``torch.optim.SGD``.

  With ``g = grad + weight_decay * param`` (coupled weight decay)::

    b = g                                 # first step
    b = momentum * b + (1 - dampening) g  # later steps
    d = g + momentum * b if nesterov else b
    param -= lr * d

  With ``dampening == 0`` and ``weight_decay == 0`` this equals
  ``optax.sgd(learning_rate, momentum, nesterov)`` (``momentum=None`` there
  for ``0.0`` here).

  Args:
    learning_rate: a float ``>= 0`` or a schedule ``step -> lr``.
    momentum: momentum factor in [0, 1).
    dampening: dampening of the gradient added to the buffer, in [0, 1).
    nesterov: Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``
      (as torch).
    weight_decay: L2 penalty ``>= 0`` added to the gradient; then ``update``
      needs ``params``.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`SgdState`.

  References:
    ``torch.optim.SGD``; Sutskever et al., "On the importance of
    initialization and momentum in deep learning", ICML 2013.
  """
  _check_learning_rate(learning_rate)
  _check_decay(momentum, "momentum")
  _check_decay(dampening, "dampening")
  _check_non_negative(weight_decay, "weight_decay")
  use_momentum, use_dampening, use_decay, nesterov = (
      _switch(momentum, "momentum"), _switch(dampening, "dampening"),
      _switch(weight_decay, "weight_decay"), _switch(nesterov, "nesterov"))
  if nesterov and (momentum <= 0 or dampening != 0):
    raise ValueError(
        "nesterov=True needs momentum > 0 and dampening == 0, got "
        f"momentum={momentum}, dampening={dampening}.")

  def init(params):
    buffer = _zeros_like(params) if use_momentum else None
    return SgdState(count=jnp.zeros([], jnp.int32), momentum_buffer=buffer)

  def update(updates, state, params=None):
    if use_decay:
      _require_params(params, "sgd")
      updates = jax.tree.map(lambda g, p: g + weight_decay * p,
                             updates, params)
    buffer = state.momentum_buffer
    if use_momentum:
      first = (state.count == 0) if use_dampening else None
      updates, buffer = _heavy_ball(updates, buffer, momentum=momentum,
                                    dampening=dampening, nesterov=nesterov,
                                    first=first)
    updates = _scale_by_learning_rate(updates, learning_rate, state.count)
    return updates, SgdState(optax.safe_increment(state.count), buffer)

  return optax.GradientTransformation(init, update)


class EmaMomentumState(NamedTuple):
  """State of :func:`ema_momentum`.

  Attributes:
    count: number of updates done, int32 scalar.
    velocity: ``v``, the exponential moving average of the gradients.
  """
  count: jax.Array
  velocity: Any


def ema_momentum(learning_rate: ScalarOrSchedule, *,
                 beta: float = 0.9) -> optax.GradientTransformation:
  """The notes' momentum: ``v = beta v + (1 - beta) g``, ``w -= lr v``.

  ``v`` is an exponential moving average of the gradients (not debiased), so
  the steady-state step is ``lr * g`` where torch's momentum (:func:`sgd`)
  takes ``lr * g / (1 - beta)``. Equals
  ``optax.chain(optax.ema(beta, debias=False), optax.scale(-lr))``.

  Args:
    learning_rate: a float ``>= 0`` or a schedule ``step -> lr``.
    beta: the averaging factor in [0, 1).

  Returns:
    An ``optax.GradientTransformation`` with state :class:`EmaMomentumState`.

  References:
    The notes' "SGD with Momentum"; Polyak, "Some methods of speeding up the
    convergence of iteration methods", 1964.
  """
  _check_learning_rate(learning_rate)
  _check_decay(beta, "beta")

  def init(params):
    return EmaMomentumState(jnp.zeros([], jnp.int32), _zeros_like(params))

  def update(updates, state, params=None):
    del params
    velocity = _ema(updates, state.velocity, beta)
    updates = _scale_by_learning_rate(velocity, learning_rate, state.count)
    return updates, EmaMomentumState(optax.safe_increment(state.count),
                                     velocity)

  return optax.GradientTransformation(init, update)


# --------------------------------------------------------------------------
# RMSprop (optax.rmsprop).


class RmspropState(NamedTuple):
  """State of :func:`rmsprop`.

  Attributes:
    count: number of updates done, int32 scalar.
    nu: moving average of the squared gradients.
    mu: moving average of the gradients (``centered=True``), else ``None``.
    momentum_buffer: the momentum trace (``momentum > 0``), else ``None``.
  """
  count: jax.Array
  nu: Any
  mu: Any
  momentum_buffer: Any


def rmsprop(learning_rate: ScalarOrSchedule, *, decay: float = 0.9,
            eps: float = 1e-8, eps_in_sqrt: bool = True,
            centered: bool = False, momentum: float = 0.0,
            initial_scale: float = 0.0) -> optax.GradientTransformation:
  """RMSprop with the semantics of ``optax.rmsprop``.

  ::

    nu = decay nu + (1 - decay) g**2            # nu starts at initial_scale
    mu = decay mu + (1 - decay) g               # centered only
    s  = nu - mu**2 if centered else nu
    u  = g / sqrt(s + eps) if eps_in_sqrt else g / (sqrt(s) + eps)
    t  = -lr u + momentum t                     # momentum > 0 only
    param += t

  ``eps_in_sqrt=False`` with ``initial_scale=0`` is ``torch.optim.RMSprop``'s
  denominator (but torch applies the learning rate after momentum, which
  differs when the learning rate changes). Float16 parameters: see
  :func:`adam` (NaN for a zero gradient, zero steps above about 256).

  Args:
    learning_rate: a float ``>= 0`` or a schedule ``step -> lr``.
    decay: averaging factor of the squared gradients, in [0, 1).
    eps: ``>= 0``, added inside or outside the square root.
    eps_in_sqrt: where ``eps`` is added.
    centered: divide by the estimated standard deviation instead of the RMS.
    momentum: momentum of the scaled updates, in [0, 1) (``0.0`` here is
      ``momentum=None`` in optax).
    initial_scale: ``>= 0``, initial value of ``nu`` (torch 0, TF1 1).

  Returns:
    An ``optax.GradientTransformation`` with state :class:`RmspropState`.

  References:
    Hinton, "Neural networks for machine learning", lecture 6e, 2012;
    Graves, "Generating sequences with recurrent neural networks", 2013.
  """
  _check_learning_rate(learning_rate)
  _check_decay(decay, "decay")
  _check_non_negative(eps, "eps")
  _check_decay(momentum, "momentum")
  _check_non_negative(initial_scale, "initial_scale")
  use_momentum, centered, eps_in_sqrt = (
      _switch(momentum, "momentum"), _switch(centered, "centered"),
      _switch(eps_in_sqrt, "eps_in_sqrt"))

  def init(params):
    nu = jax.tree.map(lambda p: jnp.full_like(p, initial_scale), params)
    return RmspropState(
        count=jnp.zeros([], jnp.int32), nu=nu,
        mu=_zeros_like(params) if centered else None,
        momentum_buffer=_zeros_like(params) if use_momentum else None)

  def update(updates, state, params=None):
    del params
    nu = _ema(jax.tree.map(_abs_square, updates), state.nu, decay)
    mu = _ema(updates, state.mu, decay) if centered else None
    # m * m for real m: the HLO that experiments/bench_optim.py measured
    # (jnp.square compiles differently).
    second = (jax.tree.map(
        lambda n, m: n - (_abs_square(m) if jnp.iscomplexobj(m) else m * m),
        nu, mu) if centered else nu)
    if eps_in_sqrt:
      scale = jax.tree.map(lambda s: jax.lax.rsqrt(s + eps), second)
    else:
      scale = jax.tree.map(lambda s: 1 / (jnp.sqrt(s) + eps), second)
    updates = jax.tree.map(lambda s, g: s * g, scale, updates)
    updates = _scale_by_learning_rate(updates, learning_rate, state.count)
    buffer = state.momentum_buffer
    if use_momentum:
      updates, buffer = _heavy_ball(updates, buffer, momentum=momentum)
    return updates, RmspropState(optax.safe_increment(state.count), nu, mu,
                                 buffer)

  return optax.GradientTransformation(init, update)


# --------------------------------------------------------------------------
# Adam and AdamW (optax.adam, optax.adamw).


class AdamState(NamedTuple):
  """State of :func:`adam` and :func:`adamw`.

  Attributes:
    count: number of updates done, int32 scalar.
    mu: first moment, the moving average of the gradients.
    nu: second moment, the moving average of the squared gradients.
  """
  count: jax.Array
  mu: Any
  nu: Any


def _decay_mask(mask: Any, updates: Any) -> Any:
  """The bool tree of ``adamw``'s ``mask`` (a tree, or a function called
  with the rescaled ``updates`` as ``optax.masked`` calls it); None decays
  every leaf."""
  if mask is None:
    return jax.tree.map(lambda _: True, updates)
  return _checked_mask(mask(updates) if callable(mask) else mask)


def _checked_mask(tree: Any) -> Any:
  for leaf in jax.tree.leaves(tree):
    if not isinstance(leaf, (bool, np.bool_)):
      raise ValueError(
          "mask must be a tree of Python bools (or a function of the updates "
          f"returning one), a prefix of the params' tree; got a leaf {leaf!r}.")
  return tree


def _with_decay(updates: Any, params: Any, weight_decay: float,
                mask: Any) -> Any:
  """``updates + weight_decay * params`` on the leaves ``mask`` selects."""

  def decay(selected, updates, params):
    if not selected:
      return updates
    return jax.tree.map(lambda u, p: u + weight_decay * p, updates, params)

  return jax.tree.map(decay, _decay_mask(mask, updates), updates, params)


def _adam(learning_rate: ScalarOrSchedule, b1: float, b2: float, eps: float,
          eps_root: float, weight_decay: float, name: str,
          mask: Any = None) -> optax.GradientTransformation:
  """Adam, plus decoupled weight decay when ``weight_decay > 0`` (on the
  leaves ``mask`` selects)."""
  _check_learning_rate(learning_rate)
  _check_decay(b1, "b1")
  _check_decay(b2, "b2")
  _check_non_negative(eps, "eps")
  _check_non_negative(eps_root, "eps_root")
  _check_non_negative(weight_decay, "weight_decay")
  use_decay = _switch(weight_decay, "weight_decay")
  if mask is not None and not callable(mask):
    _checked_mask(mask)

  def init(params):
    return AdamState(jnp.zeros([], jnp.int32), _zeros_like(params),
                     _zeros_like(params))

  def update(updates, state, params=None):
    mu = _ema(updates, state.mu, b1)
    nu = _ema(jax.tree.map(_abs_square, updates), state.nu, b2)
    count = optax.safe_increment(state.count)
    mu_hat = _bias_correction(mu, b1, count)
    nu_hat = _bias_correction(nu, b2, count)
    updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps),
                           mu_hat, nu_hat)
    if use_decay:
      _require_params(params, name)
      # Decoupled: the decay is added after the adaptive rescaling.
      updates = _with_decay(updates, params, weight_decay, mask)
    updates = _scale_by_learning_rate(updates, learning_rate, state.count)
    return updates, AdamState(count, mu, nu)

  return optax.GradientTransformation(init, update)


def adam(learning_rate: ScalarOrSchedule, *, b1: float = 0.9,
         b2: float = 0.999, eps: float = 1e-8,
         eps_root: float = 0.0) -> optax.GradientTransformation:
  """Adam with the semantics of ``optax.adam``.

  ::

    mu = b1 mu + (1 - b1) g
    nu = b2 nu + (1 - b2) g**2
    param -= lr (mu / (1 - b1**t)) / (sqrt(nu / (1 - b2**t) + eps_root) + eps)

  with ``t`` the 1-based step. The notes' version swaps ``b1`` and ``b2``,
  drops the bias correction and ``eps``; it is not this algorithm.

  The moments have the parameters' dtype, as in optax. With float16
  parameters both ``eps = 1e-8`` and small ``(1 - b2) g**2`` round to 0, so
  an update can be ``-inf``, a zero gradient gives NaN (0 / 0) and one above
  about 256 a zero step (``g**2`` overflows); optax gives the same. Keep
  float16 models' master weights in float32, or use bfloat16. The same
  holds for :func:`rmsprop`.

  Args:
    learning_rate: a float ``>= 0`` or a schedule ``step -> lr``.
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: ``>= 0``, added to the denominator outside the square root.
    eps_root: ``>= 0``, added inside the square root.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`AdamState`.

  References:
    Kingma & Ba, "Adam: A method for stochastic optimization", ICLR 2015.
  """
  return _adam(learning_rate, b1, b2, eps, eps_root, 0.0, "adam")


def adamw(learning_rate: ScalarOrSchedule, *, b1: float = 0.9,
          b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0,
          weight_decay: float = 1e-4,
          mask: Any = None) -> optax.GradientTransformation:
  """AdamW (decoupled weight decay) with the semantics of ``optax.adamw``.

  The Adam direction of :func:`adam` plus ``weight_decay * param``, both
  scaled by the learning rate: ``param -= lr (adam_direction + wd param)``.
  ``torch.optim.AdamW`` is the same rule. ``update`` needs ``params`` when
  ``weight_decay > 0``.

  Args:
    learning_rate: a float ``>= 0`` or a schedule ``step -> lr``.
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: ``>= 0``, added to the denominator outside the square root.
    eps_root: ``>= 0``, added inside the square root.
    weight_decay: ``>= 0``, the decoupled decay rate.
    mask: which parameters decay, as ``optax.adamw``'s ``mask``: a tree of
      Python bools with the params' structure (or a prefix of it), or a
      function that returns one from a tree of that structure (called, as
      by optax, with the Adam-rescaled updates, not the params); None
      decays every parameter.
      Biases and normalisation scales are often left out:
      ``mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)``.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`AdamState`.

  References:
    Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019.
  """
  return _adam(learning_rate, b1, b2, eps, eps_root, weight_decay, "adamw",
               mask)
