"""Flax linen modules (NHWC)."""

from jaxdl.nn.toynet import ToyNet
