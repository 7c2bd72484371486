"""A run's TensorBoard scalars read back from its event files, and the picture TensorBoard shows
when the conditions of a transfer run are overlaid: one panel per pair, one line per condition.

Every segment of a run (``pair0/scratch``, ``pair0/pathnet_b``, ``pathnet_b``…) is its own
event directory and writes the same tags (docs/tensorboard.md), so one tag read from each
segment is one chart of TensorBoard with the conditions overlaid. The figure is drawn from the
same event files, with TensorBoard's ``EventAccumulator`` and a :class:`matplotlib.figure.Figure`:

    python -m pathevo.runners.figures.tensorboard runs/<run> --out docs/tensorboard_digits.png
"""

from __future__ import annotations

from pathlib import Path

import tyro
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pathevo.runners.plumbing.plots import save_figure

DIGIT_CONDITIONS = ("scratch", "finetune_b", "pathnet_b")
"""The phases of a binary-digits pair that learn task B: the three conditions compared."""

STYLES = {"scratch": "tab:gray", "finetune_b": "tab:orange", "finetune": "tab:orange",
          "pathnet_b": "tab:blue"}  # fmt: skip


def segments(run: Path) -> dict[str, EventAccumulator]:
    """Every event directory of ``run`` by its path inside the run (``""``: the run's own),
    as TensorBoard lists the runs of ``tensorboard --logdir run``, loaded."""
    found = {}
    for directory in sorted({path.parent for path in run.rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(directory))
        events.Reload()
        found["" if directory == run else directory.relative_to(run).as_posix()] = events
    return found


def scalar_tags(run: Path) -> dict[str, set[str]]:
    """The scalar tags of every segment of ``run`` (:func:`segments`)."""
    return {name: set(events.Tags()["scalars"]) for name, events in segments(run).items()}


def series(events: EventAccumulator, tag: str) -> tuple[list[int], list[float]]:
    """The steps and values of scalar ``tag`` (empty if the segment has no such tag)."""
    if tag not in events.Tags()["scalars"]:
        return [], []
    scalars = events.Scalars(tag)
    return [s.step for s in scalars], [s.value for s in scalars]


def draw_pairs(
    run: Path, out: Path, tag: str = "charts/accuracy",
    conditions: tuple[str, ...] = DIGIT_CONDITIONS, title: str | None = None,
) -> int:  # fmt: skip
    """One panel per pair of a binary-digits run (segments ``pair<k>/<condition>``), the
    ``conditions`` overlaid on ``tag`` against the generation, as TensorBoard shows them with
    the filter ``tag``; PNG ``out`` written atomically. Returns the number of panels."""
    found = segments(run)
    pairs = sorted({name.split("/")[0] for name in found if name.startswith("pair")},
                   key=lambda pair: int(pair.removeprefix("pair")))  # fmt: skip
    if not pairs:
        raise ValueError(f"{run} has no pair<k>/<condition> event directories")
    fig = Figure(figsize=(3.6 * len(pairs), 3.2))
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    for ax, pair in zip(axes, pairs, strict=True):
        for condition in conditions:
            events = found.get(f"{pair}/{condition}")
            if events is None:
                continue
            steps, values = series(events, tag)
            ax.plot(steps, values, marker=".", color=STYLES.get(condition),
                    label=f"{pair}/{condition}")  # fmt: skip
        ax.set_title(f"{pair}: {tag}", fontsize=9)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title or f"{run.name}: {tag}, conditions overlaid", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)
    return len(pairs)


def main(run: Path, /, out: Path = Path("tensorboard.png"), tag: str = "charts/accuracy") -> None:
    """Draw the conditions of every pair of binary-digits run ``run`` overlaid on ``tag``.

    Args:
        run: the run directory (``runs/binary_digits-…``).
        out: where the PNG goes.
        tag: the scalar tag, the same in every condition (docs/tensorboard.md).
    """
    panels = draw_pairs(run, out, tag)
    print(f"{out}: {panels} pairs, {tag}")


if __name__ == "__main__":
    tyro.cli(main)
