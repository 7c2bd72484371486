"""The MoE benchmark runs and reports its ratios (the figures live in docs/moe_bench.md)."""

import importlib.util
import json

import pytest

from pathevo.runners.bench import moe as bench
from pathevo.runners.bench.moe import CATEGORIES, BenchMoEConfig, main

HAS_PEER = importlib.util.find_spec("mixture_of_experts") is not None


def tiny(**kwargs) -> BenchMoEConfig:
    return BenchMoEConfig(
        experts=(2, 4, 8), batch=16, d_model=8, hidden=4, min_run_time=0.01, rounds=2,
        bandwidth_mb=4, **kwargs,
    )  # fmt: skip


def test_bench_moe_reports_growth_and_dense_ratio(tmp_path):
    out = tmp_path / "bench.json"
    results = main(tiny(profile=True, peer=False, clock="cpu", json=str(out)))
    assert set(results["experts"]) == {2, 4, 8}
    for key in ("param_growth", "time_growth", "dense_ratio"):
        assert results[key] > 0
    # Experts and gate both grow linearly in E: 8 experts have 4x the parameters of 2.
    assert results["param_growth"] == pytest.approx(4.0)
    expert = 2 * 8 * 4 + 4 + 8  # w1, w2, b1, b2
    assert results["experts"][2]["params"] == 2 * expert + 2 * (8 * 2)
    assert results["dense"]["params"] == 8 * 8 + 8 + 8 * 8 + 8
    assert set(results["profile"]) == {2, 8}  # the first and the last E
    for row in results["profile"].values():
        assert set(row) == set(CATEGORIES) and sum(row.values()) > 0
    assert results["clock"] == "cpu" and results["arithmetic"] == "float32"
    assert results["peer"]["timed"] is False and "--no-peer" in results["peer"]["note"]
    assert results["goal"]["faster_than_peer"] is None
    # The lower bound: the last E's parameters read once and their gradients written once.
    bound = results["lower_bound"]
    assert bound["experts"] == 8 and bound["bytes"] == 2 * 4 * results["experts"][8]["params"]
    assert bound["ms"] == pytest.approx(bound["bytes"] / (results["bandwidth_gb_s"] * 1e9) * 1e3)
    assert 0 < bound["fraction"] == pytest.approx(bound["ms"] / results["experts"][8]["ms"])
    written = json.loads(out.read_text())
    for key in ("param_growth", "time_growth", "dense_ratio", "dense", "goal", "peer"):
        assert key in written
    assert set(written["experts"]) == {"2", "4", "8"}
    for row in written["experts"].values():
        assert row["seconds"] > 0 and row["params"] > 0
        assert len(row["rounds_ms"]) == 2


@pytest.mark.skipif(not HAS_PEER, reason="mixture-of-experts is not installed")
def test_bench_moe_times_the_peer_side_by_side():
    results = main(tiny())
    peer = results["peer"]
    assert peer["timed"] and peer["version"]
    assert set(peer["experts"]) == {2, 4, 8}
    for experts, row in peer["experts"].items():
        assert row["seconds"] > 0 and row["params"] > 0 and len(row["rounds_ms"]) == 2
        ours = results["experts"][experts]
        assert ours["vs_peer"] == pytest.approx(ours["seconds"] / row["seconds"])
    assert results["goal"]["faster_than_peer"] in (True, False)


def test_the_peer_is_skipped_with_a_note_when_missing(monkeypatch):
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name: None)
    assert "pip install mixture-of-experts" in bench.peer_status(tiny())
    assert "top-2" in bench.peer_status(tiny(k=1))


def test_fewer_experts_than_k_are_rejected():
    with pytest.raises(ValueError, match="at least k"):
        BenchMoEConfig(experts=(1, 4), k=2)
