"""The image data sets binary tasks are drawn from, and where their files are found.

Five data sets of ten classes each, by the short name a task id starts with:

- ``digits``: scikit-learn's 8×8 digits (ships with scikit-learn; 1,797 images). Every fifth
  image (index 4, 9, …) is held out as its test split;
- ``mnist``, ``fashion``, ``kmnist``, ``emnist``: MNIST (LeCun et al. 1998), Fashion-MNIST (Xiao
  et al. 2017), Kuzushiji-MNIST (Clanuwat et al. 2018) and EMNIST Digits (Cohen et al. 2017),
  read from their standard IDX files (train and t10k splits, optionally gzip-compressed).

IDX files are looked for, in this order, in the ``data_dir`` a recipe was given (``--data-dir``),
in the directory named by the ``PATHEVO_DATA`` environment variable, and in Debian's
``/usr/share/datasets``; in each, first in the data set's own sub-folder (``fashion-mnist/``,
``mnist/``, …), then in the directory itself (which is then taken to hold the set asked for:
the files of all these sets are named alike). ``apt-get install dataset-fashion-mnist`` puts
Fashion-MNIST where it is found with no flag at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pathevo.envs.mnist_idx import load_mnist

DATA_ENV = "PATHEVO_DATA"
"""Environment variable naming a directory of IDX files (or of data set sub-folders)."""
DEBIAN_DATASETS = Path("/usr/share/datasets")
"""Where Debian's ``dataset-*`` packages put their files."""
SPLITS = ("train", "test")

_DIGIT_NAMES = tuple(str(digit) for digit in range(10))


@dataclass(frozen=True)
class ImageDataset:
    """A ten-class image data set: its name in task ids, class names, and where its files live."""

    name: str
    """The task-id prefix: ``fashion`` in ``fashion/trouser-v-sneaker``."""
    title: str
    classes: tuple[str, ...]
    """Class names as task ids spell them, by label."""
    folder: str | None = None
    """Sub-folder of a data directory holding its IDX files; None: built in (no files)."""
    file_prefix: str = ""
    """What precedes ``train-images-idx3-ubyte`` in its file names (EMNIST: ``emnist-digits-``)."""
    transposed: bool = False
    """Images are stored column by column (EMNIST) and are transposed on loading."""
    how_to_get: str = ""
    """One sentence on where to get the files."""

    @property
    def digit_classes(self) -> bool:
        """Classes are the digits 0-9 (task ids read ``3v5``, not ``three-v-five``)."""
        return self.classes == _DIGIT_NAMES


DATASETS: dict[str, ImageDataset] = {
    dataset.name: dataset
    for dataset in (
        ImageDataset("digits", "scikit-learn's 8x8 digits", _DIGIT_NAMES),
        ImageDataset(
            "mnist", "MNIST", _DIGIT_NAMES, folder="mnist",
            how_to_get="download the four IDX files from https://yann.lecun.com/exdb/mnist/",
        ),
        ImageDataset(
            "fashion", "Fashion-MNIST",
            ("tshirt", "trouser", "pullover", "dress", "coat",
             "sandal", "shirt", "sneaker", "bag", "boot"),
            folder="fashion-mnist",
            how_to_get="`apt-get install dataset-fashion-mnist` (Debian, Ubuntu) or download the "
            "four IDX files from https://github.com/zalandoresearch/fashion-mnist",
        ),
        ImageDataset(
            "kmnist", "Kuzushiji-MNIST",
            ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
            folder="kmnist",
            how_to_get="download the four IDX files from https://github.com/rois-codh/kmnist",
        ),
        ImageDataset(
            "emnist", "EMNIST Digits", _DIGIT_NAMES, folder="emnist",
            file_prefix="emnist-digits-", transposed=True,
            how_to_get="unpack emnist-digits-*-ubyte.gz from the EMNIST gzip archive "
            "(https://www.nist.gov/itl/products-and-services/emnist-dataset)",
        ),
    )
}  # fmt: skip


def get_dataset(name: str) -> ImageDataset:
    """The data set called ``name``; a one-line ValueError naming the known ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; one of {', '.join(DATASETS)}")
    return DATASETS[name]


def find_data_dir(dataset: ImageDataset, data_dir: str | Path | None = None) -> Path:
    """The directory holding ``dataset``'s IDX files (see the module docstring for the order);
    a one-line ValueError saying where it looked and how to get them."""
    roots = [Path(d) for d in (data_dir, os.environ.get(DATA_ENV)) if d] + [DEBIAN_DATASETS]
    # The data set's own sub-folder first: every MNIST-format set names its files alike, so a
    # directory holding one set's files must not answer for another set's sub-folder.
    candidates = [folder for root in roots for folder in (root / str(dataset.folder), root)]
    for folder in candidates:
        if _has_train_images(folder, dataset.file_prefix):
            return folder
    looked = ", ".join(str(root) for root in roots)
    raise ValueError(
        f"no {dataset.title} IDX files in {looked} (nor their {dataset.folder}/ sub-folders): "
        f"{dataset.how_to_get}, then pass --data-dir DIR or set {DATA_ENV}=DIR"
    )


def _has_train_images(folder: Path, prefix: str) -> bool:
    return any(
        (folder / f"{prefix}train-images{sep}idx3-ubyte{suffix}").is_file()
        for sep in ("-", ".")
        for suffix in ("", ".gz")
    )


def load_images(
    name: str, split: str = "train", data_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[n, H, W]`` float32 in [0, 1] and labels ``[n]`` int64 of one split."""
    dataset = get_dataset(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if dataset.folder is None:
        return _builtin_digits(split)
    return _idx_images(dataset, split, str(find_data_dir(dataset, data_dir)))


@lru_cache(maxsize=4)
def _idx_images(dataset: ImageDataset, split: str, folder: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist(folder, split, prefix=dataset.file_prefix)
    if dataset.transposed:
        images = images.transpose(0, 2, 1)
    return np.ascontiguousarray(images, dtype=np.float32) / 255.0, labels.astype(np.int64)


@lru_cache(maxsize=2)
def _builtin_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    held_out = np.arange(len(digits.target)) % 5 == 4
    keep = held_out if split == "test" else ~held_out
    return (digits.images[keep] / 16.0).astype(np.float32), digits.target[keep].astype(np.int64)
