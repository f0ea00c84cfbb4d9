"""jaxdl: the classic deep-learning toolbox as pure, jitted, vmappable JAX.

Only submodules are public here: ``from jaxdl import boxes, nms`` and then
``boxes.pairwise_iou(...)``.
"""

from jaxdl import boxes

__version__ = "0.1.0"
