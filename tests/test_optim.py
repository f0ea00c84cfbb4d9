"""Tests for jaxdl.optim: one table against optax, torch's SGD rule, the notes.

Tolerances: the hand-written optimizers perform the same float32 operations
as their optax twins, so after 1000 steps the parameters agree to a relative
difference (max-abs difference / max-abs value, per leaf) of 1e-5, the bound
the issue sets. Against the float64 NumPy port of torch.optim.SGD, 300 steps
on a well-conditioned quadratic: rtol 1e-5 (float32 rounding does not grow on
a contracting problem). Against torch itself (float32): rtol 1e-5.
"""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import optim
from tests.reference import optim as ref

STEPS = 1000


def rosenbrock(params):
  x, y = params["xy"][..., 0], params["xy"][..., 1]
  return jnp.sum((1 - x) ** 2 + 100 * (y - x ** 2) ** 2)


def _mlp_problem():
  data_rng = np.random.default_rng(1)
  x = jnp.asarray(data_rng.standard_normal((32, 4)), jnp.float32)
  y = jnp.sin(x.sum(-1, keepdims=True))
  params = {
      "w1": jnp.asarray(data_rng.standard_normal((4, 16)) / 2, jnp.float32),
      "b1": jnp.zeros(16), "w2": jnp.asarray(
          data_rng.standard_normal((16, 1)) / 4, jnp.float32),
      "b2": jnp.zeros(1)}

  def loss(p):
    hidden = jnp.tanh(x @ p["w1"] + p["b1"])
    return jnp.mean((hidden @ p["w2"] + p["b2"] - y) ** 2)

  return loss, params


PROBLEMS = {
    "rosenbrock": (rosenbrock,
                   {"xy": jnp.array([[-1.2, 1.0], [0.5, -0.3]])}),
    "mlp": _mlp_problem(),
}


def _optimize(opt, loss, params, steps=STEPS):
  """``steps`` updates in one jitted scan; returns the final parameters."""

  @jax.jit
  def run(params):
    def step(carry, _):
      params, state = carry
      grads = jax.grad(loss)(params)
      updates, state = opt.update(grads, state, params)
      return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None,
                                  length=steps)
    return params

  return run(params)


def _relative_difference(a, b):
  diffs = jax.tree.map(
      lambda x, y: float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y))),
      a, b)
  return max(jax.tree.leaves(diffs))


_schedule = optax.cosine_decay_schedule(1e-3, STEPS)

# (ours, optax twin), the same hyper-parameters; learning rates small enough
# that Rosenbrock does not diverge.
OPTAX_TWINS = {
    "sgd": (optim.sgd(1e-4), optax.sgd(1e-4)),
    "sgd_momentum": (optim.sgd(1e-4, momentum=0.9),
                     optax.sgd(1e-4, momentum=0.9)),
    "sgd_nesterov": (optim.sgd(1e-4, momentum=0.9, nesterov=True),
                     optax.sgd(1e-4, momentum=0.9, nesterov=True)),
    "sgd_schedule": (optim.sgd(_schedule, momentum=0.5),
                     optax.sgd(_schedule, momentum=0.5)),
    "ema_momentum": (optim.ema_momentum(1e-3, beta=0.8),
                     optax.chain(optax.ema(0.8, debias=False),
                                 optax.scale(-1e-3))),
    "rmsprop": (optim.rmsprop(1e-3), optax.rmsprop(1e-3)),
    "rmsprop_all_options": (
        optim.rmsprop(_schedule, decay=0.95, eps=1e-6, eps_in_sqrt=False,
                      centered=True, momentum=0.9, initial_scale=1.0),
        optax.rmsprop(_schedule, decay=0.95, eps=1e-6, eps_in_sqrt=False,
                      centered=True, momentum=0.9, initial_scale=1.0)),
    "adam": (optim.adam(1e-2), optax.adam(1e-2)),
    "adam_schedule_eps_root": (
        optim.adam(_schedule, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-8),
        optax.adam(_schedule, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-8)),
    "adamw": (optim.adamw(1e-2, weight_decay=0.1),
              optax.adamw(1e-2, weight_decay=0.1)),
}


# Every variant on Rosenbrock; one of each optimizer on the MLP (compilation
# of the MLP scans dominates this file's run time).
TABLE = [(name, "rosenbrock") for name in sorted(OPTAX_TWINS)] + [
    (name, "mlp") for name in ("sgd_momentum", "ema_momentum",
                               "rmsprop_all_options", "adam", "adamw")]


@pytest.mark.parametrize("name,problem", TABLE)
def test_matches_optax_after_1000_steps(name, problem):
  ours, twin = OPTAX_TWINS[name]
  loss, params = PROBLEMS[problem]
  got = _optimize(ours, loss, params)
  want = _optimize(twin, loss, params)
  assert _relative_difference(got, want) <= 1e-5
  # The run went somewhere: parameters moved and the loss went down.
  assert float(loss(got)) < float(loss(params))


# ------------------------------------------------------ torch.optim.SGD


def _quadratic():
  rng = np.random.default_rng(2)
  q = rng.standard_normal((3, 3))
  hessian = q @ q.T + 3 * np.eye(3)  # eigenvalues in ~[3, 12]
  target = rng.standard_normal(3)
  w0 = rng.standard_normal(3)
  return hessian, target, w0


SGD_OPTIONS = [
    dict(momentum=0.9, dampening=0.5),
    dict(momentum=0.9, nesterov=True, weight_decay=0.1),
    dict(momentum=0.5, dampening=0.1, weight_decay=0.05),
    dict(weight_decay=0.2),
]


@pytest.mark.parametrize("options", SGD_OPTIONS, ids=str)
def test_sgd_matches_torch_update_rule(options):
  hessian, target, w0 = _quadratic()
  grad = lambda w: hessian @ (w - target)
  loss = lambda p: 0.5 * (p - target) @ jnp.asarray(hessian, jnp.float32) @ (
      p - target)
  got = _optimize(optim.sgd(0.02, **options), loss,
                  jnp.asarray(w0, jnp.float32), steps=300)
  want = ref.torch_sgd(grad, w0, 300, lr=0.02, **options)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # The first step with dampening is torch's b = g, not (1 - d) g.
  first = _optimize(optim.sgd(0.02, **options), loss,
                    jnp.asarray(w0, jnp.float32), steps=1)
  np.testing.assert_allclose(first, ref.torch_sgd(grad, w0, 1, lr=0.02,
                                                  **options),
                             rtol=1e-5, atol=1e-6)


TORCH_TWINS = {
    "sgd": (lambda: optim.sgd(0.02, momentum=0.9, dampening=0.3,
                              weight_decay=0.1),
            lambda t, p: t.optim.SGD(p, lr=0.02, momentum=0.9,
                                     dampening=0.3, weight_decay=0.1)),
    "adam": (lambda: optim.adam(0.05),
             lambda t, p: t.optim.Adam(p, lr=0.05)),
    "adamw": (lambda: optim.adamw(0.05, weight_decay=0.1),
              lambda t, p: t.optim.AdamW(p, lr=0.05, weight_decay=0.1)),
    "rmsprop": (lambda: optim.rmsprop(0.01, decay=0.99, eps=1e-8,
                                      eps_in_sqrt=False, momentum=0.5),
                lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.99,
                                             eps=1e-8, momentum=0.5)),
}


@pytest.mark.parametrize("name", sorted(TORCH_TWINS))
def test_matches_torch_optimizers(name):
  torch = pytest.importorskip("torch")
  hessian, target, w0 = _quadratic()
  ours, theirs = TORCH_TWINS[name]
  h32 = jnp.asarray(hessian, jnp.float32)
  loss = lambda p: 0.5 * (p - target) @ h32 @ (p - target)
  got = _optimize(ours(), loss, jnp.asarray(w0, jnp.float32), steps=200)
  w = torch.tensor(w0, dtype=torch.float32, requires_grad=True)
  h_t = torch.tensor(hessian, dtype=torch.float32)
  t_t = torch.tensor(target, dtype=torch.float32)
  opt = theirs(torch, [w])
  for _ in range(200):
    opt.zero_grad()
    (0.5 * (w - t_t) @ h_t @ (w - t_t)).backward()
    opt.step()
  np.testing.assert_allclose(got, w.detach().numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------ the notes' forms


def test_notes_adam_differs_from_adam():
  """Swapped betas and no bias correction: a first step ~300x too small."""
  w0 = np.array([-1.2, 1.0])
  g0 = ref.rosenbrock_grad(w0)
  notes_step = ref.notes_adam(ref.rosenbrock_grad, w0, 1, lr=1e-2) - w0
  ours = _optimize(optim.adam(1e-2), rosenbrock,
                   {"xy": jnp.asarray(w0, jnp.float32)}, steps=1)["xy"]
  # Adam's first step is lr * sign(g); the notes' is lr (1-b2)/sqrt(1-b1).
  np.testing.assert_allclose(ours - w0, -1e-2 * np.sign(g0), rtol=1e-5)
  np.testing.assert_allclose(notes_step, -1e-2 * 1e-3 / np.sqrt(0.1) *
                             np.sign(g0), rtol=1e-9)
  after = _optimize(optim.adam(1e-2), rosenbrock,
                    {"xy": jnp.asarray(w0, jnp.float32)}, steps=200)["xy"]
  notes_after = ref.notes_adam(ref.rosenbrock_grad, w0, 200, lr=1e-2)
  assert np.max(np.abs(after - notes_after)) > 0.1


def test_ema_momentum_and_torch_momentum_differ_by_one_minus_beta():
  """Constant gradient: the steady steps are lr g and lr g / (1 - beta)."""
  grads = jnp.ones(3)
  params = jnp.zeros(3)
  for opt, step_size in [(optim.ema_momentum(0.1, beta=0.9), 0.1),
                         (optim.sgd(0.1, momentum=0.9), 1.0)]:
    state = opt.init(params)
    update = jax.jit(opt.update)
    for _ in range(300):
      updates, state = update(grads, state, params)
    np.testing.assert_allclose(updates, -step_size, rtol=1e-5)


# ------------------------------------------------------ interface


@pytest.mark.parametrize("name", sorted(OPTAX_TWINS))
def test_state_is_a_namedtuple_and_no_retrace(name):
  opt = OPTAX_TWINS[name][0]
  params = {"a": jnp.ones(3), "b": jnp.zeros((2, 2))}
  state = opt.init(params)
  assert isinstance(state, tuple) and hasattr(state, "_fields")
  chex.clear_trace_counter()  # `step` is redefined for every parameter.

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(grads, state, params):
    return opt.update(grads, state, params)

  updates, state = step(params, state, params)
  updates, state = step(updates, state, params)  # same shapes: no retrace
  chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
  assert state.count == 2


@pytest.mark.parametrize("name", ["sgd_momentum", "rmsprop_all_options",
                                  "adamw"])
def test_bfloat16_dtypes_follow_optax(name):
  ours, twin = OPTAX_TWINS[name]
  params = {"w": jnp.ones(4, jnp.bfloat16)}
  grads = {"w": jnp.full(4, 0.5, jnp.bfloat16)}
  got, _ = ours.update(grads, ours.init(params), params)
  want, _ = twin.update(grads, twin.init(params), params)
  assert got["w"].dtype == jnp.bfloat16
  chex.assert_trees_all_close(got, want, rtol=1e-2)


@pytest.mark.parametrize("name", ["rmsprop", "rmsprop_centered", "adam",
                                  "adamw"])
def test_complex_parameters_follow_optax(name):
  """Second moments of complex gradients are |g|^2, as in optax (g^2 made
  them complex and the steps wrong)."""
  mine, theirs = {
      "rmsprop": (optim.rmsprop(0.1), optax.rmsprop(0.1)),
      "rmsprop_centered": (optim.rmsprop(0.1, centered=True),
                           optax.rmsprop(0.1, centered=True)),
      "adam": (optim.adam(0.1), optax.adam(0.1)),
      "adamw": (optim.adamw(0.1), optax.adamw(0.1)),
  }[name]
  params = jnp.array([1 + 1j, 2 - 1j], jnp.complex64)
  grad = jnp.array([0.5 + 0.5j, -1 + 2j], jnp.complex64)
  got, want = params, params
  state_got, state_want = mine.init(params), theirs.init(params)
  for step in range(5):
    g = grad * (step + 1) * (1 - 0.3j)
    update_got, state_got = mine.update(g, state_got, got)
    update_want, state_want = theirs.update(g, state_want, want)
    got = optax.apply_updates(got, update_got)
    want = optax.apply_updates(want, update_want)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_vmap_over_independent_problems_equals_loop():
  opt = optim.adam(0.1)
  params = jnp.arange(12.0).reshape(4, 3)
  grads = jnp.sin(params)

  def one(g, p):
    updates, _ = opt.update(g, opt.init(p), p)
    return updates

  batched = jax.vmap(one)(grads, params)
  looped = jnp.stack([one(g, p) for g, p in zip(grads, params)])
  chex.assert_trees_all_close(batched, looped, rtol=1e-6)


@pytest.mark.parametrize("make,match", [
    (lambda: optim.sgd(-0.1), "learning_rate"),
    (lambda: optim.sgd(0.1, momentum=1.0), "momentum"),
    (lambda: optim.sgd(0.1, dampening=-0.1), "dampening"),
    (lambda: optim.sgd(0.1, nesterov=True), "nesterov"),
    (lambda: optim.sgd(0.1, momentum=0.9, dampening=0.1, nesterov=True),
     "nesterov"),
    (lambda: optim.sgd(0.1, weight_decay=-1.0), "weight_decay"),
    (lambda: optim.ema_momentum(0.1, beta=1.0), "beta"),
    (lambda: optim.ema_momentum(float("nan")), "learning_rate"),
    (lambda: optim.rmsprop(0.1, decay=1.5), "decay"),
    (lambda: optim.rmsprop(0.1, eps=-1e-8), "eps"),
    (lambda: optim.rmsprop(0.1, momentum=-0.5), "momentum"),
    (lambda: optim.adam(-1e-3), "learning_rate"),
    (lambda: optim.adam(1e-3, b1=1.0), "b1"),
    (lambda: optim.adam(1e-3, b2=-0.1), "b2"),
    (lambda: optim.adamw(1e-3, weight_decay=-0.1), "weight_decay"),
    # optax spells "no momentum" None; jaxdl 0 (a TypeError before).
    (lambda: optim.sgd(0.1, momentum=None), "momentum.*0 turns it off"),
    (lambda: optim.rmsprop(0.1, momentum=None), "momentum"),
    (lambda: optim.adam(1e-3, b1="0.9"), "b1"),
    # float() takes strings: the error came at update, as a TypeError.
    (lambda: optim.adam("0.1"), "learning_rate"),
])
def test_bad_hyper_parameters_raise(make, match):
  with pytest.raises(ValueError, match=match):
    make()


@pytest.mark.parametrize("opt", [optim.sgd(0.1, weight_decay=0.1),
                                 optim.adamw(0.1)])
def test_weight_decay_without_params_raises(opt):
  params = jnp.ones(2)
  with pytest.raises(ValueError, match="params"):
    opt.update(params, opt.init(params))


def test_learning_rate_schedule_is_evaluated_at_the_step_count():
  opt = optim.sgd(lambda count: 0.1 * (count + 1))
  params = jnp.zeros(())
  state = opt.init(params)
  steps = []
  for _ in range(3):
    updates, state = opt.update(jnp.ones(()), state, params)
    steps.append(float(updates))
  np.testing.assert_allclose(steps, [-0.1, -0.2, -0.3], rtol=1e-6)



# ------------------------------------------- edge cases found by review


@pytest.mark.parametrize("make, match", [
    (lambda: optim.sgd(None), "learning_rate"),
    (lambda: optim.sgd(np.array([0.1, -0.2])), "learning_rate"),
    (lambda: optim.sgd(-1j), "learning_rate"),
    (lambda: optim.sgd(0.1, momentum=0.5j), "momentum"),
])
def test_learning_rate_and_decays_must_be_real_scalars(make, match):
  """An array learning rate with a negative entry stepped uphill; None
  failed only at the first update."""
  with pytest.raises(ValueError, match=match):
    make()


def test_sgd_on_integer_leaves_steps_in_float32_as_optax():
  """lr cast to the leaf's dtype truncated 0.5 to 0."""
  params = {"w": jnp.array([1, 2], jnp.int32)}
  grads = {"w": jnp.array([1, 1], jnp.int32)}
  tx, twin = optim.sgd(0.5), optax.sgd(0.5)
  got, _ = tx.update(grads, tx.init(params), params)
  want, _ = twin.update(grads, twin.init(params), params)
  assert got["w"].dtype == want["w"].dtype == jnp.float32
  np.testing.assert_array_equal(got["w"], want["w"])


@pytest.mark.parametrize("factory, static, twin", [
    (optim.adam, (), optax.adam),
    (optim.adamw, ("weight_decay",), optax.adamw),
    (optim.sgd, ("momentum", "dampening", "weight_decay", "nesterov"),
     optax.sgd),
    (optim.rmsprop, ("momentum", "centered", "eps_in_sqrt"), optax.rmsprop),
])
def test_inject_hyperparams_under_jit(factory, static, twin):
  """Traced decays and eps are not range-checked at trace time; the
  switches that shape the state must be static, and say so."""
  params = {"w": jnp.array([1.0, -2.0])}
  grads = {"w": jnp.array([0.5, -0.25])}
  ours = optax.inject_hyperparams(factory, static_args=static)(
      learning_rate=0.1)
  theirs = optax.inject_hyperparams(twin)(learning_rate=0.1)
  step = lambda opt: jax.jit(opt.update)(grads, opt.init(params), params)[0]
  chex.assert_trees_all_close(step(ours), step(theirs), rtol=1e-6)
  if static:
    traced = optax.inject_hyperparams(factory)(learning_rate=0.1)
    with pytest.raises(ValueError, match="static_args"):
      jax.jit(traced.update)(grads, traced.init(params), params)


@pytest.mark.parametrize("mask", [
    {"w": True, "b": False, "norm": False},
    {"w": True, "b": False, "norm": {"scale": True}},
    lambda p: jax.tree.map(lambda x: x.ndim > 1, p),
], ids=["tree", "prefix_and_nested", "callable"])
def test_adamw_mask_matches_optax(mask):
  """Masked-out leaves get the Adam step without weight decay."""
  params = {"w": jnp.ones((2, 3)), "b": jnp.full((3,), 2.0),
            "norm": {"scale": jnp.full((2,), -1.0)}}
  grads = jax.tree.map(lambda x: 0.1 * x, params)
  ours = optim.adamw(0.1, weight_decay=0.5, mask=mask)
  twin = optax.adamw(0.1, weight_decay=0.5, mask=mask)
  got = want = params
  ours_state, twin_state = ours.init(params), twin.init(params)
  for _ in range(3):
    update, ours_state = jax.jit(ours.update)(grads, ours_state, got)
    got = optax.apply_updates(got, update)
    update, twin_state = twin.update(grads, twin_state, want)
    want = optax.apply_updates(want, update)
  chex.assert_trees_all_close(got, want, rtol=1e-6)
  # The mask mattered: without it, b's first step differs.
  one_step = lambda opt: opt.update(grads, opt.init(params), params)[0]["b"]
  assert not np.allclose(one_step(ours),
                         one_step(optim.adamw(0.1, weight_decay=0.5)))


def test_adamw_callable_mask_sees_the_updates_as_optax_does():
  """optax calls a callable mask with the rescaled updates; jaxdl called it
  with the params. A mask that reads the values (eagerly) tells them
  apart: here the updates' signs are the params' reversed."""
  params = {"a": jnp.array([1.0]), "b": jnp.array([-1.0])}
  grads = {"a": jnp.array([-1.0]), "b": jnp.array([1.0])}
  positive = lambda tree: {k: bool(v[0] > 0) for k, v in tree.items()}
  ours = optim.adamw(0.1, weight_decay=0.5, mask=positive)
  twin = optax.adamw(0.1, weight_decay=0.5, mask=positive)
  got = ours.update(grads, ours.init(params), params)[0]
  want = twin.update(grads, twin.init(params), params)[0]
  chex.assert_trees_all_close(got, want, rtol=1e-6)
  np.testing.assert_allclose(got["b"], -0.1 * (1.0 - 0.5), rtol=1e-4)


@pytest.mark.parametrize("mask", [
    {"w": jnp.array(True)}, {"w": 1}, lambda p: {"w": "yes"}])
def test_adamw_mask_must_hold_bools(mask):
  params = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="mask"):
    opt = optim.adamw(0.1, mask=mask)
    opt.update(params, opt.init(params), params)
