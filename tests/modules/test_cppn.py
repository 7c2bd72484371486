"""Compiled CPPNs against the node-by-node reference and neat-python's FeedForwardNetwork."""

from __future__ import annotations

import multiprocessing
import pickle
import random
import types

import neat
import pytest
import torch
from neat.genome import DefaultGenome
from neat.innovation import InnovationTracker

from pathevo.modules.cppn import (
    ACTIVATIONS,
    AGGREGATIONS,
    CPPN_ACTIVATIONS,
    CPPNGraph,
    CPPNNode,
    compile_cppn,
    evaluation_layers,
    random_cppn,
    reference_cppn,
)

ALL_ACTIVATIONS = " ".join(ACTIVATIONS)
# Activations whose values stay bounded on deep random graphs (exp, cube, inv... overflow or
# blow up there, which says nothing about the compiler); they get their own grid test.
BOUNDED = "sin gauss sigmoid tanh abs identity relu clamped hat softplus lelu"


def genome_config(
    num_inputs: int, num_outputs: int, activations: str, aggregations: str = "sum"
) -> types.SimpleNamespace:
    """A neat-python config (``.genome_config``) built in code, no INI file."""
    params = {
        "num_inputs": num_inputs, "num_outputs": num_outputs, "num_hidden": 0,
        "feed_forward": "true", "initial_connection": "full_direct",
        "compatibility_disjoint_coefficient": 1.0, "compatibility_weight_coefficient": 0.5,
        "conn_add_prob": 0.5, "conn_delete_prob": 0.2, "node_add_prob": 0.4,
        "node_delete_prob": 0.1,
        "bias_init_mean": 0.0, "bias_init_stdev": 1.0, "bias_replace_rate": 0.1,
        "bias_mutate_rate": 0.7, "bias_mutate_power": 0.5, "bias_max_value": 5.0,
        "bias_min_value": -5.0,
        "response_init_mean": 1.0, "response_init_stdev": 0.3, "response_replace_rate": 0.1,
        "response_mutate_rate": 0.3, "response_mutate_power": 0.3, "response_max_value": 3.0,
        "response_min_value": -3.0,
        "activation_default": "random", "activation_options": activations,
        "activation_mutate_rate": 0.3,
        "aggregation_default": "random", "aggregation_options": aggregations,
        "aggregation_mutate_rate": 0.2,
        "weight_init_mean": 0.0, "weight_init_stdev": 1.0, "weight_replace_rate": 0.1,
        "weight_mutate_rate": 0.8, "weight_mutate_power": 0.5, "weight_max_value": 5.0,
        "weight_min_value": -5.0,
        "enabled_default": "true", "enabled_mutate_rate": 0.05,
    }  # fmt: skip
    config = DefaultGenome.parse_config({key: str(value) for key, value in params.items()})
    config.innovation_tracker = InnovationTracker()
    return types.SimpleNamespace(genome_config=config)


def mutated_genomes(config: types.SimpleNamespace, count: int, mutations: int, seed: int):
    """``count`` genomes, each mutated ``mutations`` times (hidden nodes, deep graphs, disabled
    and deleted connections, orphaned nodes). neat draws from the global ``random``."""
    random.seed(seed)
    for key in range(count):
        genome = DefaultGenome(key)
        genome.configure_new(config.genome_config)
        for _ in range(mutations):
            genome.mutate(config.genome_config)
        yield genome


def check_against_neat(config, genomes, num_inputs, num_outputs, dtype, atol) -> dict[str, int]:
    torch.manual_seed(0)
    seen = {"hidden": 0, "layers": 0, "disabled": 0}
    for genome in genomes:
        graph = CPPNGraph.from_genome(genome, num_inputs, num_outputs)
        network = neat.nn.FeedForwardNetwork.create(genome, config)
        # Queries representable in ``dtype``: the only difference left is arithmetic precision.
        queries = (torch.rand(40, num_inputs) * 2 - 1).to(dtype)  # [Q, inputs]
        rows = queries.tolist()
        expected = torch.tensor([network.activate(q) for q in rows], dtype=torch.float64)
        got = compile_cppn(graph)(queries).double()
        torch.testing.assert_close(got, expected, atol=atol, rtol=0)
        reference = torch.tensor([reference_cppn(graph, q) for q in rows], dtype=torch.float64)
        torch.testing.assert_close(reference, expected, atol=1e-12, rtol=0)
        seen["hidden"] = max(seen["hidden"], graph.num_nodes - num_outputs)
        seen["layers"] = max(seen["layers"], len(evaluation_layers(graph)))
        seen["disabled"] += sum(not gene.enabled for gene in genome.connections.values())
    return seen


# float32 against neat's float64: sin(5z) and friends amplify the ~1e-7 relative rounding of
# pre-activations of magnitude ~10 layer after layer, so deep graphs differ by up to ~1e-5
# (1.2e-5 is the largest seen on these genomes); float64 shows the semantics are exact.
FLOAT32_ATOL = 1e-4


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-10), (torch.float32, FLOAT32_ATOL)])
def test_compiled_equals_neat_feed_forward(dtype, atol):
    config = genome_config(7, 2, " ".join(CPPN_ACTIVATIONS))
    genomes = mutated_genomes(config, count=40, mutations=40, seed=1)
    seen = check_against_neat(config, genomes, 7, 2, dtype, atol=atol)
    # The mutations really produced hidden nodes, deep graphs and disabled connections.
    assert seen["hidden"] >= 10 and seen["layers"] >= 5 and seen["disabled"] > 0


def test_compiled_equals_neat_all_aggregations_float64():
    config = genome_config(5, 3, BOUNDED, " ".join(AGGREGATIONS))
    genomes = mutated_genomes(config, count=40, mutations=50, seed=2)
    seen = check_against_neat(config, genomes, 5, 3, torch.float64, atol=1e-10)
    assert seen["hidden"] >= 10 and seen["layers"] >= 5


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_matches_neat(name):
    neat_fn = neat.activations.ActivationFunctionSet().get(name)
    grid = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)
    grid = torch.cat([grid, torch.tensor([0.0, 1e-3, -1e-3, 20.0, -20.0], dtype=torch.float64)])
    if name == "exp":
        grid = torch.cat([grid, torch.tensor([59.0, 61.0, -61.0], dtype=torch.float64)])
    expected = torch.tensor([neat_fn(z) for z in grid.tolist()], dtype=torch.float64)
    torch.testing.assert_close(ACTIVATIONS[name](grid), expected, atol=1e-12, rtol=1e-12)
    got32 = ACTIVATIONS[name](grid.float()).double()
    torch.testing.assert_close(got32, expected, atol=1e-5, rtol=1e-5)


class _Gene(types.SimpleNamespace):
    pass


def _duck_genome(nodes, connections):
    """A stand-in for a DefaultGenome: ``nodes[k]`` and ``connections[(i, o)]`` genes."""
    return types.SimpleNamespace(
        nodes={
            k: _Gene(activation=a, bias=b, response=r, aggregation=g) for k, a, b, r, g in nodes
        },
        connections={key: _Gene(weight=w, enabled=e) for key, w, e in connections},
    )


def test_from_genome_semantics_match_neat_for_orphans_and_disabled():
    # Output 0 has no incoming connection (activation(bias)); output 1 is fed by hidden node 5,
    # which has no inputs (a "bias neuron") and by input -1 through a disabled connection;
    # hidden node 6 feeds nothing that matters; output 2 multiplies nothing (product -> 1).
    nodes = [
        (0, "sigmoid", 0.3, 1.0, "sum"),
        (1, "identity", 0.1, 2.0, "sum"),
        (2, "identity", 0.5, 1.5, "product"),
        (5, "gauss", 0.2, 1.0, "sum"),
        (6, "sin", 1.0, 1.0, "sum"),
    ]
    connections = [((5, 1), 0.7, True), ((-1, 1), 3.0, False), ((-2, 6), 1.0, True)]
    graph = CPPNGraph.from_genome(_duck_genome(nodes, connections), 2, 3)
    assert graph.num_nodes == 5 and graph.num_connections == 2
    sigmoid, gauss = ACTIVATIONS["sigmoid"], ACTIVATIONS["gauss"]
    expected = [
        float(sigmoid(torch.tensor(0.3, dtype=torch.float64))),
        0.1 + 2.0 * 0.7 * float(gauss(torch.tensor(0.2, dtype=torch.float64))),
        0.5 + 1.5 * 1.0,
    ]
    assert reference_cppn(graph, [0.4, -0.9]) == pytest.approx(expected, abs=1e-12)
    out = compile_cppn(graph)(torch.tensor([[0.4, -0.9], [0.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([expected, expected], dtype=torch.float64))
    assert [sorted(layer) for layer in evaluation_layers(graph)] == [[0, 2, 5], [1]]


def test_compiled_handles_any_batch_and_dtype():
    graph = random_cppn(7, 4, random.Random(3), hidden=10)
    cppn = compile_cppn(graph)
    queries = torch.rand(300, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = cppn(queries)
    assert out.shape == (300, 4) and out.dtype == torch.float32
    rows = queries.tolist()
    expected = torch.tensor([reference_cppn(graph, q) for q in rows], dtype=torch.float64)
    torch.testing.assert_close(out.double(), expected, atol=FLOAT32_ATOL, rtol=0)
    out64 = cppn(queries.double())
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64, expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(cppn(queries[:1]), out[:1])
    assert cppn(queries[:0]).shape == (0, 4)
    with torch.no_grad():
        torch.testing.assert_close(cppn(queries), out)
    with pytest.raises(ValueError, match="queries must be"):
        cppn(queries[:, :6])


def test_random_cppn_is_seeded_full_direct_and_valid():
    graph = random_cppn(7, 2, random.Random(5))
    assert graph == random_cppn(7, 2, random.Random(5))
    assert graph != random_cppn(7, 2, random.Random(6))
    assert graph.num_nodes == 2 and graph.num_connections == 14
    assert {n.activation for n in graph.nodes} <= set(CPPN_ACTIVATIONS)
    deep = random_cppn(7, 2, random.Random(5), activations=("tanh",), hidden=18)
    assert deep.num_nodes == 20 and {n.activation for n in deep.nodes} == {"tanh"}
    assert len(evaluation_layers(deep)) > 2
    with pytest.raises(ValueError):
        random_cppn(7, 2, random.Random(0), activations=("nope",))


def test_graph_validation():
    out = CPPNNode(0, "sin", 0.0, 1.0)
    hidden = CPPNNode(3, "sin", 0.0, 1.0)
    with pytest.raises(ValueError, match="missing"):
        CPPNGraph(2, 2, (out,), ())
    with pytest.raises(ValueError, match="activation"):
        CPPNGraph(1, 1, (CPPNNode(0, "swish", 0.0, 1.0),), ())
    with pytest.raises(ValueError, match="unknown nodes"):
        CPPNGraph(1, 1, (out,), ((-2, 0, 1.0),))
    cyclic = CPPNGraph(1, 1, (out, hidden), ((3, 0, 1.0), (0, 3, 1.0)))
    with pytest.raises(ValueError, match="cycle"):
        compile_cppn(cyclic)


def test_graph_dict_round_trip_and_pickle():
    graph = random_cppn(7, 2, random.Random(8), hidden=5)
    assert CPPNGraph.from_dict(graph.to_dict()) == graph
    cppn = compile_cppn(graph)
    queries = torch.rand(50, 7, generator=torch.Generator().manual_seed(1))
    before = cppn(queries)
    restored = pickle.loads(pickle.dumps(cppn))
    assert restored.graph == graph
    assert torch.equal(restored(queries), before)


def _evaluate_in_child(cppn, queries):
    return cppn(queries)


def test_compiled_cppn_crosses_a_spawned_process():
    graph = random_cppn(7, 2, random.Random(9), hidden=4)
    cppn = compile_cppn(graph)
    queries = torch.rand(20, 7, generator=torch.Generator().manual_seed(2))
    cppn(queries)  # build the cached tensors: they must not be what gets pickled
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got = pool.apply(_evaluate_in_child, (cppn, queries))
    assert torch.equal(got, cppn(queries))
