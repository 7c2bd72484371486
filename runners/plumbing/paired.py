"""Paired comparisons of a transfer experiment's conditions over the same task pairs.

PathNet (Fernando et al. 2017, arXiv:1701.08734) is compared with learning from scratch and with
fine-tuning on the same pairs (A, B): generations to a threshold as speed-ups (the ratio of a
control's generations to PathNet's, averaged as logs: a geometric mean, with its 95% interval),
held-out accuracies as differences, and learning curves as means over the pairs.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from pathevo.runners.plumbing.stats import mean_interval

CONDITIONS = ("scratch", "finetune", "pathnet")
"""PathNet and its two controls."""
CONTROLS = ("scratch", "finetune")


def curve_mean(curve: list[list[float]], last: int, every: int) -> float:
    """The mean held-out accuracy over a learning curve's regular measurements (every ``every``
    generations) up to generation ``last``, ``last`` included: an area under the curve."""
    return statistics.fmean(
        row[2] for row in curve if row[0] <= last and (row[0] % every == 0 or row[0] == last)
    )


def mean_curves(curves_by_condition: dict[str, list[list[list[float]]]]) -> dict[str, Any]:
    """Per condition (its pairs' curves, rows [generation, fitness, accuracy], the same pairs in
    the same order for every condition), the accuracy at every measured generation that every
    pair's curve covers (between measurements a curve keeps its last value): mean and 95%
    half-width over the pairs; and ``pathnet_minus_<control>``, PathNet's paired difference
    from each control at the generations both cover."""
    curves = {
        condition: [{int(row[0]): row[2] for row in rows} for rows in rows_of_pairs]
        for condition, rows_of_pairs in curves_by_condition.items()
    }
    out: dict[str, Any] = {}
    for condition, pairs in curves.items():
        out[condition] = curve_statistics(pairs, [pairs])
    if "pathnet" in curves:
        for control in CONTROLS:
            if control in curves:
                both = [curves["pathnet"], curves[control]]
                out[f"pathnet_minus_{control}"] = curve_statistics(
                    curves["pathnet"], both, minus=curves[control]
                )
    return out


def curve_statistics(
    first: list[dict[int, float]],
    cover: list[list[dict[int, float]]],
    minus: list[dict[int, float]] | None = None,
) -> dict[str, Any]:
    """Mean and 95% half-width over the pairs of ``first`` (minus ``minus``, pair by pair) at
    every measured generation that every curve of ``cover`` spans."""
    spans = [curve for group in cover for curve in group]
    start, end = max(min(curve) for curve in spans), min(max(curve) for curve in spans)
    gens = sorted({g for curve in spans for g in curve if start <= g <= end})
    intervals = [
        mean_interval([
            held(curve, g) - (0.0 if minus is None else held(minus[index], g))
            for index, curve in enumerate(first)
        ])
        for g in gens
    ]  # fmt: skip
    return {"generation": gens, "mean": [m for m, _ in intervals],
            "ci95": [h for _, h in intervals]}  # fmt: skip


def accuracy_differences(values: dict[str, list[float]]) -> dict[str, Any]:
    """Per condition the mean accuracy with its 95% interval; PathNet minus each control, paired
    over the same pairs, with its interval and how many pairs PathNet was above or below."""
    out: dict[str, Any] = {"pairs": len(values["pathnet"])}
    for condition, row in values.items():
        mean, half = mean_interval(row)
        out[condition] = {"mean": mean, "ci95": half}
    for control in CONTROLS:
        pairs = list(zip(values["pathnet"], values[control], strict=True))
        mean, half = mean_interval([p - c for p, c in pairs])
        out[f"pathnet_minus_{control}"] = {
            "mean": mean,
            "ci95": half,
            "pathnet_above": sum(p > c for p, c in pairs),
            "pathnet_below": sum(p < c for p, c in pairs),
        }
    return out


def paired_statistics(
    generations: dict[str, list[int]], solved: dict[str, list[bool]]
) -> dict[str, Any]:
    """Per condition: mean with its 95% interval, median, censored runs; per control, the
    paired comparison with PathNet over the same pairs (the mean difference of generations and
    the mean log ratio, whose exponential is the geometric-mean speedup), over all pairs (a
    censored phase counts its maximum: a bound, not a measurement) and over the pairs where
    both phases reached the threshold."""
    out: dict[str, Any] = {"pairs": len(generations["pathnet"])}
    for condition, values in generations.items():
        mean, half = mean_interval(values)
        out[condition] = {
            "mean": mean,
            "ci95": half,
            "median": statistics.median(values),
            "censored": sum(not s for s in solved[condition]),
        }
    for control in CONTROLS:
        pairs = list(zip(generations[control], generations["pathnet"], strict=True))
        difference = mean_interval([c - p for c, p in pairs])
        log_ratio = mean_interval([math.log(c / p) for c, p in pairs])
        out[f"pathnet_vs_{control}"] = {
            "mean_difference": difference[0],
            "difference_ci95": difference[1],
            "mean_log_ratio": log_ratio[0],
            "log_ratio_ci95": log_ratio[1],
            "geometric_speedup": math.exp(log_ratio[0]),
            "pathnet_faster": sum(c > p for c, p in pairs),
            "pathnet_slower": sum(c < p for c, p in pairs),
        }
        both = [
            math.log(c / p)
            for c, p, solved_c, solved_p in zip(
                generations[control], generations["pathnet"], solved[control],
                solved["pathnet"], strict=True,
            )
            if solved_c and solved_p
        ]  # fmt: skip
        out[f"pathnet_vs_{control}"]["both_solved"] = len(both)
        if both:
            mean, half = mean_interval(both)
            out[f"pathnet_vs_{control}"] |= {
                "both_solved_geometric_speedup": math.exp(mean),
                "both_solved_log_ratio_ci95": half,
            }
    return out


def held(curve: dict[int, float], generation: int) -> float:
    """The curve's value at ``generation``: its last measurement at or before it."""
    return curve[max(g for g in curve if g <= generation)]
