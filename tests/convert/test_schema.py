"""Our protoc-free schema agrees with real Caffe's caffe.proto on every field we declare.

``tests/fixtures/caffe-proto.json`` was dumped from real Caffe's caffe_pb2 (tools/caffe/dump_schema.py).
"""
from __future__ import annotations

import json

import pytest
from google.protobuf import descriptor

from conftest import FIXTURES
from convert import schema
from convert.fork_fields import PRIVATE_NUMBER_BASE, fork_field

CAFFE = json.loads((FIXTURES / "caffe-proto.json").read_text())
# BVLC master's own caffe.proto, for the fields the packaged fork lacks (Clip, Swish).
BVLC = json.loads((FIXTURES / "caffe-proto-bvlc.json").read_text())
BVLC_ONLY = {"ClipParameter", "SwishParameter", ("LayerParameter", "clip_param"),
             ("LayerParameter", "swish_param")}
# Where the packaged Caffe fork departs from BVLC master, we follow BVLC (and the CVPR branch):
KNOWN_DIFFERENCES = {
    ("PoolingParameter", "round_mode"): "the fork has 'ceil_mode' (bool) at 13; BVLC has round_mode (enum)",
}


def _repeated(field) -> bool:
    """protobuf 7 dropped FieldDescriptor.label; older releases lack is_repeated."""
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


_TYPES = {v: k for k, v in vars(descriptor.FieldDescriptor).items() if k.startswith("TYPE_")}


@pytest.mark.parametrize("message", sorted(schema.MESSAGES))
def test_fields_match_caffe(message):
    theirs = (BVLC if message in BVLC_ONLY else CAFFE)["messages"][message]
    ours = getattr(schema, message, None) or schema._CLASSES[message]
    for field in ours.DESCRIPTOR.fields:
        if (message, field.name) in BVLC_ONLY:
            assert field.name not in theirs  # the fork lacks it: BVLC master is the reference
            want = BVLC["messages"][message][field.name]
            assert (field.number, _TYPES[field.type]) == (want["number"], _TYPES[want["type"]])
            continue
        fork = fork_field(message, field.name)
        if fork is not None:  # a fork spelling: the packaged Caffe is that fork for these fields
            assert theirs[field.name]["number"] == fork.fork_number, f"{message}.{field.name}"
            assert _TYPES[field.type] == _TYPES[theirs[field.name]["type"]], f"{message}.{field.name}"
            assert field.number >= PRIVATE_NUMBER_BASE  # never a number a Caffe file uses
            continue
        if (message, field.name) in KNOWN_DIFFERENCES:
            assert theirs.get("ceil_mode", {}).get("number") == field.number
            continue
        assert field.name in theirs, f"{message}.{field.name} is not in Caffe's proto"
        want = theirs[field.name]
        assert field.number == want["number"], f"{message}.{field.name}"
        assert _TYPES[field.type] == _TYPES[want["type"]], f"{message}.{field.name}"
        assert _repeated(field) == (want["label"] == 3), f"{message}.{field.name}"


@pytest.mark.parametrize("enum", sorted(schema.ENUMS))
def test_enum_values_match_caffe(enum):
    if enum == "PoolingParameter.RoundMode":  # BVLC's enum (fcn-facts.md section 4); the fork has a bool
        assert enum not in CAFFE["enums"] and dict(schema.ENUMS[enum]) == {"CEIL": 0, "FLOOR": 1}
        return
    theirs = CAFFE["enums"].get(enum) if "." in enum else None
    if theirs is None:
        assert enum == "Phase"  # a top-level enum: TRAIN 0, TEST 1 in every Caffe
        return
    ours = dict(schema.ENUMS[enum])
    extra = {"CROP": 40} if enum == "V1LayerParameter.LayerType" else {}
    assert {k: v for k, v in ours.items() if k not in extra} == {k: v for k, v in theirs.items() if k in ours}
    assert not set(theirs) - set(ours) or enum != "V1LayerParameter.LayerType"
