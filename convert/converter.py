"""``convert.convert()``: a Caffe model in, a verified converted file out (what ``python -m convert`` runs).

The order is what makes it safe: the output path is checked before the input is parsed; the output
is written under a hidden temporary name, loaded back exactly as ``convert.load`` would (every layer
built, every shape checked, the digest verified) and only then renamed into place. Whatever
happens, no temporary file is left, the input is never written, and no work (hashing, memory maps)
outlives the call, so the caller may rewrite or delete the input the moment it returns or raises.
"""
from __future__ import annotations

import hashlib
import mmap
import os
import stat
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from convert.checkpoint import Checkpoint, read_checkpoint, state_dict_of, temporary_beside
from convert.crop_offsets import apply_policy as apply_crop_policy
from convert.errors import CaffeFormatError
from convert.export import FORMATS, default_output, is_converted, write_format
from convert.net import CaffeNet
from convert.reader import mapped_net

HASH_CHUNK = 16 * 2**20  # bytes hashed between checks for cancellation


@dataclass
class Conversion:
    """What one conversion wrote, for a summary: the output and facts about the net."""

    output: Path
    name: str
    layers: int
    parameters: int
    inputs: list[str]
    dropped: list[str] = field(default_factory=list)


class FileHasher:
    """sha256 of a file on a background thread while the main thread parses it (hashlib drops the
    GIL). ``close`` stops and joins the thread: after it, nothing reads the file."""

    def __init__(self, path: Path) -> None:
        self.digest = ""
        self._cancel = threading.Event()
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size:
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:  # no copy, unlike read()
                        with memoryview(view) as data:
                            for start in range(0, size, HASH_CHUNK):
                                if self._cancel.is_set():
                                    return
                                h.update(data[start:start + HASH_CHUNK])
        except OSError as e:
            self._error = e
            return
        self.digest = h.hexdigest()

    def result(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.digest

    def close(self) -> None:
        self._cancel.set()
        self._thread.join()


def check_output(out: Path, inputs: list[Path], force: bool) -> None:
    """Refuse, before any parsing, an output that cannot or must not be written."""
    parent = out.parent
    if out.is_dir():
        raise CaffeFormatError("output is a directory; give a file name", path=str(out))
    if not parent.is_dir():
        raise CaffeFormatError("output folder does not exist", path=str(out))
    try:  # the one true test of writability (permissions, read-only mounts, quotas on creation)
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CaffeFormatError(f"output folder is not writable ({e.strerror})", path=str(out)) from None
    for source in inputs:
        if out.exists() and source.exists() and os.path.samefile(out, source) or out.resolve() == source.resolve():
            raise CaffeFormatError("output is the input file; give another -o", path=str(out))
    if out.exists() or out.is_symlink():
        if not force:
            raise CaffeFormatError("output exists; pass --force to overwrite it", path=str(out))
        if not stat.S_ISREG(out.lstat().st_mode):
            raise CaffeFormatError("output exists and is not a regular file; refusing to replace it", path=str(out))


def check_supported(net: CaffeNet, path: str) -> None:
    """Fail before writing anything if a layer cannot become a PyTorch module (type or name)."""
    from convert.layers import LAYER_BUILDERS, unsupported

    for layer in net.layers:
        if layer.type not in LAYER_BUILDERS:
            raise CaffeFormatError(unsupported(layer.type), path=path, layer=layer.name)
        if "." in layer.name:
            raise CaffeFormatError("layer names may not contain '.' (it separates a state-dict key's parts)",
                                   path=path, layer=layer.name)


def verify_written(tmp: Path, source: str, format: str) -> None:
    """Load the file just written as its reader will; a failure names the source, not ``tmp``."""
    try:
        if format == "onnx":
            from convert.onnx_export import check_onnx

            check_onnx(tmp)
        else:
            from convert.runtime import load

            load(tmp)
    except CaffeFormatError as e:
        raise CaffeFormatError(f"the converted file does not load back: {e.message}", path=source,
                               layer=e.layer) from None


def write_checked(checkpoint: Checkpoint, out: Path, format: str) -> Path:
    """Write to a temporary file beside ``out``; the caller verifies and renames it (or deletes it)."""
    tmp = temporary_beside(out)
    try:
        write_format(checkpoint, tmp, format)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CaffeFormatError(f"cannot write: {e.strerror or e}", path=str(out)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def convert_file(model: str | os.PathLike | None, prototxt: str | os.PathLike | None = None,
                 output: str | os.PathLike | None = None, *, force: bool = False,
                 crop_offsets: str = "caffe", format: str = "pth") -> Conversion:
    """``convert`` with a summary of what was written (the CLI prints it)."""
    if model is None and prototxt is None:
        raise CaffeFormatError("give a caffemodel, a prototxt, or both")
    if format not in FORMATS:
        raise CaffeFormatError(f"unknown format '{format}' (one of {', '.join(FORMATS)})")
    inputs = [Path(p) for p in (model, prototxt) if p is not None]
    source_path = inputs[0]
    out = Path(output) if output is not None else default_output(source_path, format)
    check_output(out, inputs, force)
    hasher: FileHasher | None = None
    tmp: Path | None = None
    try:
        if prototxt is None and is_converted(source_path):  # re-export a file this command wrote
            checkpoint = read_checkpoint(source_path)
            net = checkpoint.net
            tmp = write_checked(checkpoint, out, format)
            summary = Conversion(out, net.name, len(net.layers), net.num_parameters(), list(net.inputs))
        else:
            hasher = FileHasher(source_path) if source_path.is_file() else None
            with mapped_net(model, prototxt) as net:
                check_supported(net, str(source_path))
                net = apply_crop_policy(net, crop_offsets)  # "coord-map" writes the offsets into the file
                source = {"file": source_path.name, "sha256": hasher.result() if hasher else ""}
                if prototxt is not None and model is not None:
                    source["prototxt"] = Path(prototxt).name
                # No architecture: fcn_ref recognizes the net on reading.
                tmp = write_checked(Checkpoint(net, None, source, state_dict_of(net)), out, format)
                summary = Conversion(out, net.name, len(net.layers), net.num_parameters(),
                                     list(net.inputs), list(net.dropped))
        verify_written(tmp, str(source_path), format)
        try:
            os.replace(tmp, out)
        except OSError as e:
            raise CaffeFormatError(f"cannot write: {e.strerror or e}", path=str(out)) from None
        tmp = None
        return summary
    finally:
        if hasher is not None:
            hasher.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def convert(model: str | os.PathLike | None, prototxt: str | os.PathLike | None = None,
            output: str | os.PathLike | None = None, *, force: bool = False, crop_offsets: str = "caffe",
            format: str = "pth") -> Path:
    """Convert a Caffe model (binary or HDF5 weights and/or a text prototxt) to a checked ``.pth``.

    ``output`` defaults to the model's name with ``.pth`` beside it. Raises ``CaffeFormatError``
    (one line naming the file, and layer or tensor) for any bad input or unusable output path; on
    error nothing is written. ``crop_offsets``: see ``convert.crop_offsets`` ("caffe" or "coord-map").
    ``format``: "pth" (default), "safetensors" or "onnx" (``convert.export``); ``model`` may also be a
    file this function wrote. Returns the path written.
    """
    return convert_file(model, prototxt, output, force=force, crop_offsets=crop_offsets, format=format).output
