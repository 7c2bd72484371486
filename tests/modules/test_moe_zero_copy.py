"""The MoE dispatch's zero-copy path: large consecutive experts are viewed, not stacked.

A path over consecutive experts of one private storage whose weights reach 1 MB runs on a view
of that storage (tests/modules/test_moe.py covers the small, copied case); it must give the same
outputs and the same gradients as the per-example reference, and fall back to the copy for
shared memory, repeated or reordered experts.
"""

from __future__ import annotations

import copy

import pytest
import torch

from pathevo.modules.moe import MoEModuleLayer

EXPERTS, SIZE = 64, 64  # 64 experts of 64x64: 2^18 weights per kind, the zero-copy threshold


def large_layer() -> MoEModuleLayer:
    torch.manual_seed(0)
    layer = MoEModuleLayer(EXPERTS, SIZE, SIZE, SIZE, k=2, capacity_factor=None).eval()
    with torch.no_grad():
        layer.gates["default"].normal_()
    return layer


def reference(layer: MoEModuleLayer, x: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Example by example: top-k of the clean gate logits among ``ids``, softmax, weighted sum."""
    gate = layer.gates["default"][:, ids]
    outputs = []
    for example in x:
        values, slots = (example @ gate).topk(layer.k)
        weights = torch.softmax(values, 0)
        out = 0
        for w, s in zip(weights, slots.tolist(), strict=True):
            m = ids[s]
            hidden = torch.relu(example @ layer.w1[m].T + layer.b1[m])
            out = out + w * (hidden @ layer.w2[m].T + layer.b2[m])
        outputs.append(out)
    return torch.stack(outputs)


def assert_same_grads(ours: MoEModuleLayer, theirs: MoEModuleLayer, ids: list[int]) -> None:
    """Experts off the path get no gradient; those on it the reference's (zero if unchosen)."""
    for kind in ours.parameter_kinds:
        for m in range(ours.num_modules):
            grad, expected = getattr(ours, kind)[m].grad, getattr(theirs, kind)[m].grad
            if m not in ids:
                assert grad is None, (kind, m)
                continue
            if expected is None:
                expected = torch.zeros_like(grad)
            torch.testing.assert_close(grad, expected, msg=f"{kind}.{m}")


@pytest.mark.parametrize(
    "ids", [list(range(EXPERTS)), list(range(3, 60)), list(range(EXPERTS))[::-1]]
)
def test_outputs_and_gradients_equal_the_reference(ids) -> None:
    layer = large_layer()
    twin = copy.deepcopy(layer)
    x = torch.randn(48, SIZE)
    y = layer(x, ids)
    expected = reference(twin, x, ids)
    torch.testing.assert_close(y, expected)
    y.square().sum().backward()
    expected.square().sum().backward()
    assert_same_grads(layer, twin, ids)


def test_gradients_of_the_view_are_each_experts_own() -> None:
    layer = large_layer()
    y = layer(torch.randn(256, SIZE), list(range(EXPERTS)))
    y.sum().backward()
    used = [m for m in range(EXPERTS) if layer.w1[m].grad is not None]
    assert len(used) > 1
    for m in used:
        assert layer.w1[m].grad.shape == layer.w1[m].shape
        assert layer.w1[m].grad.stride() == layer.w1[m].stride()
    # Each expert's gradient is its own slice: changing one leaves the others alone.
    first, second = used[:2]
    before = layer.w1[second].grad.clone()
    layer.w1[first].grad.zero_()
    assert torch.equal(layer.w1[second].grad, before)


def test_frozen_experts_get_no_gradient_through_the_view() -> None:
    layer = large_layer().train()
    layer.freeze_modules([0, 5, 63])
    y, aux = layer.forward_with_aux(torch.randn(512, SIZE), list(range(EXPERTS)))
    (y.square().mean() + aux).backward()
    for m in (0, 5, 63):
        for kind in layer.parameter_kinds:
            assert getattr(layer, kind)[m].grad is None, (kind, m)
    assert sum(layer.w1[m].grad is not None for m in range(EXPERTS)) > EXPERTS // 2


def copied_kinds(layer: MoEModuleLayer, x: torch.Tensor, ids: list[int]) -> set[str]:
    """The parameter kinds a forward stacked with ``gather`` (copies)."""
    calls: set[str] = set()
    gather = layer.gather

    def spy(name: str, ids: list[int]) -> torch.Tensor:
        calls.add(name)
        return gather(name, ids)

    layer.gather = spy  # type: ignore[method-assign]
    try:
        layer(x, ids)
    finally:
        del layer.gather
    return calls


def test_only_large_consecutive_private_experts_skip_the_copy() -> None:
    layer = large_layer()
    x = torch.randn(8, SIZE)
    assert copied_kinds(layer, x, list(range(EXPERTS))) == {"b1", "b2"}  # biases are small
    assert "w1" in copied_kinds(layer, x, list(range(EXPERTS))[::-1])
    assert "w1" in copied_kinds(layer, x, list(range(8)))  # 8 experts: under 1 MB
    assert "w1" in copied_kinds(copy.deepcopy(layer).share_memory(), x, list(range(EXPERTS)))


def test_population_and_shared_memory_paths_agree() -> None:
    layer = large_layer()
    x = torch.randn(40, SIZE)
    rows = [list(range(32)), list(range(32, 64))]  # consecutive over both paths: one view
    population = layer.forward_population(x, rows)
    shared = copy.deepcopy(layer).share_memory()  # shared storage: stacked copies
    for p, row in enumerate(rows):
        torch.testing.assert_close(population[p], reference(layer, x, row))
        torch.testing.assert_close(shared(x, row), population[p])
