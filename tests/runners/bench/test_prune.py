"""The pruning benchmark times every representation and reports a crossover per batch size."""

import json

import pytest

from pathevo.runners.bench.prune import BenchPruneConfig, crossover, main


def test_bench_prune_reports_times_and_crossover(tmp_path):
    out = tmp_path / "bench.json"
    cfg = BenchPruneConfig(
        widths=(16, 8, 3), sparsities=(0.0, 0.5, 0.9), batches=(1, 4), min_run_time=0.01,
        rounds=2, json=str(out),
    )  # fmt: skip
    results = main(cfg)
    assert results["params"] == 16 * 8 + 8 + 8 * 3 + 3
    for batch in (1, 4):
        rows = results["batches"][batch]
        assert [row["sparsity"] for row in rows] == [0.0, 0.5, 0.9]
        for row in rows:
            assert row["measured_sparsity"] == pytest.approx(row["sparsity"], abs=0.02)
            for method in ("dense", "masked", "csr", "coo"):
                assert row[f"{method}_us"] > 0
        assert set(results["crossover"][batch]) == {"csr", "coo"}
        assert set(results["crossover_vs_dense"][batch]) == {"csr", "coo"}
    written = json.loads(out.read_text())
    assert set(written["batches"]) == {"1", "4"}
    for per_method in written["crossover"].values():
        assert all(level is None or level in (0.0, 0.5, 0.9) for level in per_method.values())


def test_crossover_is_the_lowest_level_from_which_sparse_keeps_winning():
    levels = [0.0, 0.5, 0.9, 0.98]
    assert crossover(levels, [3, 2, 1, 1], [2, 2, 2, 2]) == 0.9
    assert (
        crossover(levels, [1, 3, 1, 1], [2, 2, 2, 2]) == 0.9
    )  # a win below a loss is no crossover
    assert crossover(levels, [1, 1, 1, 1], [2, 2, 2, 2]) == 0.0
    assert crossover(levels, [3, 3, 3, 3], [2, 2, 2, 2]) is None


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="sparsities"):
        BenchPruneConfig(sparsities=(0.5, 1.0))
    with pytest.raises(ValueError, match="widths"):
        BenchPruneConfig(widths=(8,))
