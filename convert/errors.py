"""The one exception type the converter raises for bad input.

Callers (and the CLI) catch ``CaffeFormatError`` alone; its message is a single line that names the
file and, where there is one, the layer, so that it reads well as a command-line error.
"""
from __future__ import annotations


class CaffeFormatError(ValueError):
    """A Caffe file, or a net built from it, is not something we can convert faithfully."""

    def __init__(self, message: str, *, path: str | None = None, layer: str | None = None) -> None:
        self.message = message
        self.path = path
        self.layer = layer
        where = []
        if path:
            where.append(str(path))
        if layer:
            where.append(f"layer '{layer}'")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def at(self, path: str | None) -> CaffeFormatError:
        """This error naming ``path`` (same type), unless it already names a file."""
        if self.path or not path:
            return self
        return type(self)(self.message, path=path, layer=self.layer)
