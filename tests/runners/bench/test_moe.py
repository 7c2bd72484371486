"""The MoE benchmark runs and reports its ratios (the figures live in docs/moe_bench.md)."""

import json

import pytest

from pathevo.runners.bench.moe import CATEGORIES, BenchMoEConfig, main


def test_bench_moe_reports_growth_and_dense_ratio(tmp_path):
    out = tmp_path / "bench.json"
    cfg = BenchMoEConfig(
        experts=(2, 4, 8), batch=16, d_model=8, hidden=4, min_run_time=0.01, rounds=2,
        profile=True, json=str(out),
    )  # fmt: skip
    results = main(cfg)
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
    written = json.loads(out.read_text())
    for key in ("param_growth", "time_growth", "dense_ratio", "dense", "goal"):
        assert key in written
    assert set(written["experts"]) == {"2", "4", "8"}
    for row in written["experts"].values():
        assert row["seconds"] > 0 and row["params"] > 0
        assert len(row["rounds_ms"]) == 2


def test_fewer_experts_than_k_are_rejected():
    with pytest.raises(ValueError, match="at least k"):
        BenchMoEConfig(experts=(1, 4), k=2)
