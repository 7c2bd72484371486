"""LeNet-300-100 (Frankle & Carbin 2019): its shapes, Gaussian Glorot initialisation, and which
layers the pruning helpers see as hidden and output."""

import math

import pytest
import torch

from pathevo.modules.lenet import LeNet
from pathevo.modules.pruning import head_targets, network_targets


def test_lenet_300_100_shapes_and_layers():
    net = LeNet(784, 10)
    assert net.task_logits(torch.rand(5, 784)).shape == (5, 10)
    linears = [module for module, _ in network_targets(net)]
    assert [tuple(m.weight.shape) for m in linears] == [(300, 784), (100, 300), (10, 100)]
    assert sum(m.weight.numel() for m in linears) == 266_200
    assert [module for module, _ in head_targets(net)] == [net.head]  # the output layer alone
    assert net.library is None


def test_gaussian_glorot_initialisation_and_zero_biases():
    torch.manual_seed(0)
    net = LeNet(784, 10)
    for module, _ in network_targets(net):
        fan_out, fan_in = module.weight.shape
        expected = math.sqrt(2.0 / (fan_in + fan_out))
        assert float(module.weight.detach().std()) == pytest.approx(expected, rel=0.1)
        assert bool((module.bias == 0).all())


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="positive"):
        LeNet(784, 0)
    with pytest.raises(ValueError, match="positive"):
        LeNet(784, 10, hidden=(300, 0))
