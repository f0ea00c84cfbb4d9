"""Flax linen modules (NHWC).

Dtypes follow Flax's layers: each module with parameters has ``dtype``
(computation dtype) and ``param_dtype`` (parameters, float32 by default)
fields, passed to its sub-layers. With the default ``dtype=None`` an input of
another dtype (integer, float16, bfloat16) is promoted with the float32
parameters, so the modules compute and return float32; ``dtype=jnp.bfloat16``
computes and returns bfloat16 with float32 parameters (batch-norm statistics
are reduced in float32, as Flax's ``BatchNorm``).
"""

from jaxdl.nn.conv import ConvTranspose2d
from jaxdl.nn.conv import DepthwiseSeparableConv
from jaxdl.nn.conv import PixelShuffle
from jaxdl.nn.conv import ResNeXtBlock
from jaxdl.nn.conv import conv2d_im2col
from jaxdl.nn.conv import pixel_shuffle
from jaxdl.nn.dropout import dropout
from jaxdl.nn.toynet import ToyNet
from jaxdl.nn.vit import ViT
from jaxdl.nn.yolo import C3
from jaxdl.nn.yolo import C3TR
from jaxdl.nn.yolo import Bottleneck
from jaxdl.nn.yolo import ConvBNAct
from jaxdl.nn.yolo import TransformerBlock
from jaxdl.nn.yolo import TransformerLayer
