"""Lottery-ticket pruning: masks, iterative magnitude pruning, rewinding and the two controls.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis", arXiv:1803.03635: train, prune the p %
smallest-magnitude remaining weights, reset the survivors to their initial values, retrain, and
repeat; the controls keep the mask with a random re-initialisation, or draw a random mask of the
same sparsity. Frankle et al. 2020, arXiv:1912.05671 (late rewinding): larger networks need the
survivors reset to the weights after k updates instead. Yu et al. 2020, arXiv:1906.02768, found
such tickets in reinforcement learning (here: the agents' policy/value heads).

A target is ``(module, parameter name)``; its mask is the buffer ``<name>_mask`` of ``module``
(float 0/1, the weight's dtype), so masks travel with ``state_dict``, ``share_memory`` and
pickles. Two mechanisms keep pruned weights exactly zero:

- ``nn.Linear`` / ``nn.Conv2d`` weights (heads, torsos) use ``torch.nn.utils.prune``'s
  reparametrisation (``prune.custom_from_mask`` with an all-ones mask at :func:`attach_masks`):
  the parameter becomes ``weight_orig``, and a forward pre-hook computes ``weight = weight_orig
  * weight_mask`` on every call. The effective weight is the product, so it is exactly 0 at
  pruned entries whatever any optimiser (momentum, Adam moments, weight decay) does to
  ``weight_orig``, and the gradient reaching ``weight_orig`` is already masked. Nothing needs to
  hook the optimiser, and A3C's gradient hand-off maps 1:1: a worker's deep copy has the same
  ``weight_orig`` parameters (and a copy of the masks) in the same order as the shared model.
  Where prune did not fit as it is: (1) its masks are computed here, not with
  ``l1_unstructured`` / ``global_unstructured``, and written *in place* into the one mask
  buffer (prune would stack a ``PruningContainer`` and a new buffer per round, breaking
  shared-memory identity; its ``topk`` has no deterministic tie rule or "p % of the remaining"
  count across layers); (2) the ``weight`` attribute the hook leaves behind is a non-leaf
  tensor after a grad-mode forward, which ``copy.deepcopy`` and the spawn pickler refuse
  (A3C deep-copies and pickles the shared model), so a forward hook (:func:`_detach_pruned`)
  replaces it by its detached value once the forward is done (the autograd graph of that
  forward already holds what backward needs).
- Library modules (``modules/layers.py``) are views into one stacked ``[M, ...]`` tensor,
  registered in an ``nn.ParameterList`` and gathered by the layer's forward without calling any
  submodule: prune's forward pre-hook never runs and its reparametrisation would detach the
  ``_orig`` from the stacked storage. A library target is ``(layer.weights, "<m>")``; its mask is
  a buffer ``"<m>_mask"`` of that ParameterList, and the parameter itself holds zeros at pruned
  entries: every function here re-zeroes them, and :func:`keep_pruned_zero` hooks the optimiser
  (gradients masked before each step, parameters re-zeroed after it, as
  ``PathLibrary.guard`` restores frozen modules). Optimiser hooks are not pickled, so a spawned
  worker calls :func:`keep_pruned_zero` on its own copy of the shared optimiser.
  Frozen modules (``requires_grad`` False) are never targets of :func:`library_targets`, and
  every function here leaves a frozen target's mask and weights alone, so a module is never
  pruned (or rewound) again once frozen; its earlier zeros are part of its frozen values.

Checkpoints: a fresh model loads a pruned state dict after :func:`attach_masks` on the same
targets (or :func:`attach_for_state_dict`, which finds them from the state dict's ``*_mask``
keys). After an optimiser step a pruned module's ``weight`` attribute is stale until its next
forward; read effective weights with :func:`effective_weight` or :func:`weights_snapshot`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import prune

from pathevo.modules.actor_critic import ActorCriticHead, HeadFactory
from pathevo.modules.heads import TaskHeads
from pathevo.modules.layers import distinct, in_shared_memory
from pathevo.modules.library import PathLibrary
from pathevo.modules.recurrent import is_recurrent

PruneTarget = tuple[nn.Module, str]
"""``(module, parameter name)``, e.g. ``(head.policy, "weight")`` or ``(layer.weights, "3")``."""

Scope = Literal["global", "layer"]
SCOPES: tuple[Scope, ...] = ("global", "layer")

Init = Callable[[torch.Tensor, torch.Generator], None]
"""``init(tensor, generator)`` fills ``tensor`` in place (a re-initialisation draw)."""

# --- finding targets -------------------------------------------------------------------------


def _linear_weights(module: nn.Module, kinds: tuple[type[nn.Module], ...]) -> list[PruneTarget]:
    """Weights of every ``kinds`` submodule of ``module`` outside recurrent cores and libraries.

    Recurrent cores of any kind (:func:`pathevo.modules.recurrent.is_recurrent`) are left dense: the
    masks cover the feed-forward policy/value and torso layers only.
    """
    targets: list[PruneTarget] = []

    def visit(node: nn.Module) -> None:
        if is_recurrent(node) or isinstance(node, PathLibrary):
            return
        if isinstance(node, kinds):
            targets.append((node, "weight"))
        for child in node.children():
            visit(child)

    visit(module)
    return targets


def _heads(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, TaskHeads):
        return list(model.heads.values())
    if isinstance(getattr(model, "heads", None), TaskHeads):
        return list(model.heads.heads.values())
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        return [head]
    return [model]  # a head itself


def head_targets(model: nn.Module) -> list[PruneTarget]:
    """Every ``nn.Linear`` weight of the agent's policy/value head(s), recurrent cores excluded.

    ``model`` is an :class:`~pathevo.agents.a3c.A3CNet` (its ``head``), a
    :class:`~pathevo.agents.pathnet_a3c.PathNetA3C` (every head of its ``heads``), a
    :class:`~pathevo.modules.heads.TaskHeads`, or a head itself.
    """
    return [target for head in _heads(model) for target in _linear_weights(head, (nn.Linear,))]


def network_targets(model: nn.Module) -> list[PruneTarget]:
    """Every ``nn.Linear`` / ``nn.Conv2d`` weight outside a PathLibrary (torso and heads);
    recurrent cores are excluded as in :func:`head_targets`."""
    return _linear_weights(model, (nn.Linear, nn.Conv2d))


def library_targets(library: PathLibrary, path: torch.Tensor | None = None) -> list[PruneTarget]:
    """The ``weights`` of ``path``'s modules ([L, N] long; ``None``: every module) that are not
    frozen, layer by layer, modules in increasing id order. Layers without a ``weights`` kind
    (MoE, hyper-generated) are skipped; biases are never targets."""
    rows = path.tolist() if path is not None else [None] * library.num_layers
    targets: list[PruneTarget] = []
    for layer, ids in zip(library.layers, rows, strict=True):
        if "weights" not in getattr(layer, "parameter_kinds", ()):
            continue
        modules = range(layer.num_modules) if ids is None else sorted(distinct(ids))
        frozen = layer.frozen.tolist()
        targets += [(layer.weights, str(m)) for m in modules if not frozen[m]]
    return targets


def pruned_targets(model: nn.Module) -> list[PruneTarget]:
    """Every target of ``model`` with a mask attached, in ``named_modules`` order."""
    found: list[PruneTarget] = []
    for module in model.modules():
        for buffer_name, _ in module.named_buffers(recurse=False):
            name = buffer_name.removesuffix("_mask")
            if buffer_name.endswith("_mask") and _has_weight(module, name):
                found.append((module, name))
    return found


def _has_weight(module: nn.Module, name: str) -> bool:
    return name + "_orig" in module._parameters or name in module._parameters


# --- masks -----------------------------------------------------------------------------------


def _managed(module: nn.Module, name: str) -> bool:
    """The target uses torch.nn.utils.prune's reparametrisation (``<name>_orig``)."""
    return name + "_orig" in module._parameters


def _raw(module: nn.Module, name: str) -> nn.Parameter:
    """The trained parameter: ``<name>_orig`` (prune), or the parameter itself (library)."""
    return module._parameters[name + "_orig" if _managed(module, name) else name]


def _mask(module: nn.Module, name: str) -> torch.Tensor:
    mask = module._buffers.get(name + "_mask")
    if mask is None:
        raise ValueError(f"no mask on {type(module).__name__}.{name}; call attach_masks first")
    return mask


def _frozen(module: nn.Module, name: str) -> bool:
    return not _raw(module, name).requires_grad


def _detach_pruned(module: nn.Module, _args: Any, _output: Any) -> None:
    # A grad-mode forward leaves prune's ``weight`` as a non-leaf tensor, which deepcopy and the
    # spawn pickler refuse; the graph of this forward keeps its own reference to it.
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, prune.BasePruningMethod):
            name = hook._tensor_name
            setattr(module, name, getattr(module, name).detach())


def _refresh(module: nn.Module, name: str) -> None:
    """Recompute prune's ``weight`` attribute (detached) after masks or weights changed."""
    if _managed(module, name):
        with torch.no_grad():
            setattr(module, name, _raw(module, name) * _mask(module, name))


def attach_masks(targets: Iterable[PruneTarget]) -> None:
    """All-ones masks on ``targets`` (idempotent: a target with a mask keeps it).

    ``nn.Linear`` / ``nn.Conv2d`` weights get prune's reparametrisation; ParameterList entries
    (library modules) get a mask buffer only. A mask lands in shared memory if its weight is.
    The parameter object is kept (prune re-registers it as ``<name>_orig``), so an optimiser
    built before attaching still steps it.
    """
    for module, name in targets:
        if name + "_mask" in module._buffers:
            continue
        weight = module._parameters[name]
        if isinstance(module, nn.ParameterList):
            module.register_buffer(name + "_mask", torch.ones_like(weight.detach()))
        else:
            prune.custom_from_mask(module, name, torch.ones_like(weight.detach()))
            for hook in module._forward_pre_hooks.values():
                if isinstance(hook, prune.CustomFromMask):
                    hook.mask = None  # the all-ones mask it was built with is not used again
            if _detach_pruned not in module._forward_hooks.values():
                module.register_forward_hook(_detach_pruned)
            _refresh(module, name)
        if in_shared_memory(weight):  # a Hogwild model (is_shared() is True for any CUDA tensor)
            _mask(module, name).share_memory_()


def attach_for_state_dict(model: nn.Module, state_dict: Mapping[str, Any]) -> list[PruneTarget]:
    """Attach masks to every target whose ``<name>_mask`` is in ``state_dict`` (a pruned
    checkpoint), so that ``model.load_state_dict(state_dict)`` then fits; returns them."""
    targets: list[PruneTarget] = []
    for key in state_dict:
        if not key.endswith("_mask"):
            continue
        prefix, _, buffer_name = key.rpartition(".")
        module = model.get_submodule(prefix) if prefix else model
        name = buffer_name.removesuffix("_mask")
        if _has_weight(module, name):
            targets.append((module, name))
    attach_masks(targets)
    return targets


def masks(targets: Iterable[PruneTarget]) -> list[torch.Tensor]:
    """Copies of the current masks (float 0/1, each of its weight's shape), in order."""
    return [_mask(module, name).detach().clone() for module, name in targets]


def set_masks(targets: Iterable[PruneTarget], new_masks: Iterable[torch.Tensor]) -> None:
    """Write ``new_masks`` (bool or 0/1, one per target) into the mask buffers in place and zero
    the weights they prune. Frozen targets are left alone."""
    with torch.no_grad():
        for (module, name), new in zip(targets, new_masks, strict=True):
            if _frozen(module, name):
                continue
            mask = _mask(module, name)
            mask.copy_(new.to(mask.dtype))
            _raw(module, name).mul_(mask)
            _refresh(module, name)


def sparsity(targets: Iterable[PruneTarget]) -> float:
    """The fraction (0..1) of the targets' weights that are pruned (no mask: none pruned)."""
    pruned = total = 0
    for module, name in targets:
        mask = module._buffers.get(name + "_mask")
        total += _raw(module, name).numel()
        if mask is not None:
            pruned += int((mask == 0).sum())
    return pruned / total if total else 0.0


def effective_weight(module: nn.Module, name: str) -> torch.Tensor:
    """The weight the target computes with (``orig * mask``), detached, freshly computed."""
    raw = _raw(module, name).detach()
    mask = module._buffers.get(name + "_mask")
    return raw * mask if mask is not None and _managed(module, name) else raw


# --- magnitude pruning -----------------------------------------------------------------------


def _prune_smallest(scores: torch.Tensor, alive: torch.Tensor, count: int) -> torch.Tensor:
    """Flat indices of the ``count`` smallest ``scores`` among ``alive`` entries; ties go to the
    lower index (stable sort), so the result is deterministic."""
    candidates = alive.nonzero().squeeze(1)  # [K]
    order = torch.sort(scores[candidates], stable=True).indices
    return candidates[order[:count]]


def magnitude_prune(
    targets: Iterable[PruneTarget], fraction: float | Sequence[float], scope: Scope = "global"
) -> None:
    """Prune ``fraction`` of the *remaining* weights with the smallest |effective weight|.

    ``scope`` "global" ranks all targets' weights together and prunes round(fraction * remaining)
    of them; "layer" prunes round(fraction * remaining in the layer) in each target, and then
    ``fraction`` may be one per target (Frankle & Carbin prune LeNet's hidden layers by 20% a
    round and its output layer by 10%). Ties go to the earlier entry (targets in order, then
    row-major). Frozen targets are neither counted nor pruned. Pruned weights are set to zero.
    """
    targets = list(targets)
    fractions = [fraction] * len(targets) if isinstance(fraction, int | float) else list(fraction)
    if len(fractions) != len(targets):
        raise ValueError(f"{len(fractions)} prune fractions for {len(targets)} targets")
    if not all(0.0 <= f <= 1.0 for f in fractions):
        raise ValueError(f"fractions must lie in [0, 1], got {fraction}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    if scope == "global" and len(set(fractions)) > 1:
        raise ValueError("global ranking prunes one fraction of all targets together")
    live = [(target, f) for target, f in zip(targets, fractions, strict=True)
            if not _frozen(*target)]  # fmt: skip
    if not live:
        return
    scores = [effective_weight(module, name).abs().flatten() for (module, name), _ in live]
    alive = [_mask(module, name).flatten() != 0 for (module, name), _ in live]
    new_masks = [mask.clone() for mask in alive]  # bool [n_i]
    if scope == "layer":
        for score, keep, new, (_, f) in zip(scores, alive, new_masks, live, strict=True):
            count = round(f * int(keep.sum()))
            new[_prune_smallest(score, keep, count)] = False
    else:
        keep = torch.cat(alive)
        count = round(fractions[0] * int(keep.sum()))
        flat = torch.cat(new_masks)
        flat[_prune_smallest(torch.cat(scores), keep, count)] = False
        new_masks = list(flat.split([mask.numel() for mask in alive]))
    live_targets = [target for target, _ in live]
    shaped = [new.view_as(_mask(*t)) for new, t in zip(new_masks, live_targets, strict=True)]
    set_masks(live_targets, shaped)


# --- rewinding and the controls --------------------------------------------------------------


def weights_snapshot(targets: Iterable[PruneTarget]) -> list[torch.Tensor]:
    """Cloned effective weights of ``targets`` (the state to rewind to: at initialisation, or
    after k updates for late rewinding)."""
    return [effective_weight(module, name).clone() for module, name in targets]


def rewind(targets: Iterable[PruneTarget], snapshot: Iterable[torch.Tensor]) -> None:
    """Write ``snapshot`` back into the unpruned entries (bitwise); pruned entries become 0.
    Frozen targets are left alone."""
    with torch.no_grad():
        for (module, name), saved in zip(targets, snapshot, strict=True):
            if _frozen(module, name):
                continue
            raw, mask = _raw(module, name), _mask(module, name)
            if saved.shape != raw.shape:
                raise ValueError(f"snapshot of shape {list(saved.shape)} for {list(raw.shape)}")
            raw.copy_(torch.where(mask != 0, saved.to(raw.dtype), torch.zeros_like(saved)))
            _refresh(module, name)


def kaiming_uniform(tensor: torch.Tensor, generator: torch.Generator) -> None:
    """``nn.Linear`` / ``nn.Conv2d``'s default weight initialisation (kaiming-uniform, a=√5)."""
    nn.init.kaiming_uniform_(tensor, a=math.sqrt(5), generator=generator)


def reinitialise(
    targets: Iterable[PruneTarget], seed: int, *, init: Init = kaiming_uniform
) -> None:
    """The random re-initialisation control: fresh ``init`` draws (default: the layers' default
    init) for every target weight from a generator seeded with ``seed``; masks are kept and
    pruned entries stay 0. Frozen targets are left alone."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module, name in targets:
            if _frozen(module, name):
                continue
            raw, mask = _raw(module, name), _mask(module, name)
            fresh = torch.empty(raw.shape, dtype=raw.dtype)
            init(fresh, generator)
            raw.copy_(fresh * mask)
            _refresh(module, name)


def random_masks(targets: Iterable[PruneTarget], seed: int) -> None:
    """The random-mask control: every mask replaced by a uniformly random one pruning the same
    number of entries of the same layer. Newly pruned weights are zeroed; newly unpruned ones
    hold whatever their parameter held (0 if it was pruned), so follow with :func:`rewind` or
    :func:`reinitialise`. Frozen targets are left alone."""
    generator = torch.Generator().manual_seed(seed)
    live = [(module, name) for module, name in targets if not _frozen(module, name)]
    new_masks = []
    for module, name in live:
        mask = _mask(module, name)
        pruned = int((mask == 0).sum())
        new = torch.ones(mask.numel(), dtype=mask.dtype)
        new[torch.randperm(mask.numel(), generator=generator)[:pruned]] = 0
        new_masks.append(new.view_as(mask))
    set_masks(live, new_masks)


def permute_survivors(targets: Iterable[PruneTarget], seed: int) -> None:
    """The permuted-weights control of Vischer et al. 2021 (arXiv:2105.01648, "On lottery
    tickets and minimal task representations in deep RL"): in every target, the values of the
    surviving weights are shuffled among the surviving positions (a uniformly random permutation
    per layer, from a generator seeded with ``seed``). Masks, and each layer's multiset of
    surviving values, are kept; pruned entries stay 0. Frozen targets are left alone."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module, name in targets:
            if _frozen(module, name):
                continue
            raw, mask = _raw(module, name), _mask(module, name)
            values = effective_weight(module, name).flatten()  # [n]
            alive = (mask.flatten() != 0).nonzero().squeeze(1)  # [K]
            shuffled = values.clone()
            shuffled[alive] = values[alive[torch.randperm(len(alive), generator=generator)]]
            raw.copy_(shuffled.view_as(raw))
            _refresh(module, name)


# --- the optimiser hooks library targets need ------------------------------------------------


class HookHandles:
    """Removable handles of several hooks, removed together (like ``RemovableHandle``)."""

    def __init__(self, handles: list[torch.utils.hooks.RemovableHandle]) -> None:
        self.handles = handles

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _raw_pairs(targets: Iterable[PruneTarget]) -> list[tuple[nn.Parameter, torch.Tensor]]:
    return [
        (_raw(module, name), _mask(module, name))
        for module, name in targets
        if not _managed(module, name)
    ]


@torch.no_grad()
def _mask_gradients(pairs: list[tuple[nn.Parameter, torch.Tensor]], *_: Any) -> None:
    for param, mask in pairs:
        if param.grad is not None and param.requires_grad:
            param.grad.mul_(mask)


@torch.no_grad()
def _zero_pruned(pairs: list[tuple[nn.Parameter, torch.Tensor]], *_: Any) -> None:
    for param, mask in pairs:
        if param.requires_grad:  # frozen modules: PathLibrary.guard restores their values
            param.mul_(mask)


def keep_pruned_zero(
    model_or_targets: nn.Module | Iterable[PruneTarget], optimizer: torch.optim.Optimizer
) -> HookHandles:
    """Hook ``optimizer`` so that pruned library weights stay exactly 0: their gradients are
    masked before every step and the parameters re-zeroed after it (momentum and Adam moments
    would move them otherwise). prune-managed targets (heads) need nothing and are skipped.
    Given a module, its targets are :func:`pruned_targets`. Call it in every process that
    steps ``optimizer`` (optimiser hooks are not pickled)."""
    targets = (
        pruned_targets(model_or_targets)
        if isinstance(model_or_targets, nn.Module)
        else list(model_or_targets)
    )
    pairs = _raw_pairs(targets)
    return HookHandles(
        [
            optimizer.register_step_pre_hook(functools.partial(_mask_gradients, pairs)),
            optimizer.register_step_post_hook(functools.partial(_zero_pruned, pairs)),
        ]
    )


# --- a head factory for pruned agents --------------------------------------------------------


def _pruned_head(
    base: Callable[..., nn.Module], in_features: int, num_actions: int, lstm_units: int, **kw: Any
) -> nn.Module:
    head = base(in_features, num_actions, lstm_units, **kw)
    attach_masks(head_targets(head))
    return head


def pruned_head_factory(base: Callable[..., nn.Module] = ActorCriticHead) -> HeadFactory:
    """A :data:`~pathevo.modules.actor_critic.HeadFactory` making ``base`` heads with all-ones
    masks on their policy/value ``nn.Linear`` weights; a picklable ``functools.partial`` that
    passes the ``core`` keyword through (``A3CConfig.head_factory(pruned_head_factory())``
    works)."""
    return functools.partial(_pruned_head, base)
