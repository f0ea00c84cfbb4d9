"""Tests for jaxdl.train and the main job experiments/train.py."""

from __future__ import annotations

import json
import os
import shutil

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import data, optim, train
from jaxdl.nn import ToyNet

# Shared so that states, steps and fit() epochs compile once per shape.
MODEL = ToyNet()
TX = optim.sgd(0.01, momentum=0.9)
STEP = jax.jit(train.train_step)
EVAL = jax.jit(train.eval_step)


def _images(rng, n, size=32):
  """Learnable uint8 images: the mean colour depends on the label."""
  labels = np.arange(n, dtype=np.int32) % 10
  base = (labels * 25)[:, None, None, None]
  noise = rng.integers(-20, 20, (n, size, size, 3))
  return np.clip(base + noise, 0, 255).astype(np.uint8), labels


def _state(seed=0, model=MODEL, tx=TX, size=32):
  return train.create_train_state(jax.random.key(seed), model, tx,
                                  jnp.zeros((1, size, size, 3)))


def _close(a, b, rtol, atol=0.0):
  chex.assert_trees_all_close(a, b, rtol=rtol, atol=atol)


def test_create_train_state():
  state = _state()
  assert int(state.step) == 0 and state.batch_stats == {}
  # The tutorial Net's 62,006 parameters.
  assert sum(p.size for p in jax.tree.leaves(state.params)) == 62006
  _close(state.opt_state, TX.init(state.params), rtol=0)


def _torch_net(params):
  """The notes' Net with ToyNet's weights (NHWC/HWIO -> NCHW/OIHW)."""
  torch = pytest.importorskip("torch")
  # pylint: disable-next=g-import-not-at-top
  from experiments.bench_train import _torch_net as notes_net
  net = notes_net(torch)  # The notes' Net, as benchmarked.
  p = jax.tree.map(np.asarray, params)
  as_t = lambda a: torch.tensor(np.ascontiguousarray(a))
  with torch.no_grad():
    for name in ("conv1", "conv2"):
      layer = getattr(net, name)
      flax_name = f"Conv_{int(name[-1]) - 1}"
      layer.weight.copy_(as_t(p[flax_name]["kernel"].transpose(3, 2, 0, 1)))
      layer.bias.copy_(as_t(p[flax_name]["bias"]))
    # Flax flattens (h, w, c), torch (c, h, w).
    fc1 = p["Dense_0"]["kernel"].reshape(5, 5, 16, 120).transpose(3, 2, 0, 1)
    net.fc1.weight.copy_(as_t(fc1.reshape(120, 400)))
    net.fc1.bias.copy_(as_t(p["Dense_0"]["bias"]))
    for i, name in ((1, "fc2"), (2, "fc3")):
      getattr(net, name).weight.copy_(as_t(p[f"Dense_{i}"]["kernel"].T))
      getattr(net, name).bias.copy_(as_t(p[f"Dense_{i}"]["bias"]))
  return torch, net


def test_train_step_matches_the_notes_pytorch_loop(rng):
  """Three steps of the notes' loop (CE + SGD momentum 0.9) in torch."""
  state = _state()
  torch, net = _torch_net(state.params)
  opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
  criterion = torch.nn.CrossEntropyLoss()
  for _ in range(3):
    images = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 10, 4).astype(np.int32)
    opt.zero_grad()
    loss = criterion(net(torch.tensor(images.transpose(0, 3, 1, 2))),
                     torch.tensor(labels, dtype=torch.long))
    loss.backward()
    opt.step()
    state, metrics = STEP(state, images, labels)
    # float32 on both sides; losses ~2.3, 1e-5 relative covers summation order.
    np.testing.assert_allclose(metrics.loss, loss.item(), rtol=1e-5)
  fc3 = net.fc3.weight.detach().numpy().T
  np.testing.assert_allclose(state.params["Dense_2"]["kernel"], fc3,
                             rtol=1e-4, atol=1e-6)
  conv1 = net.conv1.weight.detach().numpy().transpose(2, 3, 1, 0)
  np.testing.assert_allclose(state.params["Conv_0"]["kernel"], conv1,
                             rtol=1e-4, atol=1e-6)
  assert int(state.step) == 3


def test_eval_step_matches_numpy(rng):
  state = _state()
  images = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
  labels = np.array([0, 1, 2, 3], np.int32)
  metrics, logits = EVAL(state, images, labels, np.array([1, 1, 1, 0], bool))
  z = np.asarray(logits, np.float64)[:3]
  log_probs = z - z.max(1, keepdims=True)
  log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
  expected = -log_probs[np.arange(3), labels[:3]].mean()
  np.testing.assert_allclose(metrics.loss, expected, rtol=1e-6)
  assert int(metrics.correct) == int((z.argmax(1) == labels[:3]).sum())
  assert int(metrics.count) == 3


def test_masked_step_equals_step_on_real_examples(rng):
  state = _state()
  images = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
  labels = rng.integers(0, 10, 4).astype(np.int32)
  mask = np.array([1, 1, 1, 0], bool)
  padded, m_padded = STEP(state, images, labels, mask)
  real, m_real = STEP(state, images[:3], labels[:3])
  # float32, summation over 3 vs 4 terms: 1e-6 relative, 1e-7 absolute.
  _close(padded.params, real.params, rtol=1e-6, atol=1e-7)
  _close(m_padded, m_real, rtol=1e-6)
  # All masked: no example, zero loss and a step that changes nothing.
  empty, m_empty = STEP(state, images, labels, np.zeros(4, bool))
  assert int(m_empty.count) == 0 and float(m_empty.loss) == 0.0
  _close(empty.params, state.params, rtol=0)


@pytest.mark.parametrize("labels, mask, message", [
    (np.zeros(3, np.int32), None, r"labels must have shape \[B\]"),
    (np.zeros(2, np.float32), None, "labels must be integer"),
    (np.zeros(2, np.int32), np.ones(3, bool), r"mask must have shape \(2,\)"),
])
def test_steps_reject_bad_batches(labels, mask, message):
  state = _state()
  images = np.zeros((2, 32, 32, 3), np.float32)
  for step in (train.train_step, train.eval_step):
    with pytest.raises(ValueError, match=message):
      step(state, images, labels, mask)


def test_masked_nan_examples_do_not_poison_the_step(rng):
  """Padding holding NaN images gave NaN parameters (0 * NaN in the
  convolutions' weight gradients), though it contributes no gradient."""
  state = _state()
  images = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
  labels = rng.integers(0, 10, 4).astype(np.int32)
  images[3] = np.nan
  mask = np.array([1, 1, 1, 0], bool)
  padded, m_padded = STEP(state, images, labels, mask)
  real, m_real = STEP(state, images[:3], labels[:3])
  # As in test_masked_step_equals_step_on_real_examples.
  _close(padded.params, real.params, rtol=1e-6, atol=1e-7)
  _close(m_padded, m_real, rtol=1e-6)
  metrics, _ = EVAL(state, images, labels, mask)
  assert np.isfinite(float(metrics.loss)) and int(metrics.count) == 3


def test_eager_steps_reject_labels_outside_the_classes(rng):
  """They were counted as examples with zero loss (cross_entropy ignores
  them); fit refused them, train_step and eval_step did not."""
  state = _state()
  images = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
  for labels in ([0, 10], [-1, 3]):
    for step in (train.train_step, train.eval_step):
      with pytest.raises(ValueError, match=r"labels must lie in \[0, "
                                           r"num_classes=10\)"):
        step(state, images, np.array(labels, np.int32))
  # Padding may hold any label.
  _, metrics = train.train_step(state, images, np.array([0, 10], np.int32),
                                np.array([True, False]))
  assert int(metrics.count) == 1


class _BatchNormDropoutNet(nn.Module):

  @nn.compact
  def __call__(self, x, *, train=False):
    x = nn.Conv(4, (3, 3))(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.5)(x)
    x = nn.Dropout(0.5, deterministic=not train)(nn.relu(x))
    return nn.Dense(3)(x.reshape(x.shape[0], -1))


def test_batch_norm_and_dropout_models(rng):
  model = _BatchNormDropoutNet()
  state = _state(model=model, tx=optax.sgd(0.1), size=4)
  images = rng.normal(size=(8, 4, 4, 3)).astype(np.float32)
  labels = rng.integers(0, 3, 8).astype(np.int32)
  new, _ = STEP(state, images, labels)
  # Running statistics moved half-way to the batch mean (momentum 0.5).
  mean = new.batch_stats["BatchNorm_0"]["mean"]
  assert float(jnp.abs(mean).max()) > 0
  # Evaluation is deterministic (running averages, no dropout) ...
  a = EVAL(new, images, labels)[1]
  b = EVAL(new, images, labels)[1]
  np.testing.assert_array_equal(a, b)
  # ... while training draws a new dropout mask at every step.
  _, m1 = STEP(new, images, labels)
  _, m2 = STEP(new.replace(step=new.step + 1), images, labels)
  assert float(m1.loss) != float(m2.loss)


def test_train_step_compiles_once(rng):
  state = _state(model=_BatchNormDropoutNet(), tx=optax.sgd(0.1), size=4)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(state, images, labels):
    return train.train_step(state, images, labels)

  images = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
  state, _ = step(state, images, np.array([1, 2], np.int32))
  step(state, images + 1, np.array([0, 1], np.int32))


# ---------------------------------------------------------------------- fit


@pytest.fixture(scope="module")
def dataset():
  rng = np.random.default_rng(1)
  train_x, train_y = _images(rng, 40)
  test_x, test_y = _images(rng, 12)
  return train_x, train_y, test_x, test_y


def _fit(dataset, **kwargs):
  train_x, train_y, test_x, test_y = dataset
  kwargs.setdefault("epochs", 3)
  return train.fit(_state(), train_x, train_y, batch_size=8,
                   test_images=test_x, test_labels=test_y, **kwargs)


def test_fit_learns_and_records_history(dataset):
  result = _fit(dataset, epochs=4)
  h = result.history
  assert h["epoch"] == [1.0, 2.0, 3.0, 4.0]
  assert len(h["step_loss"]) == 4 * 5 and len(h["compile_seconds"]) == 1
  for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy",
              "epoch_seconds"):
    assert len(h[key]) == 4, key
  assert h["train_loss"][-1] < h["train_loss"][0]
  chex.assert_shape(result.test_logits, (12, 10))
  # The returned logits are the final state's (float32, 1e-5).
  _, logits = EVAL(result.state, data.normalize(dataset[2][:4]),
                   dataset[3][:4])
  np.testing.assert_allclose(result.test_logits[:4], logits, rtol=1e-5,
                             atol=1e-5)
  accuracy = np.mean(np.argmax(result.test_logits, 1) == dataset[3])
  np.testing.assert_allclose(h["test_accuracy"][-1], accuracy)
  assert int(result.state.step) == 20


def test_fit_resume_equals_uninterrupted_run(dataset, tmp_path):
  full = _fit(dataset, epochs=3)

  def interrupt(epoch, history):
    if epoch == 2:
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    _fit(dataset, epochs=3, checkpoint_dir=tmp_path, callback=interrupt)
  assert train.latest_checkpoint(tmp_path) == 2
  resumed = _fit(dataset, epochs=3, checkpoint_dir=tmp_path, resume=True)
  # Same compiled epochs on the same state: bit-identical parameters.
  _close(resumed.state.params, full.state.params, rtol=0)
  _close(resumed.state.opt_state, full.state.opt_state, rtol=0)
  assert int(resumed.state.step) == int(full.state.step)
  for key in ("train_loss", "test_accuracy", "step_loss"):
    assert resumed.history[key] == full.history[key], key
  # Resuming a finished run trains no more.
  again = _fit(dataset, epochs=3, checkpoint_dir=tmp_path, resume=True)
  _close(again.state.params, full.state.params, rtol=0)
  # Asking for fewer epochs than the checkpoints hold is an error, and so
  # is a fresh run into the folder (orbax would keep the old checkpoints).
  with pytest.raises(ValueError, match="holds a run of 3 epochs, more than "
                                       "epochs=2"):
    _fit(dataset, epochs=2, checkpoint_dir=tmp_path, resume=True)
  before = _snapshot(tmp_path)
  with pytest.raises(ValueError, match="already holds checkpoints .*after "
                                       "epoch 3.*resume=True"):
    _fit(dataset, epochs=3, checkpoint_dir=tmp_path)
  assert _snapshot(tmp_path) == before
  with pytest.raises(ValueError, match="checkpoint 3 already exists"):
    train.save_checkpoint(tmp_path, full.state, epoch=3)


def test_fit_without_epochs_evaluates_the_given_state(dataset):
  result = _fit(dataset, epochs=0)
  assert int(result.state.step) == 0 and "epoch" not in result.history
  _, logits = EVAL(_state(), data.normalize(dataset[2]), dataset[3])
  np.testing.assert_allclose(result.test_logits, logits, rtol=1e-5,
                             atol=1e-5)


def _snapshot(folder):
  files = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        files[os.path.relpath(path, folder)] = f.read()
  return files


def test_corrupt_checkpoint_is_reported_and_kept(dataset, tmp_path):
  _fit(dataset, epochs=2, checkpoint_dir=tmp_path)
  # Corrupt every file of the latest checkpoint's state.
  latest = tmp_path / "2"
  for root, _, names in os.walk(latest / "state"):
    for name in names:
      with open(os.path.join(root, name), "r+b") as f:
        size = f.seek(0, 2)
        f.seek(0)
        f.write(b"\xff" * max(size, 1))
  before = _snapshot(tmp_path)
  with pytest.raises(ValueError, match=r"checkpoint .*/2 is corrupt.*other "
                                       r"checkpoints: \[1\]"):
    _fit(dataset, epochs=4, checkpoint_dir=tmp_path, resume=True)
  assert _snapshot(tmp_path) == before  # Nothing overwritten or deleted.
  state, history, epoch = train.restore_checkpoint(tmp_path, _state(),
                                                   epoch=1)
  assert epoch == 1 and history["epoch"] == [1.0] and int(state.step) == 5


def test_restore_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    train.restore_checkpoint(tmp_path, _state())
  with pytest.raises(FileNotFoundError, match="missing does not exist"):
    train.restore_checkpoint(tmp_path / "missing", _state())
  assert not (tmp_path / "missing").exists()  # Restoring creates nothing.
  assert train.latest_checkpoint(tmp_path / "missing") is None


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be an int >= 1"),
    ({"batch_size": 8.0}, "batch_size must be an int >= 1"),
    ({"epochs": -1}, "epochs must be an int >= 0"),
    ({"epochs": 1.5}, "epochs must be an int >= 0"),
    ({"eval_batch_size": 0}, "eval_batch_size must be an int >= 1"),
    ({"max_to_keep": 0}, "max_to_keep must be None or an int >= 1"),
    ({"resume": True}, "resume=True needs a checkpoint_dir"),
    ({"test_images": np.zeros((2, 32, 32, 3), np.uint8)},
     "test_images and test_labels must be given together"),
    ({"test_images": np.zeros((0, 32, 32, 3), np.uint8),
      "test_labels": np.zeros(0, np.int32)}, "test_images must hold"),
    ({"test_images": np.zeros((2, 32, 32, 3), np.uint8),
      "test_labels": np.zeros(3, np.int32)},
     r"test_labels must have shape \[B\] matching test_images"),
    ({"test_images": np.zeros((2, 32, 32, 3), np.uint8),
      "test_labels": np.zeros(2, np.float32)},
     "test_labels must be integer class indices"),
    ({"test_images": np.zeros((2, 28, 28, 3), np.uint8),
      "test_labels": np.zeros(2, np.int32)},
     r"test_images must have the train images' shape \[N, 32, 32, 3\]"),
    ({"test_images": np.zeros((2, 32, 32, 3), np.uint8),
      "test_labels": np.array([0, 10], np.int32)},
     r"test_labels must be class indices in \[0, 10\)"),
])
def test_fit_bad_arguments(dataset, kwargs, message, tmp_path):
  kwargs = {"epochs": 1, "batch_size": 8, "checkpoint_dir": tmp_path,
            **kwargs}
  if kwargs.get("resume"):
    kwargs.pop("checkpoint_dir")
  with pytest.raises(ValueError, match=message):
    train.fit(_state(), dataset[0], dataset[1], **kwargs)
  assert not list(tmp_path.iterdir())  # Nothing ran, nothing was written.


def test_fit_rejects_negative_train_labels(dataset):
  """Torch's CrossEntropyLoss raises; they would add 0 loss but count."""
  labels = np.array(dataset[1])
  labels[3] = -1
  with pytest.raises(ValueError, match="train_labels must be class indices"):
    train.fit(_state(), dataset[0], labels, epochs=1, batch_size=8)


def test_unhashable_model_is_a_clear_error():
  class ListMLP(nn.Module):
    features: list

    @nn.compact
    def __call__(self, x, *, train=False):
      del train
      return nn.Dense(self.features[-1])(x.reshape(x.shape[0], -1))

  with pytest.raises(ValueError, match="model must be hashable.*tuple"):
    _state(model=ListMLP([16, 10]))
  _state(model=ListMLP((16, 10)))  # The tuple works.


@pytest.mark.parametrize("epoch", [-1, 1.5, True, "2"])
def test_save_checkpoint_rejects_bad_epochs(tmp_path, epoch):
  """They were saved in folders (-1, 1.5, True) that latest_checkpoint and
  restore_checkpoint never find."""
  with pytest.raises(ValueError, match="epoch must be an int >= 0"):
    train.save_checkpoint(tmp_path, _state(), epoch=epoch)
  assert not list(tmp_path.iterdir())


def test_checkpoint_folders_expand_the_home_folder(tmp_path, monkeypatch):
  """``~/ckpt`` was a folder named ``~`` in the working directory, as
  ``load_cifar10`` expands it."""
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  monkeypatch.chdir(tmp_path)
  state = _state()
  train.save_checkpoint("~/ckpt", state, epoch=1)
  assert (tmp_path / "home" / "ckpt" / "1").is_dir()
  assert not (tmp_path / "~").exists()
  assert train.latest_checkpoint("~/ckpt") == 1
  restored, _, epoch = train.restore_checkpoint("~/ckpt", state)
  assert epoch == 1
  chex.assert_trees_all_equal(restored.params, state.params)


def test_restore_keeps_a_raw_uint32_key(tmp_path):
  """A state made from jax.random.PRNGKey came back with a typed key: a
  resumed fit returned another rng dtype than an uninterrupted one."""
  state = train.create_train_state(jax.random.PRNGKey(3), MODEL, TX,
                                   jnp.zeros((1, 32, 32, 3)))
  assert state.rng.dtype == jnp.uint32
  train.save_checkpoint(tmp_path, state, epoch=1)
  restored, _, _ = train.restore_checkpoint(tmp_path, state)
  assert restored.rng.dtype == state.rng.dtype
  np.testing.assert_array_equal(restored.rng, state.rng)
  typed = _state()
  train.save_checkpoint(tmp_path, typed, epoch=2)
  restored, _, _ = train.restore_checkpoint(tmp_path, typed)
  assert restored.rng.dtype == typed.rng.dtype
  np.testing.assert_array_equal(jax.random.key_data(restored.rng),
                                jax.random.key_data(typed.rng))


def test_save_checkpoint_says_why_it_did_not_save(tmp_path):
  state = _state()
  for epoch in (1, 2):
    train.save_checkpoint(tmp_path, state, epoch=epoch)
  with pytest.raises(ValueError, match="checkpoint 2 already exists"):
    train.save_checkpoint(tmp_path, state, epoch=2)
  shutil.rmtree(tmp_path / "1")
  with pytest.raises(ValueError, match="epoch 1 is not after the latest "
                     "checkpoint 2"):
    train.save_checkpoint(tmp_path, state, epoch=1)
  with pytest.raises(ValueError, match="max_to_keep"):
    train.save_checkpoint(tmp_path, state, epoch=3, max_to_keep=0)
  assert train.latest_checkpoint(tmp_path) == 2
  train.save_checkpoint(tmp_path, state, epoch=3, max_to_keep=np.int64(5))
  assert train.latest_checkpoint(tmp_path) == 3


# ------------------------------------------------------------ the main job


def test_main_job_end_to_end_on_generated_cifar(tmp_path, rng):
  """experiments.train on a tiny CIFAR-format folder: report and plots."""
  # pylint: disable-next=g-import-not-at-top
  from experiments import train as main_job
  from tests.test_data import write_cifar  # pylint: disable=g-import-not-at-top

  folder = write_cifar(str(tmp_path / "data"), rng, n=8)
  workdir = tmp_path / "run"
  out = main_job.main([
      "--dataset", "cifar10", "--data-dir", folder, "--epochs", "3",
      "--batch-size", "8", "--lr", "0.01", "--optimizer", "adam",
      "--workdir", str(workdir), "--no-progress"])
  for name in ("report.md", "curves.png", "roc.png", "pr.png",
               "confusion.png"):
    assert (workdir / name).stat().st_size > 0, name
  assert train.latest_checkpoint(workdir / "checkpoints") == 3
  history = out["history"]
  assert len(history["step_loss"]) == 3 * 5  # 40 images, batches of 8.
  assert history["train_loss"][-1] < history["train_loss"][0]
  report = (workdir / "report.md").read_text()
  for text in ("test accuracy", "macro ROC-AUC", "Per-class metrics",
               "Confusion matrix", "FLOPs", "62,006", "time per epoch",
               "devices: 1 x cpu"):
    assert text in report, text
  assert "| airplane |" in report  # class names from batches.meta
  # --resume with other settings than the checkpointed run's: refused.
  def resume_with_another_lr():
    with pytest.raises(ValueError, match="these differ: --lr 0.01 -> 0.02"):
      main_job.main(["--dataset", "cifar10", "--data-dir", folder,
                     "--epochs", "4", "--batch-size", "8", "--lr", "0.02",
                     "--optimizer", "adam", "--workdir", str(workdir),
                     "--resume", "--no-progress"])
    assert train.latest_checkpoint(workdir / "checkpoints") == 3

  resume_with_another_lr()
  # A fresh run that fails before its first checkpoint leaves the old run,
  # and its run.json, in place.
  def fail(*args, **kwargs):
    raise RuntimeError("interrupted")

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(main_job.train, "fit", fail)
    with pytest.raises(RuntimeError):
      main_job.main(["--dataset", "cifar10", "--data-dir", folder,
                     "--lr", "0.02", "--workdir", str(workdir),
                     "--no-progress"])
  run_file = workdir / "checkpoints" / "run.json"
  assert json.loads(run_file.read_text())["lr"] == 0.01
  assert train.latest_checkpoint(workdir / "checkpoints") == 3
  # Killed while saving its first checkpoint (orbax has made the folder
  # and its temporary step): the old checkpoints and settings come back.
  os.rename(workdir / "checkpoints", workdir / "checkpoints.replaced")
  (workdir / "checkpoints" / "1.orbax-checkpoint-tmp").mkdir(parents=True)
  run_file.write_text(json.dumps({"lr": 0.02}))
  resume_with_another_lr()
  assert not (workdir / "checkpoints.replaced").exists()


def test_main_job_resume_with_nothing_to_resume_or_old_settings_file(
    tmp_path, rng):
  # pylint: disable-next=g-import-not-at-top
  from experiments import train as main_job
  from tests.test_data import write_cifar  # pylint: disable=g-import-not-at-top

  folder = write_cifar(str(tmp_path / "data"), rng, n=8)
  workdir = tmp_path / "run"
  checkpoints = workdir / "checkpoints"

  def run(lr, *extra):
    return main_job.main(["--dataset", "cifar10", "--data-dir", folder,
                          "--epochs", "1", "--batch-size", "8", "--lr", lr,
                          "--workdir", str(workdir), "--no-progress", *extra])

  # A fresh run killed before its first checkpoint left only its settings:
  # --resume has nothing to continue, so other settings start from scratch.
  checkpoints.mkdir(parents=True)
  (checkpoints / "run.json").write_text(json.dumps({"lr": 0.01}))
  run("0.05", "--resume")
  assert train.latest_checkpoint(checkpoints) == 1
  assert json.loads((checkpoints / "run.json").read_text())["lr"] == 0.05
  # A workdir from before the settings moved into checkpoints/ keeps them
  # beside it: they are checked, and nothing is rewritten when refused.
  os.rename(checkpoints / "run.json", workdir / "run.json")
  with pytest.raises(ValueError, match="these differ: --lr 0.05 -> 0.5"):
    run("0.5", "--resume", "--epochs", "2")
  assert not (checkpoints / "run.json").exists()
  assert train.latest_checkpoint(checkpoints) == 1


def test_main_job_keeps_old_checkpoints_until_a_new_one_is_saved(tmp_path):
  # pylint: disable-next=g-import-not-at-top
  from experiments import train as main_job
  checkpoints = tmp_path / "checkpoints"
  checkpoints.mkdir()
  (checkpoints / "old").write_text("x")
  with pytest.raises(RuntimeError):  # Fails before its first checkpoint.
    with main_job._replacing(str(checkpoints), replace=True):
      assert not checkpoints.exists()
      checkpoints.mkdir()
      raise RuntimeError
  assert (checkpoints / "old").exists()
  with main_job._replacing(str(checkpoints), replace=True) as replaced:
    checkpoints.mkdir()
    (checkpoints / "new").write_text("y")
    replaced()  # The first new checkpoint is saved.
    assert not (tmp_path / "checkpoints.replaced").exists()
  assert [p.name for p in checkpoints.iterdir()] == ["new"]
  # A run killed before it could put the old ones back: the next run does.
  os.rename(checkpoints, tmp_path / "checkpoints.replaced")
  with main_job._replacing(str(checkpoints), replace=False):
    assert [p.name for p in checkpoints.iterdir()] == ["new"]
  assert not (tmp_path / "checkpoints.replaced").exists()


def test_main_job_options(tmp_path, monkeypatch):
  # pylint: disable-next=g-import-not-at-top
  from experiments import train as main_job
  with pytest.raises(SystemExit):  # It would be ignored and reported.
    main_job.parse_args(["--data-dir", "/does/not/exist"])
  # A usage error, not a FileNotFoundError traceback from load_cifar10.
  with pytest.raises(SystemExit):
    main_job.parse_args(["--dataset", "cifar10", "--data-dir", "/no/such"])
  # Recorded absolute: a relative path on --resume names the same folder.
  monkeypatch.chdir(tmp_path)
  (tmp_path / "x").mkdir()
  relative = main_job.parse_args(["--dataset", "cifar10", "--data-dir", "x"])
  assert relative["data_dir"] == str(tmp_path / "x")
  config = main_job.parse_args([])
  assert (config["dataset"], config["model"], config["optimizer"]) == (
      "digits", "toynet", "sgd")
  assert config["workdir"] == os.path.join("runs", "digits-toynet")
  cifar = main_job.parse_args(["--dataset", "cifar10", "--data-dir", "x"])
  # The tutorial's settings on CIFAR-10.
  assert (cifar["epochs"], cifar["batch_size"], cifar["lr"]) == (2, 4, 0.001)
  for name in (*main_job.OPTIMIZERS, "optax-adamw", "optax-lion",
               "optax-sgd", "optax-adafactor", "optax-lamb", "optax-rmsprop",
               "optax-rprop"):
    assert isinstance(main_job.make_optimizer(name, 0.1),
                      optax.GradientTransformation), name
  # Not optimizers that (grads, state) drive, or (scale, clip) ones whose
  # updates are not negated: they would climb the loss.
  for name in ("optax-nothing", "optax-lbfgs", "optax-global_norm",
               "optax-chain", "optax-scale", "optax-clip",
               "optax-scale_by_rprop"):
    with pytest.raises(ValueError, match="--optimizer must be one of"):
      main_job.make_optimizer(name, 0.1)
  for bad in (["--epochs", "0"], ["--batch-size", "0"], ["--lr", "-0.01"],
              ["--lr", "inf"], ["--optimizer", "optax-scale"],
              ["--optimizer", "adamw"]):
    with pytest.raises(SystemExit):
      main_job.parse_args(bad)
  with pytest.raises(SystemExit):  # Not a traceback from load_dataset.
    main_job.parse_args(["--dataset", "cifar10"])
  with pytest.raises(ValueError, match="--model must be one of"):
    main_job.make_model("lenet", 10)
  with pytest.raises(ValueError, match="needs --data-dir"):
    main_job.load_dataset("cifar10", None)


def test_main_job_distributed_starts_jax_distributed_first():
  """--distributed: jax.distributed.initialize() ran after parse_args had
  checked --optimizer with JAX (RuntimeError: must be called before any JAX
  calls), and without the process count and id of JAX_NUM_PROCESSES and
  JAX_PROCESS_ID, which JAX itself does not read."""
  import socket  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  script = (
      "import jax, json, sys\n"
      "from experiments import train as main_job\n"
      "def stop(config, workdir):\n"
      "  print(json.dumps([jax.process_count(), sorted(config)]))\n"
      "  sys.exit(0)\n"
      "main_job.train_and_evaluate = stop\n"
      "main_job.main(['--distributed', '--workdir', 'unused'])\n")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="",
             JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
             JAX_NUM_PROCESSES="1", JAX_PROCESS_ID="0")
  proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=root,
                        capture_output=True, text=True, timeout=300,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  count, keys = json.loads(proc.stdout.strip().splitlines()[0])
  assert count == 1 and "distributed" not in keys
