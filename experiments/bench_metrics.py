"""Classification metrics and clustering: jaxdl vs scikit-learn (and the notes).

Run: ``python -m experiments.bench_metrics`` ->
``experiments/results/metrics.md`` (``metrics_<platform>.md`` on an
accelerator).

Same inputs for every peer, float32:
* AUC / AP: labels 30% positive, scores ``round(clip(N(0.4 + 0.2 y, 0.2),
  0, 1), 3)`` (at most 1001 distinct values: heavy ties), vs
  ``roc_auc_score`` / ``average_precision_score``; the notes' second AUC
  (a Python loop, wrong with ties) at the small size.
* k-means: 16 Gaussian blobs in 16-D, the same k-means++ initial centres for
  jaxdl and ``KMeans(init=centres, n_init=1, algorithm="lloyd")``; the notes'
  Python loop for one iteration on a 20k-point subset.
* silhouette on 10k x 16 and kNN (10k train, 1k queries, k = 5).
Times are medians after compilation; compile time is the first call of a
fresh ``jax.jit`` less a steady call.
"""

from __future__ import annotations

import argparse
import contextlib
import os

import jax
import numpy as np
from sklearn import metrics as skm
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.neighbors import KNeighborsClassifier

from experiments import benchutil
from jaxdl import cluster, metrics
from tests.reference import cluster as ref_cluster
from tests.reference import metrics as ref_metrics

AUC_SIZES = (10_000, 1_000_000)


def _ms(seconds: float) -> str:
  return benchutil.format_ms(seconds)


def _scores(rng, n):
  labels = (rng.random(n) < 0.3).astype(np.int32)
  scores = np.round(np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1), 3)
  return scores.astype(np.float32), labels


@contextlib.contextmanager
def _device_sort_path():
  """Runs the non-CPU path (``lax.sort``) on CPU, for comparison."""
  saved = metrics._sort_by_key  # pylint: disable=protected-access
  metrics._sort_by_key = metrics._xla_sort  # pylint: disable=protected-access
  try:
    yield
  finally:
    metrics._sort_by_key = saved  # pylint: disable=protected-access


def _uncached_roc_auc(scores, labels, n):
  """roc_auc traced afresh (the module's jitted core caches its sort path)."""
  # pylint: disable=protected-access
  return metrics._auc_from_ranked(metrics._rank(scores, labels,
                                                np.ones(n, bool)))


def bench_auc_ap(repeats: int) -> str:
  rng = np.random.default_rng(0)
  headers = ["metric", "N", "jaxdl (jit)", "scikit-learn", "sklearn / jaxdl",
             "jaxdl compile", "|jaxdl - sklearn|", "other"]
  rows = []
  for n in AUC_SIZES:
    scores, labels = _scores(rng, n)
    s_dev, y_dev = jax.device_put(scores), jax.device_put(labels)
    for name, fn, sk_fn in (
        ("roc_auc", metrics.roc_auc, skm.roc_auc_score),
        ("average_precision", metrics.average_precision,
         skm.average_precision_score)):
      jitted = jax.jit(fn)
      compile_s = benchutil.compile_time(lambda: jitted(s_dev, y_dev))
      t_jax = benchutil.median_time(lambda: jitted(s_dev, y_dev),
                                    repeats=repeats)
      t_sk = benchutil.median_time(lambda: sk_fn(labels, scores),
                                   repeats=max(3, repeats // 2))
      diff = abs(float(jitted(s_dev, y_dev)) - sk_fn(labels, scores))
      other = "-"
      if name == "roc_auc" and n <= 10_000:
        t_notes = benchutil.median_time(
            lambda: ref_metrics.notes_get_auc(scores, labels), repeats=3)
        notes_auc = ref_metrics.notes_get_auc(scores, labels)[2]
        other = (f"notes' get_AUC loop: {_ms(t_notes)} "
                 f"({t_notes / t_jax:.0f}x slower, off by "
                 f"{abs(notes_auc - sk_fn(labels, scores)):.1e}: ties)")
      if name == "roc_auc":
        with _device_sort_path():
          xla = jax.jit(lambda s, y: _uncached_roc_auc(s, y, n))
          t_xla = benchutil.median_time(lambda: xla(s_dev, y_dev),
                                        repeats=max(3, repeats // 2))
        other += f"; with lax.sort (the non-CPU path): {_ms(t_xla)}"
      rows.append([name, f"{n:.0e}", _ms(t_jax), _ms(t_sk),
                   f"{t_sk / t_jax:.1f}x", _ms(compile_s), f"{diff:.1e}",
                   other])
  # Streaming: one binned update of the 1e6 batch plus the AUC readout.
  scores, labels = _scores(rng, AUC_SIZES[-1])
  s_dev, y_dev = jax.device_put(scores), jax.device_put(labels)
  binned = jax.jit(lambda s, y: metrics.binned_roc_auc(
      metrics.binned_update(metrics.binned_init(1000), s, y)))
  compile_s = benchutil.compile_time(lambda: binned(s_dev, y_dev))
  t_binned = benchutil.median_time(lambda: binned(s_dev, y_dev),
                                   repeats=repeats)
  t_sk = benchutil.median_time(lambda: skm.roc_auc_score(labels, scores),
                               repeats=3)
  diff = abs(float(binned(s_dev, y_dev)) - skm.roc_auc_score(labels, scores))
  rows.append(["binned_update + binned_roc_auc (1000 thresholds)",
               f"{AUC_SIZES[-1]:.0e}", _ms(t_binned), _ms(t_sk),
               f"{t_sk / t_binned:.1f}x", _ms(compile_s), f"{diff:.1e}",
               "state: 2 x 1000 int32, any N"])
  return benchutil.markdown_table(headers, rows)


def _blobs(rng, n, dim, k):
  centres = rng.normal(size=(k, dim)) * 5
  x = centres[rng.integers(0, k, n)] + rng.normal(size=(n, dim))
  return x.astype(np.float32)


def bench_kmeans(repeats: int) -> str:
  rng = np.random.default_rng(1)
  headers = ["points", "peer", "iterations (jaxdl / peer)", "jaxdl total",
             "peer total", "jaxdl / iteration", "peer / iteration",
             "peer / jaxdl (per iteration)", "jaxdl compile",
             "inertia rel. diff"]
  rows = []
  k = 16
  x = _blobs(rng, 100_000, 16, k)
  init, _ = kmeans_plusplus(x, k, random_state=0)
  init = init.astype(np.float32)
  x_dev, init_dev = jax.device_put(x), jax.device_put(init)
  key = jax.random.key(0)
  run = jax.jit(lambda x, c: cluster.kmeans(key, x, k, init=c))
  compile_s = benchutil.compile_time(lambda: run(x_dev, init_dev))
  t_jax = benchutil.median_time(lambda: run(x_dev, init_dev),
                                repeats=max(3, repeats // 2))
  result = run(x_dev, init_dev)
  sk = KMeans(k, init=init, n_init=1, algorithm="lloyd")
  t_sk = benchutil.median_time(lambda: sk.fit(x), repeats=max(3, repeats // 2))
  it_jax, it_sk = int(result.n_iter), sk.n_iter_
  rows.append([
      f"{len(x)} x 16, k = {k}", "sklearn KMeans (lloyd)",
      f"{it_jax} / {it_sk}", _ms(t_jax), _ms(t_sk), _ms(t_jax / it_jax),
      _ms(t_sk / it_sk), f"{(t_sk / it_sk) / (t_jax / it_jax):.1f}x",
      _ms(compile_s),
      f"{abs(float(result.inertia) - sk.inertia_) / sk.inertia_:.1e}"])
  # The notes' loop, one iteration, on a subset (it is a Python loop).
  sub = x[:20_000]
  sub_dev = jax.device_put(sub)
  one_iter = jax.jit(lambda x, c: cluster.kmeans(key, x, k, init=c,
                                                 max_iter=1))
  compile_s = benchutil.compile_time(lambda: one_iter(sub_dev, init_dev))
  t_jax = benchutil.median_time(lambda: one_iter(sub_dev, init_dev),
                                repeats=repeats)
  t_notes = benchutil.median_time(
      lambda: ref_cluster.notes_k_means(sub, init, max_iter=1), repeats=1,
      warmup=0)
  rows.append([f"{len(sub)} x 16, k = {k}", "the notes' k_means loop",
               "1 / 1", _ms(t_jax), _ms(t_notes), _ms(t_jax), _ms(t_notes),
               f"{t_notes / t_jax:.0f}x", _ms(compile_s), "-"])
  return benchutil.markdown_table(headers, rows)


def bench_silhouette_knn(repeats: int) -> str:
  rng = np.random.default_rng(2)
  headers = ["function", "size", "jaxdl (jit)", "scikit-learn",
             "sklearn / jaxdl", "jaxdl compile", "agreement"]
  rows = []
  x = _blobs(rng, 10_000, 16, 16)
  labels = KMeans(16, n_init=1, random_state=0).fit(x).labels_
  x_dev, l_dev = jax.device_put(x), jax.device_put(labels)
  sil = jax.jit(lambda x, l: cluster.silhouette_score(x, l, num_clusters=16))
  compile_s = benchutil.compile_time(lambda: sil(x_dev, l_dev))
  t_jax = benchutil.median_time(lambda: sil(x_dev, l_dev), repeats=3)
  t_sk = benchutil.median_time(lambda: skm.silhouette_score(x, labels),
                               repeats=3)
  diff = abs(float(sil(x_dev, l_dev)) - skm.silhouette_score(x, labels))
  rows.append(["silhouette_score", "10000 x 16, 16 clusters", _ms(t_jax),
               _ms(t_sk), f"{t_sk / t_jax:.1f}x", _ms(compile_s),
               f"|diff| {diff:.1e}"])
  train_y = rng.integers(0, 10, len(x))
  query = _blobs(rng, 1000, 16, 16)
  knn = jax.jit(lambda a, b, q: cluster.knn_predict(a, b, q, k=5,
                                                    num_classes=10))
  args = [jax.device_put(v) for v in (x, train_y, query)]
  compile_s = benchutil.compile_time(lambda: knn(*args))
  t_jax = benchutil.median_time(lambda: knn(*args), repeats=repeats)
  clf = KNeighborsClassifier(n_neighbors=5).fit(x, train_y)
  t_sk = benchutil.median_time(lambda: clf.predict(query), repeats=3)
  same = np.mean(np.asarray(knn(*args)) == clf.predict(query))
  rows.append(["knn_predict (k = 5)", "10000 train, 1000 queries, 16-D",
               _ms(t_jax), _ms(t_sk), f"{t_sk / t_jax:.1f}x", _ms(compile_s),
               f"{same:.1%} equal"])
  return benchutil.markdown_table(headers, rows)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args()
  platform = jax.devices()[0].platform
  load_before = os.getloadavg()[0]
  sections = [
      ("ROC AUC and average precision", bench_auc_ap(args.repeats)),
      ("k-means (Lloyd, same initial centres)", bench_kmeans(args.repeats)),
      ("Silhouette and kNN", bench_silhouette_knn(args.repeats)),
  ]
  body = ("Median wall time after compilation; ratios > 1 mean jaxdl is "
          "faster. Float32 inputs, the same arrays for every peer. The "
          "machine was shared with other jobs: 1-minute load average "
          f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after the "
          "run, so absolute times are inflated; each ratio compares peers "
          "timed back to back.\n\n" +
          "\n\n".join(f"## {title}\n\n{table}" for title, table in sections))
  benchutil.write_and_print(
      benchutil.platform_name("metrics"),
      f"Metrics and clustering benchmark ({platform})", body,
      benchutil.environment(extra_packages=("scikit-learn",)))


if __name__ == "__main__":
  main()
