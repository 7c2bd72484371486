"""Smoke test of pathevo bench envs (runners/bench/envs.py) with a tiny setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pathevo.runners.bench.envs import BenchConfig, main


def test_bench_prints_and_writes_steps_per_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the engine's _vizdoom/ directory lands here
    env_id = "pathevo/Labyrinth-StairwayToMelon-v0"
    out = tmp_path / "bench.json"
    summary = main(BenchConfig(steps=20, env_ids=(env_id,), json=out))
    assert summary["envs"][env_id]["steps_per_s"] > 0
    assert summary["envs"][env_id]["obs_shape"] == [4, 84, 84]
    assert json.loads(out.read_text()) == summary


def test_bench_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="steps"):
        BenchConfig(steps=0)
