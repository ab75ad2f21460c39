"""Run any converted Caffe net in PyTorch: ``CaffeModule(net)``, ``load_caffe(...)``, ``load(pth)``.

``CaffeModule`` is the generic runtime. Each Caffe layer becomes one registered submodule under the
Caffe layer name (so state-dict keys are ``<layer>.<blob>``), and ``forward`` walks the layers in
Caffe's order over a dictionary of named blobs, exactly as ``Net::Forward`` does. The plan (who
reads which blob, when a blob is last needed, which ReLUs may work in place) is fixed once at
construction, so a forward pass costs nothing in Python beyond the layer loop.

Fast paths: for CPU fp32 inference each convolution and deconvolution takes the computation that
``convert.fastpath`` measured fastest on this machine without costing accuracy, some of them in
channels_last; ``forward`` then hands back ordinary contiguous (NCHW) blobs. ``exact=True`` turns
them all off (``F.conv2d`` everywhere, the caller's layout). CUDA and training never take them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from os import PathLike
from typing import Any

from torch import Tensor, nn

from convert import fastpath
from convert.crop_offsets import apply_policy as crop_policy
from convert.errors import CaffeFormatError
from convert.layers import build_layer
from convert.modules import Pooling, ReLU
from convert.modules.pooling import unhooked
from convert.net import CaffeNet
from convert.training_layers import loss_weights

# Layer types whose output is always a new tensor, so an in-place ReLU on it can alias nothing.
FRESH_OUTPUT_LAYERS = frozenset({
    "Convolution", "Deconvolution", "InnerProduct", "Pooling", "Eltwise", "Concat", "LRN",
    "BatchNorm", "Scale", "Bias",
})
# Layer types whose output may share storage with their input (views, pass-throughs).
ALIASING_LAYERS = frozenset({"Split", "Dropout", "Reshape", "Flatten", "Crop", "Slice", "Power"})


@dataclass(frozen=True)
class Step:
    """One layer in execution order: its module, blob names in and out, and blobs to drop after."""

    name: str
    module: nn.Module
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    multi_output: bool
    release: tuple[str, ...]


def net_outputs(net: CaffeNet) -> list[str]:
    """Blobs left unconsumed after the last layer, in order of their last write (Caffe's outputs)."""
    available = dict.fromkeys(net.inputs)
    for layer in net.layers:
        for bottom in layer.bottoms:
            available.pop(bottom, None)
        for top in layer.tops:
            available.pop(top, None)
            available[top] = None
    return list(available)


class CaffeModule(nn.Module):
    """A Caffe net as a PyTorch module, with Caffe's layer names, blob layout and numbers.

    Call it with the input blobs, positionally in ``input_names`` order or by name; it returns a
    dict of the output blobs (``output_names``), or of every blob with ``all_blobs=True`` (in-place
    blobs hold their final value, as Caffe leaves them). Any input height and width works.
    ``crop_offsets``: "caffe" (BVLC: a Crop without offsets crops at 0) or "coord-map" (such a Crop
    takes the offsets the coordinate maps give; see ``convert.crop_offsets``).
    """

    def __init__(self, net: CaffeNet, crop_offsets: str = "caffe", exact: bool = False) -> None:
        super().__init__()
        net = crop_policy(net, crop_offsets)
        self.name = net.name
        self.input_names: list[str] = list(net.inputs)
        self.input_shapes: dict[str, tuple[int, ...]] = dict(net.inputs)
        # Tops that count towards the training objective (sum of weight * blob), as Caffe's Net
        # collects them; nets converted for inference have none (their loss layers are dropped).
        self.loss_weights: dict[str, float] = {
            top: weight for layer in net.layers for top, weight in zip(layer.tops, loss_weights(layer)) if weight}
        outputs = net_outputs(net)
        self.output_names: list[str] = outputs + [top for top in self.loss_weights if top not in outputs]
        self.meta: dict[str, Any] = {}  # what a converted file says about the net (see ``load``)
        self.fast_paths = True  # False: every layer exactly as F.conv2d computes it (set_exact)
        modules = [self._register(layer.name, build_layer(layer, net)) for layer in net.layers]
        self._mark_inplace_relus(net, modules)
        self._steps = self._plan(net, modules)
        self._relus_before_pools = self._relus_only_a_pool_reads(self._steps)
        self.use_channels_last = True  # see ``channels_last_for``
        fastpath.set_exact(self, exact)

    def _register(self, name: str, module: nn.Module) -> nn.Module:
        # Written straight into _modules so a layer may be called e.g. "eval" or "forward". A state
        # dict cannot hold empty or dotted names. The CVPR nets reuse names ("crop", "fuse") for
        # layers without weights; those get a "#2", "#3"... suffix, which no state-dict key carries.
        if not name or "." in name:
            raise CaffeFormatError("layer names must be non-empty and contain no '.'", layer=name)
        key, count = name, 1
        while key in self._modules:
            if next(module.parameters(), None) is not None:
                raise CaffeFormatError("two layers with weights share this name", layer=name)
            count += 1
            key = f"{name}#{count}"
        self._modules[key] = module
        return module

    @staticmethod
    def _mark_inplace_relus(net: CaffeNet, modules: list[nn.Module]) -> None:
        """Let an in-place Caffe ReLU also work in place in PyTorch when its input tensor is fresh
        (made by the previous writer of that name) and no consumer could have kept an alias of it."""
        writer: dict[str, int] = {}
        readers: dict[tuple[str, int], list[int]] = {}
        for index, layer in enumerate(net.layers):
            for bottom in layer.bottoms:
                readers.setdefault((bottom, writer.get(bottom, -1)), []).append(index)
            for top in layer.tops:
                writer[top] = index
        writer.clear()
        for index, (layer, module) in enumerate(zip(net.layers, modules)):
            if isinstance(module, ReLU) and layer.bottoms == layer.tops and layer.bottoms[0] in writer:
                source = writer[layer.bottoms[0]]
                consumers = readers.get((layer.bottoms[0], source), [])
                module.inplace = (net.layers[source].type in FRESH_OUTPUT_LAYERS
                                  and not any(net.layers[i].type in ALIASING_LAYERS for i in consumers))
            for top in layer.tops:
                writer[top] = index

    def _plan(self, net: CaffeNet, modules: list[nn.Module]) -> list[Step]:
        """Execution steps, each with the blobs no later step reads (dropped unless all_blobs)."""
        last_use: dict[str, int] = {}
        for index, layer in enumerate(net.layers):
            for blob in (*layer.bottoms, *layer.tops):
                last_use[blob] = index
        keep = set(self.output_names)
        release: dict[int, list[str]] = {}
        for blob, index in last_use.items():
            if blob not in keep:
                release.setdefault(index, []).append(blob)
        steps = []
        for index, (layer, module) in enumerate(zip(net.layers, modules)):
            multi = getattr(module, "multi_output", False)
            if not multi and len(layer.tops) != 1:
                raise CaffeFormatError(f"{layer.type} layer must have exactly one top", layer=layer.name)
            steps.append(Step(layer.name, module, tuple(layer.bottoms), tuple(layer.tops), multi,
                               tuple(release.get(index, ()))))
        return steps

    @staticmethod
    def _relus_only_a_pool_reads(steps: list[Step]) -> frozenset[int]:
        """Indices of the in-place ReLUs whose blob only the next layer, a Pooling, reads and no one
        reads after it: the two may run as one (``Pooling.after_relu``)."""
        return frozenset(
            index for index, (step, following) in enumerate(zip(steps, steps[1:]))
            if isinstance(step.module, ReLU) and step.module.inplace and not step.module.negative_slope
            and isinstance(following.module, Pooling) and following.bottoms == step.tops
            and step.tops[0] in following.release)

    def _with_next_pool(self, index: int, blobs: dict[str, Tensor]) -> Tensor | None:
        """The output of step ``index`` (a ReLU) and the Pooling after it run as one, where they may
        be (``_relus_only_a_pool_reads``, no hooks, ``Pooling.after_relu``); else None."""
        if index not in self._relus_before_pools:
            return None
        relu, pool = self._steps[index], self._steps[index + 1]
        if not unhooked(relu.module, pool.module):
            return None
        return pool.module.after_relu(blobs[relu.bottoms[0]])

    def layers(self) -> list[Step]:
        """The layers in execution order with their Caffe names (which may repeat, unlike
        ``named_children``), modules, bottoms and tops."""
        return list(self._steps)

    def _bind_inputs(self, args: tuple[Tensor, ...], kwargs: dict[str, Tensor]) -> dict[str, Tensor]:
        if len(args) > len(self.input_names):
            raise TypeError(f"{self.name}: {len(args)} inputs given, the net takes {self.input_names}")
        blobs = dict(zip(self.input_names, args))
        for name, value in kwargs.items():
            if name not in self.input_shapes:
                raise TypeError(f"{self.name}: unknown input '{name}'; inputs are {self.input_names}")
            if name in blobs:
                raise TypeError(f"{self.name}: input '{name}' given twice")
            blobs[name] = value
        missing = [name for name in self.input_names if name not in blobs]
        if missing:
            raise TypeError(f"{self.name}: missing inputs {missing}")
        return blobs

    @property
    def use_channels_last(self) -> bool:
        """Whether layers may run in another memory layout (channels_last) where that measured
        faster; the blobs returned are NCHW either way. False keeps the caller's layout."""
        return self._use_channels_last

    @use_channels_last.setter
    def use_channels_last(self, value: bool) -> None:
        self._use_channels_last = bool(value)
        for step in self._steps:
            if hasattr(step.module, "allow_layout_change"):
                step.module.allow_layout_change = self._use_channels_last

    def channels_last_for(self, blobs: dict[str, Tensor]) -> bool:
        """Whether this call may run layers in channels_last (and so makes every returned blob
        contiguous NCHW): fast paths on, layout changes allowed, ``fastpath.fast_call``."""
        return (self.fast_paths and self.use_channels_last
                and fastpath.fast_call(blobs.values(), self.parameters()))

    def forward(self, *inputs: Tensor, all_blobs: bool = False, **named: Tensor) -> dict[str, Tensor]:
        blobs = self._bind_inputs(inputs, named)
        channels_last = self.channels_last_for(blobs)
        ran_with_relu = -1  # a Pooling step already run with the ReLU before it
        for index, step in enumerate(self._steps):
            if index == ran_with_relu:
                continue
            try:
                result = None if all_blobs else self._with_next_pool(index, blobs)
                if result is None:
                    result = step.module(*[blobs[b] for b in step.bottoms])
                else:
                    ran_with_relu, step = index + 1, self._steps[index + 1]
            except (ValueError, RuntimeError) as e:  # a shape this net cannot take: say where
                e.add_note(f"in layer '{step.name}' of net '{self.name}' (bottoms {list(step.bottoms)})")
                raise
            if step.multi_output:
                blobs.update(zip(step.tops, result))
            else:
                blobs[step.tops[0]] = result
            if not all_blobs:
                for blob in step.release:
                    del blobs[blob]
        names = list(blobs) if all_blobs else self.output_names
        if channels_last:  # the caller gets plain NCHW tensors, whatever layout a layer chose
            return {name: blobs[name].contiguous() for name in names}
        return {name: blobs[name] for name in names}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, inputs={self.input_names}, outputs={self.output_names}"


def load_caffe(weights: str | PathLike | None, prototxt: str | PathLike | None = None, *,
               crop_offsets: str = "caffe", exact: bool = False) -> CaffeModule:
    """A ready-to-run module (eval mode) from a .caffemodel (binary or HDF5) and/or its prototxt.
    ``exact=True`` turns every fast path off (``convert.fastpath``)."""
    from convert.reader import read_net  # the reader is optional for users of CaffeModule alone

    net = read_net(weights=weights, prototxt=prototxt)
    try:
        return CaffeModule(net, crop_offsets=crop_offsets, exact=exact).eval()
    except CaffeFormatError as e:
        raise e.at(str(weights or prototxt)) from None


def load(path: str | PathLike, *, crop_offsets: str = "caffe", exact: bool = False) -> CaffeModule:
    """A ready-to-run module (eval mode) from a converted .pth; its metadata lands in ``.meta``.
    ``exact=True`` turns every fast path off (``convert.fastpath``)."""
    from convert.checkpoint import read_checkpoint

    checkpoint = read_checkpoint(path)
    try:
        module = CaffeModule(checkpoint.net, crop_offsets=crop_offsets, exact=exact).eval()
    except CaffeFormatError as e:
        raise e.at(str(path)) from None
    module.meta = _metadata(checkpoint)
    return module


def _metadata(checkpoint: Any) -> dict[str, Any]:
    """Everything a checkpoint carries besides the net itself (name, architecture, source...)."""
    if dataclasses.is_dataclass(checkpoint):
        fields = {f.name: getattr(checkpoint, f.name) for f in dataclasses.fields(checkpoint)}
    elif isinstance(checkpoint, dict):
        fields = dict(checkpoint)
    else:
        fields = dict(vars(checkpoint))
    fields.pop("net", None)
    fields.pop("state_dict", None)
    return fields
