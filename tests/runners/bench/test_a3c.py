"""runners/bench/a3c.py: settings, and a tiny end-to-end run (slow)."""

import pytest

from pathevo.agents.a3c import A3CConfig, resolve_precision
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.runners.bench import a3c as bench


def test_bad_settings():
    with pytest.raises(ValueError, match="time Atari games"):
        bench.BenchA3CConfig(env_id="MinAtar/Breakout-v1", sb3=True)
    with pytest.raises(ValueError, match="time Atari games"):
        bench.BenchA3CConfig(env_id="MinAtar/Breakout-v1", envpool=True)
    with pytest.raises(ValueError, match="exceeds the smallest M"):
        bench.BenchA3CConfig(modules=(4, 10), pathnet=PathNetA3CConfig(modules=10, active=5))
    with pytest.raises(ValueError, match="M >= 4"):
        bench.BenchA3CConfig(modules=(2,))
    with pytest.raises(ValueError, match="precisions"):
        bench.BenchA3CConfig(precisions=("float16",))
    with pytest.raises(ValueError, match="--precisions"):
        bench.BenchA3CConfig(a3c=A3CConfig(precision="bfloat16"))
    with pytest.raises(ValueError, match="--modes"):
        bench.BenchA3CConfig(a3c=A3CConfig(mode="learner"))
    with pytest.raises(ValueError, match="modes must be"):
        bench.BenchA3CConfig(modes=("ga3c",))
    assert bench.BenchA3CConfig(modules=(40, 10, 40)).modules == (10, 40)


@pytest.mark.slow
def test_tiny_benchmark_reports_the_fractions(tmp_path):
    out = tmp_path / "bench.json"
    results = bench.main(
        bench.BenchA3CConfig(
            workers=2, steps=640, raw_seconds=1.0, modules=(4, 8), json=out,
            modes=("hogwild",), a3c=A3CConfig(t_max=5, envs_per_worker=2, log_every=1),
        )
    )  # fmt: skip
    for key in ("raw_steps_per_second", "pathnet_fraction_of_raw", "a3c_fraction_of_raw"):
        assert results[key] > 0
    # the headline is the default configuration's precision on this machine (auto: bfloat16 for
    # Atari's conv torso where the CPU has bfloat16 instructions)
    assert results["precision"] == resolve_precision("auto", (4, 84, 84))
    for figures in results["by_precision"].values():
        assert figures["a3c_fraction_of_raw"] > 0
        assert set(figures["pathnet_fractions_of_raw"]) == {"4", "8"}
    headline = results["by_precision"][results["precision"]]
    assert results["pathnet_fraction_of_raw"] == headline["pathnet_fractions_of_raw"]["4"]
    assert out.exists()


@pytest.mark.slow
def test_minatar_benchmark_takes_its_raw_limit_from_worker_batches(tmp_path):
    results = bench.main(
        bench.BenchA3CConfig(
            env_id="MinAtar/Breakout-v1", workers=2, steps=2000, raw_seconds=0.5, modules=(4,),
            precisions=("float32",), a3c=A3CConfig(t_max=5, envs_per_worker=4, log_every=1),
            pathnet=PathNetA3CConfig(layers=2, modules=4, active=2, units=16),
        )
    )  # fmt: skip
    assert len(results["raw_measurements"]) == 5  # before each agent and mode, and at the end
    assert results["raw_steps_per_second"] > results["pathnet_steps_per_second"]["4"] > 0
    assert 0 < results["pathnet_fraction_of_raw"] < 1
    learner = results["by_mode"]["learner"]["float32"]
    assert 0 < learner["pathnet_fraction_of_raw"] < 1 and learner["a3c_steps_per_second"] > 0
    assert results["learner_vs_hogwild"]["a3c"] > 0
