"""Which offsets a Crop layer uses: BVLC's by default, the coordinate maps' where asked or legacy.

BVLC Caffe's ``Crop`` takes the offsets written in ``crop_param`` and 0 where none are written. The
legacy V1 ``CROP`` (type 40) of the branch the CVPR-era FCNs were trained with had no parameters:
its offsets were whatever aligned the two bottoms' coordinate maps (``convert.coord_map``). So:

- in a net read from legacy V1 ``layers`` (``CaffeNet.legacy_v1``; V1 has no crop_param, so every
  Crop there is that CROP) the crops take their coordinate-map offsets, which is what that branch
  computed; ``resolve_legacy_crops`` writes them in (a converted file stores them so);
- a modern Crop without offsets uses 0, and where the coordinate maps give another offset (nets
  from forks that computed them) ``apply_policy`` warns once per layer, naming the layer and the
  computed offset; the policy ``"coord-map"`` (``--crop-offsets coord-map``,
  ``load_caffe(..., crop_offsets="coord-map")``) writes the computed offsets in instead;
- written offsets are always used, with a warning where they disagree with the geometry.
"""
from __future__ import annotations

import dataclasses
import warnings

from convert import coord_map
from convert.errors import CaffeFormatError
from convert.net import CaffeNet, Layer

POLICIES = ("caffe", "coord-map")  # "caffe": BVLC semantics (the default)


def computed_offsets(net: CaffeNet, layer: Layer) -> list[int] | None:
    """(H, W) offsets the coordinate maps give this Crop layer, None where they give none."""
    try:
        return coord_map.crop_offset(net, layer)
    except (coord_map.CropOffsetError, coord_map.UndefinedMapError):
        return None


def cropped_axes(layer: Layer) -> int:
    """How many axes of a 4-D blob the layer crops (from ``axis`` to the end)."""
    return 4 - layer.param.crop_param.axis % 4


def as_param_offsets(layer: Layer, spatial: list[int]) -> list[int]:
    """(H, W) offsets as ``crop_param.offset`` values: one per cropped axis, 0 for N or C."""
    count = cropped_axes(layer)
    return [0] * max(0, count - 2) + spatial[-min(count, 2):]


def with_offsets(layer: Layer, offsets: list[int]) -> Layer:
    param = type(layer.param)()
    param.CopyFrom(layer.param)
    param.crop_param.offset.extend(offsets)
    return Layer(param, layer.blobs)


def resolve_legacy_crops(net: CaffeNet) -> CaffeNet:
    """A legacy V1 net in modern form: its CROP layers carry their coordinate-map offsets
    (unresolvable ones keep 0). Other nets come back unchanged."""
    if not net.legacy_v1:
        return net
    layers = list(net.layers)
    for index, layer in enumerate(layers):
        if layer.type == "Crop" and not layer.param.crop_param.offset:
            spatial = computed_offsets(dataclasses.replace(net, layers=layers), layer)
            if spatial is not None:
                layers[index] = with_offsets(layer, as_param_offsets(layer, spatial))
    return dataclasses.replace(net, layers=layers, legacy_v1=False)


def _check_written(net: CaffeNet, layer: Layer) -> None:
    given = list(layer.param.crop_param.offset)
    spatial = computed_offsets(net, layer)
    count = cropped_axes(layer)
    per_axis = given * count if len(given) == 1 else given
    if spatial is None or len(per_axis) != count:
        return
    shown = min(count, 2)  # H and W, or W alone for axis 3
    if per_axis[-shown:] != spatial[-shown:]:
        warnings.warn(f"Crop layer '{layer.name}': offset {given} differs from the {spatial[-shown:]} "
                      f"its geometry gives; using {given} as Caffe does", stacklevel=3)


def apply_policy(net: CaffeNet, policy: str = "caffe") -> CaffeNet:
    """The net whose Crop layers are run: ``"caffe"`` leaves offset-less ones at 0 (warning where
    the geometry says otherwise), ``"coord-map"`` writes the geometry's offsets into them."""
    if policy not in POLICIES:
        raise CaffeFormatError(f"crop_offsets must be one of {', '.join(POLICIES)}, not {policy!r}")
    net = resolve_legacy_crops(net)
    layers = list(net.layers)
    as_run = list(net.layers)  # what later crops' geometry sees: each earlier crop as it is run
    for index, layer in enumerate(layers):
        if layer.type != "Crop":
            continue
        if layer.param.crop_param.offset:
            _check_written(net, layer)
            continue
        spatial = computed_offsets(dataclasses.replace(net, layers=as_run), layer)
        offsets = as_param_offsets(layer, spatial or [0, 0])
        as_run[index] = with_offsets(layer, offsets if policy == "coord-map" else [0])
        if not any(offsets):
            continue
        if policy == "coord-map":
            layers[index] = as_run[index]
        else:
            warnings.warn(f"Crop layer '{layer.name}' has no offset, so BVLC Caffe crops at 0; its "
                          f"coordinate maps give offset {offsets}. To apply that instead, use "
                          "crop_offsets=\"coord-map\" (python -m convert --crop-offsets coord-map)",
                          stacklevel=3)
    return dataclasses.replace(net, layers=layers)
