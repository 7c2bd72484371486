"""S two-layer ReLU expert networks run side by side, as one autograd Function.

The MoE layer's experts (Shazeer et al. 2017, arXiv:1701.06538) take C tokens each:
``out = relu(x W1ᵀ + b1) W2ᵀ + b2`` for x: [S, C, in]. Autograd over batched matmuls works, but
at many small experts (256 experts of 20 tokens) it loses half a training step to layouts and
memory: the weight gradients come out transposed and are copied, and every backward pass writes
them into fresh memory. This Function fixes the layouts and the memory:

- **Token-major** activations ([S, C, hidden], [S, C, out]) and weights as they are stored
  ([S, hidden, in], [S, out, hidden]): every one of the five GEMMs is a plain ``bmm`` whose long
  side is the weights' (MKL runs the 20-row GEMMs of 256 experts 1.3-1.6x faster in that shape
  than as ``W @ xᵀ``), and the weight gradients ``gᵀ h`` and ``dhᵀ x`` come out in the
  parameters' own layout, so autograd hands each expert its slice without a copy.
- **Gradient buffers** (:class:`GradientBuffers`): glibc serves blocks over 32 MB with a fresh
  ``mmap``, and the first touch of 128 MB (one weight kind's gradient at 256 experts) costs
  40-50 ms of page faults on a 2-core VM, against ~4 ms to fill memory already mapped. A buffer is
  reused once nothing else holds its memory (the previous step's ``.grad`` were set to None or
  accumulated elsewhere), so it never overwrites a gradient someone still holds.
"""

from __future__ import annotations

import torch
from torch.multiprocessing.reductions import StorageWeakRef

REUSE_BYTES = 32 << 20
"""Gradients of at least this size come from :class:`GradientBuffers` (glibc's largest
``mmap`` threshold: smaller blocks are recycled by malloc itself)."""


class GradientBuffers:
    """Large gradient outputs kept across backward passes and reused when nobody holds them.

    Each buffer stays private: callers get an alias of it, never the tensor kept here, so its
    storage's reference count tells whether any alias (a ``.grad``, a saved tensor) is alive.
    """

    def __init__(self, min_bytes: int = REUSE_BYTES) -> None:
        self.min_bytes = min_bytes
        self._kept: dict[str, tuple[torch.Tensor, torch.UntypedStorage, StorageWeakRef, int]] = {}

    def empty(self, key: str, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device."""
        nbytes = shape.numel() * like.element_size()
        if nbytes < self.min_bytes or like.device.type != "cpu" or _use_count is None:
            return like.new_empty(shape)
        kept = self._kept.get(key)
        if kept is not None:
            buffer, _, ref, alone = kept
            free = _use_count(ref.cdata) == alone  # no alias of it alive
            if free and buffer.shape == shape and buffer.dtype == like.dtype:
                return buffer.view(shape)
        buffer = like.new_empty(shape)
        storage = buffer.untyped_storage()  # kept, so the count below stays ours alone
        ref = StorageWeakRef(storage)
        self._kept[key] = (buffer, storage, ref, _use_count(ref.cdata))
        return buffer.view(shape)

    def __getstate__(self) -> dict[str, int]:
        return {"min_bytes": self.min_bytes}  # a copy (deepcopy, a spawned worker) starts empty

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(state["min_bytes"])


_use_count = getattr(torch._C, "_storage_Use_Count", None)


class ExpertMLP(torch.autograd.Function):
    """``relu(x W1ᵀ + b1) W2ᵀ + b2`` (then ReLU if ``activation``) for S experts at once.

    x: [S, C, in]; w1: [S, hidden, in]; b1: [S, hidden]; w2: [S, out, hidden]; b2: [S, out];
    buffers: where large weight gradients go (``None``: fresh memory) -> [S, C, out].
    """

    @staticmethod
    def forward(
        ctx,
        x: torch.Tensor,
        w1: torch.Tensor,
        b1: torch.Tensor,
        w2: torch.Tensor,
        b2: torch.Tensor,
        activation: bool,
        buffers: GradientBuffers | None,
    ) -> torch.Tensor:
        device = x.device.type
        if torch.is_autocast_enabled(device):  # the matmuls' autocast dtype, as autograd's ops
            dtype = torch.get_autocast_dtype(device)
            x, w1, b1, w2, b2 = (t.to(dtype) for t in (x, w1, b1, w2, b2))
        with torch.autocast(device, enabled=False):
            hidden = torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2)).relu_()  # [S, C, h]
            out = torch.baddbmm(b2.unsqueeze(1), hidden, w2.transpose(1, 2))  # [S, C, out]
        if activation:
            out.relu_()
        ctx.activation, ctx.buffers = activation, buffers
        ctx.save_for_backward(x, w1, w2, hidden, out if activation else None)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        # grad: [S, C, out]
        x, w1, w2, hidden, out = ctx.saved_tensors
        with torch.autocast(x.device.type, enabled=False):
            return ExpertMLP._gradients(ctx, grad.to(hidden.dtype), x, w1, w2, hidden, out)

    @staticmethod
    def _gradients(
        ctx,
        grad: torch.Tensor,
        x: torch.Tensor,
        w1: torch.Tensor,
        w2: torch.Tensor,
        hidden: torch.Tensor,
        out: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, ...]:
        if ctx.activation:
            grad = torch.ops.aten.threshold_backward(grad, out, 0)
        need_x, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad[:5]
        grad_x = grad_w1 = grad_b1 = grad_w2 = grad_b2 = None
        if need_w2:
            grad_w2 = _weight_grad(ctx.buffers, "w2", grad, hidden)  # [S, out, hidden]
        if need_b2:
            grad_b2 = grad.sum(1)
        if need_x or need_w1 or need_b1:
            grad_hidden = torch.ops.aten.threshold_backward(torch.bmm(grad, w2), hidden, 0)
            if need_w1:
                grad_w1 = _weight_grad(ctx.buffers, "w1", grad_hidden, x)  # [S, hidden, in]
            if need_b1:
                grad_b1 = grad_hidden.sum(1)
            if need_x:
                grad_x = torch.bmm(grad_hidden, w1)  # [S, C, in]
        return grad_x, grad_w1, grad_b1, grad_w2, grad_b2, None, None


def _weight_grad(
    buffers: GradientBuffers | None, key: str, grad: torch.Tensor, inputs: torch.Tensor
) -> torch.Tensor:
    # grad: [S, C, out]; inputs: [S, C, in] -> [S, out, in] = gradᵀ inputs, per expert
    s, _, rows = grad.shape
    shape = torch.Size((s, rows, inputs.shape[2]))
    out = inputs.new_empty(shape) if buffers is None else buffers.empty(key, shape, inputs)
    return torch.bmm(grad.transpose(1, 2), inputs, out=out)


def expert_mlp(
    x: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
    activation: bool = False,
    buffers: GradientBuffers | None = None,
) -> torch.Tensor:
    """:class:`ExpertMLP` as a function. x: [S, C, in] -> [S, C, out]."""
    return ExpertMLP.apply(x, w1, b1, w2, b2, activation, buffers)
