"""Tests for jaxdl.data: CIFAR-10 reader, digits, normalisation, batching."""

from __future__ import annotations

import io
import lzma
import os
import pickle
import tarfile
import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import data

BATCH_NAMES = (*data.CIFAR10_TRAIN_FILES, data.CIFAR10_TEST_FILE)


def _batch(rng: np.random.Generator, n: int) -> dict[bytes, object]:
  """One batch dict as in the release: bytes keys, [n, 3072] uint8 rows."""
  return {b"batch_label": b"synthetic",
          b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
          b"labels": rng.integers(0, 10, n).tolist(),
          b"filenames": [f"{i}.png".encode() for i in range(n)]}


def write_cifar(root: str, rng: np.random.Generator, n: int = 6,
                overrides: dict[str, object] | None = None) -> str:
  """Writes a small CIFAR-10 folder (protocol 2 pickles); returns its path."""
  folder = os.path.join(root, data.CIFAR10_FOLDER)
  os.makedirs(folder, exist_ok=True)
  entries = {name: _batch(rng, n) for name in BATCH_NAMES}
  entries[data.CIFAR10_META_FILE] = {
      b"label_names": [c.encode() for c in data.CIFAR10_CLASSES],
      b"num_vis": 3072, b"num_cases_per_batch": n}
  entries.update(overrides or {})
  for name, entry in entries.items():
    with open(os.path.join(folder, name), "wb") as f:
      if isinstance(entry, bytes):
        f.write(entry)
      else:
        pickle.dump(entry, f, protocol=2)
  return folder


def _read_raw(folder: str, name: str) -> dict[bytes, object]:
  with open(os.path.join(folder, name), "rb") as f:
    return pickle.load(f)


def _archive(folder: str, path) -> None:
  """Packs a CIFAR folder as the release's .tar.gz."""
  with tarfile.open(path, "w:gz") as archive:
    archive.add(folder, arcname=data.CIFAR10_FOLDER)


@pytest.fixture
def cifar(tmp_path, rng) -> str:
  return write_cifar(str(tmp_path), rng)


def test_cifar_folder_layout_and_values(cifar):
  ds = data.load_cifar10(cifar)
  chex.assert_shape((ds.train_images, ds.test_images),
                    [(30, 32, 32, 3), (6, 32, 32, 3)])
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  assert ds.class_names == data.CIFAR10_CLASSES
  raw = _read_raw(cifar, "data_batch_2")
  # Rows are R, G, B planes: pixel (h, w) of channel c is row[c*1024 + 32h + w].
  row = raw[b"data"][1]
  np.testing.assert_array_equal(ds.train_images[7, 3, 5],
                                row[[101, 1125, 2149]])
  np.testing.assert_array_equal(ds.train_labels[6:12], raw[b"labels"])
  np.testing.assert_array_equal(
      ds.test_images.transpose(0, 3, 1, 2).reshape(6, -1),
      _read_raw(cifar, "test_batch")[b"data"])


def test_cifar_parent_folder_and_archive_agree(cifar, tmp_path):
  parent = data.load_cifar10(tmp_path)
  archive_path = tmp_path / "cifar-10-python.tar.gz"
  _archive(cifar, archive_path)
  from_archive = data.load_cifar10(archive_path)
  for a, b in zip(parent, from_archive):
    np.testing.assert_array_equal(a, b)


def test_cifar_meta_file_is_optional(cifar):
  os.remove(os.path.join(cifar, data.CIFAR10_META_FILE))
  assert data.load_cifar10(cifar).class_names == data.CIFAR10_CLASSES


def test_cifar_missing_path(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(FileNotFoundError, match="nowhere"):
    data.load_cifar10(missing)


def test_cifar_missing_batch(cifar):
  os.remove(os.path.join(cifar, "data_batch_3"))
  with pytest.raises(FileNotFoundError, match="data_batch_3"):
    data.load_cifar10(cifar)


def test_cifar_truncated_batch(cifar):
  path = os.path.join(cifar, "test_batch")
  with open(path, "rb") as f:
    raw = f.read()
  with open(path, "wb") as f:
    f.write(raw[: len(raw) // 2])
  with pytest.raises(ValueError, match="test_batch.*truncated or corrupt"):
    data.load_cifar10(cifar)


@pytest.mark.parametrize("entry, message", [
    ({b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4},
     r"'data' must be uint8 of shape \[n, 3072\]"),
    ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4},
     r"'data' must be uint8"),
    ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3},
     r"'labels' must have one entry per image \(4\)"),
    ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]},
     r"'labels' must be integers in \[0, 10\)"),
    ({b"data": np.zeros((4, 3072), np.uint8)}, r"no 'labels' entry"),
    ([1, 2, 3], r"must hold a dict"),
])
def test_cifar_rejects_bad_batches(tmp_path, rng, entry, message):
  folder = write_cifar(str(tmp_path), rng, overrides={"data_batch_4": entry})
  with pytest.raises(ValueError, match=f"data_batch_4.*{message}"):
    data.load_cifar10(folder)


def test_cifar_rejects_pickled_code(tmp_path, rng):
  # A pickle that would call os.system must not execute.
  evil = b"cos\nsystem\n(S'echo pwned'\ntR."
  folder = write_cifar(str(tmp_path), rng, overrides={"data_batch_1": evil})
  with pytest.raises(ValueError,
                     match="data_batch_1.*forbidden global os.system"):
    data.load_cifar10(folder)


def test_cifar_bad_meta(tmp_path, rng):
  folder = write_cifar(str(tmp_path), rng, overrides={
      data.CIFAR10_META_FILE: {b"label_names": [b"a", b"b"]}})
  with pytest.raises(ValueError, match="batches.meta.*10 class names"):
    data.load_cifar10(folder)


def test_cifar_truncated_archive(cifar, tmp_path):
  archive_path = tmp_path / "cifar.tar.gz"
  _archive(cifar, archive_path)
  raw = archive_path.read_bytes()
  archive_path.write_bytes(raw[: len(raw) // 2])
  with pytest.raises(ValueError, match="cifar.tar.gz.*cannot be read"):
    data.load_cifar10(archive_path)


def test_cifar_archive_with_a_flipped_byte(cifar, tmp_path):
  """A byte changed inside a batch fails gzip's checksum; nothing loads.
  Uncompressed (stored) deflate blocks keep the byte findable."""
  archive_path = tmp_path / "cifar.tar.gz"
  with tarfile.open(archive_path, "w:gz", compresslevel=0) as archive:
    archive.add(cifar, arcname=data.CIFAR10_FOLDER)
  raw = bytearray(archive_path.read_bytes())
  with open(os.path.join(cifar, "data_batch_3"), "rb") as f:
    batch = f.read()
  # Mid-batch is the pixel string; an ASCII byte stays valid text when
  # flipped, so without the checksum the batch would load, one pixel off.
  middle = batch[len(batch) // 2:len(batch) // 2 + 64]
  at = raw.find(middle)
  assert at > 0 and raw.find(middle, at + 1) < 0
  at += next(i for i, b in enumerate(middle) if 0x30 <= b < 0x7f)
  raw[at] ^= 1
  archive_path.write_bytes(bytes(raw))
  with pytest.raises(ValueError, match="cifar.tar.gz.*cannot be read.*CRC"):
    data.load_cifar10(archive_path)


def test_cifar_path_to_one_batch_file_is_named_as_such(cifar):
  with pytest.raises(ValueError, match="data_batch_1 is neither a folder nor "
                     "a tar archive"):
    data.load_cifar10(os.path.join(cifar, "data_batch_1"))


def test_cifar_non_utf8_key_names_the_file(tmp_path, rng):
  """A bytes key that is not UTF-8 raised a bare UnicodeDecodeError."""
  entry = _batch(rng, 4)
  entry[b"\xff"] = entry.pop(b"labels")
  folder = write_cifar(str(tmp_path), rng, n=4,
                       overrides={"data_batch_3": entry})
  with pytest.raises(ValueError, match="data_batch_3 has no 'labels'"):
    data.load_cifar10(folder)


def test_cifar_batch_of_no_images_loads(tmp_path, rng):
  """Smaller files load too, down to none (np.asarray([]) is float64)."""
  entry = _batch(rng, 0)
  folder = write_cifar(str(tmp_path), rng, n=4,
                       overrides={"data_batch_2": entry})
  loaded = data.load_cifar10(folder)
  assert loaded.train_images.shape == (16, 32, 32, 3)
  assert loaded.train_labels.dtype == np.int32


def test_cifar_labels_as_numpy_integers(tmp_path, rng):
  """Labels pickled as a list of NumPy integers (``list(array)``) load."""
  entry = _batch(rng, 4)
  entry[b"labels"] = list(np.asarray(entry[b"labels"], np.int64))
  folder = write_cifar(str(tmp_path), rng, overrides={"data_batch_2": entry})
  got = data.load_cifar10(folder)
  np.testing.assert_array_equal(got.train_labels[6:10], entry[b"labels"])


def test_cifar_archive_missing_member(cifar, tmp_path):
  archive_path = tmp_path / "cifar.tar.gz"
  os.remove(os.path.join(cifar, "data_batch_5"))
  _archive(cifar, archive_path)
  with pytest.raises(FileNotFoundError, match="cifar.tar.gz has no batch file "
                                              "data_batch_5"):
    data.load_cifar10(archive_path)


def _tar_bytes(folder: str) -> bytes:
  """The uncompressed tar of a CIFAR folder, as the release packs it."""
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w") as archive:
    archive.add(folder, arcname=data.CIFAR10_FOLDER)
  return buf.getvalue()


def test_cifar_archive_ignores_batches_in_other_folders(cifar, tmp_path):
  """A same-named batch outside the release folder never replaces one."""
  other = write_cifar(str(tmp_path / "other"), np.random.default_rng(1), n=3)
  archive_path = tmp_path / "cifar.tar.gz"
  with tarfile.open(archive_path, "w:gz") as archive:
    archive.add(cifar, arcname=data.CIFAR10_FOLDER)
    # Added last, so a reader keyed by file name alone would pick it.
    archive.add(os.path.join(other, "data_batch_1"),
                arcname="old_backup/data_batch_1")
    archive.add(os.path.join(other, "data_batch_2"),
                arcname=f"{data.CIFAR10_FOLDER}/old/data_batch_2")
  got = data.load_cifar10(archive_path)
  for a, b in zip(data.load_cifar10(cifar), got):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("extra, message", [
    # A second complete copy: which folder is the release is ambiguous.
    ("copy/cifar-10-batches-py", r"ambiguous: test_batch is in several "
                                 r"folders \('cifar-10-batches-py', 'copy/"),
    # The same member twice: tar extraction would keep the last one.
    ("cifar-10-batches-py/data_batch_3",
     r"holds cifar-10-batches-py/data_batch_3 more than once"),
], ids=["test_batch_in_two_folders", "member_twice"])
def test_cifar_archive_with_ambiguous_members(cifar, tmp_path, extra,
                                              message):
  archive_path = tmp_path / "cifar.tar.gz"
  with tarfile.open(archive_path, "w:gz") as archive:
    archive.add(cifar, arcname=data.CIFAR10_FOLDER)
    source = cifar if extra.startswith("copy") else os.path.join(
        cifar, "data_batch_4")
    archive.add(source, arcname=extra)
  with pytest.raises(ValueError, match=f"cifar.tar.gz.*{message}"):
    data.load_cifar10(archive_path)


def test_cifar_corrupt_compressed_streams(cifar, tmp_path):
  """Codec errors (zlib, lzma) are ValueErrors naming the archive."""
  raw = _tar_bytes(cifar)
  # gzip: half the tar deflates, then comes a block of the reserved type 3.
  deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
  gz = (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        + deflate.compress(raw[:len(raw) // 2])
        + deflate.flush(zlib.Z_FULL_FLUSH)
        + b"\x07" + bytes(64))
  # xz: one byte changed in the middle of the compressed stream.
  xz = bytearray(lzma.compress(raw))
  xz[len(xz) // 2] ^= 0xff
  for name, contents, error in (("bad.tar.gz", gz, "error"),
                                ("bad.tar.xz", bytes(xz), "LZMAError")):
    path = tmp_path / name
    path.write_bytes(contents)
    with pytest.raises(ValueError,
                       match=f"{name} cannot be read.*{error}"):
      data.load_cifar10(path)


def test_cifar_pickle_cannot_allocate_by_size():
  """bytearray(n) in a 30-byte pickle would allocate n bytes."""
  raw = b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x20\x85R."
  with pytest.raises(ValueError, match=r"bytearray\(int\) is not data"):
    data._unpickle(raw, "x")  # pylint: disable=protected-access


def test_cifar_empty_bytes_and_bytearray_fields(tmp_path, rng):
  """b"" pickles as builtins.bytes() in protocol 2; it must load."""
  entry = _batch(rng, 4)
  entry[b"batch_label"] = b""
  entry[b"filenames"] = [bytearray(), bytearray(b"1.png"), b"", b"3.png"]
  folder = write_cifar(str(tmp_path), rng, overrides={"data_batch_5": entry})
  with open(os.path.join(folder, "data_batch_5"), "rb") as f:
    assert b"bytes" in f.read()
  got = data.load_cifar10(folder)
  np.testing.assert_array_equal(
      got.train_images[24:28].transpose(0, 3, 1, 2).reshape(4, -1),
      entry[b"data"])
  # Other builtins stay forbidden.
  evil = b"c__builtin__\neval\n(S'1'\ntR."
  folder = write_cifar(str(tmp_path), rng, overrides={"data_batch_5": evil})
  with pytest.raises(ValueError, match="forbidden global __builtin__.eval"):
    data.load_cifar10(folder)


def test_cifar_expands_user_home(tmp_path, rng, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  monkeypatch.setenv("USERPROFILE", str(tmp_path))
  folder = write_cifar(str(tmp_path), rng)
  got = data.load_cifar10(f"~/{data.CIFAR10_FOLDER}")
  np.testing.assert_array_equal(got.test_images,
                                data.load_cifar10(folder).test_images)


@pytest.mark.parametrize("names", [
    5,
    "abcdefghij",  # A string of 10 letters is not 10 names.
    list(range(10)),
    [b"\xff"] * 10,  # Not UTF-8.
], ids=["int", "str", "ints", "not_utf8"])
def test_cifar_rejects_bad_label_names(tmp_path, rng, names):
  folder = write_cifar(str(tmp_path), rng, overrides={
      data.CIFAR10_META_FILE: {b"label_names": names}})
  with pytest.raises(ValueError, match="batches.meta: 'label_names'"):
    data.load_cifar10(folder)


def test_cifar_label_names_from_meta(tmp_path, rng):
  names = tuple(f"class {i}" for i in range(10))
  folder = write_cifar(str(tmp_path), rng, overrides={
      data.CIFAR10_META_FILE: {b"label_names": names}})
  assert data.load_cifar10(folder).class_names == names


@pytest.mark.parametrize("tail", ["data_batch_2", b"\n", b"garbage"],
                         ids=["second_batch", "newline", "garbage"])
def test_cifar_rejects_trailing_data(cifar, tail):
  """Two batches in one file, or bytes after a pickle, are not ignored."""
  path = os.path.join(cifar, "data_batch_1")
  if isinstance(tail, str):
    with open(os.path.join(cifar, tail), "rb") as f:
      tail = f.read()
  with open(path, "ab") as f:
    f.write(tail)
  with pytest.raises(ValueError, match=(
      f"data_batch_1 has trailing data after its pickle \\({len(tail)} of")):
    data.load_cifar10(cifar)


def test_load_digits():
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  ds = data.load_digits()
  chex.assert_shape((ds.train_images, ds.test_images),
                    [(1437, 32, 32, 3), (360, 32, 32, 3)])
  assert ds.train_images.dtype == np.uint8
  assert ds.class_names == tuple("0123456789")
  # Stratified: every class has 36 (or 37) test images.
  assert set(np.bincount(ds.test_labels, minlength=10)) <= {35, 36, 37}
  # Channels are equal; resizing keeps the full 0..255 range.
  np.testing.assert_array_equal(ds.train_images[..., 0],
                                ds.train_images[..., 2])
  assert ds.train_images.min() == 0 and ds.train_images.max() == 255
  # The split is a partition of scikit-learn's 1797 labelled images.
  sk = datasets.load_digits()
  assert len(ds.train_labels) + len(ds.test_labels) == len(sk.target)
  np.testing.assert_array_equal(
      np.sort(np.concatenate([ds.train_labels, ds.test_labels])),
      np.sort(sk.target))
  again = data.load_digits()
  np.testing.assert_array_equal(ds.test_images, again.test_images)
  with pytest.raises(ValueError, match="test_fraction"):
    data.load_digits(test_fraction=1.0)


@pytest.mark.parametrize("test_fraction", [0.001, 0.999])
def test_load_digits_split_too_small_names_test_fraction(test_fraction):
  """A fraction in (0, 1) that leaves fewer images than classes on one side
  raised scikit-learn's error about test_size / train_size."""
  with pytest.raises(ValueError, match="test_fraction"):
    data.load_digits(test_fraction=test_fraction)


def test_normalize_matches_tutorial_transform(rng):
  images = rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
  # ToTensor + Normalize((0.5,) * 3, (0.5,) * 3) in float64.
  expected = (images.astype(np.float64) / 255.0 - 0.5) / 0.5
  out = jax.jit(data.normalize)(images)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
  custom = data.normalize(images, mean=(0.4914, 0.4822, 0.4465),
                          std=(0.247, 0.243, 0.261))
  mean = np.array([0.4914, 0.4822, 0.4465])
  std = np.array([0.247, 0.243, 0.261])
  # float32 division by std ~0.25: 1e-5 covers the rounding.
  np.testing.assert_allclose(custom, (images / 255.0 - mean) / std, rtol=1e-5,
                             atol=1e-5)
  # vmap == jit up to float32 rounding (fused vs unfused: 1 ulp at 1.0).
  np.testing.assert_allclose(jax.vmap(data.normalize)(images), out,
                             rtol=0, atol=2.4e-7)


@pytest.mark.parametrize("kwargs, message", [
    ({"mean": (0.5, 0.5)}, "mean must have 1 or 3 entries"),
    ({"std": (0.5, 0.0, 0.5)}, "std must be positive"),
])
def test_normalize_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    data.normalize(jnp.zeros((2, 2, 3), jnp.uint8), **kwargs)


def test_normalize_default_is_exact_at_the_ends():
  """Under jit too, 0 -> -1 and 255 -> 1 exactly, all values in [-1, 1]."""
  pixels = np.arange(256, dtype=np.uint8)[:, None].repeat(3, axis=1)
  expected = (pixels / 255.0 - 0.5) / 0.5  # float64
  for out in (jax.jit(data.normalize)(pixels), data.normalize(pixels)):
    out = np.asarray(out)
    np.testing.assert_array_equal(out[[0, 255]], [[-1.0] * 3, [1.0] * 3])
    assert out.min() == -1.0 and out.max() == 1.0
    # Inside, within 1 float32 ulp at 1.0 (XLA divides by the reciprocal).
    np.testing.assert_allclose(out, expected, rtol=0, atol=2 ** -23)


def test_batch_indices_is_a_padded_permutation(key):
  batches = jax.jit(data.batch_indices, static_argnames=(
      "num_examples", "batch_size"))(num_examples=10, batch_size=4, key=key)
  chex.assert_shape(batches, (3, 4))
  assert int(batches.mask.sum()) == 10
  real = np.asarray(batches.indices)[np.asarray(batches.mask)]
  np.testing.assert_array_equal(np.sort(real), np.arange(10))
  assert not np.array_equal(real, np.arange(10))  # shuffled
  np.testing.assert_array_equal(batches.indices[~batches.mask], 0)
  np.testing.assert_array_equal(batches.mask[-1], [True, True, False, False])


def test_batch_indices_order_keys_and_remainder(key):
  ordered = data.batch_indices(10, batch_size=5)
  np.testing.assert_array_equal(ordered.indices, np.arange(10).reshape(2, 5))
  assert bool(ordered.mask.all())
  same = data.batch_indices(10, batch_size=3, key=key)
  np.testing.assert_array_equal(
      same.indices, data.batch_indices(10, batch_size=3, key=key).indices)
  other = data.batch_indices(10, batch_size=3, key=jax.random.key(1))
  assert not np.array_equal(same.indices, other.indices)
  dropped = data.batch_indices(10, batch_size=3, key=key, drop_remainder=True)
  chex.assert_shape(dropped, (3, 3))
  assert bool(dropped.mask.all())
  assert len(np.unique(dropped.indices)) == 9
  # Dropping keeps the first 9 of the same permutation.
  np.testing.assert_array_equal(dropped.indices.ravel(),
                                same.indices.ravel()[:9])


def test_batch_indices_no_retrace(key):

  @jax.jit
  @chex.assert_max_traces(n=1)
  def epoch(key):
    return data.batch_indices(12, batch_size=4, key=key)

  epoch(key)
  epoch(jax.random.key(7))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_examples": 5, "batch_size": 0}, "batch_size must be >= 1"),
    ({"num_examples": 0, "batch_size": 2}, "num_examples must be >= 1"),
    ({"num_examples": 3, "batch_size": 4, "drop_remainder": True},
     "num_examples must be >= 4"),
    # Any truthy value used to drop the remainder.
    ({"num_examples": 5, "batch_size": 2, "drop_remainder": "no"},
     "drop_remainder must be a bool"),
])
def test_batch_indices_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    data.batch_indices(**kwargs)


@pytest.mark.parametrize("entry, message", [
    ({b"data": [[1, 2], [3]], b"labels": [0, 1]}, r"'data' must be"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [[0], [1, 2]]},
     r"'labels' must"),
    ({1: np.zeros((2, 3072), np.uint8), b"labels": [0, 1]},
     r"no 'data' entry"),
])
def test_cifar_ragged_arrays_and_odd_keys_name_the_file(tmp_path, rng, entry,
                                                        message):
  """NumPy's inhomogeneous-shape ValueError and sorted()'s TypeError on
  mixed int / str keys did not say which file was bad."""
  folder = write_cifar(str(tmp_path), rng, overrides={"data_batch_2": entry})
  with pytest.raises(ValueError, match=f"data_batch_2.*{message}"):
    data.load_cifar10(folder)


@pytest.mark.parametrize("kwargs, message", [
    ({"std": (0.5, float("nan"), 0.5)}, "std must be positive"),
    ({"std": 0.5, "mean": "abc"}, "mean must have 1 or 3 entries"),
    ({"std": ((0.5,),)}, "std must have 1 or 3 entries"),
])
def test_normalize_rejects_nan_std_and_non_numbers(kwargs, message):
  """A NaN std gave NaN images; a string mean a NumPy UFuncTypeError."""
  with pytest.raises(ValueError, match=message):
    data.normalize(jnp.zeros((2, 2, 3), jnp.uint8), **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"mean": float("nan")}, "mean must be finite"),
    ({"mean": (0.5, float("inf"), 0.5)}, "mean must be finite"),
    ({"std": float("inf")}, "std must be finite"),
])
def test_normalize_rejects_non_finite_mean_and_std(kwargs, message):
  """A NaN or infinite mean gave NaN / -inf images, an infinite std zeros."""
  with pytest.raises(ValueError, match=message):
    data.normalize(jnp.zeros((2, 2, 3), jnp.uint8), **kwargs)


def test_normalize_takes_scalar_mean_and_std():
  """torchvision's Normalize takes scalars; here they raised TypeError."""
  images = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
  np.testing.assert_array_equal(data.normalize(images, mean=0.5, std=0.5),
                                data.normalize(images))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_examples": 5, "batch_size": 2.0}, "batch_size must be"),
    ({"num_examples": 5, "batch_size": None}, "batch_size must be"),
    ({"num_examples": 5, "batch_size": True}, "batch_size must be"),
    ({"num_examples": 5.0, "batch_size": 2}, "num_examples must be"),
])
def test_batch_indices_rejects_non_integer_sizes(kwargs, message):
  """Float and None sizes raised TypeErrors from deep inside."""
  with pytest.raises(ValueError, match=message):
    data.batch_indices(**kwargs)
