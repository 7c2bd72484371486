"""The library benchmark runs and reports its ratios (the figures themselves live in the README)."""

import json

import pytest

from pathevo.runners.bench.library import BenchLibraryConfig, main
from tests.devices import needs_cuda, without_cuda


def test_bench_library_reports_path_vs_dense_and_population_speedup(tmp_path):
    out = tmp_path / "bench.json"
    cfg = BenchLibraryConfig(
        library_sizes=(4, 8), active=2, population=4, min_run_time=0.01, settings=("mlp-paper",),
        json=str(out),
    )  # fmt: skip
    results = main(cfg)
    assert set(results["path_vs_dense"]) == {4, 8}
    assert all(ratio > 0 for ratio in results["path_vs_dense"].values())
    assert results["population_speedup"] > 0
    written = json.loads(out.read_text())
    assert set(written["path_vs_dense"]) == {"4", "8"}


def test_library_sizes_below_n_are_rejected():
    with pytest.raises(ValueError, match="at least N"):
        BenchLibraryConfig(library_sizes=(2,), active=3)


@without_cuda
def test_cuda_asked_for_and_absent_is_a_one_line_error():
    with pytest.raises(ValueError, match="CUDA is not available") as error:
        BenchLibraryConfig(device="cuda")
    assert "\n" not in str(error.value)


@pytest.mark.cuda
@needs_cuda
def test_bench_library_times_the_library_on_a_gpu():
    cfg = BenchLibraryConfig(
        library_sizes=(4, 8), active=2, population=4, min_run_time=0.01, settings=("mlp-paper",),
        device="cuda",
    )  # fmt: skip
    results = main(cfg)
    assert results["device"].startswith("cuda") and results["population_speedup"] > 0
