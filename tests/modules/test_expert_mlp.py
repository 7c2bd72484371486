"""The experts' autograd Function and its reusable gradient buffers."""

from __future__ import annotations

import pytest
import torch

from pathevo.modules.expert_mlp import GradientBuffers, expert_mlp

S, C, IN, HIDDEN, OUT = 3, 5, 4, 6, 2


def parameters(dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    torch.manual_seed(0)
    shapes = [(S, C, IN), (S, HIDDEN, IN), (S, HIDDEN), (S, OUT, HIDDEN), (S, OUT)]
    return [torch.randn(shape, dtype=dtype, requires_grad=True) for shape in shapes]


def reference(x, w1, b1, w2, b2, activation: bool) -> torch.Tensor:
    """Expert by expert, token by token's layout: relu(x W1ᵀ + b1) W2ᵀ + b2 (then ReLU)."""
    out = torch.relu(x @ w1.transpose(1, 2) + b1.unsqueeze(1)) @ w2.transpose(1, 2)
    out = out + b2.unsqueeze(1)
    return torch.relu(out) if activation else out


@pytest.mark.parametrize("activation", [False, True])
def test_gradients_match_autograd_in_double_precision(activation) -> None:
    inputs = parameters(torch.float64)
    torch.autograd.gradcheck(
        lambda *tensors: expert_mlp(*tensors, activation=activation), inputs
    )  # fmt: skip
    ours = torch.autograd.grad(expert_mlp(*inputs, activation=activation).square().sum(), inputs)
    theirs = torch.autograd.grad(reference(*inputs, activation).square().sum(), inputs)
    for mine, expected in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, expected)


def test_weight_gradients_come_in_the_weights_layout() -> None:
    x, w1, b1, w2, b2 = parameters()
    expert_mlp(x, w1, b1, w2, b2).sum().backward()
    for weight in (w1, w2):
        assert weight.grad.shape == weight.shape and weight.grad.is_contiguous()


def test_inputs_without_grad_get_none() -> None:
    x, w1, b1, w2, b2 = parameters()
    x = x.detach()
    expert_mlp(x, w1, b1, w2, b2).sum().backward()
    assert x.grad is None and w1.grad is not None


def test_buffers_are_reused_only_once_nobody_holds_them() -> None:
    buffers = GradientBuffers(min_bytes=0)
    shape, like = torch.Size((4, 3)), torch.zeros(1)
    first = buffers.empty("w", shape, like)
    pointer = first.data_ptr()
    del first
    second = buffers.empty("w", shape, like)
    assert second.data_ptr() == pointer  # dropped: its memory comes back
    row = second[1]  # any alias, not only the tensor handed out, keeps the memory busy
    del second
    assert buffers.empty("w", shape, like).data_ptr() != pointer
    assert row.data_ptr() == pointer + 3 * 4
    default = GradientBuffers()  # below the threshold: plain allocations, nothing kept
    default.empty("w", shape, like)
    assert not default._kept


def test_backward_never_overwrites_a_gradient_someone_holds() -> None:
    buffers = GradientBuffers(min_bytes=0)
    x, w1, b1, w2, b2 = parameters()

    def step() -> torch.Tensor:
        w1.grad = None
        expert_mlp(x, w1, b1, w2, b2, buffers=buffers).square().sum().backward()
        return w1.grad

    first = step()
    expected = first.clone()
    second = step()  # the first gradient is still held: fresh memory, the first untouched
    assert second.data_ptr() != first.data_ptr()
    assert torch.equal(first, expected) and torch.equal(second, expected)
    pointer = second.data_ptr()
    del first, second
    third = step()  # nobody holds the kept buffer any more: the same memory, the same values
    assert third.data_ptr() == pointer
    assert torch.equal(third, expected)


def test_under_autocast_it_computes_what_autograd_computes() -> None:
    """bfloat16 matmuls as autocast runs them, float32 gradients for float32 parameters."""
    inputs = parameters()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = expert_mlp(*inputs)
        x, w1, b1, w2, b2 = inputs
        hidden = torch.relu(torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2)))
        theirs = torch.baddbmm(b2.unsqueeze(1), hidden, w2.transpose(1, 2))
    assert ours.dtype == theirs.dtype == torch.bfloat16
    torch.testing.assert_close(ours, theirs)
    mine = torch.autograd.grad(ours.float().square().sum(), inputs)
    expected = torch.autograd.grad(theirs.float().square().sum(), inputs)
    for grad, reference_grad in zip(mine, expected, strict=True):
        assert grad.dtype == torch.float32
        torch.testing.assert_close(grad, reference_grad)
