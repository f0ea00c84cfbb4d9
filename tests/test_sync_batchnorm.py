"""Synchronized batch norm is flax.linen.BatchNorm on 8 (forced) CPU devices.

Notes 004 "SyncBatchNorm": with data parallelism each device normalises by
its own slice's statistics unless they are synchronized. In JAX either

* ``nn.BatchNorm(axis_name="batch")`` under ``jax.shard_map`` (``pmean`` of
  the per-device moments), or
* plain ``nn.BatchNorm`` under ``jit`` on a batch sharded over the devices
  (the compiler inserts the cross-device reduction),

computes the statistics of the whole batch. The device count is fixed when
JAX starts, so the check runs in a subprocess with
``--xla_force_host_platform_device_count=8``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

_SCRIPT = textwrap.dedent("""
    import json
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((8,), ("batch",))
    rng = np.random.default_rng(0)
    # Each device's slice has its own offset, so local statistics differ.
    x = (rng.standard_normal((32, 3, 3, 4)) +
         np.repeat(np.arange(8.0), 4)[:, None, None, None]).astype(np.float32)

    def stats(axis_name):
      # momentum=0: the running statistics after one step are the batch's.
      bn = nn.BatchNorm(use_running_average=False, momentum=0.0,
                        axis_name=axis_name)
      variables = bn.init(jax.random.key(0), x[:4])
      def f(x):
        y, state = bn.apply(variables, x, mutable=["batch_stats"])
        s = state["batch_stats"]
        return y, s["mean"][None], s["var"][None]
      return f

    out = {}
    sharded = jax.device_put(x, NamedSharding(mesh, P("batch")))
    local = jax.jit(jax.shard_map(stats(None), mesh=mesh, in_specs=P("batch"),
                                  out_specs=P("batch")))
    y, mean, var = local(sharded)
    out["local_mean"], out["local_var"] = mean.tolist(), var.tolist()

    synced = jax.jit(jax.shard_map(stats("batch"), mesh=mesh,
                                   in_specs=P("batch"), out_specs=P("batch")))
    y, mean, var = synced(sharded)
    out["sync_mean"], out["sync_var"], out["sync_y"] = (
        mean.tolist(), var.tolist(), np.asarray(y).tolist())

    y, mean, var = jax.jit(stats(None))(sharded)
    out["gspmd_mean"], out["gspmd_var"], out["gspmd_y"] = (
        mean.tolist(), var.tolist(), np.asarray(y).tolist())
    out["gspmd_devices"] = len(sharded.sharding.device_set)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def results():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env,
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  return {k: np.asarray(v) for k, v in out.items()}


def _reference(rng_seed=0):
  """The same batch and its whole-batch statistics in float64."""
  rng = np.random.default_rng(rng_seed)
  x = rng.standard_normal((32, 3, 3, 4)) + np.repeat(
      np.arange(8.0), 4)[:, None, None, None]
  mean = x.mean(axis=(0, 1, 2))
  var = x.var(axis=(0, 1, 2))  # biased, as BatchNorm normalises
  return x, mean, var


def test_per_device_statistics_differ(results):
  x, mean, _ = _reference()
  local = results["local_mean"]  # [8, C]
  assert local.shape == (8, 4)
  np.testing.assert_allclose(local, x.reshape(8, -1, 4).mean(axis=1),
                             atol=1e-5)
  assert np.ptp(local[:, 0]) > 6.0  # slices differ by their offsets
  assert np.abs(local - mean).max() > 3.0


@pytest.mark.parametrize("mode", ["sync", "gspmd"])
def test_synchronized_statistics_equal_global_batch(results, mode):
  x, mean, var = _reference()
  # float32 moments of 288 values of magnitude <= 10: 1e-6 relative.
  # shard_map returns one copy per device ([8, C]); jit one copy ([1, C]).
  for name, want in (("mean", mean), ("var", var)):
    got = results[f"{mode}_{name}"].reshape(-1, 4)
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape),
                               rtol=1e-6, atol=1e-6)
  y_ref = (x - mean) / np.sqrt(var + 1e-5)
  np.testing.assert_allclose(results[f"{mode}_y"], y_ref, atol=1e-5)


def test_gspmd_batch_really_sharded(results):
  assert int(results["gspmd_devices"]) == 8
