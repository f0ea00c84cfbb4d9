"""Flax linen modules (NHWC).

Dtypes follow Flax's layers: parameters are float32, and an input of
another dtype (integer, float16, bfloat16) is promoted with them, so the
modules compute and return float32. They have no ``dtype`` /
``param_dtype`` fields; for half-precision compute, cast the parameters.
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
