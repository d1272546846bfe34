"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``) as a torch module.

The network is ``anet_type`` from dlib's ``examples/dnn_face_recognition_ex.cpp``::

    fc_no_bias<128, avg_pool_everything<
      level0 (1 down-block, 256) < level1 (down + 2 blocks, 256) < level2 (down + 2, 128) <
      level3 (down + 3, 64) < level4 (3 blocks, 32) <
      max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>

A block is ``conv(stride s) -> affine -> relu -> conv 3x3 -> affine``, added to a shortcut and
followed by relu.  The shortcut is the block's input, or in a downsampling block a 2x2/2
average pool of it.  Three dlib behaviours matter for bit-level agreement and are kept here:

* the input is ``(pixel - mean) / 256`` (256, not 255), with the RGB means from the file;
* stride-2 convolutions and pools have no padding, stride-1 3x3 convolutions pad by 1;
* ``add_prev`` sums tensors of different shapes by taking the larger size in every dimension,
  aligning both at the top-left and treating the missing part as zeros.  The channel counts
  differ in the first three downsampling blocks (the pooled shortcut keeps the input's
  channels); the map sizes differ in level1 (3x3 conv output, 4x4 pooled shortcut) and level0
  (1x1 and 2x2), so the final global average runs over a 2x2 map that is partly zeros.

Each ``affine`` (dlib's frozen batch norm) directly follows a convolution, so it is folded
into that convolution's weights and bias at load time: one op instead of two per layer, same
result up to float32 rounding.  The module returns dlib's unnormalized 128-d descriptor; the
caller L2-normalizes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .dlib_dat import DlibAffine, DlibConv, DlibFc, DlibNet, load_dlib_dat

__all__ = ["DESCRIPTOR_SIZE", "INPUT_SIZE", "DlibResNet"]

INPUT_SIZE = 150  # input_rgb_image_sized<150>
DESCRIPTOR_SIZE = 128  # fc_no_bias<128, ...>

# (filters, downsample) for each residual block, in network order (input side first):
# alevel4, alevel3, alevel2, alevel1, alevel0 from anet_type.
_BLOCKS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)  # fmt: skip
_STEM_FILTERS = 32


def _expected_layer_kinds() -> list[str]:
    """The computational layers anet_type serialises, in file order, to validate a file."""
    kinds = ["con", "affine", "relu", "max_pool"]
    for _, down in _BLOCKS:
        kinds += ["con", "affine", "relu", "con", "affine"]
        kinds += ["avg_pool", "add_prev", "relu"] if down else ["add_prev", "relu"]
    return kinds + ["avg_pool", "fc"]


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``tt::add`` for tensors of different shapes.

    The result has the larger channel count, height and width of the two; both inputs sit at
    channel 0 / row 0 / column 0 and whatever one of them lacks counts as zero.  When the
    shapes agree (the common case) this is a plain add.
    """
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))

    def pad(t: torch.Tensor) -> torch.Tensor:
        _, tc, th, tw = t.shape
        if (tc, th, tw) == (c, h, w):
            return t
        # F.pad's tuple runs from the last dim: (W left, W right, H top, H bottom, C front, C back)
        return F.pad(t, (0, w - tw, 0, h - th, 0, c - tc))

    return pad(a) + pad(b)


def _folded_conv(conv: DlibConv, affine: DlibAffine) -> nn.Conv2d:
    """A Conv2d computing ``affine(conv(x))``.

    gamma * (W x + b) + beta == (gamma W) x + (gamma b + beta); computed in float64 so the
    folding itself adds no rounding beyond the final cast to float32.
    """
    out_ch, in_ch, kh, kw = conv.weight.shape
    if affine.gamma.shape != (out_ch,) or affine.beta.shape != (out_ch,):
        raise ValueError(
            f"dlib model: an affine layer of {affine.gamma.shape[0]} channels follows a conv of {out_ch} filters"
        )
    gamma = affine.gamma.astype(np.float64)
    weight = conv.weight.astype(np.float64) * gamma[:, None, None, None]
    bias = conv.bias.astype(np.float64) * gamma + affine.beta.astype(np.float64)
    # skip_init: the weights are overwritten at once, so torch's random init would be wasted work.
    layer = nn.utils.skip_init(nn.Conv2d, in_ch, out_ch, (kh, kw), stride=conv.stride, padding=conv.padding)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        layer.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
    return layer


class _ResidualBlock(nn.Module):
    """dlib's ``ares``/``ares_down``: relu(block(x) + shortcut(x)), affines folded into convs."""

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, downsample: bool) -> None:
        super().__init__()
        self.conv1 = conv1
        self.conv2 = conv2
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv1(x), inplace=True)
        y = self.conv2(y)
        if self.downsample:
            # avg_pool<2,2,2,2>: no padding; the sizes may then differ from the stride-2 conv's.
            return F.relu(_add_zero_padded(y, F.avg_pool2d(x, 2, 2)), inplace=True)
        return F.relu(y.add_(x), inplace=True)


class DlibResNet(nn.Module):
    """dlib's 128-d face descriptor network.

    ``forward`` takes float RGB pixel values in 0..255, shape (N, 3, 150, 150), i.e. face
    chips aligned the way ``dlib.get_face_chip`` aligns them, and returns the unnormalized
    (N, 128) descriptors dlib would return for the same chips.  Build it with
    :meth:`from_dat`.
    """

    input_means: torch.Tensor  # a registered buffer (moves with the module's device and dtype)

    def __init__(self, net: DlibNet) -> None:
        super().__init__()
        kinds = [layer.kind for layer in net.layers]
        if kinds != _expected_layer_kinds():
            raise ValueError(
                "the dlib model file does not hold dlib_face_recognition_resnet_model_v1's "
                f"network: found {len(kinds)} layers, expected {len(_expected_layer_kinds())} "
                "in anet_type's order"
            )
        if tuple(net.input_size) != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"the dlib model's input is {net.input_size}, expected 150x150")

        convs: list[DlibConv] = net.of_kind("con")
        affines: list[DlibAffine] = net.of_kind("affine")
        (fc,) = net.of_kind("fc")
        self._check_shapes(convs, fc)

        # (1, 3, 1, 1) so it broadcasts over a batch; a buffer so .to(device) moves it.
        means = torch.tensor(net.input_means, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("input_means", means)
        folded = [_folded_conv(c, a) for c, a in zip(convs, affines)]
        self.stem = folded[0]
        self.blocks = nn.ModuleList(
            _ResidualBlock(folded[1 + 2 * i], folded[2 + 2 * i], down) for i, (_, down) in enumerate(_BLOCKS)
        )
        # nn.Linear stores (out, in); dlib stores (in, out).
        num_inputs, num_outputs = fc.weight.shape
        self.fc = nn.utils.skip_init(nn.Linear, num_inputs, num_outputs, bias=fc.bias is not None)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(fc.weight.T)))
            if fc.bias is not None:
                self.fc.bias.copy_(torch.from_numpy(fc.bias.copy()))
        self.eval()

    @staticmethod
    def _check_shapes(convs: list[DlibConv], fc: DlibFc) -> None:
        """Refuse a file whose layers are in the right order but of other sizes."""
        expected: list[tuple[tuple[int, int, int, int], int, int]] = [((_STEM_FILTERS, 3, 7, 7), 2, 0)]
        channels = _STEM_FILTERS
        for filters, down in _BLOCKS:
            expected.append(((filters, channels, 3, 3), 2 if down else 1, 0 if down else 1))
            expected.append(((filters, filters, 3, 3), 1, 1))
            channels = filters
        for i, (conv, (shape, stride, pad)) in enumerate(zip(convs, expected)):
            if conv.weight.shape != shape or conv.stride != (stride, stride) or conv.padding != (pad, pad):
                raise ValueError(
                    f"dlib model conv #{i}: filters {conv.weight.shape}, stride {conv.stride}, "
                    f"padding {conv.padding}; expected {shape}, stride {stride}, padding {pad}"
                )
        if fc.weight.shape != (channels, DESCRIPTOR_SIZE):
            raise ValueError(f"dlib model fc is {fc.weight.shape}, expected {(channels, DESCRIPTOR_SIZE)}")

    @classmethod
    def from_dat(cls, path: str | Path) -> DlibResNet:
        """Build the module from ``dlib_face_recognition_resnet_model_v1.dat`` (no dlib needed)."""
        return cls(load_dlib_dat(path))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, 150, 150) float RGB in 0..255 -> (N, 128) unnormalized descriptors."""
        if pixels.dim() != 4 or pixels.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
            expected = f"(N, 3, {INPUT_SIZE}, {INPUT_SIZE})"
            raise ValueError(f"expected {expected} RGB chips, got {tuple(pixels.shape)}")
        x = (pixels.to(self.input_means.dtype) - self.input_means) / 256.0  # dlib divides by 256
        # NHWC activations: oneDNN's CPU convolutions and pooling run faster on them (the 3x3
        # max pool ~9x, the whole net ~1.3x at batch 32 on 2 threads), as do cuDNN's on
        # tensor-core GPUs.  The weights can stay NCHW: the backends reorder them anyway.
        x = x.contiguous(memory_format=torch.channels_last)
        x = F.relu(self.stem(x), inplace=True)
        x = F.max_pool2d(x, 3, 2)  # max_pool<3,3,2,2>: no padding, 72 -> 35
        for block in self.blocks:
            x = block(x)
        x = x.mean(dim=(2, 3))  # avg_pool_everything over the final 2x2 map, zeros included
        return self.fc(x)
