"""Coordinate maps: where a blob's pixels sit in another blob's coordinates, and the crops that follow.

Every spatial layer maps the coordinates of its input to those of its output by a scale and a shift,
``y = scale * x + shift`` (the centre of a receptive field, per spatial axis). Maps compose along a
chain of layers, and the map between two blobs that share an ancestor is the map up to the ancestor
from one, then back down to the other. FCN's Crop layers align a big upsampled blob with a reference
blob this way: scale 1, an integer shift ``-offset``.

The arithmetic follows Caffe's ``python/caffe/coord_map.py`` (the CVPR-era ``future`` branch derived
its implicit Crop offsets the same way), written here with exact fractions so a stride of 3 never
rounds. ``fcn_ref`` uses the small helpers (``conv_map``, ``deconv_map``, ``compose``, ...) on its
own layer geometry; the converter uses ``crop_offset(net, layer)`` on a whole ``CaffeNet``.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Iterable, Sequence

from convert.errors import CaffeFormatError

if TYPE_CHECKING:  # annotations only, so coord_map imports without the protobuf schema
    from convert.net import CaffeNet, Layer

# Layers that keep every pixel where it is: identity map. (Concat is identity only when it joins
# images or channels; see ``layer_map``.)
PASS_THROUGH_LAYERS = frozenset({
    "AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Exp", "Log", "LRN", "MVN",
    "Power", "PReLU", "ReLU", "Scale", "Sigmoid", "Softmax", "Split", "TanH", "Threshold",
})
SPATIAL_AXES = (2, 3)  # N, C, H, W: maps exist for H (axis 2) and W (axis 3)


class UndefinedMapError(ValueError):
    """A layer has no (scale, shift) map, e.g. InnerProduct, global pooling, or an unknown type."""


class CropOffsetError(ValueError):
    """Two blobs are not aligned by a pure integer shift, so no top-left crop can align them."""


@dataclass(frozen=True)
class CoordMap:
    """``y = scale * x + shift``: maps input coordinates to output coordinates along one axis."""

    scale: Fraction = Fraction(1)
    shift: Fraction = Fraction(0)

    def __call__(self, x: Fraction | int) -> Fraction:
        return self.scale * x + self.shift


IDENTITY = CoordMap()


def conv_map(kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> CoordMap:
    """Convolution or pooling: the output pixel sits at the centre of its (dilated) window."""
    extent = (kernel - 1) * dilation + 1
    return CoordMap(Fraction(1, stride), (Fraction(pad) - Fraction(extent - 1, 2)) / stride)


def deconv_map(kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> CoordMap:
    """Deconvolution: the exact inverse of the convolution with the same geometry."""
    extent = (kernel - 1) * dilation + 1
    return CoordMap(Fraction(stride), Fraction(extent - 1, 2) - pad)


def crop_map(offset: int) -> CoordMap:
    """Crop: output pixel 0 is input pixel ``offset``."""
    return CoordMap(Fraction(1), Fraction(-offset))


def compose(first: CoordMap, then: CoordMap) -> CoordMap:
    """The map of applying ``first`` and then ``then`` (a chain of layers, input to output)."""
    return CoordMap(then.scale * first.scale, then.scale * first.shift + then.shift)


def compose_all(maps: Iterable[CoordMap]) -> CoordMap:
    """Compose a whole chain, listed from input to output."""
    result = IDENTITY
    for m in maps:
        result = compose(result, m)
    return result


def inverse(m: CoordMap) -> CoordMap:
    """Output coordinates back to input coordinates."""
    return CoordMap(1 / m.scale, -m.shift / m.scale)


def crop_offset_from_maps(big: CoordMap, reference: CoordMap) -> int:
    """Top-left offset that aligns ``big`` with ``reference``, given each one's map from a common
    ancestor blob. Only a pure integer shift (scale 1, offset >= 0) is a valid crop."""
    relative = compose(inverse(big), reference)  # big's coordinates -> reference's coordinates
    if relative.scale != 1:
        raise CropOffsetError(f"blobs differ in scale by {relative.scale}; a crop cannot align them")
    if relative.shift.denominator != 1:
        raise CropOffsetError(f"blobs are misaligned by a fractional {relative.shift} pixels")
    if relative.shift > 0:
        raise CropOffsetError(f"the reference starts {relative.shift} pixels before the cropped blob")
    return int(-relative.shift)


@dataclass(frozen=True)
class WindowGeometry:
    """(H, W) kernel, stride, pad and dilation of a sliding-window layer, read as Caffe reads them."""

    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)


def _two(values: Sequence[int], default: int, what: str, layer: Layer) -> tuple[int, int]:
    """A repeated field: empty means ``default``, one value means both axes, two mean (H, W)."""
    if len(values) == 0:
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise CaffeFormatError(f"{what} has {len(values)} values; only 2-D layers are supported",
                           layer=layer.name)


def conv_geometry(layer: Layer) -> WindowGeometry:
    """Geometry of a Convolution/Deconvolution: ``kernel_h/_w`` etc. win over the repeated forms."""
    p = layer.param.convolution_param
    if p.HasField("kernel_h") or p.HasField("kernel_w"):
        kernel = (p.kernel_h, p.kernel_w)
    elif len(p.kernel_size) == 0:
        raise CaffeFormatError("convolution has no kernel size", layer=layer.name)
    else:
        kernel = _two(p.kernel_size, 1, "kernel_size", layer)
    stride = ((p.stride_h, p.stride_w) if p.HasField("stride_h") or p.HasField("stride_w")
              else _two(p.stride, 1, "stride", layer))
    pad = ((p.pad_h, p.pad_w) if p.HasField("pad_h") or p.HasField("pad_w")
           else _two(p.pad, 0, "pad", layer))
    return WindowGeometry(kernel, stride, pad, _two(p.dilation, 1, "dilation", layer))


def pool_geometry(layer: Layer) -> WindowGeometry:
    """Geometry of a (non-global) Pooling layer: the scalar fields, unless the ``_h/_w`` ones are set."""
    p = layer.param.pooling_param
    kernel = (p.kernel_size,) * 2 if p.HasField("kernel_size") else (p.kernel_h, p.kernel_w)
    stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride,) * 2
    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad,) * 2
    return WindowGeometry(kernel, stride, pad)


def layer_map(layer: Layer, axis: int, crop_offsets: Sequence[int] | None = None) -> CoordMap:
    """The map of one layer along spatial ``axis`` (0 = H, 1 = W), from its first bottom to its tops.

    ``crop_offsets`` supplies the (H, W) offsets of a Crop layer that carries none in its parameters.
    """
    kind = layer.type
    if kind in PASS_THROUGH_LAYERS:
        return IDENTITY
    if kind == "Concat":
        p = layer.param.concat_param
        concat_axis = p.concat_dim if p.HasField("concat_dim") else p.axis
        if concat_axis in (0, 1, -4, -3):  # stacking images or channels moves no pixel
            return IDENTITY
        raise UndefinedMapError(f"Concat layer '{layer.name}' joins along a spatial axis")
    if kind in ("Convolution", "Deconvolution"):
        g = conv_geometry(layer)
        make = deconv_map if kind == "Deconvolution" else conv_map
        return make(g.kernel[axis], g.stride[axis], g.pad[axis], g.dilation[axis])
    if kind == "Pooling":
        if layer.param.pooling_param.global_pooling:
            raise UndefinedMapError(f"global pooling in layer '{layer.name}' has no coordinate map")
        g = pool_geometry(layer)
        return conv_map(g.kernel[axis], g.stride[axis], g.pad[axis])
    if kind == "Crop":
        offsets = _explicit_crop_offsets(layer)
        if offsets is None:
            offsets = crop_offsets
        if offsets is None:
            raise UndefinedMapError(f"Crop layer '{layer.name}' offset is not known yet")
        return crop_map(offsets[axis])
    raise UndefinedMapError(f"{kind} layer '{layer.name}' has no coordinate map")


def _explicit_crop_offsets(layer: Layer) -> list[int] | None:
    """Per-spatial-axis (H, W) offsets written in a Crop layer's parameters, or None if it has none."""
    p = layer.param.crop_param
    if not p.offset:
        return None
    start = p.axis if p.axis >= 0 else p.axis + 4
    per_axis = {}
    for axis in range(start, 4):
        per_axis[axis] = p.offset[0] if len(p.offset) == 1 else p.offset[axis - start]
    # Axes before the crop axis keep their size and start (offset 0).
    return [per_axis.get(a, 0) for a in SPATIAL_AXES]


# ----------------------------------------------------------------------------- whole nets

# A blob "version": (name, how many times it has been written so far). In-place layers (ReLU on
# conv1_1) write a new version under the same name; consumers read the version current at that point.
_Version = tuple[str, int]


class _Graph:
    """Producer of every blob version, so the walk from a blob back to its ancestors is exact."""

    def __init__(self, net: CaffeNet) -> None:
        self.producer: dict[_Version, int] = {}
        self.bottoms: list[list[_Version]] = []
        current = {name: 0 for name in net.inputs}
        for index, layer in enumerate(net.layers):
            self.bottoms.append([(b, current.get(b, 0)) for b in layer.bottoms])
            for top in layer.tops:
                current[top] = current.get(top, -1) + 1
                self.producer[(top, current[top])] = index


def _ancestor_maps(net: CaffeNet, graph: _Graph, start: _Version, axis: int,
                   offsets: dict[int, list[int]]) -> dict[_Version, CoordMap]:
    """Map from every reachable ancestor blob to ``start``, walking back breadth-first.

    Crop layers are followed through their first bottom only (the second is just a size reference).
    Layers without a map end the walk along that path, like Caffe's coord_map.
    """
    maps = {start: IDENTITY}
    queue = deque([start])
    while queue:
        blob = queue.popleft()
        index = graph.producer.get(blob)
        if index is None:
            continue
        layer = net.layers[index]
        try:
            step = layer_map(layer, axis, offsets.get(index))
        except UndefinedMapError:
            continue
        bottoms = graph.bottoms[index][:1] if layer.type == "Crop" else graph.bottoms[index]
        for bottom in bottoms:
            if bottom not in maps:
                maps[bottom] = compose(step, maps[blob])
                queue.append(bottom)
    return maps


def _net_crop_offsets(net: CaffeNet, graph: _Graph, index: int,
                      known: dict[int, list[int]]) -> list[int]:
    """(H, W) offsets of the Crop layer at ``index``, from the geometry of everything above it."""
    layer = net.layers[index]
    if len(graph.bottoms[index]) != 2:
        raise CropOffsetError(f"Crop layer '{layer.name}' needs two bottoms")
    big, reference = graph.bottoms[index]
    result = []
    for axis in range(len(SPATIAL_AXES)):
        from_big = _ancestor_maps(net, graph, big, axis, known)
        from_ref = _ancestor_maps(net, graph, reference, axis, known)
        common = [blob for blob in from_ref if blob in from_big]  # breadth-first: nearest first
        if not common:
            raise CropOffsetError(f"Crop layer '{layer.name}': its bottoms share no ancestor "
                                  "through layers with coordinate maps")
        try:
            result.append(crop_offset_from_maps(from_big[common[0]], from_ref[common[0]]))
        except CropOffsetError as exc:
            raise CropOffsetError(f"Crop layer '{layer.name}': {exc}") from None
    return result


def _resolve_crops(net: CaffeNet, stop_at: Layer | None = None) -> dict[int, list[int]]:
    """Geometric (H, W) offsets of the Crop layers by layer index, up to and including ``stop_at``.

    Earlier crops' offsets feed later walks, so nets whose Crop layers carry no offsets (the
    CVPR-era definitions) resolve completely. Unresolvable crops are left out, except ``stop_at``,
    whose failure is raised. Layers are told apart by position: the CVPR nets reuse the name "crop".
    """
    graph = _Graph(net)
    offsets: dict[int, list[int]] = {}
    for index, layer in enumerate(net.layers):
        if layer.type != "Crop":
            continue
        try:
            offsets[index] = _net_crop_offsets(net, graph, index, offsets)
        except (CropOffsetError, UndefinedMapError):
            if layer is stop_at:
                raise
        if layer is stop_at:
            break
    return offsets


def computed_crop_offsets(net: CaffeNet) -> dict[str, list[int]]:
    """(H, W) offsets of every resolvable Crop layer in ``net`` by layer name, as the geometry
    dictates (where names repeat, the last such layer's offsets are kept)."""
    return {net.layers[index].name: value for index, value in _resolve_crops(net).items()}


def crop_offset(net: CaffeNet, layer: str | Layer) -> list[int]:
    """(H, W) top-left offsets that align the bottoms of a Crop layer (given by name, or as the
    ``Layer`` object itself where names repeat).

    This is the offset Caffe's ``coord_map.crop`` would write, and the one the CVPR-era Crop layer
    used implicitly. Raises ``CropOffsetError`` (or ``UndefinedMapError``) when the geometry gives
    no valid crop.
    """
    if isinstance(layer, str):
        matches = [candidate for candidate in net.layers if candidate.name == layer]
        if not matches:
            raise KeyError(f"no layer named '{layer}'")
        layer = matches[0]
    if layer.type != "Crop":
        raise ValueError(f"layer '{layer.name}' is a {layer.type}, not a Crop")
    index = next(i for i, candidate in enumerate(net.layers) if candidate is layer)
    return _resolve_crops(net, stop_at=layer)[index]
