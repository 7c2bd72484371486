"""The tournament benchmark runs serial and batched tournaments side by side and reports them
(the figures come from the full run, not from this test)."""

import json

import pytest

from pathevo.agents.supervised import SupervisedConfig
from pathevo.runners.bench.tournament import BenchTournamentConfig, main, synthetic_task


def tiny(**overrides) -> BenchTournamentConfig:
    settings = dict(
        tournaments=(1, 2), goal_k=2, generations=4, warmup=1, rounds=2, population=8,
        layers=2, modules=4, active=2, hidden=4, side=8, examples=40,
        train=SupervisedConfig(minibatches=2, batch_size=4),
    )  # fmt: skip
    return BenchTournamentConfig(**(settings | overrides))


def test_bench_tournament_reports_generations_per_second_and_ratios(tmp_path):
    out = tmp_path / "bench.json"
    results = main(tiny(json=str(out)))
    rows = results["configurations"]
    assert set(rows) == {"serial", "1", "2"}
    assert rows["serial"]["vs_serial"] == pytest.approx(1.0)
    for row in rows.values():
        assert row["generations_per_s"] > 0 and len(row["rounds_generations_per_s"]) == 2
        assert row["generations"] == 1 + 2 * 4  # warm-up, then two rounds of 4 generations
        assert 0.0 <= row["best_fitness"] <= 1.0
    assert rows["2"]["paths_per_step"] == 4 and rows["serial"]["paths_per_step"] == 1
    assert results["goal"]["k"] == 2 and results["goal"]["speedup"] == rows["2"]["vs_serial"]
    written = json.loads(out.read_text())
    assert set(written["configurations"]) == {"serial", "1", "2"}
    assert written["settings"]["inputs"] == 64


def test_synthetic_task_is_two_classes_of_images_in_the_unit_interval():
    task = synthetic_task(examples=50, side=28, seed=0)
    assert task.x.shape == (50, 784) and task.y.shape == (50,)
    assert task.x.min() >= 0.0 and task.x.max() <= 1.0 and set(task.y.tolist()) == {0, 1}
    assert (task.x[task.y == 0].mean(0) - task.x[task.y == 1].mean(0)).abs().max() > 0.1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"goal_k": 8}, "goal-k"), ({"tournaments": (1, 5), "goal_k": 1}, "tournaments_at_once"),
     ({"tournaments": ()}, "at least one")],
)  # fmt: skip
def test_bad_settings_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)
