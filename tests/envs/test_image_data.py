"""Task ids of every image data set, and where their IDX files are found (small files written
here: no test reads a real data set)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pathevo.envs import image_data
from pathevo.envs.digits import (
    TaskId,
    all_tasks,
    canonical_task,
    is_all_classes_task,
    is_image_task,
    make_binary_task,
    make_task,
    parse_task,
    related,
)
from pathevo.envs.image_data import DATASETS, find_data_dir, load_images
from pathevo.envs.mnist_idx import write_idx


def write_dataset(
    directory: Path, n: int = 40, *, split: str = "train", prefix: str = "", gz: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Images ``[n, 28, 28]`` uint8 and labels ``[n]`` (0..9 in turn) written as one split's IDX
    files into ``directory`` (made if missing): ``train`` or ``t10k`` (``test`` after an
    EMNIST-like ``prefix``)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = "train" if split == "train" else ("test" if prefix else "t10k")
    images = np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    suffix = ".gz" if gz else ""
    write_idx(directory / f"{prefix}{stem}-images-idx3-ubyte{suffix}", images)
    write_idx(directory / f"{prefix}{stem}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.fixture(autouse=True)
def nowhere_else(tmp_path, monkeypatch):
    """No data but what a test writes: neither $PATHEVO_DATA nor Debian's real data sets, and no
    arrays cached from another test."""
    monkeypatch.delenv(image_data.DATA_ENV, raising=False)
    monkeypatch.setattr(image_data, "DEBIAN_DATASETS", tmp_path / "debian")
    image_data._idx_images.cache_clear()
    yield
    image_data._idx_images.cache_clear()


# --- names ---------------------------------------------------------------------------------------


def test_tasks_are_named_by_class_names_or_labels():
    coat = parse_task("fashion/coat-v-shirt")
    assert coat == TaskId("fashion", 4, 6) and coat.labels == (4, 6)
    assert coat.name == "fashion/coat-v-shirt"
    assert parse_task("fashion/4v6") == coat  # labels name the same task
    assert canonical_task("fashion/1v7") == "fashion/trouser-v-sneaker"
    assert canonical_task("fashion/9v0") == "fashion/boot-v-tshirt"  # order kept: class 0 first
    assert canonical_task("kmnist/0v1") == "kmnist/o-v-ki"
    assert canonical_task("kmnist/o-v-ki") == "kmnist/o-v-ki"
    for dataset in ("digits", "mnist", "emnist"):  # digit classes are written as digits
        assert canonical_task(f"{dataset}/3v5") == f"{dataset}/3v5"
        assert parse_task(f"{dataset}/3v5") == TaskId(dataset, 3, 5)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("3v5", "name the data set too, such as 'digits/3v5'"),
        ("", "name the data set too"),
        ("digits/3v3", "expected two different digits like 'digits/3v5'"),
        ("mnist/3v12", "expected two different digits like 'mnist/3v5'"),
        ("digits/three-v-five", "expected two different digits"),
        ("digits/", "expected two different digits"),
        ("fashion/coat-v-coat", "expected two different classes like 'fashion/trouser-v-sneaker'"),
        ("fashion/4v4", "expected two different classes"),
        ("fashion/coat-v-shrt", r"classes: tshirt, trouser, pullover, .*, boot\) or labels"),
        ("fashion/coat", "or labels like 'fashion/1v7'"),
        ("kmnist/a-v-b", "expected two different classes like 'kmnist/ki-v-ya'"),
        ("fashon/1v7", "unknown data set 'fashon'; one of digits, mnist, fashion, kmnist, emnist"),
        ("MinAtar/Breakout-v1", "unknown data set 'MinAtar'"),
    ],
)
def test_bad_task_ids_are_one_line_errors_naming_the_expectation(name, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_task(name)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_every_data_set_has_45_canonical_tasks(dataset):
    tasks = all_tasks(dataset)
    assert len(tasks) == len(set(tasks)) == 45
    assert all(task.startswith(f"{dataset}/") and canonical_task(task) == task for task in tasks)
    assert all(parse_task(task).first < parse_task(task).second for task in tasks)


def test_all_tasks_default_and_unknown_data_set():
    assert all_tasks() == all_tasks("digits")
    assert all_tasks("fashion")[0] == "fashion/tshirt-v-trouser"
    with pytest.raises(ValueError, match="unknown data set 'fashon'"):
        all_tasks("fashon")


def test_related_tasks_share_a_class_of_one_data_set():
    assert related("digits/1v3", "digits/1v2") and related("digits/1v3", "digits/0v3")
    assert not related("digits/4v5", "digits/6v7")
    assert related("fashion/1v7", "fashion/trouser-v-bag")  # labels and names alike
    assert not related("digits/1v3", "mnist/1v3")  # the same labels, other images


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("digits/3v5", True), ("fashion/coat-v-shirt", True), ("emnist/0v1", True),
        ("fashion/whatever", True),  # the data set decides; parse_task then checks the classes
        ("3v5", False), ("CartPole-v1", False), ("MinAtar/Breakout-v1", False),
        ("ALE/Pong-v5", False), ("fashon/1v7", False), ("digits", False),
    ],
)  # fmt: skip
def test_is_image_task_tells_image_tasks_from_env_ids(name, image):
    assert is_image_task(name) is image


# --- loading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_both_splits_load_from_idx_files(tmp_path, gz):
    data = tmp_path / "data"
    train_images, train_labels = write_dataset(data, 40, gz=gz)
    test_images, test_labels = write_dataset(data, 20, split="test", gz=gz, seed=1)
    x, y = load_images("mnist", "train", data)
    assert x.shape == (40, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x, train_images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, train_labels)
    x, y = load_images("mnist", "test", data)
    np.testing.assert_allclose(x, test_images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, test_labels)
    task = make_binary_task("mnist/2v8", data, split="test")
    assert task.name == "mnist/2v8" and task.x.shape == (4, 784)
    assert task.y.tolist() == [0, 1, 0, 1]  # labels 2, 8, 2, 8 in file order
    with pytest.raises(ValueError, match="split must be one of train, test, got 'val'"):
        make_binary_task("mnist/2v8", data, split="val")


def test_fashion_tasks_by_class_name(tmp_path):
    images, labels = write_dataset(tmp_path, 30)
    task = make_binary_task("fashion/trouser-v-sneaker", tmp_path)
    assert task.name == "fashion/trouser-v-sneaker"
    keep = (labels == 1) | (labels == 7)
    assert task.y.tolist() == (labels[keep] == 7).astype(int).tolist()
    expected = torch.from_numpy(images[keep].reshape(-1, 784) / 255.0).float()
    assert torch.allclose(task.x, expected)
    by_label = make_binary_task("fashion/1v7", tmp_path)
    assert by_label.name == task.name and torch.equal(by_label.x, task.x)
    small = make_binary_task("fashion/trouser-v-sneaker", tmp_path, resolution=8)
    assert small.input_size == 64 and small.x.min() >= 0.0 and small.x.max() <= 1.0


def test_ten_class_fashion_task_reads_gzipped_idx_files(tmp_path, monkeypatch):
    """``fashion/all`` (Frankle & Carbin's task on Fashion-MNIST): every image of a split, its
    ten labels as they are, found like the binary tasks' files (here the data set's sub-folder
    of $PATHEVO_DATA)."""
    folder = tmp_path / "data" / "fashion-mnist"
    images, labels = write_dataset(folder, 30, gz=True)
    test_images, test_labels = write_dataset(folder, 20, split="test", gz=True, seed=3)
    monkeypatch.setenv(image_data.DATA_ENV, str(tmp_path / "data"))
    assert is_all_classes_task("fashion/all") and is_image_task("fashion/all")
    assert not is_all_classes_task("fashion/coat-v-shirt") and not is_all_classes_task("all")
    task = make_task("fashion/all")
    assert task.name == "fashion/all" and task.classes == 10 and task.x.shape == (30, 784)
    assert task.y.dtype == torch.int64 and task.y.tolist() == labels.tolist()
    assert torch.allclose(task.x, torch.from_numpy(images.reshape(-1, 784) / 255.0).float())
    test = make_task("fashion/all", split="test", resolution=8)
    assert test.x.shape == (20, 64) and test.y.tolist() == test_labels.tolist()
    assert float(test.x.min()) >= 0.0 and float(test.x.max()) <= 1.0
    binary = make_task("fashion/1v7")  # a binary id: make_binary_task's task
    assert binary.classes == 2 and binary.name == "fashion/trouser-v-sneaker"
    x_before = torch.from_numpy(load_images("fashion", "train")[0]).clone()
    task.x.zero_()  # the task holds a copy: the cached arrays are untouched
    assert torch.equal(torch.from_numpy(load_images("fashion", "train")[0]), x_before)
    digits = make_task("digits/all", split="test")
    assert digits.classes == 10 and sorted(set(digits.y.tolist())) == list(range(10))


def test_emnist_files_have_their_prefix_and_are_transposed(tmp_path):
    images, _ = write_dataset(tmp_path, 20, prefix="emnist-digits-", gz=True)
    test_images, test_labels = write_dataset(
        tmp_path, 10, split="test", prefix="emnist-digits-", seed=2
    )
    x, _ = load_images("emnist", "train", tmp_path)
    np.testing.assert_allclose(x, images.transpose(0, 2, 1) / 255.0, rtol=1e-6)
    x, y = load_images("emnist", "test", tmp_path)  # emnist-digits-test-…, not t10k
    np.testing.assert_allclose(x, test_images.transpose(0, 2, 1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, test_labels)
    with pytest.raises(ValueError, match="no MNIST IDX files"):
        load_images("mnist", "train", tmp_path)  # EMNIST's prefixed files are not MNIST's


def test_digits_hold_out_every_fifth_image_as_their_test_split():
    from sklearn.datasets import load_digits

    digits = load_digits()
    train_x, train_y = load_images("digits", "train")
    test_x, test_y = load_images("digits", "test")
    assert len(train_y) + len(test_y) == len(digits.target) and len(test_y) == 359
    np.testing.assert_allclose(test_x, digits.images[4::5] / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(test_y, digits.target[4::5])
    kept = np.arange(len(digits.target)) % 5 != 4  # disjoint: the other four fifths, in order
    np.testing.assert_allclose(train_x, digits.images[kept] / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(train_y, digits.target[kept])


# --- where the files are found -------------------------------------------------------------------


def test_data_dir_beats_the_environment_variable_beats_debian(tmp_path, monkeypatch):
    given, variable, debian = tmp_path / "given", tmp_path / "variable", tmp_path / "debian"
    for count, folder in ((10, given), (20, variable), (30, debian)):  # told apart by size
        write_dataset(folder, count)
    monkeypatch.setenv(image_data.DATA_ENV, str(variable))
    fashion = DATASETS["fashion"]
    assert find_data_dir(fashion, given) == given
    assert len(load_images("fashion", "train", given)[1]) == 10
    assert find_data_dir(fashion) == variable
    assert len(load_images("fashion")[1]) == 20
    monkeypatch.delenv(image_data.DATA_ENV)
    assert find_data_dir(fashion) == debian
    assert len(make_binary_task("fashion/1v7").y) == 6  # 30 images, labels 0..9 in turn
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_data_dir(fashion, empty) == debian  # a data_dir without the files: looked past


def test_a_data_set_sub_folder_is_found(tmp_path, monkeypatch):
    write_dataset(tmp_path / "debian" / "fashion-mnist", 20)  # where dataset-fashion-mnist puts it
    assert find_data_dir(DATASETS["fashion"]) == tmp_path / "debian" / "fashion-mnist"
    write_dataset(tmp_path / "mine" / "kmnist", 10)
    monkeypatch.setenv(image_data.DATA_ENV, str(tmp_path / "mine"))
    assert len(load_images("kmnist")[1]) == 10
    write_dataset(tmp_path / "given" / "emnist", 30, prefix="emnist-digits-")
    assert len(load_images("emnist", "train", tmp_path / "given")[1]) == 30
    assert find_data_dir(DATASETS["fashion"], tmp_path / "given").name == "fashion-mnist"


@pytest.mark.parametrize(
    ("task", "how"),
    [
        ("fashion/coat-v-shirt", "apt-get install dataset-fashion-mnist"),
        ("mnist/3v5", "yann.lecun.com/exdb/mnist"),
        ("kmnist/o-v-ki", "github.com/rois-codh/kmnist"),
        ("emnist/3v5", "emnist-digits-"),
    ],
)
def test_missing_files_say_in_one_line_how_to_get_them(tmp_path, monkeypatch, task, how):
    monkeypatch.setenv(image_data.DATA_ENV, str(tmp_path / "variable"))
    with pytest.raises(ValueError, match="IDX files in ") as error:
        make_binary_task(task, tmp_path / "given")
    message = str(error.value)
    assert "\n" not in message and how in message
    assert str(tmp_path / "given") in message and str(tmp_path / "variable") in message
    assert str(tmp_path / "debian") in message
    assert "--data-dir DIR" in message and image_data.DATA_ENV in message


def test_digits_need_no_files(tmp_path):
    assert make_binary_task("digits/3v5", tmp_path / "nowhere").input_size == 64


def test_a_missing_test_split_is_a_one_line_error(tmp_path):
    write_dataset(tmp_path, 20)  # train files only
    with pytest.raises(ValueError, match="no IDX images file t10k-images") as error:
        make_binary_task("fashion/1v7", tmp_path, split="test")
    assert "\n" not in str(error.value)
