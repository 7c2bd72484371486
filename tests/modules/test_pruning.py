"""Lottery-ticket pruning: mask maths, zeros that stay zero, rewinding and the controls."""

import copy
import functools
import pickle

import pytest
import torch
from torch import nn

from pathevo.agents.a3c import A3CConfig, A3CNet, WorkerSpec, a3c_worker
from pathevo.agents.pathnet_a3c import PathNetA3C, PathNetA3CConfig, pathnet_library
from pathevo.agents.processes import WorkerGroup, worker_process
from pathevo.agents.shared_optim import apply_gradients, make_shared_optimizer
from pathevo.modules.actor_critic import ActorCriticHead
from pathevo.modules.pruning import (
    attach_for_state_dict,
    attach_masks,
    effective_weight,
    head_targets,
    keep_pruned_zero,
    library_targets,
    magnitude_prune,
    masks,
    network_targets,
    permute_survivors,
    pruned_head_factory,
    pruned_targets,
    random_masks,
    reinitialise,
    rewind,
    sparsity,
    weights_snapshot,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one thread is faster, and steadier on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _net(seed: int = 0, **kw) -> A3CNet:
    torch.manual_seed(seed)
    return A3CNet((4,), 3, hidden=32, **kw)


def _pathnet(seed: int = 0) -> PathNetA3C:
    torch.manual_seed(seed)
    library = pathnet_library((4,), PathNetA3CConfig(layers=2, modules=3, active=2, units=16))
    model = PathNetA3C(library, (4,), lstm=8)
    model.add_task("a", 2)
    model.add_task("b", 3)
    return model


def _pruned_entries(targets) -> list[torch.Tensor]:
    pairs = zip(targets, masks(targets), strict=True)
    return [effective_weight(m, n)[mask == 0] for (m, n), mask in pairs]


def _assert_pruned_zero(targets) -> None:
    for values in _pruned_entries(targets):
        assert values.numel() == 0 or bool((values == 0).all())


def _obs(steps: int = 5, batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(steps, batch, 4), torch.zeros(steps, batch, dtype=torch.bool)


# --- targets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("core", ["lstm", "hyperlstm"])
def test_head_targets_are_policy_and_value_without_the_lstm(core):
    cfg = A3CConfig(lstm=8, core=core, hidden=32)
    model = A3CNet((4,), 3, hidden=32, lstm=8, head_factory=cfg.head_factory())
    targets = head_targets(model)
    assert targets == [(model.head.policy, "weight"), (model.head.value, "weight")]
    network = network_targets(model)
    assert len(network) == 4 and network[-2:] == targets  # two torso Linears, then the head's


def test_head_targets_of_pathnet_cover_every_task_head_and_no_library():
    model = _pathnet()
    targets = head_targets(model)
    expected = [(model.heads[t].policy, "weight") for t in "ab"]
    expected += [(model.heads[t].value, "weight") for t in "ab"]
    assert sorted(map(id, (m for m, _ in targets))) == sorted(map(id, (m for m, _ in expected)))
    assert network_targets(model) == targets  # the library is not a network target
    assert len(library_targets(model.library)) == 2 * 3


def test_network_targets_include_conv_torsos():
    model = A3CNet((4, 10, 10), 3, hidden=32)
    kinds = [type(module) for module, _ in network_targets(model)]
    assert kinds == [nn.Conv2d, nn.Linear, nn.Linear, nn.Linear]


# --- mask maths ------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_each_round_prunes_exactly_the_fraction_of_the_remaining(scope):
    model = A3CNet((4, 10, 10), 3, hidden=32)
    targets = network_targets(model)
    attach_masks(targets)
    total = sum(m.weight_orig.numel() for m, _ in targets)
    per_layer = [m.weight_orig.numel() for m, _ in targets]
    fraction, rounds = 0.2, 6
    for r in range(1, rounds + 1):
        magnitude_prune(targets, fraction, scope)
        if scope == "global":
            per_layer = [sum(per_layer) - round(fraction * sum(per_layer))]
        else:
            per_layer = [n - round(fraction * n) for n in per_layer]
        kept = [int(mask.sum()) for mask in masks(targets)]
        assert (sum(kept) if scope == "global" else kept) == (
            per_layer[0] if scope == "global" else per_layer
        )
        ideal = (1 - fraction) ** r * total
        assert abs(sum(kept) - ideal) <= r * (len(targets) if scope == "layer" else 1)
        assert sparsity(targets) == pytest.approx(1 - sum(kept) / total)
    _assert_pruned_zero(targets)


def test_magnitude_prune_removes_the_smallest_and_breaks_ties_by_position():
    layer = nn.Linear(4, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(16.0).view(4, 4) - 7.5)
    before = layer.weight.detach().clone()
    targets = [(layer, "weight")]
    attach_masks(targets)
    magnitude_prune(targets, 0.25)
    (mask,) = masks(targets)
    assert before[mask == 0].abs().max() <= before[mask == 1].abs().min()
    ties = nn.Linear(3, 2)
    nn.init.constant_(ties.weight, 0.5)
    attach_masks([(ties, "weight")])
    magnitude_prune([(ties, "weight")], 0.5)
    assert masks([(ties, "weight")])[0].flatten().tolist() == [0, 0, 0, 1, 1, 1]


def test_global_scope_ranks_across_layers():
    small, large = nn.Linear(4, 4), nn.Linear(4, 4)
    with torch.no_grad():
        small.weight.uniform_(-0.01, 0.01)
        large.weight.uniform_(1.0, 2.0)
    targets = [(small, "weight"), (large, "weight")]
    attach_masks(targets)
    magnitude_prune(targets, 0.5, "global")
    assert [int(mask.sum()) for mask in masks(targets)] == [0, 16]


def test_per_layer_fractions_prune_each_layer_at_its_own_rate():
    """Frankle & Carbin's LeNet rates: 20% of each hidden layer's remaining weights a round, 10%
    of the output layer's; each layer's count follows its own geometric sequence exactly."""
    layers = [nn.Linear(20, 30), nn.Linear(30, 10), nn.Linear(10, 5)]
    targets = [(layer, "weight") for layer in layers]
    attach_masks(targets)
    fractions = [0.2, 0.2, 0.1]
    kept = [layer.weight_orig.numel() for layer in layers]
    for _ in range(8):
        magnitude_prune(targets, fractions, "layer")
        kept = [n - round(f * n) for n, f in zip(kept, fractions, strict=True)]
        assert [int(mask.sum()) for mask in masks(targets)] == kept
    shares = [n / layer.weight_orig.numel() for n, layer in zip(kept, layers, strict=True)]
    assert shares == pytest.approx([0.8**8, 0.8**8, 0.9**8], abs=0.02)  # rounding: 50 weights
    _assert_pruned_zero(targets)


def test_bad_fraction_and_scope_are_rejected():
    targets = head_targets(_net())
    attach_masks(targets)
    with pytest.raises(ValueError, match="fraction"):
        magnitude_prune(targets, 1.5)
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune(targets, 0.5, "heads")
    with pytest.raises(ValueError, match="1 prune fractions for 2 targets"):
        magnitude_prune(targets, [0.5], "layer")
    with pytest.raises(ValueError, match="global ranking prunes one fraction"):
        magnitude_prune(targets, [0.5, 0.2], "global")


# --- zeros stay zero -------------------------------------------------------------------------

OPTIMIZERS = {
    "adam_wd": functools.partial(torch.optim.Adam, lr=1e-2, weight_decay=1e-2),
    "adamw": functools.partial(torch.optim.AdamW, lr=1e-2, weight_decay=0.1),
    "rmsprop": functools.partial(torch.optim.RMSprop, lr=1e-2, momentum=0.9, weight_decay=1e-3),
    "sgd_momentum": functools.partial(torch.optim.SGD, lr=1e-2, momentum=0.9, weight_decay=1e-3),
    "shared_adam": functools.partial(make_shared_optimizer, "adam", lr=1e-2),
    "shared_rmsprop": functools.partial(make_shared_optimizer, "rmsprop", lr=1e-2),
}


def _train(model, optimizer, steps: int, forward=None) -> None:
    forward = forward or (lambda obs, starts: model(obs, starts, None))
    for _ in range(steps):
        obs, starts = _obs()
        logits, values, _ = forward(obs, starts)
        loss = logits.square().mean() + (values - 1.0).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_pruned_head_weights_stay_exactly_zero_under_every_optimiser(name):
    model = _net(lstm=8)
    targets = head_targets(model)
    attach_masks(targets)
    optimizer = OPTIMIZERS[name](model.parameters())
    _train(model, optimizer, 20)  # optimiser state (momentum, moments) is non-zero everywhere
    magnitude_prune(targets, 0.8, "layer")  # global would take the small-init policy layer whole
    before = weights_snapshot(targets)
    _train(model, optimizer, 200)
    _assert_pruned_zero(targets)
    with torch.no_grad():
        model(*_obs(), None)  # the forward recomputes the weight attribute from the optimised orig
    for (module, _), old in zip(targets, before, strict=True):
        assert not torch.equal(module.weight_orig * module.weight_mask, old)  # it did learn
        assert torch.equal(module.weight, module.weight_orig * module.weight_mask)  # forward's


@pytest.mark.parametrize("name", ["adam_wd", "sgd_momentum", "shared_adam"])
def test_pruned_library_weights_stay_exactly_zero_with_the_optimiser_hooks(name):
    model = _pathnet()
    path = torch.tensor([[0, 1], [2, 2]])
    targets = library_targets(model.library, path)
    attach_masks(targets)
    params = model.path_parameters(path, "a")
    optimizer = OPTIMIZERS[name](params)
    keep_pruned_zero(model, optimizer)

    def forward(obs, starts):
        return model(obs, starts, None, path=path, task="a")

    _train(model, optimizer, 20, forward)
    magnitude_prune(targets, 0.7, "layer")
    _train(model, optimizer, 100, forward)
    _assert_pruned_zero(targets)
    assert sparsity(targets) == pytest.approx(0.7, abs=0.01)


def test_deepcopy_and_spawn_pickling_work_after_a_grad_mode_forward():
    model = _net()
    attach_masks(head_targets(model))
    logits, _, _ = model(*_obs(), None)
    logits.sum().backward()  # the graph of that forward still reaches weight_orig
    assert model.head.policy.weight_orig.grad is not None
    assert model.head.policy.weight.is_leaf
    clone = copy.deepcopy(model)
    assert [n for n, _ in clone.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert pickle.loads(pickle.dumps(model)).head.policy.weight_mask.shape == (3, 32)


def _spec(model, optimizer, group, optimizer_name: str) -> WorkerSpec:
    cfg = A3CConfig(t_max=5, optimizer=optimizer_name, lr=0.05, hidden=32, log_every=1)
    steps = torch.zeros(1, dtype=torch.long).share_memory_()
    return WorkerSpec(
        "CartPole-v1", 3, 1, cfg, model, optimizer, steps, 200, group.stop, group.queue,
        torch.full((1,), 0.05),
    )  # fmt: skip


@pytest.mark.parametrize("optimizer_name", ["rmsprop", "adam"])
def test_spawned_a3c_worker_keeps_shared_pruned_heads_zero(optimizer_name):
    torch.manual_seed(0)
    model = A3CNet((4,), 2, hidden=32, head_factory=pruned_head_factory())  # CartPole
    targets = head_targets(model)
    magnitude_prune(targets, 0.9, "layer")
    model.share_memory()
    assert all(m.weight_mask.is_shared() for m, _ in targets)
    optimizer = make_shared_optimizer(optimizer_name, model.parameters(), lr=0.05)
    before = weights_snapshot(targets)
    with WorkerGroup() as group:
        group.start(a3c_worker, [(0, _spec(model, optimizer, group, optimizer_name))])
        updates = [m for m in group.messages() if m["kind"] == "update"]
    assert len(updates) == 40
    _assert_pruned_zero(targets)
    for (module, _), old in zip(targets, before, strict=True):
        moved = (module.weight_orig * module.weight_mask != old) & (module.weight_mask == 1)
        assert moved.any()  # the worker's weight_orig gradients reached the shared model


def library_worker(rank: int, model: PathNetA3C, optimizer, path: torch.Tensor, queue) -> None:
    """Adam steps on the shared library from a spawned process (hooks set up in the worker)."""
    with worker_process(rank, queue):
        keep_pruned_zero(model, optimizer)
        params = model.path_parameters(path, "a")
        torch.manual_seed(rank)
        for _ in range(50):
            obs, starts = _obs()
            logits, values, _ = model(obs, starts, None, path=path, task="a")
            loss = logits.square().mean() + (values - 1.0).square().mean()
            apply_gradients(params, torch.autograd.grad(loss, params), optimizer)


def test_spawned_worker_keeps_shared_pruned_library_modules_zero():
    model = _pathnet()
    path = torch.tensor([[0, 1], [2, 2]])
    targets = library_targets(model.library, path) + head_targets(model)
    attach_masks(targets)
    magnitude_prune(targets, 0.6)
    model.share_memory()
    optimizer = make_shared_optimizer("adam", model.path_parameters(path, "a"), lr=0.05)
    before = weights_snapshot(targets)
    with WorkerGroup() as group:
        group.start(library_worker, [(0, model, optimizer, path, group.queue)])
        list(group.messages())
    _assert_pruned_zero(targets)
    changed = [
        not torch.equal(old, now)
        for old, now in zip(before, weights_snapshot(targets), strict=True)
    ]
    assert changed[0] and changed[-3]  # a library module and task a's policy head


def test_checkpoint_round_trip_into_a_fresh_model(tmp_path):
    model = _net(lstm=8)
    targets = head_targets(model)
    attach_masks(targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-2)
    _train(model, optimizer, 10)
    magnitude_prune(targets, 0.7, "layer")
    torch.save({"model": model.state_dict(), "optim": optimizer.state_dict()}, tmp_path / "c.pt")
    saved = torch.load(tmp_path / "c.pt")
    assert "head.policy.weight_mask" in saved["model"]

    fresh = _net(seed=1, lstm=8)
    with pytest.raises(RuntimeError):  # an unattached model does not take a pruned state dict
        fresh.load_state_dict(saved["model"])
    assert attach_for_state_dict(fresh, saved["model"]) == head_targets(fresh)
    fresh.load_state_dict(saved["model"])
    fresh_targets = head_targets(fresh)
    for a, b in zip(masks(targets), masks(fresh_targets), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(weights_snapshot(targets), weights_snapshot(fresh_targets), strict=True):
        assert torch.equal(a, b)
    obs, starts = _obs()
    assert torch.equal(model(obs, starts, None)[0], fresh(obs, starts, None)[0])
    resumed = torch.optim.Adam(fresh.parameters(), lr=1e-2, weight_decay=1e-2)
    resumed.load_state_dict(saved["optim"])
    _train(fresh, resumed, 50)
    _assert_pruned_zero(fresh_targets)
    assert sparsity(fresh_targets) == pytest.approx(sparsity(targets))


def test_library_masks_checkpoint_into_a_fresh_pathnet():
    model = _pathnet()
    targets = library_targets(model.library)
    attach_masks(targets)
    magnitude_prune(targets, 0.5)
    state = copy.deepcopy(model.state_dict())
    fresh = _pathnet(seed=1)
    attach_for_state_dict(fresh, state)
    fresh.load_state_dict(state)
    assert len(pruned_targets(fresh)) == len(targets)
    loaded = weights_snapshot(library_targets(fresh.library))
    for a, b in zip(weights_snapshot(targets), loaded, strict=True):
        assert torch.equal(a, b)


# --- rewinding and the controls --------------------------------------------------------------


def test_rewind_restores_the_snapshot_bitwise_on_unpruned_entries():
    model = _net()
    targets = network_targets(model)
    attach_masks(targets)
    initial = weights_snapshot(targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    _train(model, optimizer, 5)
    late = weights_snapshot(targets)  # late rewinding: the weights after k updates
    _train(model, optimizer, 20)
    magnitude_prune(targets, 0.5)
    for snapshot in (initial, late):
        rewind(targets, snapshot)
        for (module, name), saved, mask in zip(targets, snapshot, masks(targets), strict=True):
            now = effective_weight(module, name)
            assert torch.equal(now[mask == 1], saved[mask == 1])
            assert bool((now[mask == 0] == 0).all())
            assert torch.equal(module.weight, now)  # the forward's weight too


def test_reinitialise_draws_new_weights_and_keeps_masks():
    model = _net()
    targets = head_targets(model)
    attach_masks(targets)
    magnitude_prune(targets, 0.5, "layer")
    before, kept = weights_snapshot(targets), masks(targets)
    reinitialise(targets, seed=3)
    after = weights_snapshot(targets)
    for old, new, mask, now in zip(before, after, kept, masks(targets), strict=True):
        assert torch.equal(mask, now)
        assert not torch.equal(old[mask == 1], new[mask == 1])
        assert bool((new[mask == 0] == 0).all())
    again = _net()
    again_targets = head_targets(again)
    attach_masks(again_targets)
    magnitude_prune(again_targets, 0.5, "layer")
    reinitialise(again_targets, seed=3)
    for a, b in zip(after, weights_snapshot(again_targets), strict=True):
        assert torch.equal(a, b)  # the seed fixes the draw


def test_random_masks_keep_per_layer_counts_and_differ_from_the_ticket():
    model = _net()
    targets = network_targets(model)
    attach_masks(targets)
    magnitude_prune(targets, 0.8)
    ticket = masks(targets)
    random_masks(targets, seed=5)
    control = masks(targets)
    for a, b in zip(ticket, control, strict=True):
        assert int(a.sum()) == int(b.sum())
    assert not all(torch.equal(a, b) for a, b in zip(ticket, control, strict=True))
    _assert_pruned_zero(targets)


@pytest.mark.parametrize("library", [False, True])
def test_permuted_control_keeps_masks_and_each_layers_surviving_values(library):
    """Vischer et al. 2021's control: the same mask, and per layer the same multiset of
    surviving values, but at other surviving positions; pruned entries stay 0."""
    model = _pathnet() if library else _net()
    targets = library_targets(model.library) if library else network_targets(model)
    attach_masks(targets)
    magnitude_prune(targets, 0.6, "layer")
    before, kept = weights_snapshot(targets), masks(targets)
    permute_survivors(targets, seed=7)
    after = weights_snapshot(targets)
    for old, new, mask, now in zip(before, after, kept, masks(targets), strict=True):
        assert torch.equal(mask, now)
        alive = mask != 0
        assert torch.equal(old[alive].sort().values, new[alive].sort().values)
        assert bool((new[~alive] == 0).all())
        assert not torch.equal(old[alive], new[alive])  # moved (hundreds of survivors)
    again = _pathnet() if library else _net()
    again_targets = library_targets(again.library) if library else network_targets(again)
    attach_masks(again_targets)
    magnitude_prune(again_targets, 0.6, "layer")
    permute_survivors(again_targets, seed=7)
    for a, b in zip(after, weights_snapshot(again_targets), strict=True):
        assert torch.equal(a, b)  # the seed fixes the permutation


def test_frozen_library_modules_are_never_pruned_again():
    model = _pathnet()
    path = torch.tensor([[0, 1], [2, 2]])
    targets = library_targets(model.library)
    attach_masks(targets)
    magnitude_prune(targets, 0.5)
    model.library.freeze(path)
    frozen = {id(m.get_parameter(n)) for m, n in targets if not m.get_parameter(n).requires_grad}
    assert len(frozen) == 3
    remaining = library_targets(model.library)
    assert len(remaining) == 3 and all(m.get_parameter(n).requires_grad for m, n in remaining)
    before = weights_snapshot(targets)
    magnitude_prune(targets, 0.5)  # an old list that still names the frozen modules
    random_masks(targets, seed=1)
    reinitialise(targets, seed=1)
    permute_survivors(targets, seed=1)
    for (module, name), old in zip(targets, before, strict=True):
        if id(module.get_parameter(name)) in frozen:
            assert torch.equal(effective_weight(module, name), old)


def test_pruned_head_factory_pickles_and_builds_masked_heads():
    factory = pickle.loads(pickle.dumps(pruned_head_factory()))
    head = factory(16, 3, 8)
    assert isinstance(head, ActorCriticHead)
    assert [name for _, name in pruned_targets(head)] == ["weight", "weight"]
    assert sparsity(head_targets(head)) == 0.0
    hyper = A3CConfig(lstm=8, core="hyperlstm").head_factory(pruned_head_factory())
    head = pickle.loads(pickle.dumps(hyper))(16, 3, 8)
    assert len(pruned_targets(head)) == 2  # the HyperLSTM's own Linears are not targets
