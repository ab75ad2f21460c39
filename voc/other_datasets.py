"""Readers for the other datasets of the FCN model zoo, with the reference's label conventions.

Each reader follows the file layout the reference data layers read (``siftflow_layers.py``,
``pascalcontext_layers.py``, ``nyud_layers.py``) and maps labels the same way, so scores are
comparable with the published ones:

- SIFT Flow: ``.mat`` key ``S``; ``label - 1`` in uint8, so unlabeled 0 becomes 255 (void) and
  classes are 0..32. Geometric labels: -1 is first set to 0, then the same shift (0..2, void 255).
- PASCAL-Context (59-class task): ``LabelMap`` over the 400+ full labels is mapped by class NAME to
  the 59 task classes, 1..59; everything else is 0 = "other", which is a class, not void.
- NYUDv2 (40-class task of Gupta et al.): ``segmentation`` key; ``label - 1`` in uint8 (void 0
  becomes 255).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from voc.datasets import _Dataset, load_rgb, read_ids
from voc.means import NYUD_HHA_MEAN, NYUD_LOG_DEPTH_MEAN  # HHA is subtracted as stored, not flipped

SIFTFLOW_SUBDIR = "spatial_envelope_256x256_static_8outdoorcategories"


def shift_void(label: np.ndarray) -> np.ndarray:
    """``label - 1`` in uint8: the 1-based datasets' void 0 wraps to 255, classes start at 0."""
    return (np.asarray(label).astype(np.uint8) - np.uint8(1)).astype(np.uint8)


def _load_mat_key(path: Path, key: str) -> np.ndarray:
    mat = scipy.io.loadmat(str(path))
    if key not in mat:
        raise ValueError(f"{path}: no {key!r} array")
    return np.asarray(mat[key])


class SIFTFlowSegmentation(_Dataset):
    """SIFT Flow: ``<root>/<split>.txt``, ``Images/<subdir>/<id>.jpg``, ``{Semantic,Geo}Labels``.

    ``label`` of a sample is the semantic labelling (33 classes); ``load_geometric`` gives the
    3-class geometric one (horizontal, vertical, sky) for the second head of the zoo models.
    """

    num_classes = 33
    num_geometric_classes = 3

    def __init__(self, root: str | Path, split: str = "test") -> None:
        self.root = Path(root)
        super().__init__(read_ids(self.root / f"{split}.txt"))

    def load_image(self, image_id: str) -> Image.Image:
        return load_rgb(self.root / "Images" / SIFTFLOW_SUBDIR / f"{image_id}.jpg")

    def load_label(self, image_id: str) -> np.ndarray:
        return shift_void(_load_mat_key(self.root / "SemanticLabels" / SIFTFLOW_SUBDIR /
                                        f"{image_id}.mat", "S"))

    def load_geometric(self, image_id: str) -> np.ndarray:
        label = _load_mat_key(self.root / "GeoLabels" / SIFTFLOW_SUBDIR / f"{image_id}.mat", "S")
        return shift_void(np.where(label == -1, 0, label))


def _read_numbered_names(path: Path) -> list[str]:
    """Names of ``index: name`` lines in file order, spaces removed (the reference matches names
    that way, and counts a full label's number as its 1-based line position)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [line.split(":", 1)[1].replace(" ", "") for line in lines]


class PascalContextSegmentation(_Dataset):
    """PASCAL-Context 59 classes: VOC2010 ``JPEGImages`` + ``<context_root>/trainval/<id>.mat``.

    ``voc_root`` is the VOC 2010 year folder (its ``ImageSets/Main/<split>.txt`` lists the ids);
    ``context_root`` holds ``labels.txt`` (full labels, 1-based) and ``59_labels.txt``. Three task
    names differ from the full list and are renamed as in the reference before matching.
    """

    num_classes = 60  # 0 = other, 1..59
    _RENAMED = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}

    def __init__(self, voc_root: str | Path, context_root: str | Path, split: str = "val") -> None:
        self.voc_root = Path(voc_root)
        self.context_root = Path(context_root)
        full = _read_numbered_names(self.context_root / "labels.txt")
        task = [self._RENAMED.get(n, n) for n in _read_numbered_names(self.context_root / "59_labels.txt")]
        # lookup[full label] = task label; full labels are 1-based positions in labels.txt
        self._lookup = np.zeros(len(full) + 1, dtype=np.uint8)
        for task_index, name in enumerate(task, start=1):
            self._lookup[full.index(name) + 1] = task_index
        super().__init__(read_ids(self.voc_root / "ImageSets" / "Main" / f"{split}.txt"))

    def load_image(self, image_id: str) -> Image.Image:
        return load_rgb(self.voc_root / "JPEGImages" / f"{image_id}.jpg")

    def load_label(self, image_id: str) -> np.ndarray:
        full = _load_mat_key(self.context_root / "trainval" / f"{image_id}.mat", "LabelMap")
        # As the reference: a value that is no task class's full label (also one outside the
        # list) is 0 = "other".
        index = full.astype(np.int64)
        known = (index == full) & (index >= 0) & (index < len(self._lookup))
        label = np.zeros(full.shape, dtype=np.uint8)
        label[known] = self._lookup[index[known]]
        return label


class NYUDSegmentation(_Dataset):
    """NYUDv2 as packaged for FCN: ``<root>/<split>.txt``, ``data/images/img_<id>.png``,
    ``segmentation/img_<id>.mat``; depth and HHA inputs come from ``load_log_depth`` / ``load_hha``.
    """

    num_classes = 40

    def __init__(self, root: str | Path, split: str = "test") -> None:
        self.root = Path(root)
        super().__init__(read_ids(self.root / f"{split}.txt"))

    def load_image(self, image_id: str) -> Image.Image:
        return load_rgb(self.root / "data" / "images" / f"img_{image_id}.png")

    def load_label(self, image_id: str) -> np.ndarray:
        return shift_void(_load_mat_key(self.root / "segmentation" / f"img_{image_id}.mat",
                                        "segmentation"))

    def load_hha(self, image_id: str) -> np.ndarray:
        """HHA input (3, H, W) float32, mean subtracted, in the stored channel order."""
        with Image.open(self.root / "data" / "hha" / f"img_{image_id}.png") as image:
            hha = np.array(image, dtype=np.float32)
        return (hha - NYUD_HHA_MEAN).transpose(2, 0, 1)

    def load_log_depth(self, image_id: str) -> np.ndarray:
        """Depth input (1, H, W) float32: log of the stored depth PNG minus the mean log depth."""
        with Image.open(self.root / "data" / "depth" / f"img_{image_id}.png") as image:
            depth = np.array(image, dtype=np.float32)
        with np.errstate(divide="ignore"):
            return (np.log(depth) - NYUD_LOG_DEPTH_MEAN)[np.newaxis]
