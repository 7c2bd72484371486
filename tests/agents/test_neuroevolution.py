"""agents/neuroevolution.py: the HyperNEAT substrate policy and its fitness."""

import random

import numpy as np
import pytest
import torch

from pathevo.agents.neuroevolution import (
    CPPN_INPUTS,
    CPPN_OUTPUTS,
    FitnessTask,
    HyperNEATConfig,
    SubstratePolicy,
    clear_worker_cache,
    episode_seed,
    evaluate_graph,
    genome_fitness,
    observation_features,
    substrate_shape,
)
from pathevo.agents.registry import agent_names, get_agent
from pathevo.evolution.neat_config import NeatConfig
from pathevo.evolution.toolbox import make_neat_toolbox
from pathevo.modules.cppn import compile_cppn, random_cppn
from pathevo.modules.substrate import grid_positions, linear_weights


def test_substrate_shapes_follow_the_observation():
    assert substrate_shape((4,), 16) == (4,)
    assert substrate_shape((4, 10, 10), 16) == (4, 10, 10)  # MinAtar: a grid per channel
    assert substrate_shape((4, 84, 84), 12) == (12, 12)  # a screen: the latest frame, downsampled
    with pytest.raises(ValueError, match="unsupported observation shape"):
        substrate_shape((3, 4), 16)


def test_screen_features_are_the_latest_frame_area_averaged():
    frames = np.zeros((4, 84, 84), dtype=np.uint8)
    frames[-1, :42, :] = 255  # top half white in the latest frame only
    features = observation_features(frames, (4, 84, 84), 2)
    assert features.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_the_policy_carries_exactly_the_weights_its_cppn_paints():
    cfg = HyperNEATConfig(hidden=(2, 3))
    policy = SubstratePolicy((4,), 2, cfg)
    graph = random_cppn(CPPN_INPUTS, CPPN_OUTPUTS, random.Random(1), hidden=3)
    policy.express(graph)
    cppn = compile_cppn(graph)
    line, hidden, actions = grid_positions((4,)), grid_positions((2, 3)), grid_positions((2,))
    w0, b0 = linear_weights(cppn, line, hidden, 0, cfg.threshold, cfg.max_weight)
    w1, b1 = linear_weights(cppn, hidden, actions, 1, cfg.threshold, cfg.max_weight)
    layers = policy.library.layers
    assert torch.equal(layers[0].weights[0], w0) and torch.equal(layers[0].biases[0], b0)
    assert torch.equal(layers[1].weights[0], w1) and torch.equal(layers[1].biases[0], b1)
    x = torch.randn(5, 4)
    expected = torch.relu(x @ w0.T + b0) @ w1.T + b1
    torch.testing.assert_close(policy(x), expected)


def test_genome_fitness_depends_on_the_genome_not_on_the_call():
    toolbox = make_neat_toolbox(NeatConfig(population=4, target_species=2), CPPN_INPUTS,
                                CPPN_OUTPUTS, rng=random.Random(0))  # fmt: skip
    genomes = toolbox.population(n=4)
    task = FitnessTask("CartPole-v1", (4,), 2, HyperNEATConfig(episodes=2), seed=5)
    first = [genome_fitness(task, genome) for genome in genomes]
    clear_worker_cache()  # a fresh worker process scores them alike
    assert [genome_fitness(task, genome) for genome in reversed(genomes)] == first[::-1]
    assert all(1.0 <= value <= 500.0 for (value,) in first)
    assert episode_seed(5, 1, 0) != episode_seed(5, 2, 0) != episode_seed(5, 1, 1)


def test_evaluation_episodes_are_capped():
    task = FitnessTask("CartPole-v1", (4,), 2, HyperNEATConfig(max_episode_steps=7), seed=0)
    graph = random_cppn(CPPN_INPUTS, CPPN_OUTPUTS, random.Random(0))
    assert all(value <= 7 for value in evaluate_graph(task, graph, seed=0, episodes=3))
    clear_worker_cache()


def test_hyperneat_registers_as_a_neuroevolution_agent():
    assert agent_names(trainer="neuroevolution") == ["hyperneat"]
    assert "hyperneat" not in agent_names(trainer="a3c")
    agent = get_agent("hyperneat", trainer="neuroevolution")
    assert agent.worker is genome_fitness and not agent.evolves_paths

    class Settings:
        hyperneat = HyperNEATConfig(hidden=(3,))

    policy = agent.build(Settings(), (4, 10, 10), 3)
    assert isinstance(policy, SubstratePolicy) and policy.input_shape == (4, 10, 10)
    with pytest.raises(ValueError, match="unknown agent 'hyperneat'"):
        get_agent("hyperneat", trainer="a3c")


@pytest.mark.parametrize(
    "bad", [{"hidden": ()}, {"hidden": (0,)}, {"screen": 0}, {"threshold": 1.0},
            {"max_weight": 0.0}, {"episodes": 0}],
)  # fmt: skip
def test_bad_settings_are_one_line_errors(bad):
    with pytest.raises(ValueError, match="hyperneat"):
        HyperNEATConfig(**bad)
