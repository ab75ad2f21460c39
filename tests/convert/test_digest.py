"""Converted files carry a digest of every tensor and of the net description; loaders verify it."""
from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import convert
import fcn_ref
from conftest import FIXTURES
from convert.checkpoint import FORMAT, LEGACY_FORMATS, read_checkpoint, sealed
from convert.digest import DigestError, make_digest, tensor_sha256, verify_digest


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("digest") / "fcn8s.pth"
    return convert.convert(FIXTURES / "voc-fcn8s" / "net.caffemodel", output=out)


def _record_offset(path: Path, suffix: str) -> tuple[int, int]:
    """(offset, size) of a zip member's stored bytes (torch.save stores them uncompressed)."""
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(suffix))
        assert info.compress_type == zipfile.ZIP_STORED
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def test_file_carries_a_digest_of_every_tensor(converted):
    payload = torch.load(converted, weights_only=True)
    assert payload["format"] == FORMAT
    assert sorted(payload["digest"]["tensors"]) == sorted(payload["state_dict"])
    key = "score_fr.weight"
    assert payload["digest"]["tensors"][key] == tensor_sha256(payload["state_dict"][key])


@pytest.mark.parametrize("loader", [convert.load, fcn_ref.load])
def test_one_changed_tensor_byte_is_refused_naming_the_tensor(converted, tmp_path, loader):
    damaged = tmp_path / "damaged.pth"
    data = bytearray(converted.read_bytes())
    offset, size = _record_offset(converted, "data/3")
    data[offset + size // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    with pytest.raises(DigestError, match=r"damaged\.pth: damaged file: tensor '[^']+' does not match"):
        loader(damaged)


def test_changed_description_is_refused(converted, tmp_path):
    payload = torch.load(converted, weights_only=True)
    payload["net"] = payload["net"].replace("num_output", "num_output", 1) + " "
    torch.save(payload, tmp_path / "x.pth")
    with pytest.raises(DigestError, match="net description"):
        convert.load(tmp_path / "x.pth")


def test_resealed_content_loads(converted, tmp_path):
    """The digest is about damage, not authorship: content sealed afresh loads (and is checked)."""
    payload = torch.load(converted, weights_only=True)
    payload["source"] = {"file": "elsewhere.caffemodel", "sha256": ""}
    torch.save(sealed({k: v for k, v in payload.items() if k not in ("format", "digest")}), tmp_path / "x.pth")
    assert read_checkpoint(tmp_path / "x.pth").source["file"] == "elsewhere.caffemodel"


def test_legacy_file_without_digest_loads_with_a_warning(converted, tmp_path):
    payload = torch.load(converted, weights_only=True)
    del payload["digest"]
    payload["format"] = LEGACY_FORMATS[0]
    torch.save(payload, tmp_path / "old.pth")
    with pytest.warns(UserWarning, match="digest"):
        model = convert.load(tmp_path / "old.pth")
    assert model.meta["source"]["file"] == "net.caffemodel"


def test_current_format_without_digest_is_refused(converted, tmp_path):
    payload = torch.load(converted, weights_only=True)
    del payload["digest"]
    torch.save(payload, tmp_path / "x.pth")
    with pytest.raises(convert.CaffeFormatError, match="digest"):
        convert.load(tmp_path / "x.pth")


def test_verify_digest_is_the_one_check():
    tensors = {"a.weight": torch.arange(6.0).reshape(2, 3), "a.bias": torch.zeros(2)}
    description = {"net": "layer {}", "name": "n"}
    digest = make_digest(description, tensors)
    verify_digest(digest, description, tensors, "f.pth")
    with pytest.raises(DigestError, match="f.pth: .*'a.bias'"):
        verify_digest(digest, description, {**tensors, "a.bias": torch.ones(2)}, "f.pth")
    with pytest.raises(DigestError, match="description"):
        verify_digest(digest, {**description, "name": "m"}, tensors, "f.pth")
    with pytest.raises(DigestError, match="malformed"):
        verify_digest({"algorithm": "md5"}, description, tensors, "f.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tensor_sha256(torch.zeros(2, 3)) != tensor_sha256(torch.zeros(3, 2))
