"""Binary image tasks: sklearn's 8x8 digits, MNIST IDX files, salt-and-pepper noise (the task ids
of every data set: tests/envs/test_image_data.py)."""

import gzip

import numpy as np
import pytest
import torch

from pathevo.envs.digits import (
    TaskId,
    all_tasks,
    make_binary_task,
    parse_task,
    salt_and_pepper,
    sample_batch,
)
from pathevo.envs.mnist_idx import load_mnist, read_idx, write_idx


def test_sklearn_task_holds_the_two_digits_as_binary_labels():
    task = make_binary_task("digits/3v5")
    assert task.name == "digits/3v5"
    assert task.x.shape[1] == 64 and task.x.dtype == torch.float32
    assert task.x.min() >= 0.0 and task.x.max() <= 1.0
    assert set(task.y.unique().tolist()) == {0, 1}
    assert 250 < len(task.y) < 330  # about 180 examples per digit, a fifth held out
    test = make_binary_task("digits/3v5", split="test")
    assert 60 < len(test.y) < 90 and set(test.y.unique().tolist()) == {0, 1}


def test_upsampled_task_has_mnist_sized_inputs():
    small, large = make_binary_task("digits/3v5"), make_binary_task("digits/3v5", resolution=28)
    assert large.x.shape == (len(small.y), 784)
    assert torch.equal(large.y, small.y)
    assert large.x.min() >= 0.0 and large.x.max() <= 1.0
    # Bilinear upsampling keeps the picture: mean intensities agree closely.
    assert abs(large.x.mean().item() - small.x.mean().item()) < 0.05
    with pytest.raises(ValueError, match="resolution"):
        make_binary_task("digits/3v5", resolution=0)


def test_task_names_and_errors():
    assert parse_task("digits/0v9") == TaskId("digits", 0, 9)
    assert parse_task("digits/0v9").labels == (0, 9)
    assert len(all_tasks()) == 45 and all_tasks()[0] == "digits/0v1"
    for bad in ("digits/3v3", "digits/3v12", "digits/three", "digits/", "digits/3-5"):
        with pytest.raises(ValueError, match="unknown task .*'digits/3v5'"):
            parse_task(bad)
    for bare in ("3v5", "", "three"):  # the data set is part of the name
        with pytest.raises(ValueError, match="name the data set too"):
            parse_task(bare)


def test_salt_and_pepper_hits_the_requested_fraction_with_zeros_and_ones():
    x = torch.full((200, 64), 0.5)
    noisy = salt_and_pepper(x, 0.3, torch.Generator().manual_seed(0))
    changed = noisy != 0.5
    assert abs(changed.float().mean().item() - 0.3) < 0.01
    assert set(noisy[changed].unique().tolist()) == {0.0, 1.0}
    assert torch.equal(salt_and_pepper(x, 0.0, torch.Generator()), x)


def test_salt_and_pepper_is_half_salt_half_pepper_and_seeded():
    x = torch.full((7, 3, 101), 0.5)  # 2121 values: not a multiple of the 4 draws per word
    noisy = salt_and_pepper(x, 0.6, torch.Generator().manual_seed(1))
    assert noisy.shape == x.shape and noisy.dtype == x.dtype
    hit = noisy != 0.5
    assert abs(hit.float().mean().item() - 0.6) < 0.04
    assert abs((noisy[hit] == 1.0).float().mean().item() - 0.5) < 0.05  # salt as likely as pepper
    again = salt_and_pepper(x, 0.6, torch.Generator().manual_seed(1))
    assert torch.equal(again, noisy)
    assert not torch.equal(salt_and_pepper(x, 0.6, torch.Generator().manual_seed(2)), noisy)


def test_salt_and_pepper_at_one_replaces_every_value():
    x = torch.rand(50, 64)
    noisy = salt_and_pepper(x, 1.0, torch.Generator().manual_seed(0))
    assert set(noisy.unique().tolist()) == {0.0, 1.0}
    assert abs(noisy.mean().item() - 0.5) < 0.03


def test_sample_batch_shapes():
    task = make_binary_task("digits/1v7")
    x, y = sample_batch(task, 16, 0.5, torch.Generator().manual_seed(1))
    assert x.shape == (16, 64) and y.shape == (16,)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    np.testing.assert_array_equal(read_idx(path), array)


def test_idx_header_is_the_standard_big_endian_layout(tmp_path):
    write_idx(tmp_path / "l.idx", np.array([7, 2, 1], dtype=np.uint8))
    raw = (tmp_path / "l.idx").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x08, 1]) and raw[4:8] == (3).to_bytes(4, "big")
    assert raw[8:] == bytes([7, 2, 1])


def test_bad_idx_files_raise_clear_errors(tmp_path):
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "junk")
    write_idx(tmp_path / "short", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(ValueError, match="promises"):
        read_idx(tmp_path / "short")


def make_tiny_mnist(directory, n=40, gz=True):
    rng = np.random.default_rng(0)
    labels = np.arange(n, dtype=np.uint8) % 10
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(directory / f"train-images-idx3-ubyte{suffix}", images)
    write_idx(directory / f"train-labels-idx1-ubyte{suffix}", labels)
    return images, labels


def test_load_mnist_from_tiny_generated_idx_files(tmp_path):
    images, labels = make_tiny_mnist(tmp_path)
    x, y = load_mnist(tmp_path)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz") as handle:
        assert handle.read(4) == bytes([0, 0, 8, 1])


def test_binary_task_from_an_mnist_directory(tmp_path):
    make_tiny_mnist(tmp_path, gz=False)
    task = make_binary_task("mnist/2v8", data_dir=tmp_path)
    assert task.x.shape == (8, 784)
    assert task.y.tolist().count(1) == 4  # the 8s
    assert task.x.min() >= 0.0 and task.x.max() <= 1.0


def test_missing_mnist_files_are_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no IDX images file train-images"):
        load_mnist(tmp_path)
