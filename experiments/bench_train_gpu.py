"""Benchmark on a CUDA GPU: jaxdl's training epoch vs the notes' loop there.

The GPU half of the training benchmark (``experiments/bench_train.py`` is the
CPU half): the notes' ToyNet / ``Net``, cross-entropy and SGD (lr 0.001,
momentum 0.9) on random data of CIFAR-10's shape, same batch size and number
of steps on both sides. jaxdl: the epochs of one ``train.fit`` call as its
history reports them (one jitted ``lax.scan`` per epoch, data on the GPU).
PyTorch: the notes' loop with ``loss.item()`` every step and the model on
the GPU, fed as in the tutorial's GPU section by a ``DataLoader`` whose
batches are moved to the GPU each step, or by slices of one tensor already
there. The two take turns over ``bench_train.ROUNDS`` rounds; each one's
fastest counts. The figure of interest is throughput (images/s), so the
cases go up to large batches.

Run ``python -m experiments.bench_train_gpu`` where JAX and PyTorch both see
a CUDA GPU; writes ``experiments/results/train_gpu.md``.
"""

from __future__ import annotations

from experiments import benchutil
from experiments.bench_train import (LR, MOMENTUM, REPEATS, ROUNDS,
                                     TORCH_REPEATS, case_data, fastest_rounds,
                                     jaxdl_epochs, time_fit_calls, torch_loops)

# (batch size, steps): the tutorial's batch size 4, then larger batches.
CASES = ((4, 250), (128, 100), (1024, 40))
_SCRIPT = "experiments.bench_train_gpu"


def main() -> None:
  torch = benchutil.torch_on_gpu(_SCRIPT)
  torch.backends.cudnn.benchmark = True  # PyTorch's fastest setting.
  env = benchutil.environment(["flax", "optax", "torch"])
  env["torch device"] = torch.cuda.get_device_name(0)
  title = (f"Training loop on {env['torch device']}: jaxdl vs the notes' "
           "PyTorch loop")
  rows, path = [], None
  for batch_size, steps in CASES:
    rows.append(compare_case(torch, batch_size, steps))
    print(rows[-1], flush=True)
    # Rewritten after every case: a run cut short keeps the finished rows.
    path = benchutil.write_results("train_gpu", title, _body(env, rows), env)
  with open(path) as f:
    print(f.read())


def compare_case(torch, batch_size: int, steps: int) -> list:
  """One table row: jaxdl's epoch and the notes' loop on the GPU."""
  images, labels = case_data(batch_size, steps)
  call_time, first_time = time_fit_calls(images, labels, batch_size)
  contenders = {"jaxdl": jaxdl_epochs(images, labels, batch_size)}
  for path, loop in torch_loops(torch, images, labels, batch_size,
                                 device="cuda").items():
    loop()  # Warm-up: CUDA context, cuDNN's choice of algorithms.
    contenders[path] = lambda loop=loop: benchutil.median_time(
        loop, repeats=TORCH_REPEATS, warmup=0)
  fastest = fastest_rounds(contenders)
  jax_time = fastest.pop("jaxdl")
  torch_time = min(fastest.values())
  return [batch_size, steps, benchutil.format_ms(jax_time / steps),
          benchutil.format_ms(call_time / steps), f"{first_time:.2f} s",
          benchutil.format_ms(fastest["dataloader"] / steps),
          benchutil.format_ms(fastest["tensors"] / steps),
          f"{torch_time / jax_time:.2f}x",
          f"{batch_size * steps / jax_time:,.0f}",
          f"{batch_size * steps / torch_time:,.0f}"]


def _body(env: dict[str, str], rows: list[list]) -> str:
  table = benchutil.markdown_table(
      ["batch size", "steps", "jaxdl per step",
       "jaxdl per step, whole one-epoch fit call",
       "jaxdl first epoch (incl. compile)", "torch per step (DataLoader)",
       "torch per step (tensors on the GPU)", "speed-up vs faster torch",
       "jaxdl images/s", "faster torch images/s"], rows)
  return f"""
GPU ({env['device']}). One training epoch of the notes' CIFAR-10 tutorial
(ToyNet / ``Net``, cross-entropy, SGD lr {LR} momentum {MOMENTUM}) on random
CIFAR-shaped data, same batch size and steps on both sides, after
compilation. A round times the median of {REPEATS} epochs of jaxdl (one
``train.fit(epochs={REPEATS})`` call, as its history reports them) and of
{TORCH_REPEATS} epochs of each PyTorch loop, in turn; of {ROUNDS} rounds,
each one's fastest counts. PyTorch runs with
``torch.backends.cudnn.benchmark = True``.

{table}
"""


if __name__ == "__main__":
  main()
