"""A small, data-parallel training loop for image classifiers.

The pieces are pure and jittable: :class:`TrainState` carries everything a
step changes (parameters, batch-norm statistics, optimizer state, step count
and PRNG key); :func:`train_step` and :func:`eval_step` map a batch to a new
state and summed metrics. :func:`fit` runs each epoch as **one** jitted
``lax.scan`` over on-device shuffled batches (no per-step Python dispatch).

Data parallelism: :func:`fit` builds a one-axis ``("data",)`` mesh over all
devices (:func:`data_mesh`), replicates the state and the dataset, and
constrains every batch to be split over ``"data"``; XLA inserts the gradient
all-reduce. The same code runs on one CPU, on
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` CPU devices, or on a
GPU. For several hosts, call ``jax.distributed.initialize()`` at start-up in
every process: ``jax.devices()`` then lists every host's devices and the mesh
spans them; each process must load the same dataset and use the same key
(the replicated inputs are then identical everywhere, as ``device_put`` of a
host array to a multi-process sharding requires).

On CPU, each epoch is traced and compiled in forms that XLA:CPU runs fast
(``jaxdl._xla_cpu``: canonical convolution layouts, tiled pooling, narrow
convolutions on space-to-depth blocks, no YNNPACK convolutions); results
equal :func:`train_step`'s up to float rounding.

Checkpoints are written with orbax when a directory is given; ``resume``
continues from the last one and ends with the same parameters as an
uninterrupted run, because the data order and dropout keys derive from the
checkpointed state.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jax.typing import ArrayLike

from jaxdl import _xla_cpu, data, losses
from jaxdl._checks import _is_int, class_ids, int_at_least, mask_or_ones

DATA_AXIS = "data"


class TrainState(struct.PyTreeNode):
  """Everything one training step reads and writes.

  Attributes:
    step: scalar int32, number of optimizer updates applied.
    params: the model parameters (the ``"params"`` collection).
    batch_stats: the ``"batch_stats"`` collection (``{}`` without batch norm).
    opt_state: the optimizer state of ``tx``.
    rng: PRNG key; each epoch splits it for the shuffle, and dropout keys
      are ``fold_in(rng, step)``.
    apply_fn: the model's ``apply`` (static).
    tx: the ``optax.GradientTransformation`` (static).
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  apply_fn: Callable[..., Any] = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)


class Metrics(NamedTuple):
  """Summed classification metrics; sums add across batches and epochs.

  Attributes:
    loss_sum: scalar, sum of per-example cross-entropy over real examples.
    correct: scalar, number of real examples whose arg-max logit is the label.
    count: scalar, number of real (unmasked) examples.
  """
  loss_sum: jax.Array
  correct: jax.Array
  count: jax.Array

  @property
  def loss(self) -> jax.Array:
    """Mean loss over real examples (0 when there are none)."""
    return self.loss_sum / jnp.maximum(self.count, 1)

  @property
  def accuracy(self) -> jax.Array:
    """Fraction of real examples classified correctly (0 when none)."""
    return self.correct / jnp.maximum(self.count, 1)


class FitResult(NamedTuple):
  """What :func:`fit` returns.

  Attributes:
    state: the trained :class:`TrainState`.
    history: per-epoch lists: ``epoch`` (counting from 1), ``train_loss``,
      ``train_accuracy``, ``test_loss``, ``test_accuracy`` (with test
      data), ``epoch_seconds`` (run time, compilation excluded), plus
      ``compile_seconds`` (one entry per :func:`fit` call) and ``step_loss``
      (mean loss of every step).
    test_logits: ``[M, num_classes]`` test logits after the last epoch, or
      None without test data.
  """
  state: TrainState
  history: dict[str, list[float]]
  test_logits: jax.Array | None


# ------------------------------------------------------------------- state


def create_train_state(key: jax.Array, model: nn.Module,
                       tx: optax.GradientTransformation,
                       sample_inputs: ArrayLike) -> TrainState:
  """Initialises a model and its optimizer.

  Initialisation is jitted and cached per (model, optimizer, input shape):
  a second state for the same model and optimizer does not recompile.

  Args:
    key: PRNG key; split into the parameter, dropout and training keys.
    model: a Flax module called as ``model.apply(variables, x, train=...)``.
    tx: the optimizer.
    sample_inputs: ``[B, H, W, C]`` inputs; only shape and dtype are used.

  Returns:
    A :class:`TrainState` at step 0.

  Raises:
    ValueError: ``model`` or ``tx`` is not hashable (a Flax module with a
      list attribute: use a tuple); both are static in every jitted step.
  """
  for name, value in (("model", model), ("tx", tx)):
    try:
      hash(value)
    except TypeError as err:
      raise ValueError(
          f"{name} must be hashable, as jit's static arguments are (a Flax "
          f"module attribute that is a list should be a tuple): {err}"
      ) from None
  sample = jnp.asarray(sample_inputs)
  return _init_state(model, tx, key,
                     jax.ShapeDtypeStruct(sample.shape, sample.dtype))


@functools.partial(jax.jit, static_argnums=(0, 1, 3))
def _init_state(model: nn.Module, tx: optax.GradientTransformation,
                key: jax.Array, sample: jax.ShapeDtypeStruct) -> TrainState:
  params_key, dropout_key, rng = jax.random.split(key, 3)
  variables = model.init({"params": params_key, "dropout": dropout_key},
                         jnp.zeros(sample.shape, sample.dtype), train=False)
  params = variables["params"]
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      batch_stats=variables.get("batch_stats", {}),
      opt_state=tx.init(params), rng=rng, apply_fn=model.apply, tx=tx)


def _check_batch(images: jax.Array, labels: jax.Array,
                 mask: jax.Array | None, prefix: str = "") -> jax.Array:
  """The batch's bool mask; ``prefix`` names the arguments (``"test_"``)."""
  if images.ndim < 1 or labels.shape != images.shape[:1]:
    raise ValueError(
        f"{prefix}labels must have shape [B] matching {prefix}images "
        f"[B, ...], got {prefix}labels {labels.shape} and {prefix}images "
        f"{images.shape}.")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"{prefix}labels must be integer class indices, got "
                     f"{labels.dtype}.")
  return mask_or_ones(mask, labels.shape)


def _apply(state: TrainState, params: Any, images: jax.Array, *,
           train: bool) -> tuple[jax.Array, Any]:
  """Logits and the (possibly updated) batch statistics."""
  variables = {"params": params}
  if state.batch_stats:  # Static: the collection's structure.
    variables["batch_stats"] = state.batch_stats
  update_stats = train and bool(state.batch_stats)
  out = state.apply_fn(
      variables, images, train=train,
      mutable=["batch_stats"] if update_stats else False,
      rngs={"dropout": jax.random.fold_in(state.rng, state.step)})
  if not update_stats:
    return out, state.batch_stats
  logits, updates = out
  return logits, updates["batch_stats"]


def _metrics(logits: jax.Array, labels: jax.Array,
             mask: jax.Array) -> Metrics:
  """Summed masked cross-entropy and accuracy of one batch."""
  # Raises on real labels outside [0, C) when they are known (outside jit).
  class_ids(labels, logits.shape[-1], "labels", mask=mask)
  per_example = losses.cross_entropy(logits.astype(jnp.float32), labels,
                                     reduction="none")  # [B]
  correct = (jnp.argmax(logits, axis=-1) == labels) & mask
  return Metrics(loss_sum=jnp.sum(jnp.where(mask, per_example, 0.0)),
                 correct=jnp.sum(correct, dtype=jnp.int32),
                 count=jnp.sum(mask, dtype=jnp.int32))


def train_step(state: TrainState, images: ArrayLike, labels: ArrayLike,
               mask: ArrayLike | None = None) -> tuple[TrainState, Metrics]:
  """One optimizer update on the mean cross-entropy of a batch.

  Padded examples (``mask`` False) contribute neither loss nor gradient;
  the loss is averaged over the real ones, as PyTorch's
  ``CrossEntropyLoss`` averages over a (smaller) last batch. Padded images
  are replaced by zeros first, so they may hold anything (NaN). A model
  with batch statistics (``BatchNorm``) still normalises with all ``B``
  examples, the zeroed padding included, so its real examples' outputs
  depend on the amount of padding: for such models pick a batch size that
  divides the dataset.

  Args:
    state: the current :class:`TrainState`.
    images: ``[B, ...]`` model inputs (already normalised).
    labels: ``[B]`` integer class indices in ``[0, num_classes)`` where
      ``mask`` is True; others raise ``ValueError`` when the values are known
      (outside ``jit``), and under ``jit`` count as examples with zero loss.
    mask: optional ``[B]`` bool, True for real examples.

  Returns:
    ``(new_state, metrics)``; ``metrics`` are the :class:`Metrics` of the
    batch computed with the parameters before the update.
  """
  images, labels = jnp.asarray(images), jnp.asarray(labels)
  padded = mask is not None
  mask = _check_batch(images, labels, None if mask is None
                      else jnp.asarray(mask))
  if padded:
    # Padding may hold anything: zeroed, a NaN there cannot reach the
    # gradient (0 * NaN in a weight gradient) or the batch statistics.
    images = jnp.where(mask.reshape(-1, *[1] * (images.ndim - 1)), images,
                       jnp.zeros((), images.dtype))

  def loss_fn(params):
    logits, batch_stats = _apply(state, params, images, train=True)
    metrics = _metrics(logits, labels, mask)
    return metrics.loss, (metrics, batch_stats)

  grads, (metrics, batch_stats) = jax.grad(loss_fn, has_aux=True)(
      state.params)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  new_state = state.replace(
      step=state.step + 1, params=optax.apply_updates(state.params, updates),
      batch_stats=batch_stats, opt_state=opt_state)
  return new_state, metrics


def eval_step(state: TrainState, images: ArrayLike, labels: ArrayLike,
              mask: ArrayLike | None = None) -> tuple[Metrics, jax.Array]:
  """Metrics and logits of a batch in inference mode (``train=False``).

  Args:
    state: the :class:`TrainState` to evaluate.
    images: ``[B, ...]`` model inputs (already normalised).
    labels: ``[B]`` integer class indices in ``[0, num_classes)`` where
      ``mask`` is True; others raise ``ValueError`` when the values are known
      (outside ``jit``), and under ``jit`` count as examples with zero loss.
    mask: optional ``[B]`` bool, True for real examples.

  Returns:
    ``(metrics, logits)`` with :class:`Metrics` over the real examples and
    ``[B, num_classes]`` logits.
  """
  images, labels = jnp.asarray(images), jnp.asarray(labels)
  mask = _check_batch(images, labels, None if mask is None
                      else jnp.asarray(mask))
  logits, _ = _apply(state, state.params, images, train=False)
  return _metrics(logits, labels, mask), logits


# ------------------------------------------------------------------- epochs

def data_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A one-axis ``("data",)`` mesh over ``devices`` (default: all)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def _gather_batch(images: jax.Array, labels: jax.Array, batch: data.Batches,
                  preprocess: Callable[[jax.Array], jax.Array],
                  sharding: NamedSharding):
  """Gathers, preprocesses and shards one batch over the data axis."""
  x = preprocess(images[batch.indices])
  y = labels[batch.indices]
  return jax.lax.with_sharding_constraint((x, y, batch.mask), sharding)


def _num_classes(state: TrainState, images: np.ndarray,
                 preprocess: Callable[[jax.Array], jax.Array]) -> int:
  """The number of logits the model gives for ``images``: traced once per
  model, variable shapes, image shape and ``preprocess`` (~20 ms for
  ToyNet, which every fit call would otherwise pay)."""
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                          (state.params, state.batch_stats, state.rng,
                           state.step))
  leaves, tree = jax.tree.flatten(abstract)
  sample = jax.ShapeDtypeStruct((1, *images.shape[1:]), images.dtype)
  return _num_classes_of(state.apply_fn, state.tx, tree, tuple(leaves),
                         sample, preprocess)


@functools.lru_cache(maxsize=64)
def _num_classes_of(apply_fn, tx, tree, leaves, sample, preprocess) -> int:
  params, batch_stats, rng, step = jax.tree.unflatten(tree, leaves)

  def logits(params, batch_stats, rng, step, x):
    state = TrainState(step=step, params=params, batch_stats=batch_stats,
                       opt_state=None, rng=rng, apply_fn=apply_fn, tx=tx)
    return _apply(state, params, preprocess(x), train=False)[0]

  return jax.eval_shape(logits, params, batch_stats, rng, step,
                        sample).shape[-1]


def _replicate(tree: Any, sharding: NamedSharding) -> Any:
  """``tree`` placed on ``sharding``. Across processes, arrays that live on
  one device go through the host: ``device_put`` cannot move them to other
  processes' devices (typed PRNG keys as their key data)."""

  def place(x):
    if (jax.process_count() == 1 or not isinstance(x, jax.Array)
        or x.sharding.is_equivalent_to(sharding, x.ndim)):
      return jax.device_put(x, sharding)
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(place(jax.random.key_data(x)),
                                      impl=jax.random.key_impl(x))
    return jax.device_put(np.asarray(x), sharding)

  return jax.tree.map(place, tree)


def _on_cpu(sharding: NamedSharding) -> bool:
  return sharding.mesh.devices.flat[0].platform == "cpu"


def _for_cpu(step: Callable[..., tuple[Any, Any]], *,
             devices: int = 1) -> Callable[..., Any]:
  """``step(state, *batch)`` (:func:`train_step` or :func:`eval_step`) in the
  forms XLA:CPU runs fast (:mod:`jaxdl._xla_cpu`): the model's forward pass
  rewritten before autodiff, then the whole step; short dense contractions
  become outer products only when the batch is on one device."""

  def with_fast_forward(state, *batch):
    apply_fn = state.apply_fn
    out = step(state.replace(apply_fn=_xla_cpu.fast_forward(apply_fn)),
               *batch)
    return tuple(x.replace(apply_fn=apply_fn) if isinstance(x, TrainState)
                 else x for x in out)

  return _xla_cpu.fast_path(with_fast_forward, outer_products=devices == 1)


def _train_epoch(state: TrainState, images: jax.Array, labels: jax.Array, *,
                 batch_size: int, preprocess: Callable[[jax.Array], jax.Array],
                 sharding: NamedSharding) -> tuple[TrainState, Metrics]:
  """One shuffled epoch as a ``lax.scan``; per-step metrics ``[S]``."""
  rng, shuffle_key = jax.random.split(state.rng)
  batches = data.batch_indices(images.shape[0], batch_size=batch_size,
                               key=shuffle_key)
  step = (_for_cpu(train_step, devices=sharding.mesh.size)
          if _on_cpu(sharding) else train_step)

  def body(state, batch):
    return step(state, *_gather_batch(images, labels, batch, preprocess,
                                       sharding))

  # Unrolled (unroll=2 or 5), ToyNet's batch-4 step ran slower on 2 CPU
  # cores: 0.211 against 0.225 and 0.227 ms (best of 5).
  return jax.lax.scan(body, state.replace(rng=rng), batches)


def _eval_epoch(state: TrainState, images: jax.Array, labels: jax.Array, *,
                batch_size: int, preprocess: Callable[[jax.Array], jax.Array],
                sharding: NamedSharding) -> tuple[Metrics, jax.Array]:
  """Summed metrics and ``[N, C]`` logits over a dataset, in order."""
  batches = data.batch_indices(images.shape[0], batch_size=batch_size)
  step = (_for_cpu(eval_step, devices=sharding.mesh.size)
          if _on_cpu(sharding) else eval_step)

  def body(_, batch):
    return None, step(state, *_gather_batch(images, labels, batch,
                                            preprocess, sharding))

  _, (metrics, logits) = jax.lax.scan(body, None, batches)
  metrics = jax.tree.map(jnp.sum, metrics)
  return metrics, logits.reshape(-1, logits.shape[-1])[:images.shape[0]]


# Module-level so that compiled epochs are cached across fit() calls.
_EPOCH_STATICS = ("batch_size", "preprocess", "sharding")
_train_epoch_jit = jax.jit(_train_epoch, static_argnames=_EPOCH_STATICS)
_eval_epoch_jit = jax.jit(_eval_epoch, static_argnames=_EPOCH_STATICS)


# -------------------------------------------------------------- checkpoints


def _folder(directory: str | os.PathLike[str]) -> str:
  """``directory`` absolute, with ``~`` expanded (as ``load_cifar10``)."""
  return os.path.abspath(os.path.expanduser(os.fspath(directory)))


def _checkpointer(directory: str | os.PathLike[str], max_to_keep: int | None):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
  return ocp.CheckpointManager(_folder(directory), options=options)


def _state_tree(state: TrainState) -> dict[str, Any]:
  """The arrays of a state, with the typed key as raw key data."""
  return {"step": state.step, "params": state.params,
          "batch_stats": state.batch_stats, "opt_state": state.opt_state,
          "rng": jax.random.key_data(state.rng)}


def latest_checkpoint(directory: str | os.PathLike[str]) -> int | None:
  """The epoch of the newest finished checkpoint in ``directory``, or None."""
  if not os.path.isdir(_folder(directory)):
    return None
  return _checkpointer(directory, None).latest_step()


def save_checkpoint(directory: str | os.PathLike[str], state: TrainState, *,
                    epoch: int,
                    history: Mapping[str, list[float]] | None = None,
                    max_to_keep: int | None = None) -> None:
  """Writes ``state`` and ``history`` as checkpoint ``epoch`` (orbax).

  Orbax writes to a temporary folder and renames it when complete, so an
  interrupted save never replaces an earlier checkpoint.

  Args:
    directory: the checkpoint folder (created if needed).
    state: the :class:`TrainState` to save.
    epoch: the number of completed epochs; the checkpoint's step.
    history: JSON-serialisable training history, restored with the state.
    max_to_keep: keep only the newest checkpoints (None keeps all).

  Raises:
    ValueError: ``epoch`` is not an int >= 0; ``directory`` already holds
      checkpoint ``epoch`` or a later one (orbax would skip the save);
      ``max_to_keep`` below 1.
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  # Orbax writes any step it is given, but finds only int folders >= 0.
  int_at_least(0, epoch=epoch)
  _check_max_to_keep(max_to_keep)
  manager = _checkpointer(directory, max_to_keep)
  try:
    latest = manager.latest_step()
    if latest is not None and epoch <= latest:
      exists = epoch in manager.all_steps()
      raise ValueError(
          f"checkpoint {epoch} already exists in {directory}; it was kept, "
          "nothing was saved." if exists else
          f"epoch {epoch} is not after the latest checkpoint {latest} in "
          f"{directory}; nothing was saved.")
    saved = manager.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_state_tree(state)),
        history=ocp.args.JsonSave(dict(history or {}))))
    manager.wait_until_finished()
  finally:
    manager.close()
  if not saved:
    raise ValueError(f"orbax did not save checkpoint {epoch} in {directory}.")


def _check_max_to_keep(max_to_keep: int | None) -> None:
  if max_to_keep is not None and not (_is_int(max_to_keep)
                                      and max_to_keep >= 1):
    raise ValueError(f"max_to_keep must be None or an int >= 1 (0 would "
                     f"delete every checkpoint), got {max_to_keep!r}.")


def restore_checkpoint(
    directory: str | os.PathLike[str], state: TrainState, *,
    epoch: int | None = None,
) -> tuple[TrainState, dict[str, list[float]], int]:
  """Restores checkpoint ``epoch`` (default: the latest) into ``state``.

  ``state`` supplies the tree structure, shapes, dtypes and shardings; it is
  not modified. Files are only read.

  Args:
    directory: the checkpoint folder.
    state: a :class:`TrainState` of the same model and optimizer.
    epoch: which checkpoint; None for the latest.

  Returns:
    ``(state, history, epoch)``.

  Raises:
    FileNotFoundError: no checkpoint (or not ``epoch``) in ``directory``.
    ValueError: the checkpoint is corrupt or incomplete, or does not match
      ``state``; the message names its folder.
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  directory = _folder(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"checkpoint folder {directory} does not exist.")
  manager = _checkpointer(directory, None)
  steps = manager.all_steps()
  if epoch is None:
    epoch = manager.latest_step()
  if epoch is None or epoch not in steps:
    raise FileNotFoundError(
        f"no checkpoint {'' if epoch is None else epoch} in {directory} "
        f"(found epochs {sorted(steps)}).")
  target = _state_tree(state)
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  path = os.path.join(directory, str(epoch))
  try:
    restored = manager.restore(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        history=ocp.args.JsonRestore()))
    tree, history = restored["state"], restored["history"]
    if jax.tree.structure(tree) != jax.tree.structure(target):
      raise ValueError("the saved tree structure differs from the state's")
    for saved, want in zip(jax.tree.leaves(tree), jax.tree.leaves(target)):
      if saved.shape != want.shape or saved.dtype != want.dtype:
        raise ValueError(f"saved array {saved.shape} {saved.dtype} does not "
                         f"match {want.shape} {want.dtype}")
  except Exception as err:  # orbax/tensorstore raise many types.
    others = sorted(s for s in steps if s != epoch)
    raise ValueError(
        f"checkpoint {path} is corrupt, incomplete or does not match the "
        f"model ({type(err).__name__}: {err}). It was left untouched; other "
        f"checkpoints: {others}.") from err
  finally:
    manager.close()
  rng = tree["rng"]
  if jnp.issubdtype(state.rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.wrap_key_data(rng, impl=jax.random.key_impl(state.rng))
  # else a raw uint32 key (jax.random.PRNGKey), kept raw as in ``state``.
  restored_state = state.replace(
      step=tree["step"], params=tree["params"],
      batch_stats=tree["batch_stats"], opt_state=tree["opt_state"], rng=rng)
  return restored_state, {k: list(v) for k, v in history.items()}, epoch


# ----------------------------------------------------------------------- fit


def fit(state: TrainState, train_images: ArrayLike, train_labels: ArrayLike,
        *, epochs: int, batch_size: int,
        test_images: ArrayLike | None = None,
        test_labels: ArrayLike | None = None,
        eval_batch_size: int | None = None,
        preprocess: Callable[[jax.Array], jax.Array] = data.normalize,
        mesh: Mesh | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False, max_to_keep: int | None = None,
        progress: bool = False,
        callback: Callable[[int, dict[str, list[float]]], None] | None = None,
        ) -> FitResult:
  """Trains for ``epochs`` epochs, one jitted ``lax.scan`` per epoch.

  Each epoch shuffles the training set on device (a ``DataLoader`` with
  ``shuffle=True``, last batch padded and masked), runs :func:`train_step`
  on every batch, then evaluates on the test set if given. Batches are split
  over ``mesh``'s ``"data"`` axis; the state and the (uint8) datasets are
  replicated. Nothing is printed or written unless asked: ``progress``
  shows a tqdm bar over epochs, ``checkpoint_dir`` saves an orbax
  checkpoint after every epoch.

  Args:
    state: the initial :class:`TrainState` (see :func:`create_train_state`).
    train_images: ``[N, H, W, C]`` training images (uint8 for the default
      ``preprocess``).
    train_labels: ``[N]`` integer labels.
    epochs: total number of epochs (with ``resume``, including those done).
    batch_size: global batch size, a multiple of the size of the mesh's
      ``"data"`` axis.
    test_images: optional ``[M, H, W, C]`` test images.
    test_labels: optional ``[M]`` test labels.
    eval_batch_size: evaluation batch size (default: ``batch_size``, at
      least 256), rounded up to a multiple of the ``"data"`` axis size.
    preprocess: maps a gathered batch to model inputs, inside the jit;
      default :func:`jaxdl.data.normalize` (the tutorial's).
    mesh: a mesh with a ``"data"`` axis; default :func:`data_mesh`.
    checkpoint_dir: where to save a checkpoint after each epoch; without
      ``resume``, a new or empty folder.
    resume: continue from the latest checkpoint in ``checkpoint_dir``.
    max_to_keep: keep only this many newest checkpoints (None: all).
    progress: show a tqdm progress bar (one tick per epoch).
    callback: called as ``callback(epoch, history)`` after each epoch (and
      its checkpoint), ``epoch`` counting from 1.

  Returns:
    A :class:`FitResult`.

  Raises:
    ValueError: bad sizes (non-int counts, an empty set, test images of
      another shape than the train images, a batch size that the mesh does
      not divide); labels outside ``[0, num_classes)`` for the model's
      ``num_classes`` logits (as PyTorch's ``CrossEntropyLoss`` refuses
      them); ``max_to_keep`` below 1; ``checkpoint_dir`` holding checkpoints
      without ``resume`` (they would be neither continued nor replaced), or
      more epochs than ``epochs``; a corrupt checkpoint when resuming (see
      :func:`restore_checkpoint`).
  """
  int_at_least(0, epochs=epochs)
  int_at_least(1, batch_size=batch_size)
  if eval_batch_size is not None:
    int_at_least(1, eval_batch_size=eval_batch_size)
  _check_max_to_keep(max_to_keep)
  if resume and checkpoint_dir is None:
    raise ValueError("resume=True needs a checkpoint_dir.")
  mesh = data_mesh() if mesh is None else mesh
  if DATA_AXIS not in mesh.axis_names:
    raise ValueError(f"mesh must have a {DATA_AXIS!r} axis, got "
                     f"{mesh.axis_names}.")
  num_shards = mesh.shape[DATA_AXIS]
  if batch_size % num_shards:
    raise ValueError(f"batch_size must be a positive multiple of the "
                     f"{num_shards} devices of the mesh, got {batch_size}.")
  if eval_batch_size is None:
    eval_batch_size = max(batch_size, 256)
  eval_batch_size = num_shards * math.ceil(eval_batch_size / num_shards)
  has_test = test_images is not None
  if has_test != (test_labels is not None):
    raise ValueError("test_images and test_labels must be given together.")

  replicated = NamedSharding(mesh, P())
  sharded = NamedSharding(mesh, P(DATA_AXIS))
  put = functools.partial(_replicate, sharding=replicated)
  sets = [("train", np.asarray(train_images), np.asarray(train_labels))]
  if has_test:
    sets.append(("test", np.asarray(test_images), np.asarray(test_labels)))
  num_classes = None
  for name, images, labels in sets:
    _check_batch(images, labels, None, prefix=f"{name}_")
    if not len(labels):
      raise ValueError(f"{name}_images must hold at least one image.")
    if images.shape[1:] != sets[0][1].shape[1:]:
      raise ValueError(f"{name}_images must have the train images' shape "
                       f"[N, {', '.join(map(str, sets[0][1].shape[1:]))}], "
                       f"got {images.shape}.")
    if num_classes is None:
      num_classes = _num_classes(state, images, preprocess)
    if labels.min() < 0 or labels.max() >= num_classes:
      raise ValueError(
          f"{name}_labels must be class indices in [0, {num_classes}) (the "
          f"model's {num_classes} logits), got values from {labels.min()} "
          f"to {labels.max()}.")
  train_images, train_labels = map(put, sets[0][1:])
  if has_test:
    test_images, test_labels = map(put, sets[1][1:])

  history: dict[str, list[float]] = {}
  start = 0
  latest = None if checkpoint_dir is None else latest_checkpoint(checkpoint_dir)
  if latest is not None and not resume:
    raise ValueError(
        f"checkpoint_dir {checkpoint_dir} already holds checkpoints (the "
        f"latest after epoch {latest}): pass resume=True to continue that "
        "run, or give an empty folder.")
  if latest is not None:
    if latest > epochs:
      raise ValueError(
          f"checkpoint_dir {checkpoint_dir} holds a run of {latest} epochs, "
          f"more than epochs={epochs}.")
    state, history, start = restore_checkpoint(checkpoint_dir, state,
                                               epoch=latest)
  state = put(state)

  compile_start = time.perf_counter()
  compile_epoch = (_xla_cpu.compile if _on_cpu(sharded)
                   else jax.stages.Lowered.compile)
  train_epoch = compile_epoch(_train_epoch_jit.lower(
      state, train_images, train_labels, batch_size=batch_size,
      preprocess=preprocess, sharding=sharded))
  if has_test:
    eval_epoch = compile_epoch(_eval_epoch_jit.lower(
        state, test_images, test_labels, batch_size=eval_batch_size,
        preprocess=preprocess, sharding=sharded))
  _append(history, compile_seconds=time.perf_counter() - compile_start)

  test_logits = None
  with _progress_bar(progress, total=epochs, initial=start) as bar:
    for epoch in range(start + 1, epochs + 1):
      epoch_start = time.perf_counter()
      state, steps = jax.block_until_ready(
          train_epoch(state, train_images, train_labels))
      seconds = time.perf_counter() - epoch_start
      totals = jax.tree.map(jnp.sum, steps)
      _append(history, epoch=epoch, train_loss=totals.loss,
              train_accuracy=totals.accuracy, epoch_seconds=seconds)
      history.setdefault("step_loss", []).extend(
          np.asarray(steps.loss, np.float64).tolist())
      if has_test:
        metrics, test_logits = eval_epoch(state, test_images, test_labels)
        _append(history, test_loss=metrics.loss,
                test_accuracy=metrics.accuracy)
      if checkpoint_dir is not None:
        save_checkpoint(checkpoint_dir, state, epoch=epoch, history=history,
                        max_to_keep=max_to_keep)
      bar.set_postfix({k: f"{history[k][-1]:.4f}" for k in (
          "train_loss", "train_accuracy", "test_loss", "test_accuracy")
                       if k in history})
      bar.update()
      if callback is not None:
        callback(epoch, history)
  if has_test and test_logits is None:  # No epoch ran here.
    _, test_logits = eval_epoch(state, test_images, test_labels)
  return FitResult(state, history, test_logits)


class _NoBar(contextlib.AbstractContextManager):
  """Stands in for a tqdm bar when progress is off."""

  def __exit__(self, *exc_info):
    return None

  def set_postfix(self, *args, **kwargs):
    del args, kwargs

  def update(self, *args, **kwargs):
    del args, kwargs


def _progress_bar(show: bool, **kwargs: Any):
  """A tqdm bar over epochs (tqdm is only needed when ``show``)."""
  if not show:
    return _NoBar()
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(unit="epoch", **kwargs)


def _append(history: dict[str, list[float]], **values: Any) -> None:
  for name, value in values.items():
    history.setdefault(name, []).append(float(value))
