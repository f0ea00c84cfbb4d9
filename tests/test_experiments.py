"""Helpers of the experiments scripts whose logic decides what a table says."""

import re

import numpy as np

from experiments import benchutil
from experiments.optimizer_paths import best_run, steps_to_tolerance


def test_steps_to_tolerance_counts_from_where_the_loss_stays_below():
  losses = np.array([
      [5.0, 0.5, 0.1, 2.0, 0.1, 0.1],  # dips, leaves, comes back at step 4
      [0.1] * 6,  # below from the start
      [5.0, 0.1, 5.0, 5.0, 5.0, 5.0],  # dips once, ends above
      [5.0, 4.0, 3.0, 2.0, 1.0, 0.1],  # 1.0 is not below a tolerance of 1
      [np.nan] * 6,  # diverged
  ])
  np.testing.assert_array_equal(steps_to_tolerance(losses, 1.0),
                                [4, 0, -1, 5, -1])


def test_best_run_prefers_staying_below_then_the_lower_final_loss():
  # Run 0 dips first but leaves again; runs 1 and 2 stay from step 2, run 2
  # ends lower.
  losses = np.array([[5.0, 0.5, 5.0, 5.0], [5.0, 5.0, 0.5, 0.3],
                     [5.0, 5.0, 0.5, 0.2]])
  assert best_run(losses, 1.0) == 2
  # None stays below: the lowest final loss, NaN never.
  losses = np.array([[5.0, 3.0], [5.0, np.nan], [5.0, 2.0]])
  assert best_run(losses, 1.0) == 2


def test_environment_names_the_cpu():
  cpu = benchutil.environment()["cpu"]
  assert re.fullmatch(r".+, \d+ logical cores usable of \d+", cpu), cpu


def test_bench_optim_counts_tuple_shaped_instructions():
  """Multi-output fusions and loops have tuple result types, which the
  instruction pattern skipped; the output-packing tuple is left out."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from experiments import bench_optim  # pylint: disable=g-import-not-at-top
  loop = jax.jit(lambda x: jax.lax.fori_loop(
      0, 3, lambda i, c: (c[0] * 2, c[1] + 1), (x, x)))
  compiled = loop.lower(jnp.ones(4)).compile()
  counted = bench_optim._instructions(compiled)  # pylint: disable=protected-access
  assert any(key.startswith("(") and key.endswith(" while")
             for key in counted), counted
  assert not any(key.endswith(" tuple") for key in counted)
  defined = re.findall(r"^\s*(?:ROOT\s+)?%\S+\s*=\s*.*?\s([\w-]+)\(",
                       compiled.as_text(), re.M)
  assert sum(counted.values()) == sum(op != "tuple" for op in defined)


def test_platform_name_keeps_off_the_gpu_benchmarks_tables(monkeypatch):
  """On a GPU, bench_nms / bench_train wrote ``nms_gpu`` / ``train_gpu``:
  the files of bench_nms_gpu / bench_train_gpu, over each other's table."""
  import jax  # pylint: disable=g-import-not-at-top

  class _Device:
    platform = "cpu"

  monkeypatch.setattr(jax, "devices", lambda *args: [_Device()])
  assert benchutil.platform_name("nms") == "nms"  # The CPU tables.
  _Device.platform = "gpu"
  for name in ("nms", "train"):
    assert benchutil.platform_name(name) not in ("nms_gpu", "train_gpu")
    assert benchutil.platform_name(name) != name
