"""Run directories: atomic writes, config round trip, checkpoints."""

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
    cfg = BinaryDigitsConfig(tasks=("3v5:1v7",), evo=EvoConfig(population=8), seed=4)
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


def test_checkpoints_written_before_the_one_package_still_load(tmp_path):
    """A run directory from before pathevo was one package pickled HyperNEAT's genomes under
    their old module names (``modules.cppn``, ``evolution.speciation``); they load as today's
    classes."""
    from pathevo.modules.cppn import CPPNGraph, CPPNNode

    graph = CPPNGraph(num_inputs=1, num_outputs=1, nodes=(CPPNNode(0, "sin", 0.5, 1.0),),
                      connections=((-1, 0, 0.25),))  # fmt: skip
    written = tmp_path / "new.pt"
    torch.save({"best": graph}, written, _use_new_zipfile_serialization=False)  # protocol 2
    old = written.read_bytes().replace(b"pathevo.modules.cppn\n", b"modules.cppn\n")
    assert b"pathevo." not in old
    (tmp_path / rd.CHECKPOINT).write_bytes(old)
    assert rd.load_checkpoint(tmp_path)["best"] == graph
    assert rd.current_module("runners.phase") == "pathevo.agents.phase"
    assert rd.current_module("evolution.speciation") == "pathevo.evolution.speciation"
    assert rd.current_module("torch._utils") == "torch._utils"
