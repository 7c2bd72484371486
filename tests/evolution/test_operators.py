"""PathNet mutation: rate 1/(N*L), shifts in [-2, 2], bounds (clamp or wrap)."""

import random
from collections import Counter

import pytest
import torch

from pathevo.evolution.config import EvoConfig
from pathevo.evolution.operators import genome_to_path, module_usage, mutate_path, random_genome
from pathevo.evolution.toolbox import PathGenome, make_toolbox


def test_mutation_rate_is_one_over_n_times_l():
    cfg = EvoConfig(layers=3, modules=10, active=3)
    rng = random.Random(0)
    trials, changed_or_hit = 20000, 0
    # Genes in the middle of the range never clamp, so a changed gene means a non-zero shift.
    for _ in range(trials):
        genome = [5] * 9
        mutate_path(genome, cfg.modules, cfg.mutation_rate, rng=rng)
        changed_or_hit += sum(g != 5 for g in genome)
    # P(changed) = rate * P(shift != 0) = (1/9) * (4/5)
    expected = trials * 9 * (1 / 9) * (4 / 5)
    assert abs(changed_or_hit - expected) < 4 * expected**0.5


def test_shifts_are_uniform_integers_in_minus_two_to_two():
    rng = random.Random(1)
    shifts = Counter()
    for _ in range(20000):
        genome = [5]
        mutate_path(genome, 10, rate=1.0, rng=rng)
        shifts[genome[0] - 5] += 1
    assert set(shifts) == {-2, -1, 0, 1, 2}
    for count in shifts.values():
        assert abs(count - 4000) < 4 * 4000**0.5


def test_clamped_mutation_stays_in_range_and_piles_up_at_the_edges():
    rng = random.Random(2)
    results = Counter()
    for _ in range(5000):
        genome = [0, 9]
        mutate_path(genome, 10, rate=1.0, rng=rng)
        results.update(genome)
    assert min(results) == 0 and max(results) == 9
    assert results[0] > results[1]  # -1 and -2 both clamp to 0 (3 of 5 shifts land on 0)


def test_wrapped_mutation_goes_around():
    rng = random.Random(3)
    seen = set()
    for _ in range(2000):
        genome = [0]
        mutate_path(genome, 10, rate=1.0, wrap=True, rng=rng)
        seen.add(genome[0])
    assert seen == {8, 9, 0, 1, 2}


def test_toolbox_mutation_uses_the_paper_rate_and_returns_a_tuple():
    cfg = EvoConfig(layers=4, modules=10, active=4)
    toolbox = make_toolbox(cfg, rng=random.Random(4))
    genome = toolbox.genome()
    assert isinstance(genome, PathGenome) and len(genome) == 16
    assert all(0 <= g < 10 for g in genome)
    (mutated,) = toolbox.mutate(toolbox.clone(genome))
    assert isinstance(mutated, PathGenome)
    assert toolbox.mutate.keywords["rate"] == pytest.approx(1 / 16)


def test_genome_to_path_is_layer_major():
    path = genome_to_path([1, 2, 3, 4, 5, 6], layers=3, active=2)
    assert path.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert path.dtype == torch.long


def test_module_usage_counts_each_module_once_per_genome():
    usage = module_usage([[0, 0, 1, 2], [0, 3, 1, 1]], layers=2, active=2, modules=4)
    assert usage.tolist() == [[2, 0, 0, 1], [0, 2, 1, 0]]


def test_random_genome_reproducible():
    assert random_genome(3, 3, 10, random.Random(5)) == random_genome(3, 3, 10, random.Random(5))


@pytest.mark.parametrize(
    "kwargs", [{"active": 11}, {"layers": 0}, {"population": 1}, {"modules": -1}]
)
def test_bad_configs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        EvoConfig(**kwargs)


def test_per_layer_sizes_bound_each_layers_genes():
    # A grown library: layer 0 has 3 modules, layer 1 has 7 (N = 2 each).
    rng = random.Random(6)
    sizes = [3, 7]
    seen = [set(), set()]
    for _ in range(2000):
        genome = random_genome(2, 2, sizes, rng)
        mutate_path(genome, sizes, rate=1.0, rng=rng)
        for index, gene in enumerate(genome):
            seen[index // 2].add(gene)
    assert seen == [set(range(3)), set(range(7))]


def test_per_layer_clamp_and_wrap_use_the_genes_own_layer():
    rng = random.Random(7)
    clamped, wrapped = set(), set()
    for _ in range(2000):
        genome = [2, 2, 2, 2]  # the last module of layer 0 (M=3); mid-range in layer 1 (M=6)
        mutate_path(genome, [3, 6], rate=1.0, rng=rng)
        clamped.update(genome[:2])
        wrapped_genome = [2, 2, 5, 5]
        mutate_path(wrapped_genome, [3, 6], rate=1.0, wrap=True, rng=rng)
        wrapped.update(wrapped_genome[:2])
        assert all(0 <= g < 6 for g in genome[2:] + wrapped_genome[2:])
    assert clamped == {0, 1, 2}  # +1 and +2 clamp to 2
    assert wrapped == {0, 1, 2}  # 2+1 -> 0, 2+2 -> 1 modulo 3


def test_one_size_for_every_layer_draws_as_before():
    assert random_genome(3, 2, 10, random.Random(8)) == random_genome(
        3, 2, [10, 10, 10], random.Random(8)
    )


def test_module_usage_pads_smaller_layers_with_zeros():
    usage = module_usage([[0, 2, 4, 1], [1, 1, 3, 4]], layers=2, active=2, modules=[3, 5])
    assert usage.tolist() == [[1, 1, 1, 0, 0], [0, 1, 0, 1, 2]]


def test_toolbox_takes_per_layer_sizes_and_refuses_a_layer_smaller_than_n():
    cfg = EvoConfig(layers=2, modules=3, active=2)
    toolbox = make_toolbox(cfg, rng=random.Random(9), sizes=[3, 8])
    genes = [toolbox.genome() for _ in range(500)]
    assert max(g[2] for g in genes) == 7 and max(g[0] for g in genes) == 2
    assert toolbox.mutate.keywords["modules"] == [3, 8]
    with pytest.raises(ValueError, match="N=2"):
        make_toolbox(cfg, sizes=[1, 8])
    with pytest.raises(ValueError, match="one module count per layer"):
        make_toolbox(cfg, sizes=[3, 3, 3])
