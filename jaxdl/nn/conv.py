"""Convolutions of the notes: grouped, depthwise-separable, ResNeXt, transpose,
pixel shuffle and im2col.

Layouts are Flax's: images NHWC, kernels HWIO ``[kh, kw, Cin/groups, Cout]``.
Where a module mirrors a PyTorch layer (``ConvTranspose2d``, ``PixelShuffle``),
sizes and values are PyTorch's, with the channel axis moved last.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxdl import flops
from jaxdl._checks import int_pair, positive_int

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def _check_rank4(x: jax.Array, name: str) -> None:
  if x.ndim != 4:
    raise ValueError(f"{name} must have shape [N, H, W, C], got shape "
                     f"{tuple(x.shape)}.")


def conv2d_im2col(x: ArrayLike, kernel: ArrayLike, *, strides=1,
                  padding="SAME", dilation=1, groups: int = 1) -> jax.Array:
  """2-D convolution as im2col plus one (per-group batched) matrix product.

  Each output pixel's receptive field is unrolled into a row of the
  "columns" matrix ``[N·Ho·Wo, kh·kw·Cin/g]`` (notes 004 "卷积过程": im2col
  trades memory for one big GEMM), which is multiplied by the kernel
  reshaped to ``[kh·kw·Cin/g, Cout/g]``, one product per group.

  Args:
    x: ``[N, H, W, Cin]`` images.
    kernel: ``[kh, kw, Cin/groups, Cout]`` (Flax HWIO).
    strides: int or ``(sh, sw)``.
    padding: ``"SAME"``, ``"VALID"``, an int, ``(ph, pw)`` or
      ``((top, bottom), (left, right))``.
    dilation: kernel dilation, int or pair.
    groups: ``feature_group_count``; divides ``Cin`` and ``Cout``.

  Returns:
    ``[N, Ho, Wo, Cout]``, equal to ``lax.conv_general_dilated`` with the same
    arguments.

  Raises:
    ValueError: on bad ranks or channel counts that do not match ``groups``.

  References:
    Chellapilla et al., "High Performance Convolutional Neural Networks for
    Document Processing", 2006 (im2col + GEMM).

  >>> x = jnp.arange(16.).reshape(1, 4, 4, 1)
  >>> conv2d_im2col(x, jnp.ones((2, 2, 1, 1)), padding="VALID")[0, :, :, 0]
  Array([[10., 14., 18.],
         [26., 30., 34.],
         [42., 46., 50.]], dtype=float32)
  """
  x, kernel = jnp.asarray(x), jnp.asarray(kernel)
  _check_rank4(x, "x")
  if kernel.ndim != 4:
    raise ValueError(f"kernel must have shape [kh, kw, Cin/groups, Cout], "
                     f"got shape {tuple(kernel.shape)}.")
  n, h, w, c_in = x.shape
  kh, kw, c_group, c_out = kernel.shape
  positive_int(groups, "groups")
  if c_in != c_group * groups or c_out % groups:
    raise ValueError(
        f"groups={groups} does not fit x channels {c_in} and kernel shape "
        f"{tuple(kernel.shape)}: need Cin = groups * kernel.shape[2] and "
        "groups dividing Cout.")
  (sh, sw), (dh, dw) = int_pair(strides, "strides", minimum=1), int_pair(
      dilation, "dilation", minimum=1)
  pads = flops.resolve_padding(padding, (h, w), (kh, kw), strides=(sh, sw),
                               dilation=(dh, dw))
  ho = flops.conv_output_size(h, kh, s=sh, p=pads[0], d=dh)
  wo = flops.conv_output_size(w, kw, s=sw, p=pads[1], d=dw)
  if ho <= 0 or wo <= 0:  # The kernel does not fit: empty, as lax's.
    return jnp.zeros((n, max(ho, 0), max(wo, 0), c_out),
                     jnp.result_type(x, kernel))
  # lax.pad accepts negative (cropping) padding, as conv_general_dilated does.
  xp = lax.pad(x, jnp.zeros((), x.dtype),
               ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
  taps = [
      lax.slice(xp, (0, i * dh, j * dw, 0),
                (n, i * dh + (ho - 1) * sh + 1, j * dw + (wo - 1) * sw + 1,
                 c_in), (1, sh, sw, 1))
      for i in range(kh) for j in range(kw)
  ]  # kh·kw times [N, Ho, Wo, Cin]
  cols = jnp.stack(taps, axis=3)  # [N, Ho, Wo, kh·kw, Cin]
  cols = cols.reshape(n * ho * wo, kh * kw, groups, c_group)
  # Sizes spelled out: reshape's -1 cannot be inferred when N is 0.
  cols = cols.transpose(2, 0, 1, 3).reshape(groups, n * ho * wo,
                                            kh * kw * c_group)
  weights = kernel.reshape(kh * kw, c_group, groups, c_out // groups)
  weights = weights.transpose(2, 0, 1, 3).reshape(groups, kh * kw * c_group,
                                                  c_out // groups)
  out = jnp.matmul(cols, weights)  # [groups, N·Ho·Wo, Cout/groups]
  return out.transpose(1, 0, 2).reshape(n, ho, wo, c_out)


def pixel_shuffle(x: ArrayLike, upscale: int) -> jax.Array:
  """Rearranges ``[N, H, W, C·r²]`` into ``[N, H·r, W·r, C]`` (sub-pixel conv).

  Channel ``c·r² + i·r + j`` goes to output pixel ``(h·r + i, w·r + j)`` of
  channel ``c``, the order of ``torch.nn.functional.pixel_shuffle`` (there on
  NCHW; here NHWC).

  Args:
    x: ``[N, H, W, C·r²]``.
    upscale: ``r``, a positive static int.

  Returns:
    ``[N, H·r, W·r, C]``.

  References:
    Shi et al., "Real-Time Single Image and Video Super-Resolution Using an
    Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016.

  >>> pixel_shuffle(jnp.arange(4.).reshape(1, 1, 1, 4), 2)[0, :, :, 0]
  Array([[0., 1.],
         [2., 3.]], dtype=float32)
  """
  x = jnp.asarray(x)
  _check_rank4(x, "x")
  r = upscale
  positive_int(r, "upscale")
  if x.shape[-1] % (r * r):
    raise ValueError(f"upscale must be a positive int whose square divides "
                     f"the channels {x.shape[-1]}, got {upscale!r}.")
  n, h, w, c = x.shape
  x = x.reshape(n, h, w, c // (r * r), r, r)  # [N, H, W, C, i, j]
  x = x.transpose(0, 1, 4, 2, 5, 3)  # [N, H, i, W, j, C]
  return x.reshape(n, h * r, w * r, c // (r * r))


class PixelShuffle(nn.Module):
  """``torch.nn.PixelShuffle`` in NHWC; see ``pixel_shuffle``.

  Attributes:
    upscale: the factor ``r``.
  """
  upscale: int

  def __call__(self, x: jax.Array) -> jax.Array:
    return pixel_shuffle(x, self.upscale)


class ConvTranspose2d(nn.Module):
  """``torch.nn.ConvTranspose2d`` in NHWC: same output size and values.

  ``y[s·i + d·t − p] += x[i] · w[t]`` for every input pixel ``i`` and kernel tap
  ``t``; the output has ``(i − 1)s − 2p + d(k − 1) + output_padding + 1`` rows
  (``flops.conv_transpose_output_size``). Computed as a stride-1 convolution
  of the ``s``-dilated input with the flipped kernel. The kernel is
  ``[kh, kw, Cin, Cout]``: torch's weight ``[Cin, Cout, kh, kw]`` transposed
  by ``(2, 3, 0, 1)``.

  Attributes:
    features: output channels.
    kernel_size: int or ``(kh, kw)``.
    strides: int or pair.
    padding: int or pair, rows/columns removed from each side (torch).
    output_padding: int or pair, extra rows/columns at the end,
      ``< max(strides, dilation)``.
    dilation: int or pair.
    use_bias: add a bias (torch's default True).
    kernel_init, bias_init: initialisers.
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.
  """
  features: int
  kernel_size: int | tuple[int, int]
  strides: int | tuple[int, int] = 1
  padding: int | tuple[int, int] = 0
  output_padding: int | tuple[int, int] = 0
  dilation: int | tuple[int, int] = 1
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32

  def dilated_input_padding(self) -> list[tuple[int, int]]:
    """``(low, high)`` padding of the ``strides``-dilated input, per axis,
    for the stride-1 convolution that computes this layer (negative crops)."""
    return [(d * (k - 1) - p, d * (k - 1) - p + op) for k, p, op, d in zip(
        int_pair(self.kernel_size, "kernel_size", minimum=1),
        int_pair(self.padding, "padding", minimum=0),
        int_pair(self.output_padding, "output_padding", minimum=0),
        int_pair(self.dilation, "dilation", minimum=1))]

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps ``[N, H, W, Cin]`` to ``[N, Ho, Wo, features]``."""
    _check_rank4(x, "x")
    positive_int(self.features, "features")
    kernel_size = int_pair(self.kernel_size, "kernel_size", minimum=1)
    strides = int_pair(self.strides, "strides", minimum=1)
    dilation = int_pair(self.dilation, "dilation", minimum=1)
    padding = int_pair(self.padding, "padding", minimum=0)
    output_padding = int_pair(self.output_padding, "output_padding",
                                 minimum=0)
    for n, k, s, p, op, d in zip(x.shape[1:3], kernel_size, strides, padding,
                                 output_padding, dilation):
      if flops.conv_transpose_output_size(n, k, s=s, p=p, output_padding=op,
                                          d=d) < 1:
        raise ValueError(f"padding {self.padding} leaves no output for input "
                         f"size {n} and kernel {k}.")
    kernel = self.param("kernel", self.kernel_init,
                        (*kernel_size, x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,),
                       self.param_dtype) if self.use_bias else None)
    pads = self.dilated_input_padding()
    # As Flax's own layers: the input and the kernel promote to a common
    # dtype (float32 for integer or half inputs and float32 parameters), or
    # are cast to ``dtype`` when it is given. Casting the kernel to the
    # input's dtype made an int32 input truncate the weights to 0.
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias,
                                              dtype=self.dtype)
    y = lax.conv_general_dilated(
        x, kernel[::-1, ::-1], window_strides=(1, 1),
        padding=pads, lhs_dilation=strides, rhs_dilation=dilation,
        dimension_numbers=_DIMENSION_NUMBERS)
    if bias is not None:
      y = y + bias
    return y


class DepthwiseSeparableConv(nn.Module):
  """MobileNet's depthwise ``K×K`` conv (one filter per channel) then a 1×1.

  Parameters ``K²·Cin + Cin·Cout`` against ``K²·Cin·Cout`` for a plain
  convolution (notes 004 "深度可分离卷积"), without biases.

  Attributes:
    features: output channels.
    kernel_size: depthwise kernel size.
    strides: depthwise stride.
    dilation: depthwise dilation (a dilated conv widens the receptive field
      to ``d(K − 1) + 1`` at the same cost).
    padding: depthwise padding (Flax's forms).
    use_bias: whether both convs have biases.
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  dilation: int = 1
  padding: str | int = "SAME"
  use_bias: bool = False
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps ``[N, H, W, Cin]`` to ``[N, Ho, Wo, features]``."""
    _check_rank4(x, "x")
    positive_int(self.features, "features")
    positive_int(self.kernel_size, "kernel_size")
    for name in ("strides", "dilation"):  # ints or pairs, as Flax takes
      int_pair(getattr(self, name), name, minimum=1)
    c_in = x.shape[-1]
    x = nn.Conv(c_in, (self.kernel_size,) * 2, strides=self.strides,
                padding=self.padding, kernel_dilation=self.dilation,
                feature_group_count=c_in, use_bias=self.use_bias,
                dtype=self.dtype, param_dtype=self.param_dtype,
                name="depthwise")(x)
    return nn.Conv(self.features, (1, 1), use_bias=self.use_bias,
                   dtype=self.dtype, param_dtype=self.param_dtype,
                   name="pointwise")(x)


class ResNeXtBlock(nn.Module):
  """ResNeXt bottleneck: split-transform-merge with a grouped 3×3 conv.

  1×1 conv to ``cardinality·group_width`` channels, a 3×3 conv with
  ``feature_group_count=cardinality`` (32 paths of 4 channels in the
  32×4d model), a 1×1 conv to ``features``; batch norm after each, ReLU, and
  a projection shortcut when the shape changes. Convs have no bias (batch
  norm follows). With ``features=256`` it has about the parameters of a
  ResNet-50 bottleneck (64 channels in the 3×3).

  Attributes:
    features: output channels.
    cardinality: number of groups (paths).
    group_width: channels per path.
    strides: stride of the 3×3 conv and of the projection.
    dtype: computation dtype (None: from the inputs and parameters, as Flax
      layers).
    param_dtype: dtype of the parameters.

  References:
    Xie et al., "Aggregated Residual Transformations for Deep Neural
    Networks", CVPR 2017 (fig. 3c).
  """
  features: int
  cardinality: int = 32
  group_width: int = 4
  strides: int = 1
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Maps ``[N, H, W, Cin]`` to ``[N, ceil(H/strides), ceil(W/strides),
    features]``."""
    _check_rank4(x, "x")
    positive_int(self.features, "features")
    strides = int_pair(self.strides, "strides", minimum=1)
    positive_int(self.cardinality, "cardinality")
    positive_int(self.group_width, "group_width")
    dt = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    norm = lambda name: nn.BatchNorm(use_running_average=not train,
                                     momentum=0.9, epsilon=1e-5, **dt,
                                     name=name)
    if self.dtype is not None:  # the identity shortcut, in the compute dtype
      x = jnp.asarray(x, self.dtype)
    width = self.cardinality * self.group_width
    y = nn.relu(norm("bn1")(nn.Conv(width, (1, 1), use_bias=False, **dt,
                                    name="conv1")(x)))
    y = nn.Conv(width, (3, 3), strides=self.strides, padding=1,
                feature_group_count=self.cardinality, use_bias=False, **dt,
                name="conv2")(y)
    y = nn.relu(norm("bn2")(y))
    y = norm("bn3")(nn.Conv(self.features, (1, 1), use_bias=False, **dt,
                            name="conv3")(y))
    if x.shape[-1] != self.features or strides != (1, 1):
      x = norm("bn_proj")(nn.Conv(self.features, (1, 1), strides=self.strides,
                                  use_bias=False, **dt, name="proj")(x))
    return nn.relu(y + x)
