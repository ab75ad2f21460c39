"""The pure-torch side of the converter: Caffe's layer modules import without Caffe's file format."""
from __future__ import annotations

import os
import subprocess
import sys

PURE = ("convert.modules", "convert.coord_map", "convert.fastpath")


def test_layer_modules_import_without_the_protobuf_schema():
    """``fcn_ref`` and other users build on ``convert.modules`` alone; that must not load the schema
    (built from protobuf at import time) or protobuf itself."""
    code = ("import sys\n"
            f"for name in {PURE!r}:\n"
            "    __import__(name)\n"
            "loaded = sorted(m for m in sys.modules if m == 'convert.schema' or m == 'convert.net'"
            " or m.split('.')[0] == 'google')\n"
            "print(','.join(loaded))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                          check=True)
    assert done.stdout.strip() == ""

