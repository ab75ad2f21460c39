"""Dump the field numbers, types and labels of real Caffe's caffe.proto (from its caffe_pb2).

Run under tools/caffe/python3:  dump_schema.py OUT.json
tests/convert/test_schema.py checks our hand-written schema against this dump, message by message.
"""
import json
import sys

from caffe.proto import caffe_pb2


def describe(descriptor) -> dict:
    return {f.name: {"number": f.number, "type": f.type, "label": f.label,
                     "type_name": f.message_type.name if f.message_type else
                     (f.enum_type.name if f.enum_type else None)}
            for f in descriptor.fields}


def main(out: str) -> None:
    messages = {name: describe(d) for name, d in caffe_pb2.DESCRIPTOR.message_types_by_name.items()}
    enums = {}
    for name, d in caffe_pb2.DESCRIPTOR.message_types_by_name.items():
        for enum in d.enum_types:
            enums[f"{name}.{enum.name}"] = {v.name: v.number for v in enum.values}
    with open(out, "w") as f:
        json.dump({"source": "BVLC master 9b89154 (brocolli-caffe 9.0.2 sdist) caffe_pb2",
                   "messages": messages, "enums": enums}, f, indent=0, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
