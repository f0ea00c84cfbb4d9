"""Step time of jaxdl's hand-written optimizers against their optax twins.

One jitted step (``update`` + ``apply_updates``) on a 10M-parameter pytree,
same inputs, same process. Timings alternate between the two optimizers in
several rounds (the median of each round's median), so drift on a shared
machine hits both alike. The XLA cost analysis of the two compiled steps
(FLOPs, bytes accessed) shows whether they compile to the same program.

Run: ``python -m experiments.bench_optim`` -> ``experiments/results/optim.md``.
"""

from __future__ import annotations

import collections
import os
import re
import statistics

import jax
import numpy as np
import optax

from experiments import benchutil
from jaxdl import flops, optim

ROUNDS = 41
REPEATS = 3

# A model-like pytree: 10,000,000 float32 parameters in 8 leaves.
SHAPES = {
    "embed": (8000, 256),          # 2,048,000
    "conv1": (3, 3, 128, 256),     #   294,912
    "conv2": (3, 3, 256, 512),     # 1,179,648
    "dense1": (2048, 1536),        # 3,145,728
    "dense2": (1536, 1536),        # 2,359,296
    "head": (1536, 632),           #   970,752
    "bias1": (1536,),
    "bias2": (128,),
}


def make_pytree(seed: int) -> dict[str, jax.Array]:
  keys = jax.random.split(jax.random.key(seed), len(SHAPES))
  return {name: 0.02 * jax.random.normal(k, shape)
          for k, (name, shape) in zip(keys, SHAPES.items())}


PAIRS = {
    "sgd (momentum 0.9)": (optim.sgd(1e-2, momentum=0.9),
                           optax.sgd(1e-2, momentum=0.9)),
    "sgd (nesterov)": (optim.sgd(1e-2, momentum=0.9, nesterov=True),
                       optax.sgd(1e-2, momentum=0.9, nesterov=True)),
    "ema_momentum": (optim.ema_momentum(1e-2, beta=0.9),
                     optax.chain(optax.ema(0.9, debias=False),
                                 optax.scale(-1e-2))),
    "rmsprop": (optim.rmsprop(1e-3), optax.rmsprop(1e-3)),
    "rmsprop (centered, momentum)": (
        optim.rmsprop(1e-3, centered=True, momentum=0.9),
        optax.rmsprop(1e-3, centered=True, momentum=0.9)),
    "adam": (optim.adam(1e-3), optax.adam(1e-3)),
    "adamw": (optim.adamw(1e-3, weight_decay=1e-4),
              optax.adamw(1e-3, weight_decay=1e-4)),
}


def _step_fn(opt: optax.GradientTransformation):
  def step(params, state, grads):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state
  return step


# `%name = f32[1536,632]{1,0} multiply(...)` -> "f32[1536,632]{1,0} multiply";
# tuple results (multi-output fusions, while loops) keep their parentheses.
_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%\S+\s*=\s*(\((?:[^()]|\([^()]*\))*\)|"
    r"\S+(?:\s*\{[^}]*\})?)\s+([\w-]+)\(", re.M)


def _instructions(compiled) -> collections.Counter:
  """Multiset of (result type, opcode) of the optimized HLO's instructions,
  but for ``tuple`` (packing the outputs: its type lists the whole state)."""
  return collections.Counter(
      f"{shape} {opcode}"
      for shape, opcode in _INSTRUCTION.findall(compiled.as_text())
      if opcode != "tuple")


def _difference(extra: collections.Counter) -> str:
  if not extra:
    return "none"
  n = sum(extra.values())
  if all(key.split()[0].endswith("[]") for key in extra):
    return f"{n} scalar"
  return f"{n}: " + ", ".join(f"{k} x{v}" for k, v in sorted(extra.items()))


def check_same_steps(ours, theirs, params, grads, steps: int = 3) -> None:
  """Both optimizers move the parameters alike over a few steps (float32:
  up to a few ulps from the order of operations)."""
  moved = []
  for opt in (ours, theirs):
    step, p, state = jax.jit(_step_fn(opt)), params, opt.init(params)
    for _ in range(steps):
      p, state = step(p, state, grads)
    moved.append(p)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-6), *moved)


def bench_pair(ours, theirs, params, grads) -> dict[str, float]:
  check_same_steps(ours, theirs, params, grads)
  result = {}
  calls = {}
  for side, opt in (("ours", ours), ("optax", theirs)):
    step = jax.jit(_step_fn(opt))
    state = opt.init(params)
    result[f"{side}_compile"] = benchutil.compile_time(
        lambda: step(params, state, grads))
    compiled = step.lower(params, state, grads).compile()
    cost = flops.compiled_cost(compiled)
    result[f"{side}_flops"], result[f"{side}_bytes"] = (cost.flops,
                                                        cost.bytes_accessed)
    result[f"{side}_hlo"] = _instructions(compiled)
    calls[side] = (lambda step=step, state=state: step(params, state, grads))
  rounds = {"ours": [], "optax": []}
  for r in range(ROUNDS):  # Alternating which side goes first.
    for side in ("ours", "optax")[::1 if r % 2 == 0 else -1]:
      rounds[side].append(benchutil.median_time(calls[side],
                                                repeats=REPEATS))
  for side in ("ours", "optax"):
    result[side] = statistics.median(rounds[side])
  # The ratio of the two medians (the step-time columns); per-round ratios
  # show the noise of the shared machine.
  ratios = [a / b for a, b in zip(rounds["ours"], rounds["optax"])]
  result["ratio_lo"], result["ratio_hi"] = min(ratios), max(ratios)
  result["ratio"] = result["ours"] / result["optax"]
  return result


def _hlo_finding(extra_only_scalar: bool) -> str:
  if not extra_only_scalar:
    return ("The two programs differ in array-sized instructions (last two "
            "columns).")
  return ("Every array-sized instruction is shared; the scalar instructions "
          "only in jaxdl are its int32 step counter (kept for schedules and "
          "dampening), which `optax.sgd` / `optax.rmsprop` with a constant "
          "learning rate do not carry.")


def main() -> None:
  params = make_pytree(0)
  grads = make_pytree(1)
  n_params = sum(int(np.prod(s)) for s in SHAPES.values())
  load_before = os.getloadavg()[0]
  rows, extra_only_scalar = [], True
  for name, (ours, theirs) in PAIRS.items():
    r = bench_pair(ours, theirs, params, grads)
    only_ours = r["ours_hlo"] - r["optax_hlo"]
    extra_only_scalar &= (not r["optax_hlo"] - r["ours_hlo"] and all(
        key.split()[0].endswith("[]") for key in only_ours))
    rows.append([
        name, benchutil.format_ms(r["ours"]), benchutil.format_ms(r["optax"]),
        f"{r['ratio']:.3f}",
        f"{r['ratio_lo']:.2f} - {r['ratio_hi']:.2f}",
        f"{r['ours_compile']:.2f} s / {r['optax_compile']:.2f} s",
        f"{r['optax_flops']:.4g}",
        f"{r['ours_flops'] - r['optax_flops']:+.0f}",
        f"{r['optax_bytes'] / 1e6:.1f}",
        f"{r['ours_bytes'] - r['optax_bytes']:+.0f}",
        f"{sum(r['ours_hlo'].values())} / {sum(r['optax_hlo'].values())}",
        _difference(r["ours_hlo"] - r["optax_hlo"]),
        _difference(r["optax_hlo"] - r["ours_hlo"])])
    print(rows[-1])
  table = benchutil.markdown_table(
      ["optimizer", "jaxdl step", "optax step", "ratio (jaxdl / optax)",
       "range of per-round ratios", "compile jaxdl / optax",
       "optax XLA flops", "jaxdl - optax flops", "optax XLA MB accessed",
       "jaxdl - optax bytes", "HLO instructions jaxdl / optax",
       "only in jaxdl", "only in optax"], rows)
  body = (
      f"One jitted `update` + `apply_updates` step on a pytree of "
      f"{n_params:,} float32 parameters ({len(SHAPES)} leaves). In each of "
      f"{ROUNDS} rounds jaxdl and optax are timed back to back, the first "
      f"of the two alternating (median of {REPEATS} runs each, after "
      f"compilation); step times are the median over rounds and the ratio "
      f"is theirs; the range of the per-round ratios shows the noise of the "
      f"shared machine. The compile column is a fresh jit's first call less "
      f"a steady call. Target: ratio "
      f"within [0.9, 1.1]. The XLA columns come from the compiled "
      f"executables: cost analysis, and the optimized HLO instructions "
      f"compared as a multiset of (result type, opcode). "
      f"{_hlo_finding(extra_only_scalar)} Before timing, each pair's "
      f"parameters after 3 steps were checked equal (rtol 1e-5, atol "
      f"1e-6).\n\n"
      f"{table}\n\n"
      f"1-minute load average of the machine: {load_before:.1f} before, "
      f"{os.getloadavg()[0]:.1f} after the run ({benchutil.usable_cores()} "
      f"cores).\n")
  path = benchutil.write_results(
      benchutil.platform_name("optim"), "Hand-written optimizers vs optax",
      body, benchutil.environment(["optax"]))
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
