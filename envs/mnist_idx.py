"""Reader and writer for the IDX file format of MNIST (LeCun et al. 1998).

IDX: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension and the data in big-endian order. Files may be gzip-compressed (``.gz``). Written here
(about 40 lines) rather than pulling in torchvision, whose PyPI wheels do not load beside a CPU
build of torch.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in _DTYPES.items()}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (optionally gzip-compressed)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise ValueError(f"cannot read IDX file {path}: {error}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header promises {expected} bytes, file has {len(raw) - header}"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed if the name ends in ``.gz``)."""
    path = Path(path)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, _CODES[native], array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(payload)


def load_mnist(
    data_dir: str | Path, split: str = "train", prefix: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images ``[n, 28, 28]`` uint8 and labels ``[n]`` from the standard IDX files.

    Looks for ``{train,t10k}-images-idx3-ubyte`` / ``-labels-idx1-ubyte`` (also with ``.`` before
    ``idx`` and with ``.gz``; after ``prefix``, such as EMNIST's ``emnist-digits-``) in
    ``data_dir``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = ("train",) if split == "train" else ("t10k", "test")  # EMNIST: test
    images = _find(Path(data_dir), [prefix + name for name in names], "images", "idx3")
    labels = _find(Path(data_dir), [prefix + name for name in names], "labels", "idx1")
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{images} and {labels} do not hold matching images and labels")
    return x, y


def _find(data_dir: Path, stems: list[str], kind: str, idx: str) -> Path:
    for stem in stems:
        for sep in ("-", "."):
            for suffix in ("", ".gz"):
                candidate = data_dir / f"{stem}-{kind}{sep}{idx}-ubyte{suffix}"
                if candidate.is_file():
                    return candidate
    raise ValueError(f"no IDX {kind} file {stems[0]}-{kind}-{idx}-ubyte[.gz] in {data_dir}")
