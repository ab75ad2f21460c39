"""Dump the field numbers, types and labels of a Caffe's caffe.proto.

    tools/caffe/python3 tools/caffe/dump_schema.py OUT.json                 # the packaged Caffe
    python tools/caffe/dump_schema.py OUT.json --proto caffe.proto --source "..."  # any caffe.proto

The first form reads the built Caffe's caffe_pb2 (tests/fixtures/caffe-proto.json: brocolli-caffe,
BVLC master plus fork patches). The second compiles a caffe.proto with ``protoc
--descriptor_set_out`` (no generated code); tests/fixtures/caffe-proto-bvlc.json is BVLC master
9b89154's own, from ``git show 9b89154:src/caffe/proto/caffe.proto`` in a BVLC/caffe clone, for
the fields the packaged fork lacks (Clip, Swish). tests/convert/test_schema.py checks our
hand-written schema against these dumps, message by message.
"""
import argparse
import json
import os
import subprocess
import tempfile


def label(field) -> int:
    """1 optional, 2 required, 3 repeated (protobuf 7 dropped FieldDescriptor.label)."""
    if hasattr(field, "label"):
        return field.label
    return 3 if field.is_repeated else (2 if field.is_required else 1)


def describe(descriptor) -> dict:
    return {f.name: {"number": f.number, "type": f.type, "label": label(f),
                     "type_name": f.message_type.name if f.message_type else
                     (f.enum_type.name if f.enum_type else None)}
            for f in descriptor.fields}


def from_caffe_pb2():
    from caffe.proto import caffe_pb2

    return caffe_pb2.DESCRIPTOR


def from_proto_file(path: str):
    from google.protobuf import descriptor_pb2, descriptor_pool

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "caffe.desc")
        folder, name = os.path.split(os.path.abspath(path))
        subprocess.run(["protoc", f"--proto_path={folder}", f"--descriptor_set_out={out}", name], check=True)
        with open(out, "rb") as f:
            files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool.FindFileByName(files.file[-1].name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--proto", help="a caffe.proto to compile instead of the built caffe_pb2")
    parser.add_argument("--source", default="BVLC master 9b89154 (brocolli-caffe 9.0.2 sdist) caffe_pb2")
    args = parser.parse_args()
    file = from_proto_file(args.proto) if args.proto else from_caffe_pb2()
    messages = {name: describe(d) for name, d in file.message_types_by_name.items()}
    enums = {}
    for name, d in file.message_types_by_name.items():
        for enum in d.enum_types:
            enums[f"{name}.{enum.name}"] = {v.name: v.number for v in enum.values}
    with open(args.out, "w") as f:
        json.dump({"source": args.source, "messages": messages, "enums": enums}, f, indent=0, sort_keys=True)


if __name__ == "__main__":
    main()
