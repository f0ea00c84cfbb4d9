"""The main job: the notes' CIFAR-10 tutorial ("构建Toy模型"), the JAX way.

The PyTorch tutorial trains ``Net`` with ``CrossEntropyLoss`` and
``SGD(lr=0.001, momentum=0.9)``, batch size 4, for 2 epochs (about 54% test
accuracy on CIFAR-10). This script runs the same experiment with jaxdl's own
data loading, loss, optimizers, metrics and FLOPs, each epoch one jitted
``lax.scan``, data-parallel over every device::

  python -m experiments.train                      # ToyNet on embedded digits
  python -m experiments.train --dataset cifar10 --data-dir ~/cifar-10-batches-py
  python -m experiments.train --model vit --optimizer adam --lr 1e-3
  python -m experiments.train --optimizer optax-adamw --epochs 5 --resume

Without a dataset download it trains on scikit-learn's digits (resized to
32x32x3). It writes to ``--workdir`` (default ``runs/<dataset>-<model>``):
``report.md``, ``curves.png``, ``roc.png``, ``pr.png``, ``confusion.png`` and
orbax checkpoints in ``checkpoints/`` (after every epoch, the newest 3 kept).
``--resume`` continues from the last one, with the settings recorded in
``checkpoints/run.json`` (a change is an error), and ends with the
parameters of an uninterrupted run; without it, a run replaces the old
checkpoints once it has saved its first. Batches are split over every
device; in one process whose device count does not divide the batch size
(the tutorial's batch of 4 on 8 devices), over the most devices that do.

Several hosts: start the same command on every host with ``--distributed``
(which calls ``jax.distributed.initialize()``; on a cluster manager such as
SLURM or Cloud TPU the coordinator is found automatically, otherwise set
``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``).
The mesh then spans every host's devices; the workdir must be shared, and
process 0 alone moves checkpoints and writes the settings, report and plots
(tested with two CPU processes on one machine against one process,
tests/test_train_multidevice.py).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import benchutil
from jaxdl import data, flops, metrics, optim, train
from jaxdl.nn import ResNeXtBlock, ToyNet, ViT

# Per-dataset defaults: the tutorial's on CIFAR-10; on digits, settings that
# reach >= 97% test accuracy in seconds on two CPU cores.
DEFAULTS = {
    "digits": {"epochs": 15, "batch_size": 16, "lr": 0.01},
    "cifar10": {"epochs": 2, "batch_size": 4, "lr": 0.001},
}
MODELS = ("toynet", "vit", "resnext")
OPTIMIZERS = ("sgd", "ema_momentum", "rmsprop", "adam")


class ResNeXtClassifier(nn.Module):
  """A small CIFAR classifier: conv stem, two ResNeXt blocks, pooled head.

  Attributes:
    num_classes: number of output logits.
  """
  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    x = nn.Conv(32, (3, 3), use_bias=False, name="stem")(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9,
                             name="stem_bn")(x))  # [B, 32, 32, 32]
    x = ResNeXtBlock(64, cardinality=8, group_width=4)(x, train=train)
    x = ResNeXtBlock(128, cardinality=8, group_width=8, strides=2)(
        x, train=train)  # [B, 16, 16, 128]
    return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)))


def make_model(name: str, num_classes: int) -> nn.Module:
  """ToyNet (the tutorial's Net), a small ViT or a small ResNeXt."""
  if name == "toynet":
    return ToyNet(num_classes=num_classes)
  if name == "vit":
    return ViT(patch_size=4, hidden_size=64, depth=4, num_heads=4,
               mlp_dim=128, num_classes=num_classes, dropout=0.1)
  if name == "resnext":
    return ResNeXtClassifier(num_classes=num_classes)
  raise ValueError(f"--model must be one of {MODELS}, got {name!r}.")


def make_optimizer(name: str, lr: float) -> optax.GradientTransformation:
  """jaxdl's hand-written optimizers, or any optax one as ``optax-<name>``."""
  if name == "sgd":
    return optim.sgd(lr, momentum=0.9)  # The tutorial's SGD.
  if name == "ema_momentum":
    return optim.ema_momentum(lr, beta=0.9)
  if name == "rmsprop":
    return optim.rmsprop(lr)
  if name == "adam":
    return optim.adam(lr)
  if name.startswith("optax-") and callable(getattr(optax, name[6:], None)):
    tx = _plain_optax(getattr(optax, name[6:]), lr)
    if tx is not None:
      return tx
  raise ValueError(f"--optimizer must be one of {OPTIMIZERS} or optax-<name> "
                   f"naming an optax optimizer whose update takes (grads, "
                   f"state, params) only, got {name!r}.")


def _plain_optax(make: Any, lr: float) -> optax.GradientTransformation | None:
  """``make(lr)`` if ``make`` takes a ``learning_rate`` first and gives a
  transformation that ``update(grads, state, params)`` drives and whose
  first two updates descend ``w**2`` (tried on two numbers); None for the rest
  of optax's callables (``lbfgs`` needs the loss, ``global_norm`` is no
  optimizer, ``scale``, ``clip`` and ``scale_by_rprop`` would climb: their
  updates are not negated)."""
  params = {"w": jnp.array([1.0, -2.0])}
  grads = {"w": 2 * params["w"]}
  try:
    if next(iter(inspect.signature(make).parameters), None) != (
        "learning_rate"):
      return None
    tx = make(lr)
    if not isinstance(tx, optax.GradientTransformation):
      return None
    state, descent = tx.init(params), 0.0
    for _ in range(2):  # rprop's first step is 0 (it needs a sign change)
      updates, state = tx.update(grads, state, params)
      descent += float(jnp.vdot(updates["w"], grads["w"]))
    if not descent < 0:
      return None
  except Exception:  # pylint: disable=broad-except
    return None
  return tx


def load_dataset(name: str, data_dir: str | None) -> data.Dataset:
  """``--dataset``: the embedded digits, or CIFAR-10 from ``data_dir``."""
  if name == "digits":
    return data.load_digits()
  if name == "cifar10":
    if data_dir is None:
      raise ValueError("--dataset cifar10 needs --data-dir (the "
                       "cifar-10-batches-py folder or the .tar.gz).")
    return data.load_cifar10(data_dir)
  raise ValueError(f"--dataset must be digits or cifar10, got {name!r}.")


# ------------------------------------------------------------------ metrics


def evaluate_predictions(logits: jax.Array, labels: np.ndarray,
                         num_classes: int) -> dict[str, Any]:
  """Test-set metrics from jaxdl.metrics (sklearn's definitions).

  Args:
    logits: ``[M, C]`` test logits.
    labels: ``[M]`` test labels.
    num_classes: ``C``.

  Returns:
    ``accuracy``; per class ``[C]``: ``precision``, ``recall``, ``f1``,
    ``support``, ``roc_auc``; ``macro_f1``, ``macro_roc_auc``; the ``[C, C]``
    ``confusion`` matrix; the one-vs-rest ``roc`` and ``pr`` curves.
  """
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  preds = jnp.argmax(probs, axis=-1)
  labels = jnp.asarray(labels)
  per_class = metrics.precision_recall_fscore(
      preds, labels, num_classes=num_classes)
  one_hot = [labels == c for c in range(num_classes)]
  return {
      "accuracy": float(jnp.mean(preds == labels)),
      "precision": np.asarray(per_class.precision),
      "recall": np.asarray(per_class.recall),
      "f1": np.asarray(per_class.fscore),
      "support": np.asarray(per_class.support),
      "macro_f1": float(metrics.precision_recall_fscore(
          preds, labels, num_classes=num_classes, average="macro").fscore),
      "roc_auc": np.asarray(metrics.multiclass_roc_auc(probs, labels,
                                                       average=None)),
      "macro_roc_auc": float(metrics.multiclass_roc_auc(probs, labels)),
      "confusion": np.asarray(metrics.confusion_matrix(
          preds, labels, num_classes=num_classes)),
      "roc": [metrics.roc_curve(probs[:, c], y) for c, y in enumerate(one_hot)],
      "pr": [metrics.precision_recall_curve(probs[:, c], y)
             for c, y in enumerate(one_hot)],
  }


# -------------------------------------------------------------------- plots


def _figure(path: str, draw) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig = draw(plt)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_history(path: str, history: dict[str, list[float]]) -> None:
  """Loss per step and per epoch, and accuracy per epoch, as a PNG."""
  def draw(plt):
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    steps = np.arange(1, len(history["step_loss"]) + 1)
    steps_per_epoch = len(steps) / len(history["epoch"])
    ax_loss.plot(steps / steps_per_epoch, history["step_loss"], lw=0.5,
                 alpha=0.4, label="train (per step)")
    ax_loss.plot(history["epoch"], history["train_loss"], "o-", label="train")
    ax_acc.plot(history["epoch"], history["train_accuracy"], "o-",
                label="train")
    if "test_loss" in history:
      ax_loss.plot(history["epoch"], history["test_loss"], "s-", label="test")
      ax_acc.plot(history["epoch"], history["test_accuracy"], "s-",
                  label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_loss.legend()
    ax_acc.legend()
    return fig
  _figure(path, draw)


def plot_curves(path: str, curves: list[metrics.Curve],
                class_names: Sequence[str], *, kind: str) -> None:
  """One-vs-rest ROC or precision-recall curves of every class."""
  def draw(plt):
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, curve in zip(class_names, curves):
      valid = np.asarray(curve.valid)
      ax.plot(np.asarray(curve.x)[valid], np.asarray(curve.y)[valid], lw=1,
              label=name)
    if kind == "roc":
      ax.plot([0, 1], [0, 1], "k:", lw=0.8)
      ax.set(xlabel="false positive rate", ylabel="true positive rate",
             title="ROC (one vs rest)")
    else:
      ax.set(xlabel="recall", ylabel="precision",
             title="precision-recall (one vs rest)")
    ax.legend(fontsize=7, ncol=2)
    return fig
  _figure(path, draw)


def plot_confusion(path: str, confusion: np.ndarray,
                   class_names: Sequence[str]) -> None:
  """The ``[C, C]`` confusion matrix (rows: true class) as a PNG."""

  def draw(plt):
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(confusion, cmap="Blues")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(ticks, class_names, fontsize=7)
    for (i, j), count in np.ndenumerate(confusion):
      ax.text(j, i, str(count), ha="center", va="center", fontsize=6,
              color="white" if count > confusion.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    fig.colorbar(image, ax=ax)
    return fig
  _figure(path, draw)


# ------------------------------------------------------------------- report


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  """A markdown table with floats to 4 decimals (NumPy floats included)."""
  rows = [[float(v) if isinstance(v, np.floating) else v for v in row]
          for row in rows]
  return benchutil.markdown_table(headers, rows, float_format=".4f")


def write_report(path: str, *, config: dict[str, Any], dataset: data.Dataset,
                 history: dict[str, list[float]], results: dict[str, Any],
                 flops_table: str, wall_seconds: float,
                 num_devices: int) -> None:
  """``report.md``: configuration, accuracy, per-class P/R/F1, ROC-AUC,
  confusion matrix, FLOPs, time per epoch and the device."""
  names = dataset.class_names
  epoch_seconds = history["epoch_seconds"]
  images_per_second = len(dataset.train_labels) / np.median(epoch_seconds)
  devices = jax.devices()
  used = (f"{num_devices} of {len(devices)}" if num_devices < len(devices)
          else f"{num_devices}")
  lines = [
      "# Main job report", "",
      "Configuration: " + ", ".join(f"`{k}={v}`" for k, v in config.items()),
      "",
      f"- dataset: {config['dataset']} ({len(dataset.train_labels)} train, "
      f"{len(dataset.test_labels)} test images, {len(names)} classes)",
      f"- devices: {used} x {devices[0].platform} "
      f"({devices[0].device_kind}), jax {jax.__version__}",
      f"- **test accuracy: {results['accuracy']:.4f}**, macro F1 "
      f"{results['macro_f1']:.4f}, macro ROC-AUC (one vs rest) "
      f"{results['macro_roc_auc']:.4f}",
      f"- time per epoch: {np.median(epoch_seconds):.3f} s median "
      f"({images_per_second:,.0f} train images/s); compilation "
      f"{history['compile_seconds'][-1]:.2f} s; whole run "
      f"{wall_seconds:.1f} s (data loading, training, evaluation, report; "
      "with --resume, of this invocation)",
      "", "## Per-class metrics", "",
      _table(["class", "precision", "recall", "F1", "support", "ROC-AUC"],
             [(n, results["precision"][c], results["recall"][c],
               results["f1"][c], int(results["support"][c]),
               results["roc_auc"][c]) for c, n in enumerate(names)]),
      "", "## Confusion matrix (rows true, columns predicted)", "",
      _table(["true \\ pred", *names],
             [(n, *row) for n, row in zip(names, results["confusion"])]),
      "", "## History", "",
      _table(["epoch", "train loss", "train acc", "test loss", "test acc",
              "seconds"],
             [(int(epoch), *row) for epoch, *row in zip(*(
                 history[k] for k in ("epoch", "train_loss", "train_accuracy",
                                      "test_loss", "test_accuracy",
                                      "epoch_seconds")))]),
      "", "## FLOPs (one image, forward; jaxdl.flops.summary)", "",
      flops_table, "",
      "Plots: `curves.png`, `roc.png`, `pr.png`, `confusion.png`.", "",
  ]
  with open(path, "w") as f:
    f.write("\n".join(lines))


# --------------------------------------------------------------------- main


# The settings a --resume must share with the run it continues.
_RUN_KEYS = ("dataset", "data_dir", "model", "optimizer", "lr", "batch_size",
             "seed")


def _run_file(checkpoint_dir: str) -> str:
  """The settings of the run whose checkpoints are in ``checkpoint_dir``:
  kept in that folder, so they move aside and come back with them."""
  return os.path.join(checkpoint_dir, "run.json")


def _check_same_run(checkpoint_dir: str, config: dict[str, Any]) -> None:
  """Checks ``config`` against the settings of the checkpointed run (in
  ``checkpoints/run.json``; workdirs written before it moved there keep
  ``run.json`` beside ``checkpoints/``)."""
  legacy = os.path.join(os.path.dirname(checkpoint_dir), "run.json")
  path = next((p for p in (_run_file(checkpoint_dir), legacy)
               if os.path.exists(p)), None)
  if path is None:
    return
  settings = {key: config[key] for key in _RUN_KEYS}
  with open(path) as f:
    saved = json.load(f)
  changed = [f"--{key.replace('_', '-')} {saved.get(key)!r} -> "
             f"{settings[key]!r}" for key in _RUN_KEYS
             if saved.get(key) != settings[key]]
  if changed:
    raise ValueError(
        f"--resume continues the run in {os.path.dirname(checkpoint_dir)} "
        f"with its settings; these differ: {', '.join(changed)}.")


def _record_run(checkpoint_dir: str, config: dict[str, Any]) -> None:
  """Writes the run's settings beside its checkpoints (atomically: a kill
  leaves the old file or the new one). Process 0 only."""
  if jax.process_index() != 0:
    return
  os.makedirs(checkpoint_dir, exist_ok=True)
  path = _run_file(checkpoint_dir)
  with open(path + ".tmp", "w") as f:
    json.dump({key: config[key] for key in _RUN_KEYS}, f)
  os.replace(path + ".tmp", path)


def _put_back_or_drop(old: str, checkpoint_dir: str) -> None:
  """The old run's checkpoints (in ``old``) are stale once the new run has
  a finished checkpoint: orbax creates the folder when a save starts and
  renames ``<step>.orbax-checkpoint-tmp`` to ``<step>`` when it is done.
  (Read from the folder, not through orbax, whose manager may wait for the
  other processes.)"""
  finished = os.path.isdir(checkpoint_dir) and any(
      name.isdigit() and os.path.isdir(os.path.join(checkpoint_dir, name))
      for name in os.listdir(checkpoint_dir))
  if finished:
    shutil.rmtree(old)
  else:
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    os.rename(old, checkpoint_dir)


def _sync(name: str) -> None:
  """Waits for every process (the folder is shared between hosts)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def _replacing(checkpoint_dir: str, *, replace: bool):
  """A fresh run's old checkpoints are moved aside, and deleted once the
  new run has saved its first checkpoint (call the yielded function); a run
  that fails or is killed before that gets them back (at its next start).
  Process 0 moves the folders; the others wait for it."""
  old = checkpoint_dir + ".replaced"
  primary = jax.process_index() == 0
  if primary and os.path.isdir(old):  # A run killed before its first save.
    _put_back_or_drop(old, checkpoint_dir)
  moved = primary and replace and os.path.isdir(checkpoint_dir)
  if moved:
    shutil.rmtree(old, ignore_errors=True)
    os.rename(checkpoint_dir, old)
  _sync("jaxdl-main-job-checkpoints")
  if not moved:
    yield lambda: None
    return

  def replaced():
    shutil.rmtree(old, ignore_errors=True)

  try:
    yield replaced
  except BaseException:
    if os.path.isdir(old):
      _put_back_or_drop(old, checkpoint_dir)
    raise
  replaced()


def data_parallel_mesh(batch_size: int) -> jax.sharding.Mesh:
  """The ``("data",)`` mesh over every device, or, in one process whose
  device count does not divide ``batch_size`` (the tutorial's 4 on 8
  devices), over the most devices that do."""
  devices = jax.devices()
  if jax.process_count() == 1:
    used = max(d for d in range(1, len(devices) + 1) if batch_size % d == 0)
    devices = devices[:used]
  return train.data_mesh(devices)


def train_and_evaluate(config: dict[str, Any], workdir: str) -> dict[str, Any]:
  """Trains, evaluates and writes the report, plots and checkpoints."""
  start = time.perf_counter()
  dataset = load_dataset(config["dataset"], config["data_dir"])
  num_classes = len(dataset.class_names)
  model = make_model(config["model"], num_classes)
  tx = make_optimizer(config["optimizer"], config["lr"])
  sample = data.normalize(dataset.train_images[:1])
  state = train.create_train_state(jax.random.key(config["seed"]), model, tx,
                                   sample)
  os.makedirs(workdir, exist_ok=True)
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  mesh = data_parallel_mesh(config["batch_size"])
  with _replacing(checkpoint_dir, replace=not config["resume"]) as replaced:
    resuming = (config["resume"]
                and train.latest_checkpoint(checkpoint_dir) is not None)
    if resuming:  # Settings recorded again after the restore and a save.
      _check_same_run(checkpoint_dir, config)
    else:  # A new run: its settings go beside its checkpoints first.
      _record_run(checkpoint_dir, config)

    def saved(epoch, history):
      del epoch, history
      replaced()
      if resuming:
        _record_run(checkpoint_dir, config)

    result = train.fit(
        state, dataset.train_images, dataset.train_labels,
        epochs=config["epochs"], batch_size=config["batch_size"],
        test_images=dataset.test_images, test_labels=dataset.test_labels,
        mesh=mesh, checkpoint_dir=checkpoint_dir, resume=config["resume"],
        max_to_keep=3, progress=config["progress"], callback=saved)
  logits = result.test_logits
  if jax.process_count() > 1:  # Sharded over every host's devices.
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    logits = multihost_utils.process_allgather(logits, tiled=True)
  results = evaluate_predictions(logits, dataset.test_labels, num_classes)
  summary = flops.summary(model, sample, train=False)
  history = result.history
  report = os.path.join(workdir, "report.md")
  if jax.process_index() != 0:  # One writer for the shared workdir.
    return {"state": result.state, "history": history, "results": results,
            "report": report}
  plot_history(os.path.join(workdir, "curves.png"), history)
  plot_curves(os.path.join(workdir, "roc.png"), results["roc"],
              dataset.class_names, kind="roc")
  plot_curves(os.path.join(workdir, "pr.png"), results["pr"],
              dataset.class_names, kind="pr")
  plot_confusion(os.path.join(workdir, "confusion.png"), results["confusion"],
                 dataset.class_names)
  write_report(report, config=config, dataset=dataset, history=history,
               results=results, flops_table=summary.to_markdown(),
               wall_seconds=time.perf_counter() - start,
               num_devices=mesh.devices.size)
  return {"state": result.state, "history": history, "results": results,
          "report": report}


def _initialize_distributed() -> None:
  """``jax.distributed.initialize()``. Outside a cluster manager JAX reads
  only the coordinator's address from the environment
  (``JAX_COORDINATOR_ADDRESS``); the process count and id are passed from
  ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` where they are set."""
  kwargs = {key: int(os.environ[name]) for key, name in (
      ("num_processes", "JAX_NUM_PROCESSES"),
      ("process_id", "JAX_PROCESS_ID")) if os.environ.get(name)}
  jax.distributed.initialize(**kwargs)


def parse_args(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """The command line as a config dict (see the module docstring). With
  ``--distributed`` it calls ``jax.distributed.initialize()``, which must
  come before any JAX computation, such as checking ``--optimizer``."""
  parser = argparse.ArgumentParser(
      prog="python -m experiments.train", description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", default="digits",
                      choices=tuple(DEFAULTS))
  parser.add_argument("--data-dir", default=None,
                      help="CIFAR-10 folder or .tar.gz (for --dataset "
                           "cifar10)")
  parser.add_argument("--model", default="toynet", choices=MODELS)
  parser.add_argument("--optimizer", default="sgd",
                      help=f"one of {OPTIMIZERS} (jaxdl.optim) or "
                           "optax-<name>, e.g. optax-adamw")
  parser.add_argument("--epochs", type=int, default=None)
  parser.add_argument("--batch-size", type=int, default=None)
  parser.add_argument("--lr", type=float, default=None)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--workdir", default=None,
                      help="output folder (default runs/<dataset>-<model>)")
  parser.add_argument("--resume", action="store_true",
                      help="continue from the last checkpoint in workdir "
                           "(from scratch if there is none)")
  parser.add_argument("--no-progress", dest="progress", action="store_false")
  parser.add_argument("--distributed", action="store_true",
                      help="call jax.distributed.initialize() (multi-host)")
  config = vars(parser.parse_args(argv))
  for key, value in DEFAULTS[config["dataset"]].items():
    if config[key] is None:
      config[key] = value
  if config["dataset"] == "cifar10" and config["data_dir"] is None:
    parser.error("--dataset cifar10 needs --data-dir (the "
                 "cifar-10-batches-py folder or the .tar.gz).")
  if config["data_dir"] is not None:
    if config["dataset"] != "cifar10":
      parser.error("--data-dir is only read with --dataset cifar10.")
    # Absolute, so that --resume from another folder names the same data.
    config["data_dir"] = os.path.abspath(os.path.expanduser(
        config["data_dir"]))
    if not os.path.exists(config["data_dir"]):
      parser.error(f"--data-dir {config['data_dir']} does not exist.")
  for key in ("epochs", "batch_size"):
    if config[key] < 1:
      parser.error(f"--{key.replace('_', '-')} must be >= 1, got "
                   f"{config[key]}.")
  if not (math.isfinite(config["lr"]) and config["lr"] > 0):
    parser.error(f"--lr must be a positive number, got {config['lr']}.")
  if config["distributed"]:  # Before any JAX computation (the check below).
    _initialize_distributed()
  try:
    make_optimizer(config["optimizer"], config["lr"])
  except ValueError as err:
    parser.error(str(err))
  if config["workdir"] is None:
    config["workdir"] = os.path.join("runs",
                                     f"{config['dataset']}-{config['model']}")
  return config


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the main job; returns :func:`train_and_evaluate`'s results."""
  config = parse_args(argv)
  del config["distributed"]  # Initialized by parse_args.
  workdir = config.pop("workdir")
  out = train_and_evaluate(config, workdir)
  history = out["history"]
  print(f"test accuracy {out['results']['accuracy']:.4f} after "
        f"{int(history['epoch'][-1])} epochs "
        f"({np.median(history['epoch_seconds']):.2f} s/epoch); "
        f"report: {out['report']}")
  return out


if __name__ == "__main__":
  main()
