"""Continual-learning bookkeeping: the accuracy matrix R, its summaries, library occupancy.

Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for Continual Learning" (GEM),
arXiv:1706.08840, section 5: after learning task i of T, every task j is evaluated, giving
``R[i, j]``. Its summaries:

* ``ACC = mean_j R[T-1, j]`` — the final performance averaged over all tasks;
* ``BWT = mean_{j<T-1} (R[T-1, j] - R[j, j])`` — backward transfer: how learning later tasks
  changed earlier ones (negative = forgetting);
* ``FWT = mean_{j>0} (R[j-1, j] - b_j)`` — forward transfer: how well task j is done *before*
  it is learned, against a reference ``b_j`` (GEM: a randomly initialised model).

PathNet (Fernando et al. 2017, arXiv:1701.08734) adds the library's occupancy — the fraction of
each layer's modules frozen by earlier tasks — and, per task, how many of its path's modules it
reuses from earlier tasks' frozen paths. All functions here are pure (lists and tensors in,
numbers out).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pathevo.evolution.operators import path_modules

Matrix = Sequence[Sequence[float]]


def empty_matrix(tasks: int) -> list[list[float | None]]:
    """A T x T matrix of ``None``: rows are filled as the tasks are learned."""
    if tasks <= 0:
        raise ValueError(f"a task sequence needs at least one task, got {tasks}")
    return [[None] * tasks for _ in range(tasks)]


def _checked(matrix: Matrix) -> list[list[float]]:
    rows = [list(row) for row in matrix]
    if not rows or any(len(row) != len(rows) for row in rows):
        raise ValueError(f"R must be a non-empty square matrix, got {len(rows)} rows")
    if any(value is None for row in rows for value in row):
        raise ValueError("R has unfilled entries: every task must be learned first")
    return rows


def average_accuracy(matrix: Matrix) -> float:
    """ACC: the mean of the last row of R."""
    last = _checked(matrix)[-1]
    return sum(last) / len(last)


def backward_transfer(matrix: Matrix) -> float:
    """BWT: mean over j < T-1 of R[T-1, j] - R[j, j]; 0.0 for a single task."""
    rows = _checked(matrix)
    t = len(rows)
    if t == 1:
        return 0.0
    return sum(rows[-1][j] - rows[j][j] for j in range(t - 1)) / (t - 1)


def forward_transfer(matrix: Matrix, reference: Sequence[float]) -> float:
    """FWT: mean over j > 0 of R[j-1, j] - reference[j]; 0.0 for a single task."""
    rows = _checked(matrix)
    t = len(rows)
    if len(reference) != t:
        raise ValueError(f"need one reference value per task: {len(reference)} for {t} tasks")
    if t == 1:
        return 0.0
    return sum(rows[j - 1][j] - reference[j] for j in range(1, t)) / (t - 1)


def summarise_matrix(matrix: Matrix, reference: Sequence[float]) -> dict[str, float]:
    """``acc``, ``bwt`` and ``fwt`` of R against the FWT ``reference``."""
    return {
        "acc": average_accuracy(matrix),
        "bwt": backward_transfer(matrix),
        "fwt": forward_transfer(matrix, reference),
    }


def occupancy(frozen: Sequence[torch.Tensor]) -> list[float]:
    """Per layer, the fraction of its modules that are frozen (``frozen``: a bool [M_l] each)."""
    return [int(mask.sum()) / len(mask) for mask in frozen]


def free_modules(frozen: Sequence[torch.Tensor]) -> list[int]:
    """Per layer, how many modules are not frozen."""
    return [int((~mask).sum()) for mask in frozen]


def shortfall(frozen: Sequence[torch.Tensor], active: int) -> list[int]:
    """Per layer, how many modules are missing for a new task to have ``active`` free ones."""
    return [max(active - free, 0) for free in free_modules(frozen)]


def full_layers_message(frozen: Sequence[torch.Tensor], active: int, task: str) -> str | None:
    """The one-line error for a library without ``active`` free modules in some layer, or
    ``None`` when every layer has room for ``task``."""
    free = free_modules(frozen)
    full = [(layer, n) for layer, n in enumerate(free) if n < active]
    if not full:
        return None
    layers = ", ".join(f"layer {layer} has {n} of {len(frozen[layer])}" for layer, n in full)
    return (
        f"the library is full before task {task!r}: {layers} modules free, a path needs "
        f"N={active}; use --grow to add modules, or start with more modules per layer"
    )


def reuse_of_frozen(path: torch.Tensor, frozen: Sequence[torch.Tensor]) -> dict[str, object]:
    """Which of ``path``'s ([L, N]) distinct modules were frozen (by earlier tasks) when it was
    evolved: per layer the module ids, and their fraction of all the path's distinct modules."""
    used = path_modules(path)
    pairs = zip(used, frozen, strict=True)
    reused = [sorted(m for m in layer if bool(mask[m])) for layer, mask in pairs]
    total = sum(len(layer) for layer in used)
    return {
        "reused_modules": reused,
        "module_reuse": sum(len(layer) for layer in reused) / total,
    }
