"""runners/bench/gpu.py: a one-line error without a GPU; its timings run on any device."""

import pytest

from pathevo.runners.bench import gpu
from tests.devices import needs_cuda, without_cuda


@without_cuda
def test_without_a_gpu_the_check_says_so_in_one_line():
    with pytest.raises(ValueError, match="CUDA is not available") as error:
        gpu.main(gpu.GPUCheckConfig())
    assert "\n" not in str(error.value)


def test_the_library_and_moe_timings_run_on_the_cpu():
    library = gpu.time_library(0.01, "cpu", ("mlp-paper",))
    assert set(library) == {"mlp-paper"}
    assert all(row["path_ms"] > 0 and row["population_ms"] > 0 for row in library.values())
    assert gpu.time_moe(0.01, "cpu")["forward_backward_ms"] > 0


def test_a_failing_part_is_one_line_and_the_others_go_on():
    def fails():
        raise RuntimeError("first\nlast line")

    assert gpu.attempt(fails) == {"error": "RuntimeError: last line"}


def test_the_tests_folder_is_the_checkouts():
    assert (gpu.REPOSITORY / "tests" / "devices.py").is_file()


@pytest.mark.cuda
@needs_cuda
def test_the_check_runs_its_timings_on_the_gpu(tmp_path):
    results = gpu.main(gpu.GPUCheckConfig(tests=False, min_run_time=0.05, steps=2000,
                                          env_ids=("MinAtar/Breakout-v1",), workers=2,
                                          json=tmp_path / "gpu.json"))  # fmt: skip
    assert "error" not in results["library"]["cuda"] and "error" not in results["moe"]["cuda"]
    assert all("steps_per_second" in row for row in results["learner"]), results["learner"]
