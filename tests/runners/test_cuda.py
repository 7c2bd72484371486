"""``--device cuda``: the supervised, MoE and neuroevolution runners and the library benchmark
place their work on the GPU where one exists (these tests run there, ``-m cuda``), and every one
says so in one line where there is none."""

import pytest

from pathevo.runners import binary_digits, hyperneat, moe_capacity
from tests.devices import needs_cuda, without_cuda
from tests.runners import test_binary_digits, test_hyperneat, test_moe_capacity

CONFIGS = {
    "binary_digits": lambda run, **kw: test_binary_digits.tiny(run / "run", **kw),
    "hyperneat": lambda run, **kw: test_hyperneat.tiny(run, **kw),
    "moe_capacity": lambda run, **kw: test_moe_capacity.tiny(run / "run", **kw),
}
MAINS = {"binary_digits": binary_digits.main, "hyperneat": hyperneat.main,
         "moe_capacity": moe_capacity.main}  # fmt: skip


@without_cuda
@pytest.mark.parametrize("runner", sorted(CONFIGS))
def test_cuda_asked_for_and_absent_is_a_one_line_error_before_any_write(runner, tmp_path):
    with pytest.raises(ValueError, match="CUDA is not available") as error:
        MAINS[runner](CONFIGS[runner](tmp_path, device="cuda"))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.cuda
@needs_cuda
def test_a_parallel_hyperneat_backend_with_a_gpu_is_refused():
    with pytest.raises(ValueError, match="CPU workers"):
        hyperneat.HyperNEATRunConfig(backend="processes", device="cuda")


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("runner", sorted(CONFIGS))
def test_a_run_on_the_gpu_gives_the_cpu_runs_summary_closely(runner, tmp_path):
    """The same tiny run on both devices: the same summary fields; the MoE fits agree closely
    (kernels differ in rounding, so evolution may part ways: not bit for bit)."""
    cpu = MAINS[runner](CONFIGS[runner](tmp_path / "cpu", device="cpu"))
    gpu = MAINS[runner](CONFIGS[runner](tmp_path / "gpu", device="cuda"))
    assert set(gpu) == set(cpu)
    if runner == "moe_capacity":
        for on_cpu, on_gpu in zip(cpu["results"], gpu["results"], strict=True):
            assert on_gpu["heldout_r2"] == pytest.approx(on_cpu["heldout_r2"], abs=0.05)
