"""Read dlib's ``dlib_face_recognition_resnet_model_v1.dat`` with numpy alone.

The file is dlib's own serialization of the network ``anet_type`` from dlib's
``examples/dnn_face_recognition_ex.cpp`` (a ``loss_metric`` on top of a 29-conv ResNet).
Reading it ourselves means the service needs neither dlib nor a C++ toolchain at run time,
and the weights stay exactly the ones dlib ships.

How dlib writes it (``dlib/serialize.h``, ``dlib/dnn/core.h``, ``layers.h``, ``input.h``,
``loss.h``, ``tensor.h``):

* Every integer, whatever its C++ width, is one control byte (low 4 bits: the number of
  magnitude bytes, bit 0x80: negative) followed by that many little-endian bytes.
* A lone float is two such integers, mantissa then exponent (``m * 2**e``).
* A bool is the ASCII byte ``'1'`` or ``'0'``; a string is a length integer and its bytes.
* A tensor is version 2, its dims ``n, k, nr, nc`` and ``n*k*nr*nc`` raw little-endian
  float32 values; an ``alias_tensor`` is version 1 and four dims, without data.
* Layers nest: each ``add_layer`` writes its version, then the whole network below it, then
  its own record.  So the file is the loss layer's header, then 130 version integers
  (outermost layer first), then the input layer, then one record per computational layer,
  the layer next to the input first.  Tag and skip layers write only their version, so the
  residual topology is not in the file: it comes from ``anet_type`` (see ``dlib_resnet.py``).

The float blocks are read with ``np.frombuffer`` (no per-value Python work), so a parse of
the 22 MB file takes milliseconds.  The returned arrays are read-only views into the file's
bytes.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DlibAffine",
    "DlibConv",
    "DlibFc",
    "DlibLayer",
    "DlibNet",
    "DlibPool",
    "load_dlib_dat",
    "parse_dlib_dat",
]

# add_layer versions: 2 for a layer on top of another layer, 3 (dlib >= 19.x) or 2 (older)
# for the one that sits directly on the input layer.  Tag/skip layers write version 1.
_ADD_LAYER_VERSIONS = (2, 3)
_TAG_OR_SKIP_VERSION = 1
_TENSOR_VERSION = 2
_ALIAS_TENSOR_VERSION = 1


@dataclass(frozen=True)
class DlibConv:
    """A ``con_`` layer: cross-correlation weights as used by ``torch.nn.functional.conv2d``."""

    weight: np.ndarray  # (out_channels, in_channels, kernel_rows, kernel_cols), float32
    bias: np.ndarray  # (out_channels,), float32
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]  # (y, x)


@dataclass(frozen=True)
class DlibAffine:
    """An ``affine_`` layer (batch norm folded by dlib): ``y = gamma * x + beta`` per channel."""

    gamma: np.ndarray  # (channels,), float32
    beta: np.ndarray  # (channels,), float32


@dataclass(frozen=True)
class DlibFc:
    """An ``fc_`` layer.  dlib stores the matrix input-major, so ``y = x @ weight (+ bias)``."""

    weight: np.ndarray  # (num_inputs, num_outputs), float32
    bias: np.ndarray | None  # (num_outputs,) or None for fc_no_bias


@dataclass(frozen=True)
class DlibPool:
    """A ``max_pool_``/``avg_pool_`` layer.  A window of 0 means "the whole map"."""

    window: tuple[int, int]  # (rows, cols)
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class DlibLayer:
    """One computational layer.

    ``kind`` is one of ``"con"``, ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``,
    ``"add_prev"`` or ``"fc"``; ``params`` holds what that kind needs (None for relu and
    add_prev, whose behaviour has no parameters).
    """

    kind: str
    params: DlibConv | DlibAffine | DlibFc | DlibPool | None = None


@dataclass(frozen=True)
class DlibNet:
    """Everything in the file, in network order (the layer next to the input first)."""

    input_means: tuple[float, float, float]  # R, G, B, subtracted before dividing by 256
    input_size: tuple[int, int]  # (rows, cols) the input layer was locked to
    loss: str  # e.g. "loss_metric_2"
    margin: float
    distance_threshold: float  # dlib's same-person threshold on unnormalized descriptors
    layers: tuple[DlibLayer, ...]

    def of_kind(self, kind: str) -> list:
        """The ``params`` of every layer of one kind, in network order."""
        return [layer.params for layer in self.layers if layer.kind == kind]


class _Reader:
    """A cursor over the file's bytes that turns every overrun into a ValueError."""

    def __init__(self, data: bytes, source: builtins.str) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, what: builtins.str) -> ValueError:
        return ValueError(
            f"{self.source}: not a valid dlib face recognition model file: {what} "
            f"(at byte {self.pos} of {len(self.data)})"
        )

    def take(self, n: builtins.int, what: builtins.str) -> builtins.int:
        """Reserve ``n`` bytes and return where they start."""
        start = self.pos
        if n < 0 or start + n > len(self.data):
            raise self.fail(f"file ends inside {what}; it is truncated or corrupt")
        self.pos = start + n
        return start

    def int(self, what: builtins.str) -> builtins.int:
        start = self.take(1, what)
        control = self.data[start]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x} in {what}")
        body = self.take(size, what)
        value = int.from_bytes(self.data[body : body + size], "little")
        return -value if control & 0x80 else value

    def peek_int(self, what: builtins.str) -> builtins.int:
        start = self.pos
        value = self.int(what)
        self.pos = start
        return value

    def float(self, what: builtins.str) -> float:
        mantissa = self.int(what)
        exponent = self.int(what)
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:  # dlib encodes inf/nan with out-of-range exponents
            return math.copysign(math.inf, mantissa)

    def bool(self, what: builtins.str) -> bool:
        byte = self.data[self.take(1, what)]
        if byte not in (ord("0"), ord("1")):
            raise self.fail(f"expected a bool ('0' or '1') for {what}, got 0x{byte:02x}")
        return byte == ord("1")

    def str(self, what: builtins.str) -> builtins.str:
        length = self.int(what)
        if length > 1024:
            raise self.fail(f"implausible string length {length} for {what}")
        start = self.take(length, what)
        try:
            return self.data[start : start + length].decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"non-text bytes where {what} was expected") from None

    def dims(self, what: builtins.str) -> tuple[builtins.int, builtins.int, builtins.int, builtins.int]:
        dims = tuple(self.int(what) for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor dimension {dims} in {what}")
        return dims  # type: ignore[return-value]

    def tensor(self, what: builtins.str) -> np.ndarray:
        """A resizable_tensor: returns its data as a flat read-only float32 view."""
        version = self.int(what)
        if version != _TENSOR_VERSION:
            raise self.fail(f"unsupported tensor version {version} in {what}")
        count = math.prod(self.dims(what))
        start = self.take(4 * count, what)
        return np.frombuffer(self.data, dtype="<f4", count=count, offset=start)

    def alias(self, what: builtins.str) -> tuple[builtins.int, builtins.int, builtins.int, builtins.int]:
        """An alias_tensor: only a shape that says how to slice the layer's params."""
        version = self.int(what)
        if version != _ALIAS_TENSOR_VERSION:
            raise self.fail(f"unsupported alias tensor version {version} in {what}")
        return self.dims(what)


def _slice(params: np.ndarray, offset: int, shape: tuple[int, ...], r: _Reader, what: str) -> np.ndarray:
    size = math.prod(shape)
    if offset + size > params.size:
        raise r.fail(f"{what} needs {offset + size} parameters but the layer holds {params.size}")
    return params[offset : offset + size].reshape(shape)


def _read_con(r: _Reader, version: str) -> DlibConv:
    if version not in ("con_4", "con_5", "con_6"):
        raise r.fail(f"unsupported convolution layer version {version!r}")
    params = r.tensor("con params")
    num_filters, nr, nc = (r.int("con shape") for _ in range(3))
    stride = (r.int("con stride"), r.int("con stride"))
    padding = (r.int("con padding"), r.int("con padding"))
    filters = r.alias("con filters")
    biases = r.alias("con biases")
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        r.float("con multipliers")
    if version == "con_6":  # newer dlib adds use_bias
        r.bool("con use_bias")
    if filters[0] != num_filters or filters[2:] != (nr, nc):
        raise r.fail(f"convolution filter shape {filters} disagrees with {num_filters}x{nr}x{nc}")
    weight = _slice(params, 0, filters, r, "convolution filters")
    bias = _slice(params, weight.size, (num_filters,), r, "convolution biases")
    if math.prod(biases) != num_filters:
        raise r.fail(f"convolution bias shape {biases} does not match {num_filters} filters")
    return DlibConv(weight=weight, bias=bias, stride=stride, padding=padding)


def _read_affine(r: _Reader, version: str) -> DlibAffine:
    if version not in ("affine_", "affine_2"):
        raise r.fail(f"unsupported affine layer version {version!r} (bn_ layers are not supported)")
    params = r.tensor("affine params")
    gamma_shape = r.alias("affine gamma")
    beta_shape = r.alias("affine beta")
    r.int("affine mode")
    if version == "affine_2":
        r.bool("affine disabled")
    gamma = _slice(params, 0, (math.prod(gamma_shape),), r, "affine gamma")
    beta = _slice(params, gamma.size, (math.prod(beta_shape),), r, "affine beta")
    return DlibAffine(gamma=gamma, beta=beta)


def _read_fc(r: _Reader, version: str) -> DlibFc:
    if version not in ("fc_2", "fc_3"):
        raise r.fail(f"unsupported fc layer version {version!r}")
    num_outputs = r.int("fc num_outputs")
    num_inputs = r.int("fc num_inputs")
    params = r.tensor("fc params")
    r.alias("fc weights")
    r.alias("fc biases")
    bias_mode = r.int("fc bias mode")  # 0: FC_HAS_BIAS, 1: FC_NO_BIAS
    for _ in range(4):
        r.float("fc multipliers")
    if version == "fc_3":
        r.bool("fc use_bias")
    weight = _slice(params, 0, (num_inputs, num_outputs), r, "fc weights")
    bias = None
    if bias_mode == 0:
        bias = _slice(params, weight.size, (num_outputs,), r, "fc biases")
    return DlibFc(weight=weight, bias=bias)


def _read_pool(r: _Reader) -> DlibPool:
    window = (r.int("pool window"), r.int("pool window"))
    stride = (r.int("pool stride"), r.int("pool stride"))
    padding = (r.int("pool padding"), r.int("pool padding"))
    return DlibPool(window=window, stride=stride, padding=padding)


def _read_layer_details(r: _Reader) -> DlibLayer:
    version = r.str("layer name")
    if version.startswith("con_"):
        return DlibLayer("con", _read_con(r, version))
    if version.startswith("affine_"):
        return DlibLayer("affine", _read_affine(r, version))
    if version.startswith("fc_"):
        return DlibLayer("fc", _read_fc(r, version))
    if version in ("max_pool_2", "avg_pool_2"):
        return DlibLayer(version[:-2], _read_pool(r))
    if version == "relu_":
        return DlibLayer("relu")
    if version == "relu_2":
        r.bool("relu disabled")
        return DlibLayer("relu")
    if version == "add_prev_":
        return DlibLayer("add_prev")
    raise r.fail(f"unsupported layer {version!r}")


def parse_dlib_dat(data: bytes, source: str = "<bytes>") -> DlibNet:
    """Parse the bytes of a dlib ``loss_metric`` network file such as the face descriptor.

    Raises ValueError, naming ``source``, if the bytes are truncated, malformed, or hold a
    network built from layers this reader does not know.
    """
    r = _Reader(bytes(data), source)

    if r.int("loss layer version") != 1:
        raise r.fail("unexpected loss layer version")
    loss = r.str("loss name")
    if loss not in ("loss_metric_", "loss_metric_2"):
        raise r.fail(f"expected a loss_metric network, found {loss!r}")
    margin = r.float("loss margin")
    threshold = r.float("loss distance threshold")

    # The chain of wrapper versions, outermost first, down to the add_layer on the input.
    versions: list[int] = []
    # A version is 1, 2 or 3; the input layer's name length that ends the chain is larger.
    while r.peek_int("layer version") in (_TAG_OR_SKIP_VERSION, *_ADD_LAYER_VERSIONS):
        versions.append(r.int("layer version"))
    if not versions or versions[-1] not in _ADD_LAYER_VERSIONS:
        raise r.fail("no computational layer found on top of the input layer")

    input_name = r.str("input layer name")
    if input_name != "input_rgb_image_sized":
        raise r.fail(f"expected input_rgb_image_sized, found {input_name!r}")
    means = (r.float("input mean"), r.float("input mean"), r.float("input mean"))
    input_size = (r.int("input rows"), r.int("input cols"))

    layers: list[DlibLayer] = []
    # Records come innermost first: walk the wrappers from the input outwards.
    for depth, version in enumerate(reversed(versions)):
        if version == _TAG_OR_SKIP_VERSION:
            continue
        layers.append(_read_layer_details(r))
        for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, outputs disabled
            r.bool("layer flags")
        for _ in range(3):  # x_grad, cached_output, params_grad / grad_final: training state
            r.tensor("layer state tensor")
        if depth == 0 and version == 3:
            r.int("sample expansion factor")

    if r.pos != len(r.data):
        raise r.fail(f"{len(r.data) - r.pos} unexpected bytes after the last layer")
    return DlibNet(
        input_means=means,
        input_size=input_size,
        loss=loss,
        margin=margin,
        distance_threshold=threshold,
        layers=tuple(layers),
    )


def load_dlib_dat(path: str | Path) -> DlibNet:
    """Read and parse a dlib network file from disk (see :func:`parse_dlib_dat`)."""
    path = Path(path)
    return parse_dlib_dat(path.read_bytes(), source=str(path))
