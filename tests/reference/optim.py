"""Float64 NumPy oracles for jaxdl.optim.

``torch_sgd`` ports the update rule of ``torch.optim.SGD`` (as documented in
its pseudo-code: coupled weight decay, the first momentum buffer equal to the
gradient, dampening, Nesterov). ``notes_adam`` is the notes' "Adam" (1.2
优化器总结), kept as written: the second moment uses ``b1``, the first ``b2``,
no bias correction and no ``eps``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Grad = Callable[[np.ndarray], np.ndarray]


def torch_sgd(grad: Grad, w0: np.ndarray, steps: int, *, lr: float,
              momentum: float = 0.0, dampening: float = 0.0,
              nesterov: bool = False,
              weight_decay: float = 0.0) -> np.ndarray:
  """``steps`` updates of torch.optim.SGD from ``w0``; returns the final w."""
  w = np.asarray(w0, np.float64).copy()
  buf = None
  for _ in range(steps):
    g = grad(w) + weight_decay * w
    if momentum:
      buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
      g = g + momentum * buf if nesterov else buf
    w = w - lr * g
  return w


def notes_adam(grad: Grad, w0: np.ndarray, steps: int, *, lr: float,
               b1: float = 0.9, b2: float = 0.999) -> np.ndarray:
  """The notes' Adam, verbatim in logic (swapped betas, no correction)."""
  w = np.asarray(w0, np.float64).copy()
  s = np.zeros_like(w)
  v = np.zeros_like(w)
  for _ in range(steps):
    g = grad(w)
    s = b1 * s + (1 - b1) * g ** 2
    v = b2 * v + (1 - b2) * g
    w = w - lr * v / np.sqrt(s)
  return w


def rosenbrock_grad(w: np.ndarray) -> np.ndarray:
  """Gradient of ``sum((1 - x)**2 + 100 (y - x**2)**2)`` for w = (x, y)."""
  x, y = w[..., 0], w[..., 1]
  return np.stack([-2 * (1 - x) - 400 * x * (y - x ** 2),
                   200 * (y - x ** 2)], -1)
