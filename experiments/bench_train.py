"""Benchmark: jaxdl's jitted training epoch vs the notes' PyTorch loop.

Same model (the tutorial's Net / jaxdl's ToyNet, 62,006 parameters), same
loss (cross-entropy), same optimizer (SGD, lr 0.001, momentum 0.9), same
batch size and number of steps, on random data of CIFAR-10's shape
(uint8 32x32x3, 10 classes). jaxdl runs ``train.fit``: each epoch one
jitted ``lax.scan`` that also shuffles, gathers and normalises on device;
its epochs are timed as fit's history reports them, and whole one-epoch
calls (setup included) separately. PyTorch
runs the notes' loop (``zero_grad``, forward, loss, ``backward``, ``step``,
``loss.item()``) in two forms: fed by a shuffling ``DataLoader`` as in the
notes (``num_workers=0``; data already normalised, torchvision transforms
are not installed) and, the fastest form, on batches sliced from one
pre-normalised tensor. The two sides take turns over ``ROUNDS`` rounds.
The speed-up column divides the faster PyTorch time by jaxdl's. Then the
default main job (``python -m experiments.train``,
digits) is timed end to end as a subprocess.

Run: ``python -m experiments.bench_train`` (writes
``experiments/results/train.md``).
"""

from __future__ import annotations

import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import jax
import numpy as np

from experiments import benchutil
from jaxdl import flops, optim, train
from jaxdl.nn import ToyNet

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LR, MOMENTUM = 0.001, 0.9
# (batch size, steps): the tutorial's batch size 4, and a large batch.
CASES = ((4, 250), (128, 30))
REPEATS = 5
TORCH_REPEATS = 3  # per thread setting and data path
ROUNDS = 3  # jaxdl and PyTorch take turns; each one's fastest round counts.
# jaxdl is also timed on a ("data",) mesh of this many CPU devices (one per
# core), in a subprocess, since the device count is fixed when JAX starts.
MESH_DEVICES = 2


def _cifar_like(rng: np.random.Generator, n: int):
  images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
  return images, rng.integers(0, 10, n).astype(np.int32)


def _initial_state() -> train.TrainState:
  """ToyNet and the tutorial's SGD, as every jaxdl measurement starts."""
  return train.create_train_state(
      jax.random.key(0), ToyNet(), optim.sgd(LR, momentum=MOMENTUM),
      np.zeros((1, 32, 32, 3), np.float32))


def jaxdl_epochs(images: np.ndarray, labels: np.ndarray,
                 batch_size: int) -> Callable[[], float]:
  """A function that runs ``fit(epochs=REPEATS)`` and returns the median
  seconds of its epochs as fit's history reports them (the jitted epoch, from
  the call to the results being ready). A ``fit`` call's setup before its
  first epoch is not in them (see :func:`time_fit_calls`)."""
  state = _initial_state()

  def run() -> float:
    history = train.fit(state, images, labels, epochs=REPEATS,
                        batch_size=batch_size).history
    return statistics.median(history["epoch_seconds"])

  return run


def time_fit_calls(images: np.ndarray, labels: np.ndarray,
                   batch_size: int) -> tuple[float, float]:
  """Seconds of whole one-epoch ``fit`` calls, setup included (copying the
  dataset to the device, placing the state, lowering, the compile-cache
  lookup): (median of REPEATS calls, the first call incl. compilation)."""
  state = _initial_state()
  run = lambda: train.fit(state, images, labels, epochs=1,
                          batch_size=batch_size).state
  first_call = benchutil.first_call_time(run)
  return benchutil.median_time(run, repeats=REPEATS, warmup=1), first_call


def fastest_rounds(contenders: dict[str, Callable[[], float]]
                   ) -> dict[str, float]:
  """:func:`benchutil.fastest_of_rounds` over ROUNDS rounds, by name."""
  return dict(zip(contenders, benchutil.fastest_of_rounds(
      list(contenders.values()), rounds=ROUNDS)))


def case_data(batch_size: int, steps: int):
  """The random CIFAR-shaped data of one case (same in every process)."""
  return _cifar_like(np.random.default_rng(batch_size), batch_size * steps)


def time_jaxdl_on_mesh(batch_size: int, steps: int,
                       devices: int = MESH_DEVICES) -> float:
  """Seconds of one epoch as :func:`jaxdl_epochs`, batches sharded over
  ``devices`` forced CPU devices (a subprocess running this module's
  ``--mesh-worker``)."""
  env = dict(os.environ, XLA_FLAGS=" ".join(
      [os.environ.get("XLA_FLAGS", ""),
       f"--xla_force_host_platform_device_count={devices}"]))
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.bench_train", "--mesh-worker",
       str(batch_size), str(steps)], cwd=_ROOT, env=env, capture_output=True,
      text=True, check=True)
  return float(proc.stdout.strip().splitlines()[-1])


def step_flops(batch_size: int) -> tuple[float, float]:
  """XLA's FLOPs of one ToyNet train_step: as written, and as ``fit`` runs
  it on CPU (with jaxdl._xla_cpu's rewrites)."""
  state = _initial_state()
  batch = (np.zeros((batch_size, 32, 32, 3), np.float32),
           np.zeros((batch_size,), np.int32))
  cpu_step = train._for_cpu(train.train_step)  # pylint: disable=protected-access
  return (flops.xla_cost(train.train_step, state, *batch).flops,
          flops.xla_cost(cpu_step, state, *batch).flops)


def _mesh_worker(batch_size: int, steps: int) -> None:
  """Prints the epoch seconds of :func:`jaxdl_epochs` on all devices
  (fastest of ROUNDS)."""
  if jax.device_count() < 2:
    raise SystemExit("--mesh-worker needs several devices (XLA_FLAGS).")
  run = jaxdl_epochs(*case_data(batch_size, steps), batch_size)
  print(fastest_rounds({"jaxdl": run})["jaxdl"])


def _torch_net(torch):
  nn, functional = torch.nn, torch.nn.functional

  class Net(nn.Module):  # The notes' network, unchanged.

    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(3, 6, 5)
      self.pool = nn.MaxPool2d(2, 2)
      self.conv2 = nn.Conv2d(6, 16, 5)
      self.fc1 = nn.Linear(16 * 5 * 5, 120)
      self.fc2 = nn.Linear(120, 84)
      self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
      x = self.pool(functional.relu(self.conv1(x)))
      x = self.pool(functional.relu(self.conv2(x)))
      x = torch.flatten(x, 1)
      x = functional.relu(self.fc1(x))
      x = functional.relu(self.fc2(x))
      return self.fc3(x)

  return Net()


def torch_epochs(images: np.ndarray, labels: np.ndarray,
                 batch_size: int) -> dict[tuple[str, int], Callable[[], float]]:
  """Per (data path, torch threads): a function returning the median seconds
  of TORCH_REPEATS epochs of the notes' loop. Threads are 1 and torch's
  default (on a shared 2-core machine, spinning OpenMP threads can make the
  default much slower); each setting runs one warm-up epoch here."""
  import torch  # pylint: disable=g-import-not-at-top
  loops = torch_loops(torch, images, labels, batch_size)

  default_threads = torch.get_num_threads()

  def with_threads(loop, threads, repeats=TORCH_REPEATS):
    def run() -> float:
      torch.set_num_threads(threads)
      try:
        return benchutil.median_time(loop, repeats=repeats, warmup=0)
      finally:
        torch.set_num_threads(default_threads)
    return run

  contenders = {}
  for threads in sorted({1, default_threads}):
    for path, loop in loops.items():
      with_threads(loop, threads, repeats=1)()  # Warm-up.
      contenders[path, threads] = with_threads(loop, threads)
  return contenders


def torch_loops(torch, images: np.ndarray, labels: np.ndarray,
                batch_size: int, device: str = "cpu"
                ) -> dict[str, Callable[[], float]]:
  """One epoch of the notes' loop per data path, as a function, with the
  model on ``device``. On a GPU, as in the tutorial's GPU section, the
  ``DataLoader``'s batches are moved there each step; the sliced tensor
  lives there."""
  torch.manual_seed(0)
  # transforms.ToTensor + Normalize((0.5,)*3, (0.5,)*3), done once up front.
  x = torch.tensor(images).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(
      0.5).contiguous()
  y = torch.tensor(labels, dtype=torch.long)
  net = _torch_net(torch).to(device)
  criterion = torch.nn.CrossEntropyLoss()
  optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
  to_device = device != "cpu"

  def loop(batches):
    running_loss = 0.0
    for inputs, targets in batches:
      if to_device:
        inputs, targets = inputs.to(device), targets.to(device)
      optimizer.zero_grad()
      loss = criterion(net(inputs), targets)
      loss.backward()
      optimizer.step()
      running_loss += loss.item()
    return running_loss

  loader = torch.utils.data.DataLoader(
      torch.utils.data.TensorDataset(x, y), batch_size=batch_size,
      shuffle=True, num_workers=0)
  x_there, y_there = x.to(device), y.to(device)

  def sliced():
    order = torch.randperm(len(y), device=device)
    xs, ys = x_there[order], y_there[order]
    return ((xs[i:i + batch_size], ys[i:i + batch_size])
            for i in range(0, len(y), batch_size))

  return {"dataloader": lambda: loop(loader),
          "tensors": lambda: loop(sliced())}


def time_main_job() -> tuple[float, str]:
  """Wall time and final line of the default ``python -m experiments.train``."""
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--workdir", workdir,
         "--no-progress"], cwd=_ROOT, capture_output=True, text=True,
        check=True)
    wall = time.perf_counter() - start
  return wall, proc.stdout.strip().splitlines()[-1]


def main() -> None:
  rows, best_torch_step = [], {}
  try:
    import torch  # pylint: disable=g-import-not-at-top
    torch_threads = torch.get_num_threads()
  except ImportError:
    torch, torch_threads = None, "n/a"
  for batch_size, steps in CASES:
    images, labels = case_data(batch_size, steps)
    call_time, first_time = time_fit_calls(images, labels, batch_size)
    mesh_time = time_jaxdl_on_mesh(batch_size, steps)
    contenders = {"jaxdl": jaxdl_epochs(images, labels, batch_size)}
    if torch is not None:
      contenders.update(torch_epochs(images, labels, batch_size))
    fastest = fastest_rounds(contenders)
    jax_time = fastest.pop("jaxdl")
    torch_times = {}  # Per data path, the faster thread setting.
    for (path, _), seconds in fastest.items():
      torch_times[path] = min(seconds, torch_times.get(path, math.inf))
    row = [batch_size, steps, benchutil.format_ms(jax_time / steps),
           benchutil.format_ms(mesh_time / steps),
           benchutil.format_ms(call_time / steps), f"{first_time:.2f} s"]
    if not torch_times:
      row += ["n/a", "n/a", "n/a", "n/a"]
    else:
      best = min(torch_times.values())
      best_torch_step[batch_size] = best / steps
      row += [benchutil.format_ms(torch_times["dataloader"] / steps),
              benchutil.format_ms(torch_times["tensors"] / steps),
              f"{best / jax_time:.2f}x", f"{best / mesh_time:.2f}x"]
    row.append(f"{batch_size * steps / min(jax_time, mesh_time):,.0f}")
    rows.append(row)
    print(row, flush=True)

  table = benchutil.markdown_table(
      ["batch size", "steps", "jaxdl per step (1 device)",
       f"jaxdl per step ({MESH_DEVICES} devices)",
       "jaxdl per step, whole one-epoch fit call (1 device)",
       "jaxdl first epoch (incl. compile, 1 device)",
       "torch per step (DataLoader)", "torch per step (tensors)",
       "speed-up vs faster torch (1 device)",
       f"speed-up vs faster torch ({MESH_DEVICES} devices)",
       "jaxdl images/s (faster)"], rows)
  small = CASES[0][0]
  counts = {b: step_flops(b) for b, _ in CASES}
  flops_note = " and\n".join(
      f"{plain / 1e6:.1f} MFLOP per step at batch size {b} "
      f"({fast / 1e6:.1f} MFLOP as rewritten)"
      for b, (plain, fast) in counts.items())
  needed = (counts[small][1] / (best_torch_step[small] / 5) / 1e9
            if small in best_torch_step else float("nan"))
  peak = benchutil.matmul_flops_per_second() / 1e9
  wall, last_line = time_main_job()
  accuracy = float(re.search(r"test accuracy ([0-9.]+)", last_line).group(1))
  print(f"main job: {wall:.1f} s, {last_line}", flush=True)
  body = f"""
One training epoch of the notes' CIFAR-10 tutorial (ToyNet / ``Net``,
cross-entropy, SGD lr {LR} momentum {MOMENTUM}) on random CIFAR-shaped data,
same batch size and number of steps on both sides, in one process after
compilation. A round times the median of {REPEATS} epochs of jaxdl and of
{TORCH_REPEATS} epochs of every PyTorch setting, in turn; of {ROUNDS} rounds,
each one's fastest counts, so that a slow stretch of the shared machine
hits both sides. jaxdl: the epochs of one
``train.fit(epochs={REPEATS})`` call as its history reports them (shuffle,
gather, normalise and update inside one jitted ``lax.scan``, from the call
to the results being ready). The setup before the loop is left out on both
sides: for PyTorch, the tensors, the model, the optimizer and the
``DataLoader``; for jaxdl, what ``fit`` does once per call (copy the
dataset to the device, place the state, lower, look the compiled epoch up in
JAX's cache), which the "whole one-epoch fit call" column includes.
PyTorch: the notes' loop with ``loss.item()`` every step, fed by a
shuffling ``DataLoader`` (num_workers=0) or by slices of one tensor, each
the faster of 1 and {torch_threads} (default) torch threads.
jaxdl ({MESH_DEVICES} devices): the same ``fit`` with every batch sharded over a
``("data",)`` mesh of {MESH_DEVICES} CPU devices, one per core
(``XLA_FLAGS=--xla_force_host_platform_device_count={MESH_DEVICES}``, set in a
subprocess because the device count is fixed when JAX starts): each device
runs its share of the batch on its own thread, at the price of a
cross-device gradient sum every step.

{table}

Targets: at least 5x faster than PyTorch at batch size 4, faster at 128.
Inside ``lax.scan`` XLA:CPU leaves convolutions and max-pool gradients on
slow paths; on CPU ``jaxdl.train`` rewrites them (``jaxdl._xla_cpu``:
canonical NHWC/HWIO convolution layout, tiled pooling whose forward max
and gradient share one max/first-argmax reduce) and computes the
narrow stride-1 convolutions (ToyNet's 3 -> 6 and 6 -> 16 channels) on 2x2
space-to-depth blocks, rewritten before autodiff so that their gradients
are too: 4x wider contractions for 1.44x the multiply-adds. The bias, relu
and 2x2 pooling after those convolutions work on the blocks as well, and at
batch sizes up to 16 the dense layers' weight gradients are sums of outer
products, which XLA fuses into the SGD update. XLA's cost analysis counts
{flops_note}.
On CPU ``fit`` also compiles its epochs without YNNPACK's convolutions
(``jaxdl._xla_cpu.compile``), which ran these convolutions several times
slower than XLA:CPU's own kernels. At batch size 4, 5x PyTorch means the
whole step, some 80 small XLA kernels, sustaining {needed:.0f} GFLOP/s, where
a 2048 x 2048 matmul reaches {peak:.0f} GFLOP/s on the same cores.

## The default main job

``python -m experiments.train`` (ToyNet on the embedded digits, 15 epochs,
SGD lr 0.01 momentum 0.9, batch size 16) as a subprocess, from process start
(imports, data, compilation, training, evaluation, FLOPs table, plots,
checkpoints and report) to exit:

| wall time | test accuracy | target |
|---|---|---|
| {wall:.1f} s | {accuracy:.4f} | >= 0.97 in < 120 s |

Output: `{last_line}`
"""
  env = benchutil.environment(["flax", "optax", "torch", "orbax-checkpoint"])
  env["load average at end"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
  benchutil.write_and_print(
      benchutil.platform_name("train"),
      "Training loop: jaxdl vs the notes' PyTorch loop", body, env)


if __name__ == "__main__":
  if sys.argv[1:2] == ["--mesh-worker"]:
    _mesh_worker(int(sys.argv[2]), int(sys.argv[3]))
  else:
    main()
