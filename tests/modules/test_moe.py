"""The MoE layer kind: dispatch, capacity, path restriction, per-task gates, freezing, storage."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from pathevo.modules.layers import LinearModuleLayer
from pathevo.modules.library import PathLibrary
from pathevo.modules.moe import MoEModuleLayer


def expert(layer: MoEModuleLayer, m: int, x: torch.Tensor) -> torch.Tensor:
    """Expert m on one example, written out: relu(x W1ᵀ + b1) W2ᵀ + b2."""
    return torch.relu(x @ layer.w1[m].T + layer.b1[m]) @ layer.w2[m].T + layer.b2[m]


def reference(layer: MoEModuleLayer, x: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Example by example: top-k of the clean gate logits among ``ids``, softmax, weighted sum."""
    gate = layer.gates["default"][:, ids]
    outputs = []
    for example in x:
        values, slots = (example @ gate).topk(min(layer.k, len(ids)))
        weights = torch.softmax(values, 0)
        outputs.append(
            sum(w * expert(layer, ids[s], example) for w, s in zip(weights, slots, strict=True))
        )
    return torch.stack(outputs)


def random_gate(layer: MoEModuleLayer, task: str = "default", scale: float = 1.0) -> None:
    with torch.no_grad():
        layer.gates[task].normal_(std=scale)
        layer.noise_gates[task].normal_(std=scale)


@pytest.fixture(params=["dense", "dispatch"])
def layer(request) -> MoEModuleLayer:
    """Small batches run every expert densely, large ones are dispatched by expert: both."""
    torch.manual_seed(0)
    moe = MoEModuleLayer(8, 6, 10, 4, k=2, capacity_factor=None)
    moe.dense_rows = 10**6 if request.param == "dense" else 0
    random_gate(moe)
    return moe.eval()


@pytest.mark.parametrize("ids", [[0, 1, 2, 3, 4, 5, 6, 7], [1, 4, 6], [2, 2, 5]])
def test_batched_dispatch_equals_the_per_example_reference(layer, ids) -> None:
    x = torch.randn(33, 6)
    torch.testing.assert_close(layer(x, ids), reference(layer, x, list(dict.fromkeys(ids))))


def test_forward_population_equals_each_path(layer) -> None:
    x = torch.randn(12, 6)
    rows = [[0, 1, 2], [5, 5, 7], [3, 6, 1]]
    population = layer.forward_population(x, rows)
    for p, row in enumerate(rows):
        torch.testing.assert_close(population[p], layer(x, row))


def test_population_with_repeats_and_capacity_equals_each_path_and_its_loss(layer) -> None:
    """A repeated id is no extra expert: capacity and CV² count the path's distinct experts."""
    layer.capacity_factor = 1.0
    x = torch.randn(24, 6)
    rows = [[5, 5, 7], [0, 1, 2], [3, 3, 3]]
    population, aux = layer.forward_population_with_aux(x, rows)
    for p, row in enumerate(rows):
        single, single_aux = layer.forward_with_aux(x, row)
        torch.testing.assert_close(population[p], single)
    losses = torch.stack([layer.forward_with_aux(x, row)[1] for row in rows])
    torch.testing.assert_close(aux, losses.mean())


def test_zero_gate_in_training_spreads_picks_over_the_experts() -> None:
    """Zero-initialised gates route uniformly: the noise breaks the ties, k of E per token."""
    torch.manual_seed(4)
    layer = MoEModuleLayer(8, 6, 4, 2, k=2, capacity_factor=None).train()
    layer.forward_with_aux(torch.randn(4000, 6), list(range(8)))
    (routing,) = layer.take_routing().values()
    assert routing.picks.sum() == 8000
    assert routing.load_cv2() < 0.01  # about 1000 picks each


def test_capacity_overflow_drops_later_choices_first(layer) -> None:
    """Tokens 0-5 prefer expert 0 then 1, tokens 6-7 expert 1 then 0; each takes 4 tokens.

    Expert 0 takes the first choices of tokens 0-3 (4-5 overflow) and then has no room for the
    second choices of 6-7. Expert 1 takes the first choices of 6-7, then second choices in batch
    order: tokens 0-1 fit, 2-5 overflow.
    """
    layer.capacity_factor = 0.5  # C = ceil(0.5 * 8 tokens * k=2 / 2 experts) = 4
    with torch.no_grad():
        layer.gates["default"].zero_()
        layer.gates["default"][0, 0], layer.gates["default"][0, 1] = 2.0, 1.0
    x = torch.randn(8, 6)
    x[:6, 0] = x[:6, 0].abs() + 1  # logits (2a, a): a > 0 prefers expert 0
    x[6:, 0] = -x[6:, 0].abs() - 1  # a < 0 prefers expert 1
    assert layer.capacity(8, 2) == 4
    weights = torch.softmax(x[:, 0:1] * torch.tensor([[2.0, 1.0]]), dim=1)  # [8, (e0, e1)]
    kept = {0: (1, 1), 1: (1, 1), 2: (1, 0), 3: (1, 0), 4: (0, 0), 5: (0, 0), 6: (0, 1), 7: (0, 1)}
    out = layer(x, [0, 1])
    for t, (keep_0, keep_1) in kept.items():
        expected = keep_0 * weights[t, 0] * expert(layer, 0, x[t])
        expected = expected + keep_1 * weights[t, 1] * expert(layer, 1, x[t])
        torch.testing.assert_close(out[t], expected)
    assert torch.equal(out[4], torch.zeros(4))  # every choice overflowed: a zero output


def test_path_restriction_never_routes_outside_the_path() -> None:
    torch.manual_seed(1)
    layer = MoEModuleLayer(10, 6, 8, 3, k=2).train()
    random_gate(layer, scale=3.0)
    path = [2, 5, 7]
    for _ in range(5):  # noisy gating: different choices every pass
        y, aux = layer.forward_with_aux(torch.randn(64, 6), path)
        (y.square().mean() + aux).backward()
    for m in range(10):
        used = layer.w1[m].grad is not None
        assert used == (m in path), m
    grad = layer.gates["default"].grad
    assert grad[:, path].abs().sum() > 0
    assert torch.count_nonzero(grad[:, [m for m in range(10) if m not in path]]) == 0


def test_zero_initialised_gate_routes_uniformly() -> None:
    layer = MoEModuleLayer(4, 3, 5, 2, k=4, capacity_factor=None).eval()
    x = torch.randn(7, 3)
    mean = sum(expert(layer, m, x) for m in range(4)) / 4
    torch.testing.assert_close(layer(x, [0, 1, 2, 3]), mean)


def moe_library() -> PathLibrary:
    torch.manual_seed(2)
    layers = [LinearModuleLayer(4, 6, 5), MoEModuleLayer(6, 5, 8, 3, k=2)]
    return PathLibrary(layers, output_size=3)


def test_frozen_experts_and_gate_stay_bitwise_while_a_new_task_trains() -> None:
    library = moe_library()
    library.add_task("a")
    path_a = torch.tensor([[0, 1], [0, 2]])
    library.freeze(path_a, task="a")
    library.add_task("b")
    before = copy.deepcopy(library.state_dict())
    optimizer = torch.optim.Adam(library.parameters(), lr=0.05)
    library.guard(optimizer)
    path_b = torch.tensor([[1, 2], [2, 4]])  # shares module 1 and expert 2 with path a
    for _ in range(30):
        loss = library(torch.randn(16, 6), path_b, task="b").square().mean()
        loss = loss + library.take_aux_loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = library.state_dict()
    moe = library.layers[1]
    for m in (0, 2):
        for kind in moe.parameter_kinds:
            key = f"layers.1.{kind}.{m}"
            assert torch.equal(after[key], before[key]), key
    assert torch.equal(after["layers.1.gates.a"], before["layers.1.gates.a"])
    assert torch.equal(after["layers.1.noise_gates.a"], before["layers.1.noise_gates.a"])
    assert not torch.equal(after["layers.1.gates.b"], before["layers.1.gates.b"])
    assert not torch.equal(after["layers.1.w1.4"], before["layers.1.w1.4"])


def test_reinit_resets_unfrozen_experts_and_gates_only() -> None:
    library = moe_library()
    library.add_task("a")
    library.add_task("b")
    moe = library.layers[1]
    random_gate(moe, "a")
    random_gate(moe, "b")
    library.freeze(torch.tensor([[0, 1], [3, 4]]), task="a")
    before = copy.deepcopy(library.state_dict())
    library.reinit_unfrozen()
    after = library.state_dict()
    assert torch.equal(after["layers.1.gates.a"], before["layers.1.gates.a"])
    assert torch.count_nonzero(after["layers.1.gates.b"]) == 0
    assert torch.equal(after["layers.1.w1.3"], before["layers.1.w1.3"])
    assert not torch.equal(after["layers.1.w1.5"], before["layers.1.w1.5"])


def test_checkpoint_round_trip_keeps_gates_and_frozen_tasks() -> None:
    library = moe_library()
    library.add_task("ALE/Pong-v5")
    random_gate(library.layers[1], "ALE/Pong-v5")
    library.freeze(torch.tensor([[0, 1], [0, 2]]), task="ALE/Pong-v5")
    buffer = io.BytesIO()
    torch.save(library.state_dict(), buffer)
    restored = moe_library()  # no add_task: the checkpoint brings its tasks' gates
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    moe = restored.layers[1]
    assert moe.frozen_tasks == library.layers[1].frozen_tasks
    assert not moe.task_parameters("ALE/Pong-v5")[0].requires_grad
    assert not moe.w1[2].requires_grad and moe.w1[3].requires_grad
    x = torch.randn(5, 6)
    path = torch.tensor([[0, 1], [0, 2]])
    library.eval(), restored.eval()
    torch.testing.assert_close(restored(x, path, "ALE/Pong-v5"), library(x, path, "ALE/Pong-v5"))


def test_shared_memory_library_still_trains_the_path() -> None:
    library = moe_library().share_memory()
    params = library.path_parameters(torch.tensor([[0, 1], [2, 3]]))
    assert all(p.is_shared() for p in params)
    moe = library.layers[1]
    ids = {id(p) for p in params}
    assert id(moe.gates["default"]) in ids and id(moe.noise_gates["default"]) in ids
    assert id(moe.w1[2]) in ids and id(moe.w1[4]) not in ids
    y = library(torch.randn(4, 6), torch.tensor([[0, 1], [2, 3]]))
    (y.sum() + library.take_aux_loss()).backward()
    assert moe.w1[2].grad is not None and moe.gates["default"].grad is not None


def test_aux_loss_only_with_moe_layers_and_only_with_autograd() -> None:
    plain = PathLibrary([LinearModuleLayer(4, 6, 5)], output_size=5)
    plain(torch.randn(3, 6), torch.tensor([[0, 1]]))
    assert plain.take_aux_loss() is None
    library = moe_library()
    with torch.no_grad():
        library(torch.randn(3, 6), torch.tensor([[0, 1], [2, 3]]))
    assert library.take_aux_loss() is None
    library(torch.randn(3, 6), torch.tensor([[0, 1], [2, 3]]))
    library.forward_population(torch.randn(3, 6), torch.tensor([[[0, 1], [2, 3]]] * 2))
    assert library.take_aux_loss() is not None
    assert library.take_aux_loss() is None


def test_unknown_task_gate_is_a_clear_error(layer) -> None:
    with pytest.raises(KeyError, match="no gate for task 'b'"):
        layer.forward_with_aux(torch.randn(2, 6), [0, 1], task="b")


def test_balancing_loss_spreads_the_load() -> None:
    """Trained on the balancing loss alone, a skewed gate's load CV² falls (fixed seed)."""
    torch.manual_seed(3)
    layer = MoEModuleLayer(8, 6, 4, 2, k=2, w_importance=1.0, w_load=1.0).train()
    with torch.no_grad():
        layer.gates["default"][:, 0] = 2.0  # everything prefers expert 0
    x = torch.randn(256, 6) + 1.0
    optimizer = torch.optim.Adam(layer.task_parameters(None), lr=0.05)

    def load_cv2() -> float:
        with torch.no_grad():
            layer.eval()
            out = layer.forward_with_aux(x, list(range(8)))[1]
            layer.train()
            return float(out)

    before = load_cv2()
    for _ in range(100):
        _, aux = layer.forward_with_aux(x, list(range(8)))
        optimizer.zero_grad()
        aux.backward()
        optimizer.step()
    assert load_cv2() < 0.25 * before
