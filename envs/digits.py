"""Binary image classification tasks, the supervised tasks of PathNet's first experiment.

Fernando et al. 2017 (arXiv:1701.08734) evolve paths on binary MNIST tasks (one digit against
another) with salt-and-pepper input noise. A task is one class against another of one data set
(:mod:`pathevo.envs.image_data`), named ``<data set>/<class>-v-<class>``:
``fashion/trouser-v-sneaker`` tells Fashion-MNIST's trousers (class 0 of the task) from its
sneakers (class 1); data sets whose classes are digits write ``digits/3v5`` or ``mnist/3v5``.
Classes may also be given by label (``fashion/1v7``); :func:`canonical_task` spells them out.

``digits`` (scikit-learn's 8×8 digits, no download) may be upsampled (bilinear) to MNIST's 28×28
so that inputs have the paper's size.

``<data set>/all`` (``fashion/all``, ``digits/all``) is the data set's ten-class task, the one
Frankle & Carbin 2019 (arXiv:1803.03635) train LeNet-300-100 on: :func:`make_task` reads either
kind; the binary-only recipes keep to :func:`make_binary_task` and :func:`parse_task`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pathevo.envs.image_data import DATASETS, ImageDataset, get_dataset, load_images

_LABELS = re.compile(r"^(\d)v(\d)$")
ALL_CLASSES = "all"
"""The class part of a data set's ten-class task id: ``fashion/all``."""


@dataclass
class BinaryTask:
    """Inputs ``x`` [n, D] float in [0, 1] and labels ``y`` [n] long in {0, 1}; a ten-class task
    (``fashion/all``) holds labels 0..9 and ``classes`` 10."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    classes: int = 2

    @property
    def input_size(self) -> int:
        return self.x.shape[1]


@dataclass(frozen=True)
class TaskId:
    """A binary task: data set and the labels of its class 0 and class 1."""

    dataset: str
    first: int
    second: int

    @property
    def name(self) -> str:
        """The canonical id: ``digits/3v5``, ``fashion/trouser-v-sneaker``."""
        data = DATASETS[self.dataset]
        if data.digit_classes:
            return f"{self.dataset}/{self.first}v{self.second}"
        return f"{self.dataset}/{data.classes[self.first]}-v-{data.classes[self.second]}"

    @property
    def labels(self) -> tuple[int, int]:
        return self.first, self.second


def parse_task(name: str) -> TaskId:
    """The data set and labels of a task id such as ``digits/3v5`` or ``fashion/coat-v-shirt``;
    a one-line ValueError for anything else."""
    dataset_name, slash, classes = name.partition("/")
    if not slash:
        raise ValueError(
            f"unknown task {name!r}: name the data set too, such as 'digits/3v5' (scikit-learn's "
            f"8x8 digits), 'mnist/3v5' or 'fashion/trouser-v-sneaker'"
        )
    dataset = get_dataset(dataset_name)
    labels = _labels(dataset, classes)
    if labels is None or labels[0] == labels[1]:
        raise ValueError(f"unknown task {name!r}: {_expected(dataset)}")
    return TaskId(dataset.name, *labels)


def _labels(dataset: ImageDataset, classes: str) -> tuple[int, int] | None:
    digits = _LABELS.match(classes)
    if digits is not None:
        return int(digits.group(1)), int(digits.group(2))
    first, separator, second = classes.partition("-v-")
    if not separator or first not in dataset.classes or second not in dataset.classes:
        return None
    return dataset.classes.index(first), dataset.classes.index(second)


def _expected(dataset: ImageDataset) -> str:
    if dataset.digit_classes:
        return f"expected two different digits like '{dataset.name}/3v5'"
    return (
        f"expected two different classes like '{dataset.name}/"
        f"{dataset.classes[1]}-v-{dataset.classes[7]}' (classes: {', '.join(dataset.classes)}) "
        f"or labels like '{dataset.name}/1v7'"
    )


def canonical_task(name: str) -> str:
    """``name`` as task ids are stored: ``fashion/1v7`` -> ``fashion/trouser-v-sneaker``."""
    return parse_task(name).name


def all_tasks(dataset: str = "digits") -> list[str]:
    """The 45 unordered binary tasks of a data set, class A's label below class B's."""
    get_dataset(dataset)
    return [TaskId(dataset, a, b).name for a in range(10) for b in range(a + 1, 10)]


def related(task_a: str, task_b: str) -> bool:
    """Whether two binary tasks of one data set share a class (such pairs transfer more)."""
    a, b = parse_task(task_a), parse_task(task_b)
    return a.dataset == b.dataset and bool(set(a.labels) & set(b.labels))


def is_image_task(name: str) -> bool:
    """Whether ``name`` is a binary image task id (``<data set>/…``), not an environment id."""
    dataset, slash, _ = name.partition("/")
    return bool(slash) and dataset in DATASETS


def is_all_classes_task(name: str) -> bool:
    """Whether ``name`` is a data set's ten-class task, ``<data set>/all``."""
    dataset, slash, classes = name.partition("/")
    return bool(slash) and classes == ALL_CLASSES and dataset in DATASETS


def make_binary_task(
    name: str,
    data_dir: str | Path | None = None,
    resolution: int | None = None,
    split: str = "train",
) -> BinaryTask:
    """The task ``name`` (``digits/3v5``, ``fashion/coat-v-shirt``) from one split of its data set;
    IDX files are found as :func:`pathevo.envs.image_data.find_data_dir` says.

    ``resolution`` resizes the images (bilinear) to ``resolution × resolution`` first; ``None``
    keeps their own size (8 for scikit-learn's digits, 28 for the MNIST-format sets).
    """
    task = parse_task(name)
    x, labels = _split_images(task.dataset, split, data_dir, resolution, task.labels)
    return BinaryTask(name=task.name, x=x, y=(labels == task.second).long())


def make_task(
    name: str,
    data_dir: str | Path | None = None,
    resolution: int | None = None,
    split: str = "train",
) -> BinaryTask:
    """A binary task (:func:`make_binary_task`) or a data set's ten-class task ``<data set>/all``
    (every image of the split, labels 0..9), found and resized alike."""
    if not is_all_classes_task(name):
        return make_binary_task(name, data_dir, resolution, split)
    dataset = DATASETS[name.partition("/")[0]]
    classes = tuple(range(len(dataset.classes)))
    x, labels = _split_images(dataset.name, split, data_dir, resolution, classes)
    return BinaryTask(name=name, x=x, y=labels, classes=len(classes))


def _split_images(
    dataset: str,
    split: str,
    data_dir: str | Path | None,
    resolution: int | None,
    kept: tuple[int, ...],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of one split whose labels are in ``kept`` (a copy), resized and flattened:
    x [n, D] float in [0, 1], their labels [n] long."""
    if resolution is not None and resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    images, labels = load_images(dataset, split, data_dir)
    keep = np.isin(labels, kept)
    x = torch.from_numpy(images[keep])  # [n, H, W]
    if resolution is not None and resolution != x.shape[-1]:
        x = F.interpolate(x.unsqueeze(1), size=(resolution, resolution), mode="bilinear")
        x = x.squeeze(1).clamp(0.0, 1.0)
    return x.flatten(1).contiguous(), torch.from_numpy(labels[keep])


def salt_and_pepper(
    x: torch.Tensor, amount: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each input value with probability ``amount`` by 0 or 1 (equally likely).

    One random 16-bit integer per value decides both (``amount`` is rounded to a multiple of
    1/65536): below ``amount`` the value is hit, below half of it the hit is salt (1). The mask
    arithmetic avoids ``torch.where``, whose boolean path is 10x slower on the CPU; this is the
    cost of most of a supervised training step's input.
    """
    if amount <= 0.0:
        return x
    count = x.numel()
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=x.device)
    words.random_(-(2**63), 2**63 - 1, generator=generator)  # all 64 bits random
    draws = words.view(torch.int16)[:count].view(x.shape)
    # Comparisons written straight into float tensors: no boolean intermediate to convert.
    salt = torch.lt(draws, round(amount * 32768) - 32768, out=torch.empty_like(x))  # P = amount/2
    if amount >= 1.0:
        return salt
    keep = torch.ge(draws, round(amount * 65536) - 32768, out=torch.empty_like(x))  # 1 - amount
    return torch.addcmul(salt, x, keep)


def sample_batch(
    task: BinaryTask, batch_size: int, noise: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A minibatch drawn uniformly with replacement, noise applied fresh: x [B, D], y [B]."""
    index = torch.randint(len(task.y), (batch_size,), generator=generator, device=task.y.device)
    return salt_and_pepper(task.x[index], noise, generator), task.y[index]
