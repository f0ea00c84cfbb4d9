"""Shared helpers for the ``experiments/bench_*.py`` scripts.

Every benchmark times jaxdl and its peers in one process on the same inputs,
after compilation, and writes a markdown table to ``experiments/results/``,
or to the folder that the environment variable ``JAXDL_RESULTS_DIR`` names
(tables from another machine, kept beside the main ones).
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import jax

RESULTS_DIR = os.environ.get("JAXDL_RESULTS_DIR") or os.path.join(
    os.path.dirname(__file__), "results")


def cpu_model() -> str:
  """The CPU's model name with its family and model numbers (a virtual
  machine's name can be as generic as "Intel(R) Xeon(R) Processor"), from
  ``/proc/cpuinfo`` on Linux; else the platform's processor or machine."""
  fields = {}
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if not key.strip():
          break  # The first processor's block ends at a blank line.
        fields.setdefault(key.strip(), value.strip())
  except OSError:
    pass
  if "model name" in fields:
    return (f"{fields['model name']} (family {fields.get('cpu family', '?')},"
            f" model {fields.get('model', '?')})")
  return platform.processor() or platform.machine()


def usable_cores() -> int:
  """The cores this process may run on (``taskset`` or a container can
  allow fewer than the machine has)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not on Linux.
    return os.cpu_count() or 1


def block(result: Any) -> Any:
  """Waits for every JAX array in ``result``; other leaves pass through."""
  for leaf in jax.tree.leaves(result):
    if hasattr(leaf, "block_until_ready"):
      leaf.block_until_ready()
  return result


def median_time(fn: Callable[[], Any], *, repeats: int = 7,
                warmup: int = 1, min_time: float = 0.0) -> float:
  """Median wall time in seconds of ``fn()`` over ``repeats`` runs.

  ``warmup`` untimed calls run first (compilation for jitted functions).
  JAX results are blocked on, so asynchronous dispatch is timed in full.
  With ``min_time``, repeats continue until that many seconds have passed.
  """
  for _ in range(warmup):
    block(fn())
  times = []
  start_all = time.perf_counter()
  while len(times) < repeats or time.perf_counter() - start_all < min_time:
    start = time.perf_counter()
    block(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def fastest_of_rounds(runs: Sequence[Callable[[], float]], *,
                      rounds: int = 3) -> list[float]:
  """Each run's smallest result (seconds) over ``rounds`` rounds in which
  the runs take turns, so that a slow stretch of a shared machine hits
  every contender rather than one."""
  best = [math.inf] * len(runs)
  for _ in range(rounds):
    for i, run in enumerate(runs):
      best[i] = min(best[i], run())
  return best


def first_call_time(fn: Callable[[], Any]) -> float:
  """Wall time of one call (for compile time: call it on a fresh jit)."""
  start = time.perf_counter()
  block(fn())
  return time.perf_counter() - start


def compile_time(fn: Callable[[], Any]) -> float:
  """Compile time of a fresh jit: its first call less a second (steady)
  call, which the first also ran once."""
  first = first_call_time(fn)
  return max(first - first_call_time(fn), 0.0)


def timed_in_turns(*fns: Callable[[], Any], budget: float = 3.0,
                   rounds: int = 3) -> list[float]:
  """Median seconds per call of each of ``fns``, timed in turn over
  ``rounds`` rounds; each fn's fastest round counts. Taking turns spreads a
  burst of load on the shared machine over every contender of a row instead
  of one. A round times a fn for about ``budget / (2 * rounds)`` seconds (at
  least 3 calls; 1 for calls longer than that); a call slower than
  ``budget / 2`` is timed once. Jitted fns must be compiled already."""
  share = budget / (2 * rounds)

  def one_round(fn):
    first = first_call_time(fn)
    if first > budget / 2:
      return lambda: first
    return lambda: median_time(
        fn, repeats=3 if first < share else 1, warmup=0, min_time=share)

  return fastest_of_rounds([one_round(fn) for fn in fns], rounds=rounds)


def matmul_flops_per_second(n: int = 2048) -> float:
  """Measured float32 FLOP/s of an ``n x n`` matmul on the default device:
  the practical peak that achieved rates are compared with."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  return 2 * n**3 / median_time(lambda: matmul(a, a), repeats=9, min_time=1.0)


def torch_on_gpu(script: str) -> Any:
  """The ``torch`` module, where JAX's default backend is a GPU and PyTorch
  has CUDA (the ``*_gpu`` benchmarks); else ``SystemExit`` that says which
  of the two is missing."""
  backend = jax.default_backend()
  if backend != "gpu":
    raise SystemExit(f"{script} needs a GPU that JAX sees; JAX's default "
                     f"backend is {backend!r} ({jax.devices()}).")
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise SystemExit(f"{script} needs PyTorch with CUDA: {error}.") from error
  if not torch.cuda.is_available():
    raise SystemExit(f"{script} needs PyTorch with CUDA; torch "
                     f"{torch.__version__} sees no CUDA device.")
  return torch


def _version(package: str) -> str | None:
  try:
    return metadata.version(package)
  except metadata.PackageNotFoundError:
    return None


def environment(extra_packages: Sequence[str] = ()) -> dict[str, str]:
  """Device, CPU and package versions to print under every table."""
  device = jax.devices()[0]
  info = {
      "date": datetime.date.today().isoformat(),
      "device": f"{device.platform}: {device.device_kind}",
      "cpu": f"{cpu_model()}, {usable_cores()} logical cores usable of "
             f"{os.cpu_count()}",
      "python": platform.python_version(),
      # Other work on the machine inflates absolute times; ratios of peers
      # timed back to back in one run are the robust figures.
      "load average (1 min) when written": f"{os.getloadavg()[0]:.2f}",
  }
  for package in ("jax", "jaxlib", "numpy", *extra_packages):
    version = _version(package)
    if version is not None:
      info[package] = version
  return info


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
                   float_format: str = ".4g") -> str:
  """A GitHub markdown table; floats are printed with ``float_format`` (by
  default 4 significant digits)."""

  def cell(value: Any) -> str:
    if isinstance(value, float):
      return format(value, float_format)
    return str(value)

  lines = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" for _ in headers) + "|"]
  lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


def format_ms(seconds: float) -> str:
  return f"{seconds * 1e3:.3g} ms"


def write_results(name: str, title: str, body: str,
                  env: dict[str, str]) -> str:
  """Writes ``experiments/results/{name}.md`` and returns its path."""
  os.makedirs(RESULTS_DIR, exist_ok=True)
  env_lines = "\n".join(f"- {k}: {v}" for k, v in env.items())
  text = f"# {title}\n\n{body.strip()}\n\n## Environment\n\n{env_lines}\n"
  path = os.path.join(RESULTS_DIR, f"{name}.md")
  with open(path, "w") as f:
    f.write(text)
  return path


def platform_name(name: str) -> str:
  """``name`` on CPU, ``name_on_<platform>`` on an accelerator, so that a GPU
  run writes beside the CPU tables instead of over them, and not over the
  ``<name>_gpu`` tables of the dedicated GPU benchmarks (``nms_gpu``,
  ``train_gpu``) either."""
  kind = jax.devices()[0].platform
  return name if kind == "cpu" else f"{name}_on_{kind}"


def write_and_print(name: str, title: str, body: str,
                    env: dict[str, str]) -> str:
  """:func:`write_results`, then prints the file written; returns its path."""
  path = write_results(name, title, body, env)
  with open(path) as f:
    print(f.read())
  return path
