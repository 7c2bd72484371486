"""Path genome operators (PathNet, Fernando et al. 2017, arXiv:1701.08734).

A genome is a flat list of L*N module ids, layer-major: gene ``l * N + n`` is the n-th module of
layer l. Mutation: every gene independently, with probability 1/(N*L), is shifted by a uniform
integer in [-2, 2] and clamped to [0, M-1] (the authors' code) or wrapped modulo M.

M may differ per layer (a library grown for a new task, see
:meth:`pathevo.modules.library.PathLibrary. grow`): every operator takes ``modules`` as one M for
all layers or as one M per layer.
"""

from __future__ import annotations

import random
from collections.abc import MutableSequence, Sequence

import torch

Modules = int | Sequence[int]
"""M: one number for every layer, or one per layer."""


def layer_sizes(modules: Modules, layers: int) -> list[int]:
    """M of each of the ``layers`` layers; a ValueError for a wrong count or a size below 1."""
    sizes = [modules] * layers if isinstance(modules, int) else list(modules)
    if len(sizes) != layers:
        raise ValueError(f"need one module count per layer: {len(sizes)} for {layers} layers")
    if min(sizes) <= 0:
        raise ValueError(f"every layer needs at least one module, got {sizes}")
    return sizes


def random_genome(layers: int, active: int, modules: Modules, rng: random.Random) -> list[int]:
    """L*N module ids, each uniformly random in [0, M_l - 1] of its layer l."""
    sizes = layer_sizes(modules, layers)
    return [rng.randrange(sizes[gene // active]) for gene in range(layers * active)]


def mutate_path(
    genome: MutableSequence[int],
    modules: Modules,
    rate: float,
    max_shift: int = 2,
    wrap: bool = False,
    rng: random.Random | None = None,
) -> tuple[MutableSequence[int]]:
    """Shift each gene with probability ``rate`` by U{-max_shift..max_shift}, clamped to (or
    wrapped around) its layer's [0, M_l - 1]; in place. Per-layer ``modules`` fix L, and so
    N = len(genome) / L.

    Returns a one-tuple, as DEAP mutation operators do.
    """
    rng = rng or random
    layers = 1 if isinstance(modules, int) else len(modules)
    sizes = layer_sizes(modules, layers)
    active = len(genome) // layers
    for index, gene in enumerate(genome):
        if rng.random() < rate:
            size = sizes[index // active]
            moved = gene + rng.randint(-max_shift, max_shift)
            genome[index] = moved % size if wrap else min(max(moved, 0), size - 1)
    return (genome,)


def genome_to_path(genome: Sequence[int], layers: int, active: int) -> torch.Tensor:
    """The flat genome as a path LongTensor [L, N]."""
    return torch.tensor(list(genome), dtype=torch.long).view(layers, active)


def check_genome(genome: Sequence[int], layers: int, active: int, modules: Modules) -> None:
    """A ValueError unless ``genome`` is L*N module ids, each in [0, M_l - 1] of its layer."""
    sizes = layer_sizes(modules, layers)
    genes = list(genome)
    if len(genes) != layers * active or not all(type(g) is int for g in genes):
        raise ValueError(f"a path genome is {layers * active} module ids, got {genes[:8]}")
    for index, gene in enumerate(genes):
        if not 0 <= gene < sizes[index // active]:
            raise ValueError(f"module id {gene} out of range [0, {sizes[index // active]})")


def path_modules(path: torch.Tensor) -> list[set[int]]:
    """The distinct module ids a path ([L, N]) uses in each layer."""
    return [set(row.tolist()) for row in path]


def module_usage(
    genomes: Sequence[Sequence[int]], layers: int, active: int, modules: Modules
) -> torch.Tensor:
    """How many genomes use each module: [L, max M_l] counts (a module counts once per genome;
    a layer with fewer modules has zeros beyond its last one)."""
    widest = max(layer_sizes(modules, layers))
    paths = torch.tensor([list(g) for g in genomes], dtype=torch.long).view(-1, layers, active)
    used = torch.zeros(len(genomes), layers, widest, dtype=torch.bool)
    used.scatter_(2, paths, True)
    return used.sum(0)
