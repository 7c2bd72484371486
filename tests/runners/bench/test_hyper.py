"""runners/bench/hyper.py runs and reports both speedups (figures live in the README)."""

import json

import pytest

from pathevo.runners.bench.hyper import BenchHyperConfig, main


def test_bench_hyper_reports_vectorised_and_process_speedups(tmp_path):
    out = tmp_path / "bench.json"
    cfg = BenchHyperConfig(cppn_nodes=6, conv=(2, 2, 3), hidden=2, reference_queries=50,
                           repeats=1, population=4, generations=1, json=str(out))  # fmt: skip
    results = main(cfg)
    conv = results["expression"]["conv"]
    assert conv["connections"] == 2 * 2 * 3 * 3 and not conv["reference_extrapolated"]
    assert results["expression"]["linear"]["connections"] == 84 * 84 * 4
    assert results["expression"]["linear"]["reference_extrapolated"]
    for key in ("vectorised_speedup", "process_speedup"):
        assert results[key] > 0
    written = json.loads(out.read_text())
    assert written["vectorised_speedup"] == pytest.approx(results["vectorised_speedup"])
    for workers in (1, 2):
        assert written["evaluation"][f"processes_{workers}"]["genomes_per_second"] > 0


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="cppn-nodes"):
        BenchHyperConfig(cppn_nodes=1)
