"""runners/figures/tensorboard.py on a real binary-digits transfer run: every condition of a pair
writes the same tags (TensorBoard overlays them), and the overlay is drawn from the events."""

from pathlib import Path

from pathevo.evolution.config import EvoConfig
from pathevo.runners.binary_digits import BinaryDigitsConfig, main
from pathevo.runners.figures.tensorboard import (
    DIGIT_CONDITIONS,
    draw_pairs,
    scalar_tags,
    segments,
    series,
)


def test_digit_conditions_share_their_tags_and_are_drawn_overlaid(tmp_path):
    run = tmp_path / "run"
    main(BinaryDigitsConfig(
        seed=3, pairs=2, threshold=0.9, max_generations=4, evo=EvoConfig(population=6),
        run_dir=str(run), progress=False, image_every=2,
    ))  # fmt: skip
    tags = scalar_tags(run)
    expected = {"charts/accuracy", "charts/test_accuracy", "evolution/fitness_best",
                "evolution/fitness_mean"}  # fmt: skip
    for pair in ("pair0", "pair1"):
        for condition in (*DIGIT_CONDITIONS, "pathnet_a"):
            assert tags[f"{pair}/{condition}"] == expected, f"{pair}/{condition}"
    assert tags[""] == {f"summary/{c}_generations_mean" for c in ("scratch", "finetune", "pathnet")}
    found = segments(run)
    for name, events in found.items():  # the directory names the condition, never the tag
        assert all(not tag.startswith(("pair", "scratch", "finetune", "pathnet")) for tag in
                   events.Tags()["scalars"] + events.Tags()["images"]), name  # fmt: skip
        if name:
            assert events.Tags()["images"] == ["evolution/paths"], name
    steps, values = series(found["pair0/pathnet_b"], "charts/accuracy")
    assert steps and steps == sorted(steps) and all(0.0 <= v <= 1.0 for v in values)
    assert series(found["pair0/scratch"], "no/such_tag") == ([], [])

    out = tmp_path / "overlay.png"
    assert draw_pairs(run, out) == 2
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_the_documented_figure_is_committed():
    root = Path(__file__).resolve().parents[3]
    assert (root / "docs" / "tensorboard_digits.png").stat().st_size > 10_000
    assert "tensorboard_digits.png" in (root / "docs" / "tensorboard.md").read_text()
