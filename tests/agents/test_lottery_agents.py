"""agents/lottery_agents.py: per-layer prune rates, how each condition starts (the permuted
control included), the image classifier's early stopping, and the LeNet agent's registration."""

import copy

import pytest
import torch

from pathevo.agents import lottery_agents as la
from pathevo.agents.a3c import A3CNet
from pathevo.agents.registry import get_agent
from pathevo.envs.digits import BinaryTask
from pathevo.modules import pruning
from pathevo.modules.lenet import LeNet


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _lenet(seed: int = 0) -> tuple[LeNet, list[pruning.PruneTarget]]:
    torch.manual_seed(seed)
    net = LeNet(64, 10)
    targets = la.prune_targets(net, "network")
    pruning.attach_masks(targets)
    return net, targets


def test_lenet_rates_give_the_papers_remaining_fractions_over_rounds():
    """20% of each hidden layer's remaining weights a round, 10% of the output layer's: after r
    rounds 0.8^r and 0.9^r of them remain (exact counts, rounded each round), and 14 rounds
    bring the network below 5% (Frankle & Carbin's LeNet figures reach 3.6%)."""
    net, targets = _lenet()
    fractions = la.prune_fractions(net, targets, hidden=0.2, output=0.1)
    assert fractions == [0.2, 0.2, 0.1]
    sizes = [m.weight_orig.numel() for m, _ in targets]  # 64*300, 300*100, 100*10
    kept = list(sizes)
    for r in range(1, 15):
        pruning.magnitude_prune(targets, fractions, "layer")
        kept = [n - round(f * n) for n, f in zip(kept, fractions, strict=True)]
        assert [int(mask.sum()) for mask in pruning.masks(targets)] == kept
        shares = [n / size for n, size in zip(kept, sizes, strict=True)]
        assert shares == pytest.approx([0.8**r, 0.8**r, 0.9**r], abs=r / 1000)
        assert pruning.sparsity(targets) == pytest.approx(1 - sum(kept) / sum(sizes))
    assert 1 - pruning.sparsity(targets) < 0.05


def test_output_rate_goes_to_an_a3c_networks_policy_and_value_layers():
    model = A3CNet((4,), 3, hidden=16)
    targets = la.prune_targets(model, "network")
    heads = {id(module) for module, _ in pruning.head_targets(model)}
    fractions = la.prune_fractions(model, targets, hidden=0.2, output=0.1)
    assert [0.1 if id(m) in heads else 0.2 for m, _ in targets] == fractions
    assert fractions.count(0.1) == 2  # policy and value


def _start(condition: str) -> tuple[list, ...]:
    """A LeNet pruned to 50% per layer, its rewound weights and mask, then ``condition``'s start:
    (rewound weights, ticket masks, the condition's masks, its weights, the fresh draw)."""
    net, targets = _lenet()
    rewound = pruning.weights_snapshot(targets)
    trained = copy.deepcopy(rewound)
    for weight in trained:
        weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(1)))
    pruning.rewind(targets, trained)  # a "trained" network to prune
    pruning.magnitude_prune(targets, 0.5, "layer")
    mask = pruning.masks(targets)
    fresh = pruning.weights_snapshot(_lenet(seed=99)[1])
    la.CONDITION_STARTS[condition](targets=targets, rewound=rewound, fresh=lambda: fresh, seed=5)
    return rewound, mask, pruning.masks(targets), pruning.weights_snapshot(targets), fresh


@pytest.mark.parametrize("condition", list(la.CONDITION_STARTS))
def test_each_condition_starts_from_its_mask_and_weights(condition):
    rewound, ticket_mask, mask, weights, fresh = _start(condition)
    random = condition in ("random_mask", "random_reinit")
    source = fresh if condition in ("reinit", "random_reinit") else rewound
    for old_mask, new_mask, weight, start, values in zip(
        ticket_mask, mask, weights, rewound, source, strict=True
    ):
        alive = new_mask != 0
        assert int(old_mask.sum()) == int(new_mask.sum())  # same count per layer
        assert torch.equal(old_mask, new_mask) != random
        assert bool((weight[~alive] == 0).all())
        if condition == "permuted":
            assert torch.equal(weight[alive].sort().values, start[alive].sort().values)
            assert not torch.equal(weight[alive], start[alive])
        else:
            assert torch.equal(weight[alive], values[alive])


def _splits(classes: int = 3, n: int = 90) -> la.ImageSplits:
    """Separable toy data: the class is the brightest of the first ``classes`` inputs."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    x = torch.rand(n, 8, generator=generator) * 0.3
    x[torch.arange(n), y] += 0.7
    task = BinaryTask("toy/all", x, y, classes)
    return la.ImageSplits(task, copy.deepcopy(task), copy.deepcopy(task))


def test_train_classifier_stops_early_at_the_minimum_validation_loss(monkeypatch):
    data = _splits()
    torch.manual_seed(0)
    net = LeNet(8, 3, hidden=(16,))
    pruning.attach_masks(la.prune_targets(net, "network"))
    cfg = la.DigitsConfig(optimizer="adam", learning_rate=0.05, batch_size=8, noise=0.0,
                          eval_every=7)  # fmt: skip
    losses: list[tuple[int, float]] = []
    steps: list[int] = []
    real = la.evaluate

    def recording(forward, task):
        loss, accuracy = real(forward, task)
        if task is data.validation:
            losses.append((steps[-1], loss))
        return loss, accuracy

    monkeypatch.setattr(la, "evaluate", recording)
    last: dict = {}

    def on_batch(*, step: int, accuracy: float) -> None:
        steps.append(step)
        if step == 40:
            last.update(copy.deepcopy(net.state_dict()))

    measured = la.train_classifier(net, data, cfg, 5, 40, seed=0, active=1, on_batch=on_batch)
    assert steps == list(range(6, 41))  # counted from the dense start: a rewound training's
    assert [step for step, _ in losses] == [7, 14, 21, 28, 35, 40]  # every 7 and the last
    best_step, best_loss = min(losses, key=lambda pair: pair[1])
    assert measured["early_stop_step"] == best_step
    assert measured["validation_loss"] == pytest.approx(best_loss)
    assert 0.0 <= measured["test_accuracy"] <= 1.0 and measured["final_test_accuracy"] > 0.9
    for key, value in net.state_dict().items():  # the final weights, not the early-stop ones
        assert torch.equal(value, last[key]), key


def test_image_task_ids_and_digits_config_errors():
    assert la.image_task("fashion/all") == "fashion/all"
    assert la.image_task("fashion/4v6") == "fashion/coat-v-shirt"
    assert la.image_task("CartPole-v1") is None
    for kwargs, message in (({"optimizer": "rmsprop"}, "unknown digits optimizer 'rmsprop'"),
                            ({"validation": 0.0}, "validation must lie in"),
                            ({"eval_every": 0}, "must be positive")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            la.DigitsConfig(**kwargs)


def test_lenet_is_a_supervised_agent_with_the_papers_settings():
    agent = get_agent("lenet")
    assert agent.trainer == "supervised" and not agent.evolves_paths
    net = agent.build_for_task(None, (784,), 10, "fashion/all")
    assert isinstance(net, LeNet) and net.task_logits(torch.zeros(1, 784)).shape == (1, 10)
    assert agent.defaults["digits.optimizer"] == "adam"
    assert agent.defaults["digits.learning_rate"] == 1.2e-3
    assert agent.defaults["digits.batch_size"] == 60
    assert (agent.defaults["prune_fraction"], agent.defaults["output_prune_fraction"]) == (0.2, 0.1)
