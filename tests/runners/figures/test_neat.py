"""runners/figures/neat.py: CPPN graph layout, weight images, PNGs."""

import random

import torch

from pathevo.modules.cppn import CPPNGraph, CPPNNode, random_cppn
from pathevo.runners.figures.neat import depths, plot_cppn, plot_fitness, weight_image


def test_depths_put_nodes_after_their_deepest_source_and_outputs_last():
    nodes = (CPPNNode(0, "tanh", 0.0, 1.0), CPPNNode(5, "sin", 0.0, 1.0),
             CPPNNode(6, "gauss", 0.0, 1.0))  # fmt: skip
    graph = CPPNGraph(2, 1, nodes, ((-1, 5, 1.0), (5, 6, 1.0), (-2, 0, 1.0), (6, 0, -1.0)))
    assert depths(graph) == {-1: 0, -2: 0, 5: 1, 6: 2, 0: 3}


def test_weight_image_colours_by_sign():
    image = weight_image(torch.tensor([[2.0, -1.0, 0.0]]), cell=1)
    assert image.shape == (3, 1, 3)
    assert image[:, 0, 0].tolist() == [255, 0, 0]  # positive: red
    assert image[:, 0, 1].tolist() == [0, 0, 128]  # negative: blue, by magnitude
    assert image[:, 0, 2].tolist() == [0, 0, 0]  # unexpressed: black


def test_figures_are_written(tmp_path):
    graph = random_cppn(7, 4, random.Random(0), hidden=3)
    plot_cppn(tmp_path / "cppn.png", graph, "a CPPN")
    history = [{"max": 3.0, "mean": 1.0, "species": 2}, {"max": 4.0, "mean": 2.0, "species": 3}]
    plot_fitness(tmp_path / "fitness.png", history, "fitness")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cppn.png", "fitness.png"]
