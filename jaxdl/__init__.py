"""jaxdl: the classic deep-learning toolbox as pure, jitted, vmappable JAX.

Only submodules are public here: ``from jaxdl import boxes, nms`` and then
``boxes.pairwise_iou(...)``. Optional dependencies (orbax, tqdm,
scikit-learn) are imported by the functions that need them, so
``import jaxdl`` needs only jax, flax, optax, chex and numpy.
"""

from jaxdl import augment
from jaxdl import boxes
from jaxdl import cluster
from jaxdl import data
from jaxdl import detection
from jaxdl import flops
from jaxdl import losses
from jaxdl import metrics
from jaxdl import nms
from jaxdl import nn
from jaxdl import optim
from jaxdl import schedules
from jaxdl import train

__version__ = "0.1.0"
