"""Float64 NumPy oracles for jaxdl.cluster: the notes' k-means, corrected.

``notes_k_means`` is the notes' "K-Means" loop (a Python loop over samples
and centres), with the random initial choice replaced by given centres and
the progress prints removed, so it can be compared and timed. ``lloyd`` is
the same algorithm vectorised in float64 with scikit-learn's stopping rule;
``silhouette`` and ``knn_predict`` are brute-force definitions.
"""

from __future__ import annotations

import collections

import numpy as np


def distance(point1, point2):
  return np.sqrt(np.sum((point1 - point2) ** 2))


def notes_k_means(data: np.ndarray, init: np.ndarray, max_iter: int = 1000):
  """The notes' ``k_means`` from the given centres; returns (centres, iters).

  An empty cluster keeps its old centre; the loop stops when no centre moves
  by more than 1e-8.
  """
  centers = {idx: np.asarray(c, np.float64) for idx, c in enumerate(init)}
  iters = 0
  for _ in range(max_iter):
    iters += 1
    clusters = collections.defaultdict(list)
    for row in data:
      distances = [distance(row, centers[c]) for c in centers]
      clusters[np.argmin(distances)].append(row)
    pre_centers = centers.copy()
    for c in clusters.keys():
      centers[c] = np.mean(clusters[c], axis=0)
    if all(distance(pre_centers[c], centers[c]) <= 1e-8 for c in centers):
      break
  return np.stack([centers[c] for c in sorted(centers)]), iters


def lloyd(x: np.ndarray, init: np.ndarray, max_iter: int = 300,
          tol: float = 1e-4):
  """Lloyd's k-means with sklearn's stopping rule (no empty clusters).

  Returns (centres, labels, inertia, n_iter).
  """
  x = np.asarray(x, np.float64)
  centers = np.asarray(init, np.float64).copy()
  tol_abs = tol * np.mean(np.var(x, axis=0))
  labels_old = np.full(len(x), -1)
  n_iter = 0
  for n_iter in range(1, max_iter + 1):
    labels = np.argmin(((x[:, None] - centers[None]) ** 2).sum(-1), axis=1)
    new = np.stack([x[labels == j].mean(0) for j in range(len(centers))])
    shift = np.sum((new - centers) ** 2)
    centers = new
    if np.array_equal(labels, labels_old) or shift <= tol_abs:
      break
    labels_old = labels
  labels = np.argmin(((x[:, None] - centers[None]) ** 2).sum(-1), axis=1)
  inertia = np.sum((x - centers[labels]) ** 2)
  return centers, labels, inertia, n_iter


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
  """Mean of ``(b - a) / max(a, b)``; 0 for points alone in their cluster."""
  x = np.asarray(x, np.float64)
  d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
  scores = []
  for i, own in enumerate(labels):
    same = labels == own
    if same.sum() == 1:
      scores.append(0.0)
      continue
    a = d[i, same].sum() / (same.sum() - 1)
    b = min(d[i, labels == c].mean() for c in np.unique(labels) if c != own)
    scores.append((b - a) / max(a, b) if max(a, b) > 0 else 0.0)
  return float(np.mean(scores))


def knn_predict(train_x, train_y, query, k: int) -> np.ndarray:
  """Majority vote of the ``k`` nearest points; ties to the lowest class."""
  d = ((np.asarray(query, np.float64)[:, None] -
        np.asarray(train_x, np.float64)[None]) ** 2).sum(-1)
  nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
  return np.array([np.bincount(train_y[row]).argmax() for row in nearest])
