"""PASCAL VOC and SBD segmentation data as the FCN reference reads it, and the seg11valid split.

The paper trains on SBD train (8,498 images) and validates on seg11valid: the 736 images of VOC
2011 segmentation val that are NOT in SBD train (VOC 2011 val and SBD train overlap, so scoring on
plain val would test on training images). seg11valid ships with this package; the SBD training list
is SBD ``train.txt`` minus seg11valid, which keeps the two disjoint even for a modified list.

A dataset is a plain sequence of ``Sample`` (id, RGB image, uint8 label map, 255 = void). Images
stay PIL images at their native size: preprocessing belongs to the model side, and resizing would
change the scores (longjon/caffe#9).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from voc.means import VOC_MEAN

VOID = 255

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

# BGR means the reference subtracts for VOC inputs (infer.py, voc_layers.py).
VOC_MEAN_BGR: tuple[float, float, float] = tuple(float(v) for v in VOC_MEAN)  # infer.py's, BGR


@dataclass(frozen=True)
class Sample:
    """One image and its labels: ``image`` is RGB at native size, ``label`` (H, W) uint8."""

    id: str
    image: Image.Image
    label: np.ndarray


def read_ids(path: str | Path) -> list[str]:
    """Image ids of a split file: one id a line, blank lines ignored."""
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def seg11valid_ids() -> list[str]:
    """The 736 seg11valid ids (CVPR 2015, footnote 7), from this package's data."""
    text = resources.files("voc").joinpath("data/seg11valid.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def resolve_split(voc_root: str | Path, split: str) -> list[str]:
    """Ids of ``split``: a path to an id list, a VOC ``ImageSets/Segmentation`` name, or seg11valid.

    A file of that name in the VOC folder wins over the packaged seg11valid, so a user's own
    (identical) copy is honoured; an unknown name fails with the places that were looked at.
    """
    looks_like_path = split.endswith(".txt") or "/" in split or "\\" in split
    if looks_like_path:
        return read_ids(split)
    in_root = Path(voc_root) / "ImageSets" / "Segmentation" / f"{split}.txt"
    if in_root.is_file():
        return read_ids(in_root)
    if split == "seg11valid":
        return seg11valid_ids()
    if Path(split).is_file():
        return read_ids(split)
    raise FileNotFoundError(f"split {split!r}: no file {in_root} and no id list at {split!r}")


def load_rgb(path: str | Path) -> Image.Image:
    """An image file as RGB; the few greyscale JPEGs in such sets would otherwise break BGR."""
    with Image.open(path) as image:
        return image.convert("RGB") if image.mode != "RGB" else image.copy()


def load_label_png(path: str | Path) -> np.ndarray:
    """A palette/greyscale label PNG as its raw indices; an RGB-coloured PNG is refused, not guessed."""
    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise ValueError(f"{path}: label PNG has mode {image.mode}; expected palette (P) or L")
        return np.array(image, dtype=np.uint8)


class _Dataset(Sequence[Sample]):
    """Sequence of samples over an id list; subclasses say where an id's image and labels are."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.ids = list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        image_id = self.ids[index]
        image = self.load_image(image_id)
        label = self.load_label(image_id)
        if label.shape != (image.height, image.width):
            raise ValueError(f"{image_id}: label {label.shape} does not match image "
                             f"{(image.height, image.width)}")
        return Sample(image_id, image, label)

    def load_image(self, image_id: str) -> Image.Image:
        raise NotImplementedError

    def load_label(self, image_id: str) -> np.ndarray:
        raise NotImplementedError


class VOCSegmentation(_Dataset):
    """PASCAL VOC 2011/2012 segmentation: ``JPEGImages/<id>.jpg`` + ``SegmentationClass/<id>.png``.

    ``root`` is the year folder (``VOCdevkit/VOC2012``); ``split`` is anything ``resolve_split``
    accepts, or the ids themselves. seg11valid images are all in VOC 2012 too, with the same labels.
    """

    num_classes = len(VOC_CLASSES)

    def __init__(self, root: str | Path, split: str | Sequence[str] = "seg11valid") -> None:
        self.root = Path(root)
        super().__init__(resolve_split(self.root, split) if isinstance(split, str) else split)

    def load_image(self, image_id: str) -> Image.Image:
        return load_rgb(self.root / "JPEGImages" / f"{image_id}.jpg")

    def load_label(self, image_id: str) -> np.ndarray:
        return load_label_png(self.root / "SegmentationClass" / f"{image_id}.png")


class SBDSegmentation(_Dataset):
    """SBD (Hariharan et al.): ``img/<id>.jpg`` + ``cls/<id>.mat`` (``GTcls.Segmentation``).

    ``root`` is SBD's ``dataset`` folder holding ``train.txt`` / ``val.txt``. ``exclude`` ids
    (by default seg11valid) are dropped from the list, so training never sees validation images.
    """

    num_classes = len(VOC_CLASSES)

    def __init__(self, root: str | Path, split: str = "train",
                 exclude: Iterable[str] | None = None) -> None:
        self.root = Path(root)
        excluded = set(seg11valid_ids() if exclude is None else exclude)
        ids = read_ids(self.root / f"{split}.txt")
        super().__init__(i for i in ids if i not in excluded)

    def load_image(self, image_id: str) -> Image.Image:
        return load_rgb(self.root / "img" / f"{image_id}.jpg")

    def load_label(self, image_id: str) -> np.ndarray:
        return read_sbd_mat(self.root / "cls" / f"{image_id}.mat")


def read_sbd_mat(path: str | Path, struct: str = "GTcls") -> np.ndarray:
    """The ``Segmentation`` field of an SBD ``.mat`` struct (``GTcls``, or ``GTinst``) as uint8."""
    mat = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    if struct not in mat:
        raise ValueError(f"{path}: no {struct!r} struct (found {sorted(k for k in mat if not k.startswith('__'))})")
    return np.asarray(mat[struct].Segmentation).astype(np.uint8)


def sbd_train_ids(root: str | Path) -> list[str]:
    """SBD train minus seg11valid: the list the FCN models were trained on."""
    return SBDSegmentation(root, "train").ids
