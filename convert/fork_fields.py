"""Fork spellings of BVLC parameters: the one table of what we accept and what each one means.

BVLC Caffe master is the contract of a Caffe file. Widespread forks renamed a few BVLC parameters
without changing what they mean; prototxts written for those forks (published DenseNet and ResNeXt
deploys write ``ceil_mode: false``) are accepted here and rewritten into the BVLC field at parse
time, so nothing downstream ever sees a fork spelling.

Text is unambiguous: a field has a name. Binary is not: the fork stores ``ceil_mode`` (bool) as
field 13 of PoolingParameter, where BVLC stores ``round_mode`` (enum, CEIL 0, FLOOR 1), so the same
stored value means opposite things (0: BVLC CEIL, fork FLOOR). When a prototxt is given it decides
(the caffemodel's layer parameters are not used); from a caffemodel alone, ``ambiguous_layers``
finds every stored field 13 and the reader warns once, naming the layers and both readings, and
follows BVLC.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ForkField:
    """One fork spelling: the message it sits in, its name and type, the BVLC field it stands for,
    how each of its values maps to the BVLC value, and where it comes from."""

    message: str
    name: str
    type: str  # as in convert.schema's table
    fork_number: int  # its field number in the fork's caffe.proto
    bvlc_field: str
    to_bvlc: dict  # fork value -> BVLC value name (enum) or value
    source: str


FORK_FIELDS: tuple[ForkField, ...] = (
    ForkField(
        message="PoolingParameter", name="ceil_mode", type="bool", fork_number=13,
        bvlc_field="round_mode", to_bvlc={True: "CEIL", False: "FLOOR"},
        source="Caffe forks with ceil_mode pooling (e.g. the PyPI brocolli-caffe 9.0.2 sdist, "
               "caffe.proto PoolingParameter 'optional bool ceil_mode = 13 [default = true]'); "
               "used by published DenseNet / ResNeXt deploy prototxts",
    ),
)

# Our schema gives each fork field a private number (it only matters for text: binary files use
# the fork's number, which BVLC owns): this base plus the field's row in FORK_FIELDS.
PRIVATE_NUMBER_BASE = 536_000_000


def schema_rows() -> dict[str, list[tuple]]:
    """Rows to add to ``convert.schema.MESSAGES`` so that text prototxts parse fork spellings."""
    rows: dict[str, list[tuple]] = {}
    for index, fork in enumerate(FORK_FIELDS):
        rows.setdefault(fork.message, []).append(
            (fork.name, PRIVATE_NUMBER_BASE + index, fork.type, "opt", None))
    return rows


def fork_field(message: str, name: str) -> ForkField | None:
    for fork in FORK_FIELDS:
        if fork.message == message and fork.name == name:
            return fork
    return None


def _messages(layer) -> list:
    """Every parameter message a (modern or V1) layer carries."""
    return [value for descriptor, value in layer.ListFields()
            if descriptor.name.endswith("_param") and descriptor.message_type is not None]


def to_bvlc(net) -> list[tuple[str, str]]:
    """Rewrite every fork spelling in a parsed NetParameter into its BVLC field, in place.

    Returns ``(layer, error)`` pairs for layers that set both spellings to different meanings (the
    caller raises on them); a layer that sets both to the same meaning is fine.
    """
    conflicts = []
    for layer in (*net.layer, *net.layers):
        for params in _messages(layer):
            for fork in FORK_FIELDS:
                if params.DESCRIPTOR.name != fork.message or not params.HasField(fork.name):
                    continue
                value = fork.to_bvlc[getattr(params, fork.name)]
                enum = params.DESCRIPTOR.fields_by_name[fork.bvlc_field].enum_type
                number = enum.values_by_name[value].number if enum is not None else value
                if params.HasField(fork.bvlc_field) and getattr(params, fork.bvlc_field) != number:
                    conflicts.append((layer.name, f"{fork.name} and {fork.bvlc_field} disagree"))
                setattr(params, fork.bvlc_field, number)
                params.ClearField(fork.name)
    return conflicts


def ambiguous_layers(net) -> list[str]:
    """For a net read from a binary file: one line per layer whose stored field is read
    differently by BVLC and by a fork, giving both readings (empty when there is none)."""
    lines = []
    for layer in (*net.layer, *net.layers):
        for params in _messages(layer):
            for fork in FORK_FIELDS:
                if params.DESCRIPTOR.name != fork.message:
                    continue
                bvlc = params.DESCRIPTOR.fields_by_name[fork.bvlc_field]
                if bvlc.number != fork.fork_number or not params.HasField(bvlc.name):
                    continue
                stored = getattr(params, bvlc.name)
                bvlc_reading = bvlc.enum_type.values_by_number[stored].name if bvlc.enum_type else stored
                fork_value = bool(stored)
                lines.append(f"layer '{layer.name}': {fork.message} field {fork.fork_number} = {stored} "
                             f"is {bvlc.name} {bvlc_reading} in BVLC Caffe but {fork.name} "
                             f"{str(fork_value).lower()} ({fork.to_bvlc[fork_value]}) in a Caffe fork")
    return lines
