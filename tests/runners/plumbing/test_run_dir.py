"""Run directories: atomic writes, config round trip, checkpoints."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pathevo.evolution.config import EvoConfig
from pathevo.runners.binary_digits import BinaryDigitsConfig
from pathevo.runners.plumbing import run_dir as rd


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    rd.write_json(target, {"version": 1})

    def broken(handle):
        handle.write(b'{"version": 2, "trunc')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        rd.atomic_write(target, broken)
    assert target.read_text() == '{\n  "version": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


KILLED_WRITER = """
import sys, time, torch
from pathlib import Path
from pathevo.runners.plumbing import run_dir as rd

def slow(handle):
    handle.write(b"half a checkpoint")
    handle.flush()
    Path(sys.argv[2]).touch()  # tell the test the write is under way
    time.sleep(60)

rd.atomic_write(Path(sys.argv[1]) / rd.CHECKPOINT, slow)
"""


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_checkpoint_readable(tmp_path):
    rd.save_checkpoint(tmp_path, {"generation": 7, "weights": torch.arange(3)})
    started = tmp_path / "started"
    root = Path(__file__).resolve().parents[2]
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path), str(started)], cwd=root
    )
    deadline = time.monotonic() + 60
    while not started.exists():
        assert writer.poll() is None and time.monotonic() < deadline, "the writer never started"
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    state = rd.load_checkpoint(tmp_path)
    assert state["generation"] == 7 and state["weights"].tolist() == [0, 1, 2]


def test_config_round_trip_with_nested_sections_and_tuples(tmp_path):
    cfg = BinaryDigitsConfig(tasks=("digits/3v5:digits/1v7",), evo=EvoConfig(population=8), seed=4)
    rd.save_config(tmp_path, cfg)
    assert rd.load_config(tmp_path, BinaryDigitsConfig) == cfg


def test_checkpoint_round_trip_and_missing_checkpoint(tmp_path):
    assert rd.load_checkpoint(tmp_path) is None
    rd.save_checkpoint(tmp_path, {"pair": 2, "results": [{"a": 1}]})
    assert rd.load_checkpoint(tmp_path) == {"pair": 2, "results": [{"a": 1}]}


def test_new_run_dirs_never_collide(tmp_path):
    first = rd.new_run_dir("demo", 0, root=tmp_path)
    second = rd.new_run_dir("demo", 0, root=tmp_path)
    assert first != second and first.is_dir() and second.is_dir()


def test_checkpoints_of_python_objects_from_earlier_versions_are_refused(tmp_path):
    """A run directory from before checkpoints were data pickled HyperNEAT's genomes under
    their old module names (``modules.cppn``): it is refused in one line saying why, without
    importing or calling anything the file names."""
    from pathevo.modules.cppn import CPPNGraph, CPPNNode

    graph = CPPNGraph(num_inputs=1, num_outputs=1, nodes=(CPPNNode(0, "sin", 0.5, 1.0),),
                      connections=((-1, 0, 0.25),))  # fmt: skip
    written = tmp_path / "new.pt"
    torch.save({"best": graph}, written, _use_new_zipfile_serialization=False)  # protocol 2
    old = written.read_bytes().replace(b"pathevo.modules.cppn\n", b"modules.cppn\n")
    assert b"pathevo." not in old
    (tmp_path / rd.CHECKPOINT).write_bytes(old)
    with pytest.raises(ValueError, match="stores Python objects") as error:
        rd.load_checkpoint(tmp_path)
    message = str(error.value)
    assert "\n" not in message and "earlier pathevo" in message and "start a new run" in message
    assert "modules.cppn" in message

    torch.save({"best": graph}, tmp_path / rd.CHECKPOINT)  # today's layout, but not data
    with pytest.raises(ValueError, match="earlier pathevo"):
        rd.load_checkpoint(tmp_path)
    torch.save({"best": graph.to_dict()}, tmp_path / rd.CHECKPOINT)  # data: it loads
    assert CPPNGraph.from_dict(rd.load_checkpoint(tmp_path)["best"]) == graph


def test_a_mid_run_digit_checkpoint_of_an_earlier_version_names_its_writer(tmp_path):
    """An earlier binary_digits run stopped mid-pair pickled DEAP's search state: its fitness
    compares with ``operator.eq`` and its logbook holds a ``defaultdict`` besides pathevo's and
    DEAP's classes. Those standard-library names do not hide who wrote it."""
    import collections
    import operator

    from pathevo.evolution.config import EvoConfig

    state = {"search": {"eq": operator.eq, "chapters": collections.defaultdict(list),
                        "config": EvoConfig()}}  # fmt: skip
    torch.save(state, tmp_path / rd.CHECKPOINT)
    with pytest.raises(ValueError, match="earlier pathevo") as error:
        rd.load_checkpoint(tmp_path)
    assert "\n" not in str(error.value)


class _Touch:
    """A pickle whose loading would create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tmp_path, zip_format):
    marker = tmp_path / "ran"
    torch.save({"pair": 0, "x": _Touch(marker)}, tmp_path / rd.CHECKPOINT,
               _use_new_zipfile_serialization=zip_format)  # fmt: skip
    with pytest.raises(ValueError, match="is not data only") as error:
        rd.load_checkpoint(tmp_path)
    assert "system" in str(error.value) and "\n" not in str(error.value)
    assert not marker.exists()


def test_require_names_the_missing_key_or_the_wrong_type(tmp_path):
    needs = {"pair": int, "results": list, "search": (dict, type(None))}
    rd.require({"pair": 1, "results": [], "search": None}, needs, tmp_path, "binary_digits")
    with pytest.raises(ValueError, match="lacks 'results' \\(is it a binary_digits run\\?\\)"):
        rd.require({"pair": 1}, needs, tmp_path, "binary_digits")
    with pytest.raises(ValueError, match="'pair' is a str, not int"):
        rd.require({"pair": "1", "results": []}, needs, tmp_path, "binary_digits")
    with pytest.raises(ValueError, match="'search' is a list, not dict or NoneType"):
        rd.require({"pair": 1, "results": [], "search": []}, needs, tmp_path, "binary_digits")
