"""NEAT genome operators on neat-python genomes: innovation numbers, add-node, add-connection,
crossover alignment, compatibility distance."""

import copy
import random
from types import SimpleNamespace

import pytest
from neat.genes import DefaultConnectionGene
from neat.genome import DefaultGenome
from neat.nn import FeedForwardNetwork

from pathevo.evolution.cppn_genome import (
    CPPNNodeGene,
    crossover_genomes,
    genome_from_data,
    genome_to_data,
    is_acyclic,
    make_genome_config,
    mutate_add_node,
    mutate_genome,
    new_cppn_genome,
    seeded_random,
)
from pathevo.evolution.neat_config import BOUNDED_ACTIVATIONS, NeatConfig
from pathevo.evolution.speciation import compatibility_distance


def outputs(genome, config, inputs):
    net = FeedForwardNetwork.create(genome, SimpleNamespace(genome_config=config))
    return [net.activate(x) for x in inputs]


def innovations(genome):
    return {key: cg.innovation for key, cg in genome.connections.items()}


def twin(genome, config):
    other = copy.deepcopy(genome)
    other.key = config.innovation_tracker.new_genome_key()
    return other


def test_initial_connections_share_innovation_numbers():
    config = make_genome_config(NeatConfig(), 3, 2)
    with seeded_random(0):
        a, b = new_cppn_genome(config), new_cppn_genome(config)
    assert a.key != b.key
    assert innovations(a) == innovations(b)
    assert sorted(innovations(a).values()) == list(range(1, 7))


def test_same_split_shares_node_and_innovations_within_a_generation_only():
    config = make_genome_config(NeatConfig(), 2, 1)
    tracker = config.innovation_tracker
    with seeded_random(0):
        parent = new_cppn_genome(config)
    a, b, c = (twin(parent, config) for _ in range(3))
    with seeded_random(1):
        node_a = mutate_add_node(a, config)
    with seeded_random(1):
        node_b = mutate_add_node(b, config)
    assert node_a == node_b
    assert innovations(a) == innovations(b)
    tracker.reset_generation()
    with seeded_random(1):
        node_c = mutate_add_node(c, config)
    assert node_c != node_a
    new_a = set(innovations(a).values()) - set(innovations(parent).values())
    new_c = set(innovations(c).values()) - set(innovations(parent).values())
    assert len(new_a) == len(new_c) == 2
    assert min(new_c) > max(new_a)


def test_same_added_connection_shares_innovation_within_a_generation_only():
    config = make_genome_config(NeatConfig(conn_add_prob=1.0), 2, 1)
    tracker = config.innovation_tracker
    with seeded_random(0):
        parent = new_cppn_genome(config)
        mutate_add_node(parent, config)
    tracker.reset_generation()
    for seed in range(100):  # find a draw that adds a connection
        probe = twin(parent, config)
        before = set(probe.connections)
        with seeded_random(seed):
            probe.mutate_add_connection(config)
        if set(probe.connections) != before:
            break
    (added,) = set(probe.connections) - before
    tracker.reset_generation()
    a, b, c = (twin(parent, config) for _ in range(3))
    for genome in (a, b):
        with seeded_random(seed):
            genome.mutate_add_connection(config)
    assert a.connections[added].innovation == b.connections[added].innovation
    tracker.reset_generation()
    with seeded_random(seed):
        c.mutate_add_connection(config)
    assert c.connections[added].innovation > a.connections[added].innovation


def test_add_node_with_identity_preserves_the_function():
    cfg = NeatConfig(activation_options=("identity",), conn_add_prob=0.5)
    config = make_genome_config(cfg, 3, 2)
    rng = random.Random(0)
    inputs = [[rng.uniform(-2, 2) for _ in range(3)] for _ in range(50)]
    with seeded_random(3):
        genome = new_cppn_genome(config)
        for step in range(30):
            mutate_genome(genome, config, node_add_prob=0.0)  # weights, biases, connections
            before = outputs(genome, config, inputs)
            node = mutate_add_node(genome, config)
            assert node is not None
            gene = genome.nodes[node]
            assert (gene.bias, gene.response, gene.activation) == (0.0, 1.0, "identity")
            after = outputs(genome, config, inputs)
            for x, y in zip(before, after, strict=True):
                assert x == pytest.approx(y, abs=1e-12), step
    assert len(genome.nodes) == 2 + 30


def test_output_nodes_draw_bounded_activations_hidden_nodes_the_hidden_options():
    cfg = NeatConfig(activation_mutate_rate=0.5)
    assert set(cfg.output_activation_options) <= set(BOUNDED_ACTIVATIONS)
    config = make_genome_config(cfg, 2, 3)
    hidden_seen = set()
    with seeded_random(0):
        for _ in range(10):
            genome = new_cppn_genome(config)
            for _ in range(20):
                mutate_genome(genome, config, node_add_prob=0.5)
            for key, node in genome.nodes.items():
                if key < 3:
                    assert node.activation in cfg.output_activation_options
                else:
                    assert node.activation in cfg.activation_options
                    hidden_seen.add(node.activation)
    assert hidden_seen == set(cfg.activation_options)


def test_add_connection_never_creates_cycles():
    config = make_genome_config(NeatConfig(conn_add_prob=1.0, enabled_mutate_rate=0.2), 3, 2)
    with seeded_random(0):
        for _ in range(10):
            genome = new_cppn_genome(config)
            for _ in range(40):
                mutate_genome(genome, config, node_add_prob=0.3)
                assert is_acyclic(genome)
                FeedForwardNetwork.create(genome, SimpleNamespace(genome_config=config))
    assert len(genome.connections) > 20


def test_is_acyclic_detects_a_cycle():
    config = make_genome_config(NeatConfig(), 1, 1)
    with seeded_random(0):
        genome = new_cppn_genome(config)
        genome.nodes[1] = DefaultGenome.create_node(config, 1)
        genome.add_connection(config, 0, 1, 1.0, True, innovation=100)
        assert is_acyclic(genome)
        genome.add_connection(config, 1, 0, 1.0, False, innovation=101)  # disabled still counts
    assert not is_acyclic(genome)


def parents_with_disjoint_genes(config):
    """Two genomes sharing the initial genes, each with genes of its own; weights 1 vs 2."""
    with seeded_random(0):
        a = new_cppn_genome(config)
        b = twin(a, config)
        mutate_add_node(a, config)
        mutate_add_node(b, config)
        mutate_add_node(b, config)
    for genome, weight in ((a, 1.0), (b, 2.0)):
        for cg in genome.connections.values():
            cg.weight, cg.enabled = weight, True
    return a, b


def test_crossover_aligns_by_innovation():
    config = make_genome_config(NeatConfig(), 2, 1)
    a, b = parents_with_disjoint_genes(config)
    matching = set(a.connections) & set(b.connections)
    assert matching and set(a.connections) - matching and set(b.connections) - matching
    weights_seen = set()
    with seeded_random(0):
        for key in range(50):
            child = crossover_genomes(a, 1.0, b, 0.0, key, config)
            assert innovations(child) == innovations(a)  # disjoint/excess from the fitter only
            assert set(child.nodes) == set(a.nodes)
            for k in set(a.connections) - matching:
                assert child.connections[k].weight == 1.0
            weights_seen |= {child.connections[k].weight for k in matching}
            child = crossover_genomes(a, 0.0, b, 1.0, key, config)
            assert innovations(child) == innovations(b)
    assert weights_seen == {1.0, 2.0}  # matching genes come from either parent


def hand_genome(config, key, nodes, connections):
    genome = DefaultGenome(key)
    for node_key, (bias, activation) in nodes.items():
        node = CPPNNodeGene(node_key)
        node.bias, node.response, node.activation = bias, 1.0, activation
        node.aggregation, node.time_constant = "sum", 1.0
        genome.nodes[node_key] = node
    for conn_key, (innovation, weight, enabled) in connections.items():
        gene = DefaultConnectionGene(conn_key, innovation=innovation)
        gene.weight, gene.enabled = weight, enabled
        genome.connections[conn_key] = gene
    return genome


def test_compatibility_distance_matches_hand_computation():
    config = make_genome_config(NeatConfig(disjoint_coefficient=1.0, weight_coefficient=0.5), 2, 1)
    g1 = hand_genome(
        config, 0, {0: (0.5, "tanh")}, {(-1, 0): (1, 1.0, True), (-2, 0): (2, 0.5, True)}
    )
    g2 = hand_genome(
        config,
        1,
        {0: (-0.5, "sin"), 3: (0.0, "gauss")},
        {(-1, 0): (1, 0.0, False), (-2, 3): (5, 1.0, True), (3, 0): (6, 0.5, True)},
    )
    # nodes: matching 0: c_w * (|0.5 + 0.5| + [tanh != sin]) = 0.5 * 2 = 1; one disjoint (3);
    #        N = 2 -> (1 + 1 * 1) / 2 = 1.
    # connections: matching (-1, 0): c_w * (|1 - 0| + [enabled differs]) = 1; disjoint (-2, 0),
    #        (-2, 3), (3, 0); N = 3 -> (1 + 1 * 3) / 3 = 4 / 3.
    expected = 1.0 + 4.0 / 3.0
    assert compatibility_distance(g1, g2, config) == pytest.approx(expected)
    assert compatibility_distance(g2, g1, config) == pytest.approx(expected)
    assert compatibility_distance(g1, g1, config) == 0.0


def test_genome_to_data_and_back_is_exact():
    """Plain data (ints, floats, strings, lists): every gene's attributes, innovation numbers,
    the genes' order (neat sums in that order), the key and neat's fitness come back equal."""
    config = make_genome_config(NeatConfig(), 3, 2)
    with seeded_random(4):
        genome = new_cppn_genome(config)
        for _ in range(5):
            mutate_genome(genome, config, node_add_prob=0.5)
    genome.fitness = 0.75
    data = genome_to_data(genome)
    assert all(type(v) in (int, float, str, bool, type(None)) for _, a in data["nodes"]
               for v in a.values())  # fmt: skip
    again = genome_from_data(data)
    assert type(again.nodes[0]) is CPPNNodeGene
    assert str(again) == str(genome) and again.fitness == 0.75 and again.key == genome.key
    assert list(again.nodes) == list(genome.nodes)
    assert list(again.connections) == list(genome.connections)
    assert innovations(again) == innovations(genome)
    assert compatibility_distance(again, genome, config) == 0.0
    inputs = [[0.1, -0.5, 0.9], [1.0, 0.0, -1.0]]
    assert outputs(again, config, inputs) == outputs(genome, config, inputs)
    assert genome_to_data(again) == data
