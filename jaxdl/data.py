"""Image-classification datasets and on-device shuffling and batching.

Loaders return host (NumPy) arrays: images ``uint8`` ``[N, 32, 32, 3]``
(NHWC) and labels ``int32`` ``[N]``. Everything after loading is pure JAX:
:func:`normalize` maps ``uint8`` pixels to the PyTorch tutorial's
``Normalize((0.5,) * 3, (0.5,) * 3)`` range, and :func:`batch_indices` draws
a shuffled, fixed-shape epoch of batch indices on device, so an epoch can run
inside one ``lax.scan``.

Two datasets are provided:

* :func:`load_cifar10` reads the standard python-pickle release of CIFAR-10
  (the ``cifar-10-batches-py`` folder, or the ``cifar-10-python.tar.gz``
  archive), as ``torchvision.datasets.CIFAR10`` does;
* :func:`load_digits` is the embedded default: scikit-learn's handwritten
  digits resized to 32x32x3, so the main job runs with no download.
"""

from __future__ import annotations

import functools
import io
import lzma
import os
import pickle
import posixpath
import tarfile
import zlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxdl._checks import _is_int, boolean

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                   "frog", "horse", "ship", "truck")
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_META_FILE = "batches.meta"
_CIFAR_PIXELS = 3 * 32 * 32

# The tutorial's transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).
TUTORIAL_MEAN = (0.5, 0.5, 0.5)
TUTORIAL_STD = (0.5, 0.5, 0.5)


class Dataset(NamedTuple):
  """An image-classification dataset held in host memory.

  Attributes:
    train_images: ``[N, H, W, C]`` uint8 training images (NHWC).
    train_labels: ``[N]`` int32 class indices.
    test_images: ``[M, H, W, C]`` uint8 test images.
    test_labels: ``[M]`` int32 class indices.
    class_names: the ``num_classes`` class names, in label order.
  """
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: tuple[str, ...]


class Batches(NamedTuple):
  """One epoch of fixed-shape batches of dataset indices.

  Attributes:
    indices: ``[S, B]`` int32 indices into the dataset; padding slots hold
      a valid index (0) so that gathers stay in bounds.
    mask: ``[S, B]`` bool, True for real examples, False for padding.
  """
  indices: jax.Array
  mask: jax.Array


# ----------------------------------------------------------------- CIFAR-10


class _CifarUnpickler(pickle.Unpickler):
  """Unpickles only what the CIFAR batches contain: no arbitrary code."""

  _ALLOWED = {
      ("numpy.core.multiarray", "_reconstruct"),
      ("numpy._core.multiarray", "_reconstruct"),
      ("numpy.core.numeric", "_frombuffer"),
      ("numpy._core.numeric", "_frombuffer"),
      ("numpy", "ndarray"),
      ("numpy", "dtype"),
      # NumPy scalars, e.g. labels written as a list of np.int64.
      ("numpy.core.multiarray", "scalar"),
      ("numpy._core.multiarray", "scalar"),
      ("_codecs", "encode"),  # How Python 3 writes bytes in protocol 2.
  }
  # Empty bytes (b"") and bytearrays, as protocol 2 writes them: their
  # constructors, restricted to copying text or bytes (an int argument would
  # allocate that many bytes from a pickle of a few).
  _BYTES = {("__builtin__", "bytes"): bytes, ("builtins", "bytes"): bytes,
            ("__builtin__", "bytearray"): bytearray,
            ("builtins", "bytearray"): bytearray}

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) in self._BYTES:
      return functools.partial(_copy_bytes, self._BYTES[module, name])
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
    return super().find_class(module, name)


def _copy_bytes(kind: type, *args: Any) -> bytes | bytearray:
  """``kind()`` or ``kind(text, encoding)`` / ``kind(data)``; no sizes."""
  if args and not isinstance(args[0], (str, bytes, bytearray)):
    raise pickle.UnpicklingError(
        f"{kind.__name__}({type(args[0]).__name__}) is not data")
  return kind(*args)


def _unpickle(raw: bytes, source: str) -> dict[str, Any]:
  """Reads one CIFAR pickle (protocol 2 from Python 2, or any later one).

  The pickle must fill the whole file: two batches written one after the
  other, or bytes appended to one, are an error rather than ignored.
  """
  stream = io.BytesIO(raw)
  try:
    # latin1 is how Python 3 reads the Python 2 pickles of the release.
    entry = _CifarUnpickler(stream, encoding="latin1").load()
  except Exception as err:  # pickle raises many types on corrupt input.
    raise ValueError(
        f"{source} is not a readable CIFAR-10 pickle (truncated or "
        f"corrupt?): {type(err).__name__}: {err}") from err
  if stream.tell() != len(raw):
    raise ValueError(
        f"{source} has trailing data after its pickle ("
        f"{len(raw) - stream.tell()} of {len(raw)} bytes unread).")
  if not isinstance(entry, dict):
    raise ValueError(f"{source} must hold a dict, got {type(entry).__name__}.")
  # latin1 decodes any bytes: a bad key is then reported as a missing field.
  return {k.decode("latin1") if isinstance(k, bytes) else k: v
          for k, v in entry.items()}


def _parse_batch(entry: dict[str, Any],
                 source: str) -> tuple[np.ndarray, np.ndarray]:
  """Checks one batch dict and returns ``([n, 32, 32, 3] uint8, [n] int32)``."""
  for field in ("data", "labels"):
    if field not in entry:
      raise ValueError(f"{source} has no {field!r} entry "
                       f"(found {sorted(map(repr, entry))}).")
  arrays = {}
  for field in ("data", "labels"):
    try:
      arrays[field] = np.asarray(entry[field])
    except (TypeError, ValueError) as err:  # Ragged lists, odd objects.
      raise ValueError(f"{source}: {field!r} must be an array, got "
                       f"{type(entry[field]).__name__}: {err}") from err
  images, labels = arrays["data"], arrays["labels"]
  if labels.size == 0:  # np.asarray([]) is float64
    labels = labels.astype(np.int64)
  if images.dtype != np.uint8 or images.ndim != 2 or (
      images.shape[1] != _CIFAR_PIXELS):
    raise ValueError(
        f"{source}: 'data' must be uint8 of shape [n, {_CIFAR_PIXELS}], got "
        f"{images.dtype} of shape {images.shape}.")
  if labels.shape != (images.shape[0],):
    raise ValueError(
        f"{source}: 'labels' must have one entry per image ({images.shape[0]}"
        f"), got shape {labels.shape}.")
  if not np.issubdtype(labels.dtype, np.integer) or (
      labels.size and (labels.min() < 0 or labels.max() >= 10)):
    raise ValueError(f"{source}: 'labels' must be integers in [0, 10).")
  # Rows are the R, G and B planes of a 32x32 image, row-major: CHW -> HWC.
  images = images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels.astype(np.int32)


def _cifar_reader(path: str):
  """Returns ``read(name) -> (bytes, source)`` for a folder or a .tar.gz."""
  if os.path.isdir(path):
    folder = path
    if not os.path.exists(os.path.join(folder, CIFAR10_TEST_FILE)) and (
        os.path.isdir(os.path.join(folder, CIFAR10_FOLDER))):
      folder = os.path.join(folder, CIFAR10_FOLDER)

    def read_file(name: str) -> tuple[bytes, str]:
      file = os.path.join(folder, name)
      if not os.path.isfile(file):
        raise FileNotFoundError(f"CIFAR-10 batch file {file} is missing.")
      with open(file, "rb") as f:
        return f.read(), file

    return read_file

  try:
    is_tar = tarfile.is_tarfile(path)
  except Exception:  # pylint: disable=broad-except
    is_tar = True  # Unreadable as a tar: the archive reader says why.
  if not is_tar:
    raise ValueError(
        f"CIFAR-10 path {path} is neither a folder nor a tar archive (give "
        f"the {CIFAR10_FOLDER} folder, a folder containing it, or the "
        ".tar.gz).")
  return _archive_reader(path)


def _archive_reader(path: str):
  """Returns ``read(name) -> (bytes, source)`` for a CIFAR-10 tar archive.

  Only the files directly in the folder that holds ``test_batch`` count, so
  that a batch of the same name elsewhere (a backup, another copy) can never
  stand in for one of the release.
  """
  wanted = {*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE, CIFAR10_META_FILE}
  found: dict[str, bytes] = {}  # Normalised member path -> contents.
  repeated: set[str] = set()
  try:
    with tarfile.open(path, "r:*") as archive:
      for member in archive:  # In stream order: no seeking back.
        name = posixpath.normpath(member.name)
        if member.isfile() and posixpath.basename(name) in wanted:
          if name in found:
            repeated.add(name)
          found[name] = archive.extractfile(member).read()
      # Reading the compressed stream to its end makes gzip (bz2, xz) check
      # its checksum, which the tar members alone never reach.
      while archive.fileobj.read(1 << 20):
        pass
  except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error,
          lzma.LZMAError) as err:
    raise ValueError(f"CIFAR-10 archive {path} cannot be read (truncated or "
                     f"corrupt?): {type(err).__name__}: {err}") from err
  folders = sorted({posixpath.dirname(name) for name in found
                    if posixpath.basename(name) == CIFAR10_TEST_FILE})
  if not folders:
    raise FileNotFoundError(
        f"CIFAR-10 archive {path} has no batch file {CIFAR10_TEST_FILE}.")
  if len(folders) > 1:
    raise ValueError(
        f"CIFAR-10 archive {path} is ambiguous: {CIFAR10_TEST_FILE} is in "
        f"several folders ({', '.join(map(repr, folders))}).")
  folder = folders[0]
  members: dict[str, bytes] = {}  # Path relative to the folder -> contents.
  for name, contents in found.items():
    if posixpath.dirname(name) == folder:
      if name in repeated:
        raise ValueError(f"CIFAR-10 archive {path} holds {name} more than "
                         "once; which copy is the batch is ambiguous.")
      members[posixpath.basename(name)] = contents

  def read_member(name: str) -> tuple[bytes, str]:
    if name not in members:
      raise FileNotFoundError(
          f"CIFAR-10 archive {path} has no batch file {name}.")
    return members[name], f"{path}:{posixpath.join(folder, name)}"

  return read_member


def load_cifar10(path: str | os.PathLike[str]) -> Dataset:
  """Loads CIFAR-10 from the standard python-pickle release.

  Reads the five ``data_batch_*`` files, ``test_batch`` and (when present)
  ``batches.meta``. Nothing is returned unless every batch is complete and
  well formed. Batch sizes are not fixed to 10,000 so that smaller files in
  the same format load too. The pickles are read with an unpickler that
  admits only NumPy arrays and plain containers.

  Args:
    path: the ``cifar-10-batches-py`` folder, a folder containing it, or the
      ``cifar-10-python.tar.gz`` archive; a leading ``~`` is expanded. In an
      archive only the files beside ``test_batch`` are read.

  Returns:
    A :class:`Dataset`: images ``uint8 [N, 32, 32, 3]`` (50,000 train and
    10,000 test in the release), labels ``int32 [N]``, the 10 class names.

  Raises:
    FileNotFoundError: naming ``path`` or the missing batch file.
    ValueError: naming the file that is truncated, corrupt, has trailing
      data or arrays of the wrong size, dtype or label range, or the archive
      in which the batch files are ambiguous (``test_batch`` in two folders,
      a batch file twice).

  References:
    Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009;
    the reader of ``torchvision.datasets.CIFAR10``.
  """
  path = os.path.expanduser(os.fspath(path))
  if not os.path.exists(path):
    raise FileNotFoundError(f"CIFAR-10 path {path} does not exist.")
  read = _cifar_reader(path)

  def load(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for name in names:
      raw, source = read(name)
      parts.append(_parse_batch(_unpickle(raw, source), source))
    return (np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]))

  train_images, train_labels = load(CIFAR10_TRAIN_FILES)
  test_images, test_labels = load((CIFAR10_TEST_FILE,))
  class_names = CIFAR10_CLASSES
  try:
    raw, source = read(CIFAR10_META_FILE)
  except FileNotFoundError:
    pass  # The names are fixed; the meta file is optional.
  else:
    names = _unpickle(raw, source).get("label_names")
    if not isinstance(names, (list, tuple)) or len(names) != 10 or not all(
        isinstance(n, (str, bytes)) for n in names):
      raise ValueError(
          f"{source}: 'label_names' must list 10 class names (a list of str "
          f"or bytes), got {type(names).__name__} {names!r:.80}.")
    try:
      class_names = tuple(n.decode() if isinstance(n, bytes) else n
                          for n in names)
    except UnicodeDecodeError as err:
      raise ValueError(f"{source}: 'label_names' are not UTF-8 text: "
                       f"{err}") from err
  return Dataset(train_images, train_labels, test_images, test_labels,
                 class_names)


# ------------------------------------------------------------------- digits


def load_digits(*, test_fraction: float = 0.2) -> Dataset:
  """scikit-learn's handwritten digits as a 32x32x3 CIFAR-shaped dataset.

  The 1,797 8x8 images (17 grey levels, 0..16) are scaled to 0..255, resized
  bilinearly to 32x32 and repeated over three channels, then split
  (stratified, fixed seed) into train and test. This is the embedded
  default of the main job: it needs no download.

  Args:
    test_fraction: fraction of images held out for test, in (0, 1), such
      that both sides hold at least 10 images (one per class).

  Returns:
    A :class:`Dataset` with uint8 ``[N, 32, 32, 3]`` images; with the
    default split 1,437 train and 360 test images, class names "0" .. "9".

  References:
    ``sklearn.datasets.load_digits`` (UCI optical recognition of
    handwritten digits); ``sklearn.model_selection.train_test_split``.
  """
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(
        f"test_fraction must be in (0, 1), got {test_fraction}.")
  # scikit-learn ships the data; it is an optional dependency (extra "train").
  # pylint: disable-next=g-import-not-at-top
  from sklearn import datasets, model_selection

  digits = datasets.load_digits()
  small = digits.images.astype(np.float32) * (255.0 / 16.0)  # [N, 8, 8]
  large = jax.image.resize(small, (small.shape[0], 32, 32), "linear")
  images = np.asarray(jnp.clip(jnp.round(large), 0, 255)).astype(np.uint8)
  images = np.repeat(images[..., None], 3, axis=-1)  # [N, 32, 32, 3]
  labels = digits.target.astype(np.int32)
  try:
    train_x, test_x, train_y, test_y = model_selection.train_test_split(
        images, labels, test_size=test_fraction, random_state=0,
        stratify=labels)
  except ValueError as err:  # A side with fewer images than classes.
    raise ValueError(
        f"test_fraction={test_fraction} leaves fewer than one image per "
        f"class on one side of the stratified split: {err}") from err
  return Dataset(train_x, train_y, test_x, test_y,
                 tuple(str(d) for d in range(10)))


# --------------------------------------------------- normalisation, batching


def normalize(images: ArrayLike, *,
              mean: float | tuple[float, ...] = TUTORIAL_MEAN,
              std: float | tuple[float, ...] = TUTORIAL_STD) -> jax.Array:
  """Scales uint8 pixels to [0, 1], then standardises per channel.

  The default is the tutorial's ``ToTensor()`` followed by
  ``Normalize((0.5,) * 3, (0.5,) * 3)``, which maps pixels to [-1, 1].

  Args:
    images: ``[..., C]`` images with values in 0..255 (any numeric dtype).
    mean: per-channel mean in [0, 1] units: a finite number, or ``C``
      (or 1) of them.
    std: per-channel standard deviation, as ``mean``; all > 0.

  Returns:
    ``[..., C]`` float32 images ``(images / 255 - mean) / std``.

  References:
    ``torchvision.transforms.ToTensor`` and ``Normalize``.

  >>> normalize(jnp.array([[0, 255, 0]], jnp.uint8))
  Array([[-1.,  1., -1.]], dtype=float32)
  """
  images = jnp.asarray(images)
  if images.ndim < 1:
    raise ValueError("images must have a trailing channel axis [..., C].")
  for name, value in (("mean", mean), ("std", std)):
    try:
      values = np.asarray(value, np.float64)
    except (TypeError, ValueError):
      values = np.zeros((0, 0))  # Not numbers: reported just below.
    if values.ndim > 1 or values.size not in (1, images.shape[-1]):
      raise ValueError(f"{name} must have 1 or {images.shape[-1]} entries "
                       f"(one per channel) or be a number, got {value!r}.")
  if not np.all(np.asarray(std, np.float64) > 0):  # NaN fails too.
    raise ValueError(f"std must be positive, got {std}.")
  for name, value in (("mean", mean), ("std", std)):
    if not np.all(np.isfinite(np.asarray(value, np.float64))):
      raise ValueError(f"{name} must be finite, got {value!r}.")
  # (x / 255 - mean) / std as (x - 255 mean) / (255 std), with the scaled
  # constants rounded once from float64: the default is (x - 127.5) / 127.5,
  # exact at 0 -> -1 and 255 -> 1 also under jit, where XLA multiplies by
  # the reciprocal (x / 255 then gave 1.0000001 for 255).
  mean_arr = jnp.asarray(np.multiply(mean, 255.0), jnp.float32)
  std_arr = jnp.asarray(np.multiply(std, 255.0), jnp.float32)
  return (images.astype(jnp.float32) - mean_arr) / std_arr


def batch_indices(num_examples: int, *, batch_size: int,
                  key: jax.Array | None = None,
                  drop_remainder: bool = False) -> Batches:
  """Splits ``range(num_examples)`` into fixed-shape batches, on device.

  With ``key``, examples are shuffled (a fresh permutation per key, as a
  PyTorch ``DataLoader(shuffle=True)`` epoch). The last, partial batch is
  padded and masked out, or dropped with ``drop_remainder``. Both sizes are
  static, so the result has a static shape and the call jits.

  Args:
    num_examples: number of examples ``N`` (static).
    batch_size: examples per batch ``B`` (static, >= 1).
    key: optional PRNG key; ``None`` keeps the order 0..N-1.
    drop_remainder: drop the last ``N % B`` (shuffled) examples instead of
      padding them to a full batch.

  Returns:
    :class:`Batches` with ``[S, B]`` indices and mask, ``S = ceil(N / B)``
    (or ``floor`` with ``drop_remainder``). Padding slots hold index 0 and
    mask False.

  >>> batch_indices(5, batch_size=2).indices
  Array([[0, 1],
         [2, 3],
         [4, 0]], dtype=int32)
  """
  for name, value in (("num_examples", num_examples),
                      ("batch_size", batch_size)):
    if not _is_int(value):
      raise ValueError(f"{name} must be an int, got {value!r}.")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
  boolean(drop_remainder, "drop_remainder")
  if num_examples < (batch_size if drop_remainder else 1):
    raise ValueError(
        f"num_examples must be >= {batch_size if drop_remainder else 1}, "
        f"got {num_examples} (batch_size={batch_size}, "
        f"drop_remainder={drop_remainder}).")
  order = jnp.arange(num_examples, dtype=jnp.int32)
  if key is not None:
    order = jax.random.permutation(key, order)
  num_batches = (num_examples // batch_size if drop_remainder
                 else -(-num_examples // batch_size))
  slots = num_batches * batch_size
  mask = jnp.arange(slots) < num_examples
  indices = jnp.where(mask, jnp.resize(order, slots), 0)
  return Batches(indices.reshape(num_batches, batch_size),
                 mask.reshape(num_batches, batch_size))
