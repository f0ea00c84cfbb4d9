"""Data parallelism on 8 forced CPU devices equals one device.

XLA reads ``--xla_force_host_platform_device_count`` once, when JAX starts,
so the check runs in a fresh Python subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent("""
    import json
    import jax
    import numpy as np
    from experiments import train as main_job
    from jaxdl import optim, train
    from jaxdl.nn import ToyNet

    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    labels = (np.arange(64) % 10).astype(np.int32)
    images = np.clip(labels[:, None, None, None] * 25
                     + rng.integers(-20, 20, (64, 32, 32, 3)), 0, 255)
    images = images.astype(np.uint8)
    state = train.create_train_state(
        jax.random.key(0), ToyNet(), optim.sgd(0.01, momentum=0.9),
        np.zeros((1, 32, 32, 3), np.float32))
    runs = {}
    for name, mesh in (("one", train.data_mesh(jax.devices()[:1])),
                       ("eight", train.data_mesh())):
      runs[name] = train.fit(state, images, labels, epochs=2, batch_size=16,
                             test_images=images[:20], test_labels=labels[:20],
                             mesh=mesh)
    one, eight = runs["one"], runs["eight"]
    # The 8-device epoch really splits the batch: gradients are all-reduced.
    sharded = train.data_mesh()
    hlo = train._train_epoch_jit.lower(
        jax.device_put(state, jax.NamedSharding(sharded, jax.P())),
        images, labels, batch_size=16, preprocess=train.data.normalize,
        sharding=jax.NamedSharding(sharded, jax.P("data"))).compile().as_text()
    leaves = jax.tree.leaves(eight.state.params)
    print(json.dumps({
        "steps": [int(one.state.step), int(eight.state.step)],
        "devices_of_params": len(leaves[0].sharding.device_set),
        "all_reduce": "all-reduce" in hlo,
        "params_one": [np.asarray(x).tolist() for x in
                       jax.tree.leaves(one.state.params)],
        "params_eight": [np.asarray(x).tolist() for x in leaves],
        "loss_one": one.history["step_loss"],
        "loss_eight": eight.history["step_loss"],
        "logits": [np.asarray(one.test_logits).tolist(),
                   np.asarray(eight.test_logits).tolist()],
        # The main job's mesh for batch sizes 4, 16, 6 and 7.
        "main_job_devices": [main_job.data_parallel_mesh(b).devices.size
                             for b in (4, 16, 6, 7)],
    }))
""")


def test_eight_cpu_devices_match_one_device():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=root,
                        capture_output=True, text=True, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out["steps"] == [8, 8]  # 2 epochs x 64 / 16.
  assert out["devices_of_params"] == 8  # Replicated parameters.
  assert out["all_reduce"]
  import numpy as np  # pylint: disable=g-import-not-at-top
  # float32; only the order of the gradient sums differs (per-device partial
  # sums, then an all-reduce): rtol 1e-5 as required, atol 1e-7 for zeros.
  for one, eight in zip(out["params_one"], out["params_eight"]):
    np.testing.assert_allclose(eight, one, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out["loss_eight"], out["loss_one"], rtol=1e-5)
  np.testing.assert_allclose(out["logits"][1], out["logits"][0], rtol=1e-5,
                             atol=1e-6)
  # The tutorial's batch of 4 ran on no device count: fit needs a multiple.
  assert out["main_job_devices"] == [4, 8, 6, 7]


def _two_processes(script: str, *args: str) -> list[dict]:
  """Runs ``script`` as process 0 and 1 of a two-process CPU cluster (one
  device each, gloo collectives) and as a single process ("single"); returns
  the JSON each printed last."""
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

  def start(*argv):
    return subprocess.Popen(
        [sys.executable, "-c", script, *argv, *args], env=env, cwd=root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

  procs = [start(str(port), str(i)) for i in range(2)] + [start("single")]
  outputs = []
  for proc in procs:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    outputs.append(json.loads(out.strip().splitlines()[-1]))
  return outputs


# argv: "<port> <process id>" for one of two processes, or "single"; then
# the CIFAR folder and the workdir root.
_MAIN_JOB_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import jax
    if sys.argv[1] != "single":
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
      jax.distributed.initialize(f"localhost:{sys.argv[1]}", num_processes=2,
                                 process_id=int(sys.argv[2]))
      assert jax.process_count() == 2 and jax.device_count() == 2
    from experiments import train as main_job
    workdir = os.path.join(sys.argv[-1],
                           "single" if sys.argv[1] == "single" else "two")
    out = main_job.main(["--dataset", "cifar10", "--data-dir", sys.argv[-2],
                         "--epochs", "1", "--batch-size", "8", "--workdir",
                         workdir, "--no-progress"])
    print(json.dumps({"loss": out["history"]["step_loss"],
                      "accuracy": float(out["results"]["accuracy"])}))
""")


def test_main_job_on_two_processes(tmp_path):
  """The main job with --distributed's setup (two CPU processes of one
  device each): ``fit`` places the state, created on one local device, on
  the global mesh through the host (device_put refused it); one process
  moves the old checkpoints and writes the files of the shared workdir; the
  test logits are gathered from both hosts for the report (fetching them
  raised); and the run equals a single process."""
  from tests.test_data import write_cifar  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  folder = write_cifar(str(tmp_path / "data"), np.random.default_rng(0), n=8)
  stale = tmp_path / "runs" / "two" / "checkpoints" / "7"
  stale.mkdir(parents=True)  # an old run's (fake) checkpoint
  two, other, single = _two_processes(_MAIN_JOB_SCRIPT, folder,
                                      str(tmp_path / "runs"))
  assert two["loss"] == other["loss"]
  np.testing.assert_allclose(two["loss"], single["loss"], rtol=1e-5)
  assert two["accuracy"] == single["accuracy"]
  workdir = tmp_path / "runs" / "two"
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == [
      "1", "run.json"]
  assert not (workdir / "checkpoints.replaced").exists()
  assert "devices: 2 x cpu" in (workdir / "report.md").read_text()
