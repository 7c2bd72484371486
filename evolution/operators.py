"""Path genome operators (PathNet, Fernando et al. 2017, arXiv:1701.08734).

A genome is a flat list of L*N module ids, layer-major: gene ``l * N + n`` is the n-th module of
layer l. Mutation: every gene independently, with probability 1/(N*L), is shifted by a uniform
integer in [-2, 2] and clamped to [0, M-1] (the authors' code) or wrapped modulo M.
"""

from __future__ import annotations

import random
from collections.abc import MutableSequence, Sequence

import torch


def random_genome(layers: int, active: int, modules: int, rng: random.Random) -> list[int]:
    """L*N uniformly random module ids in [0, M-1]."""
    return [rng.randrange(modules) for _ in range(layers * active)]


def mutate_path(
    genome: MutableSequence[int],
    modules: int,
    rate: float,
    max_shift: int = 2,
    wrap: bool = False,
    rng: random.Random | None = None,
) -> tuple[MutableSequence[int]]:
    """Shift each gene with probability ``rate`` by U{-max_shift..max_shift}; in place.

    Returns a one-tuple, as DEAP mutation operators do.
    """
    rng = rng or random
    for index, gene in enumerate(genome):
        if rng.random() < rate:
            moved = gene + rng.randint(-max_shift, max_shift)
            genome[index] = moved % modules if wrap else min(max(moved, 0), modules - 1)
    return (genome,)


def genome_to_path(genome: Sequence[int], layers: int, active: int) -> torch.Tensor:
    """The flat genome as a path LongTensor [L, N]."""
    return torch.tensor(list(genome), dtype=torch.long).view(layers, active)


def path_modules(path: torch.Tensor) -> list[set[int]]:
    """The distinct module ids a path ([L, N]) uses in each layer."""
    return [set(row.tolist()) for row in path]


def module_usage(
    genomes: Sequence[Sequence[int]], layers: int, active: int, modules: int
) -> torch.Tensor:
    """How many genomes use each module: [L, M] counts (a module counts once per genome)."""
    paths = torch.tensor([list(g) for g in genomes], dtype=torch.long).view(-1, layers, active)
    used = torch.zeros(len(genomes), layers, modules, dtype=torch.bool)
    used.scatter_(2, paths, True)
    return used.sum(0)
