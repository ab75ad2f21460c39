"""The one exception type the converter raises for bad input.

Callers (and the CLI) catch ``CaffeFormatError`` alone; its message is a single line that names the
file and, where there is one, the layer, so that it reads well as a command-line error.
"""
from __future__ import annotations


class CaffeFormatError(ValueError):
    """A Caffe file, or a net built from it, is not something we can convert faithfully."""

    def __init__(self, message: str, *, path: str | None = None, layer: str | None = None) -> None:
        self.path = path
        self.layer = layer
        where = []
        if path:
            where.append(str(path))
        if layer:
            where.append(f"layer '{layer}'")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
