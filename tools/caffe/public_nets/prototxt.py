"""A deploy net as protobuf text, built layer by layer without Caffe or protobuf installed.

The public-net generators below write their nets through this one class, so the same definition
is read by real Caffe (which writes the weights and the reference blobs) and by the tests (which
only need names and shapes). Values map to text format as: dict -> message, list -> repeated
field, bool -> true/false, str -> quoted string, Enum -> bare enum name.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Enum:
    """An enum value (written bare, e.g. MAX), as opposed to a quoted string."""

    name: str


MAX, AVE = Enum("MAX"), Enum("AVE")
CAFFE = Enum("CAFFE")  # convolution_param.engine, as some published deploys pin it
# How a net declares its input blob; published deploys use all three, and the reader must too.
INPUT_STYLES = ("layer", "input_dim", "input_shape")


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"no text form for {value!r}")


def _fields(message: dict, indent: str) -> list[str]:
    lines = []
    for key, value in message.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, dict):
                lines.append(f"{indent}{key} {{")
                lines += _fields(item, indent + "  ")
                lines.append(f"{indent}}}")
            else:
                lines.append(f"{indent}{key}: {_value(item)}")
    return lines


@dataclass
class NetText:
    """A net under construction: one input blob and an ordered list of layers."""

    name: str
    layers: list[dict] = field(default_factory=list)
    header: list[str] = field(default_factory=list)

    def input(self, top: str, shape: tuple[int, ...], style: str = "layer") -> str:
        assert style in INPUT_STYLES, style
        if style == "layer":
            self.layer(top, "Input", [], [top], input_param={"shape": {"dim": list(shape)}})
        elif style == "input_dim":
            self.header += [f"input: {_value(top)}"] + [f"input_dim: {d}" for d in shape]
        else:
            self.header += [f"input: {_value(top)}", "input_shape {"] + [f"  dim: {d}" for d in shape] + ["}"]
        return top

    def layer(self, name: str, type_: str, bottoms: list[str], tops: list[str], **params: object) -> str:
        """Append a layer; ``params`` are LayerParameter fields (``convolution_param={...}``,
        ``param=[{...}]``). Returns the first top, so calls chain."""
        self.layers.append({"name": name, "type": type_, "bottom": list(bottoms), "top": list(tops), **params})
        return tops[0] if tops else ""

    def text(self) -> str:
        lines = [f"name: {_value(self.name)}"] + self.header
        for layer in self.layers:
            lines.append("layer {")
            lines += _fields(layer, "  ")
            lines.append("}")
        return "\n".join(lines) + "\n"
