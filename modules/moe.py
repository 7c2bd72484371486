"""A sparsely-gated mixture-of-experts path layer: the layer's modules are the experts.

Shazeer et al. 2017, arXiv:1701.06538. Each expert is a small two-layer ReLU network
``in -> hidden -> out``; a trainable gate (one per task, zero-initialised, so it starts by
routing uniformly) sends every example to k experts and sums their outputs weighted by the
gate (:mod:`pathevo.modules.gating`). In a PathNet library the path decides *which* experts a task
may use: the gate picks the top k among the path's N module ids, never outside them.

**Dispatch** is batched: tokens are grouped by chosen expert into one ``[S, C, in]`` buffer and
all experts run as two batched matmuls (no loop over examples or experts;
:mod:`pathevo.modules.expert_mlp`). Small batches of one path take shorter roads to the same
result: when B·n is within :attr:`MoEModuleLayer.dense_rows`, every expert runs on every token and
the gates (zero outside the top k and for overflowed choices) weigh them; an acting pass (one
token, no autograd, no balancing loss) runs only its k experts. **Capacity**: each
expert takes at most C = ceil(capacity_factor · B · k / n) tokens of a batch of B over the
path's n experts (``capacity_factor=None``: C = B, nothing ever overflows). Tokens claim places
in order of preference — every token's first choice before any second choice — and within a
preference by position in the batch. A choice that finds its expert full is dropped: it adds
nothing to the token's output, and the token's other choices keep their gate values (the output
is not renormalised). A token whose every choice overflowed gets a zero output from this layer.

**Balancing**: importance and load losses (CV² of per-expert gate sums and of the smooth load,
each with its own coefficient) are returned by :meth:`MoEModuleLayer.forward_with_aux` for the
library to collect; :meth:`forward` alone returns only the output (and skips computing them).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pathevo.modules.expert_mlp import GradientBuffers, expert_mlp
from pathevo.modules.gating import Gating, balance_losses, cv_squared, noisy_top_k
from pathevo.modules.layers import ModuleLayer, distinct, in_shared_memory, unique_weights

DEFAULT_TASK = "default"
PENDING_CHOICES = 256
"""Choices a layer keeps unsummed for its routing record before it sums them."""
DENSE_ROWS = 256
"""Default :attr:`MoEModuleLayer.dense_rows`: an MoE head's acting (1 x 8 experts) and learning
passes (20 x 8) run dense."""


@dataclass
class Routing:
    """Where an MoE layer sent one task's tokens: observability, not part of the model."""

    picks: torch.Tensor
    """[E]: tokens the gate sent to each expert (top-k choices, before capacity)."""
    importance: torch.Tensor
    """[E]: the sum of each expert's gate values."""
    allowed: torch.Tensor
    """[E] bool: the experts a path offered the gate."""
    tokens: int = 0

    @classmethod
    def empty(cls, experts: int) -> Routing:
        return cls(
            torch.zeros(experts), torch.zeros(experts), torch.zeros(experts, dtype=torch.bool)
        )

    def grow(self, extra: int) -> None:
        """Room for ``extra`` new experts (nothing sent to them yet)."""
        self.picks = torch.cat([self.picks, self.picks.new_zeros(extra)])
        self.importance = torch.cat([self.importance, self.importance.new_zeros(extra)])
        self.allowed = torch.cat([self.allowed, self.allowed.new_zeros(extra)])

    def as_lists(self) -> dict[str, list[float] | list[bool] | int]:
        """Plain lists, to send over a queue or write as JSON."""
        return {
            "picks": self.picks.tolist(), "importance": self.importance.tolist(),
            "allowed": self.allowed.tolist(), "tokens": self.tokens,
        }  # fmt: skip

    def load_cv2(self) -> float:
        """CV² of the picks over the allowed experts (0: perfectly balanced)."""
        return float(cv_squared(self.picks[self.allowed])) if self.allowed.any() else 0.0


def take_routing(model: nn.Module) -> dict[str, Routing]:
    """``take_routing()`` of every submodule of ``model`` that reports routing (MoE layers),
    keyed ``<module name>/<task>``; empty for models without gates."""
    found = {}
    for name, module in model.named_modules():
        report = getattr(module, "take_routing", None)
        if module is not model and callable(report):
            for task, routing in report().items():
                found[f"{name}/{task}"] = routing
    return found


class MoEModuleLayer(ModuleLayer):
    """E experts ``in -> hidden -> out`` (two-layer ReLU nets), a noisy top-k gate per task."""

    def __init__(
        self,
        num_experts: int,
        in_features: int,
        hidden: int,
        out_features: int,
        k: int = 2,
        capacity_factor: float | None = 1.25,
        w_importance: float = 0.1,
        w_load: float = 0.1,
        noisy: bool = True,
        activation: bool = False,
    ) -> None:
        super().__init__(num_experts, "sum")
        if min(in_features, hidden, out_features, k) <= 0:
            raise ValueError("experts need positive sizes and k >= 1")
        if capacity_factor is not None and capacity_factor <= 0:
            raise ValueError(f"capacity_factor must be positive or None, got {capacity_factor}")
        if w_importance < 0 or w_load < 0:
            raise ValueError("balancing coefficients must be non-negative")
        self.in_features, self.hidden, self.out_features = in_features, hidden, out_features
        self.k, self.capacity_factor = k, capacity_factor
        self.w_importance, self.w_load = w_importance, w_load
        self.noisy, self.activation = noisy, activation
        self.w1 = self.module_parameters("w1", hidden, in_features)
        self.b1 = self.module_parameters("b1", hidden)
        self.w2 = self.module_parameters("w2", out_features, hidden)
        self.b2 = self.module_parameters("b2", out_features)
        self.reset_modules(range(num_experts))
        self.gates = nn.ParameterDict()
        """Per task: [in, E] clean-logit weights W_g."""
        self.noise_gates = nn.ParameterDict()
        """Per task: [in, E] noise-scale weights W_noise."""
        self.frozen_tasks: set[str] = set()
        self.dense_rows = DENSE_ROWS
        """A single path whose B*n (tokens times experts) is at most this runs every expert on
        every token (:meth:`_dense`); larger batches are dispatched by expert."""
        self._routing: dict[str, Routing] = {}
        self._pending: list[tuple[str, list[int], torch.Tensor, torch.Tensor]] = []
        self._pending_size = 0
        self._grad_buffers = GradientBuffers()
        self.add_task(DEFAULT_TASK)

    # --- parameters ----------------------------------------------------------------------------

    @torch.no_grad()
    def reset_modules(self, module_ids) -> None:
        """nn.Linear's default initialisation for both layers of each expert."""
        for m in module_ids:
            for weight, bias, fan_in in (
                (self.w1[m], self.b1[m], self.in_features),
                (self.w2[m], self.b2[m], self.hidden),
            ):
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
                nn.init.uniform_(bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def add_task(self, task: str) -> None:
        """A zero-initialised gate for ``task`` (routes uniformly at first); kept if present."""
        key = _key(task)
        if key in self.gates:
            return
        device = self.w1[0].device
        shape = (self.in_features, self.num_modules)
        self.gates[key] = nn.Parameter(torch.zeros(shape, device=device))
        self.noise_gates[key] = nn.Parameter(torch.zeros(shape, device=device))

    def task_parameters(self, task: str | None) -> list[nn.Parameter]:
        key = self._gate_key(task)
        return [self.gates[key], self.noise_gates[key]]

    def path_parameters(self, ids: list[int], task: str | None = None) -> list[nn.Parameter]:
        return super().path_parameters(ids, task) + self.task_parameters(task)

    def freeze(self, ids: list[int], task: str | None = None) -> None:
        """Freeze the experts ``ids`` and, if given, ``task``'s gate."""
        super().freeze(ids, task)
        if task is not None:
            self.frozen_tasks.add(self._gate_key(task))
            self.refresh_frozen()

    def refresh_frozen(self) -> None:
        super().refresh_frozen()
        for key in self.gates:
            frozen = key in self.frozen_tasks
            self.gates[key].requires_grad_(not frozen)
            self.noise_gates[key].requires_grad_(not frozen)

    def frozen_parameter_names(self) -> list[str]:
        gates = [f"{kind}.{key}" for key in self.frozen_tasks for kind in ("gates", "noise_gates")]
        return super().frozen_parameter_names() + gates

    @torch.no_grad()
    def reset_unfrozen(self) -> None:
        super().reset_unfrozen()
        for key in self.gates:
            if key not in self.frozen_tasks:
                self.gates[key].zero_()
                self.noise_gates[key].zero_()

    @torch.no_grad()
    def grow_state(self, old: int, extra: int) -> None:
        """Every task's gates get zero columns for the new experts. A path offers the gate only
        its own experts' columns, so a task whose path holds none of the new experts (every
        frozen task) routes exactly as before; for the others a new expert starts where a fresh
        gate starts every expert, at a zero logit."""
        for gates in (self.gates, self.noise_gates):
            for key, gate in list(gates.items()):
                grown = torch.cat([gate.detach(), gate.new_zeros(gate.shape[0], extra)], dim=1)
                gates[key] = nn.Parameter(grown)  # [in, E + extra]
        self._fold()
        for routing in self._routing.values():
            routing.grow(extra)
        del old

    def get_extra_state(self) -> dict[str, list[str]]:
        return {"tasks": list(self.gates), "frozen_tasks": sorted(self.frozen_tasks)}

    def set_extra_state(self, state: dict[str, list[str]]) -> None:
        # Loaded before the gates themselves: create the saved tasks' gates, so a checkpoint
        # loads into a fresh layer without the caller knowing which tasks it had.
        for key in state["tasks"]:
            self.add_task(key.replace("\x1f", "."))
        self.frozen_tasks = set(state["frozen_tasks"])
        self.refresh_frozen()

    def _gate_key(self, task: str | None) -> str:
        key = _key(DEFAULT_TASK if task is None else task)
        if key not in self.gates:
            known = sorted(k.replace("\x1f", ".") for k in self.gates)
            raise KeyError(f"no gate for task {task!r} in an MoE layer; known: {known}")
        return key

    # --- forward -------------------------------------------------------------------------------

    def capacity(self, batch: int, experts: int) -> int:
        """Places per expert for a batch of ``batch`` tokens over ``experts`` experts."""
        if self.capacity_factor is None:
            return batch
        k = min(self.k, experts)
        return max(1, math.ceil(self.capacity_factor * batch * k / experts))

    def forward(self, x: torch.Tensor, ids: torch.Tensor | list[int]) -> torch.Tensor:
        # x: [B, in]; ids: [N] experts the gate may choose from -> [B, out]
        return self._single(x, distinct(ids), self._gate_key(None), with_aux=False)[0]

    def forward_with_aux(
        self, x: torch.Tensor, ids: torch.Tensor | list[int], *, task: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [B, in]; ids: [N] -> ([B, out], balancing loss [])
        y, aux = self._single(x, distinct(ids), self._gate_key(task), with_aux=True)
        assert aux is not None
        return y, aux

    def forward_population(
        self,
        x: torch.Tensor,
        ids: torch.Tensor | list[list[int]],
        dedup: torch.Tensor | None | str = "auto",
    ) -> torch.Tensor:
        # x: [P, B, in] or [B, in]; ids: [P, N] -> [P, B, out]
        return self.forward_population_with_aux(x, ids, dedup)[0]

    def forward_population_with_aux(
        self,
        x: torch.Tensor,
        ids: torch.Tensor | list[list[int]],
        dedup: torch.Tensor | None | str = "auto",
        *,
        task: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [P, B, in] or [B, in]; ids: [P, N] -> ([P, B, out], balancing loss [])
        rows = ids.tolist() if isinstance(ids, torch.Tensor) else [list(row) for row in ids]
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(len(rows), -1, -1)
        repeats = unique_weights(torch.tensor(rows)) == 0  # [P, N]: a repeated id is no choice
        return self._mixture(x, rows, repeats, task)

    def _mixture(
        self,
        x: torch.Tensor,
        rows: list[list[int]],
        repeats: torch.Tensor | None,
        task: str | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [P, B, in]; rows: P lists of n expert ids; repeats: [P, n] bool or None
        # -> ([P, B, out], balancing loss averaged over the P paths)
        p, b, n = x.shape[0], x.shape[1], len(rows[0])
        key = self._gate_key(task)
        flat = torch.tensor([m for row in rows for m in row], device=x.device)  # [P*n] -> expert
        columns = flat.view(p, n)
        w_gate = self.gates[key].t()[columns].transpose(1, 2)  # [P, in, n]
        clean = torch.bmm(x, w_gate)  # [P, B, n]
        noise_std = None
        if self.noisy and self.training:
            w_noise = self.noise_gates[key].t()[columns].transpose(1, 2)
            noise_std = F.softplus(torch.bmm(x, w_noise)).flatten(0, 1)  # [P*B, n]
        offered = None if repeats is None else ~repeats.to(x.device)  # [P, n]
        available = None if offered is None else offered.repeat_interleave(b, dim=0)
        gating = noisy_top_k(clean.flatten(0, 1), noise_std, self.k, available)  # tokens P*B
        importance = gating.gates.view(p, b, n).sum(1)  # [P, n]
        load = gating.load.view(p, b, n).sum(1)
        aux = balance_losses(importance, load, self.w_importance, self.w_load, offered).mean()
        offsets = (torch.arange(p, device=x.device) * n).repeat_interleave(b).unsqueeze(1)
        self._record(key, flat, gating.top_slots + offsets, gating.top_gates, importance)
        # Each path's capacity counts its distinct experts, as its single-path forward does.
        distinct_experts = [len(set(row)) for row in rows]
        capacities = torch.tensor(
            [self.capacity(b, d) for d in distinct_experts], device=x.device
        ).repeat_interleave(n)  # [P*n] places per slot
        y = self._dispatch(x.flatten(0, 1), gating.top_slots + offsets, gating.top_gates, flat,
                           capacities)  # fmt: skip
        return y.view(p, b, self.out_features), aux

    def _single(
        self, x: torch.Tensor, ids: list[int], key: str, with_aux: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # x: [B, in]; ids: n distinct experts -> ([B, out], balancing loss [] or None)
        # One path: the population forward's steps without its batching of paths (offsets,
        # masks of repeats), which at an acting batch of 1 cost more than the experts.
        b, n = x.shape[0], len(ids)
        gate, noise_gate = self.gates[key], self.noise_gates[key]
        experts = None
        if ids != list(range(self.num_modules)):
            experts = torch.tensor(ids, device=x.device)
            gate, noise_gate = gate[:, experts], noise_gate[:, experts]  # [in, n]
        clean = torch.mm(x, gate)  # [B, n]
        noise_std = F.softplus(torch.mm(x, noise_gate)) if self.noisy and self.training else None
        one = b == 1 and not with_aux and not torch.is_grad_enabled()
        gating = noisy_top_k(clean, noise_std, self.k, choices_only=one)
        self._record_path(key, ids, gating.top_slots, gating.top_gates)
        if one:  # acting on one observation: its k experts, nothing to overflow
            return self._one_token(x, ids, gating), None
        assert gating.gates is not None and gating.load is not None
        aux = None
        if with_aux:
            importance, load = gating.gates.sum(0), gating.load.sum(0)  # [n]
            aux = balance_losses(importance, load, self.w_importance, self.w_load)
        capacity = self.capacity(b, n)
        if b * n <= self.dense_rows:
            return self._dense(x, ids, gating.gates, gating.top_slots, capacity), aux
        if experts is None:
            experts = torch.arange(n, device=x.device)
        capacities = torch.full((n,), capacity, device=x.device)
        return self._dispatch(x, gating.top_slots, gating.top_gates, experts, capacities), aux

    def _one_token(self, x: torch.Tensor, ids: list[int], gating: Gating) -> torch.Tensor:
        # x: [1, in] -> [1, out]: the token's k chosen experts one by one, straight from their
        # parameters (no stacking), outputs weighed by one [1, k] x [k, out] matmul.
        w1, b1, w2, b2 = (self._module_lists[kind] for kind in ("w1", "b1", "w2", "b2"))
        outs = []
        for slot in gating.top_slots[0].tolist():
            m = ids[slot]
            out = F.linear(F.relu(F.linear(x, w1[m], b1[m])), w2[m], b2[m])  # [1, out]
            outs.append(F.relu(out) if self.activation else out)
        return torch.mm(gating.top_gates, torch.cat(outs))

    def _dense(
        self,
        x: torch.Tensor,
        ids: list[int],
        gates: torch.Tensor,
        top_slots: torch.Tensor,
        capacity: int,
    ) -> torch.Tensor:
        # x: [B, in]; ids: the n slots' experts; gates: [B, n] (zero outside each token's top
        # k); top_slots: [B, k] -> [B, out]
        # Every expert on every token, weighted by the gates (zero for choices that overflowed
        # too): a handful of ops, where the dispatch's sort, buffer and combine take dozens, and
        # within dense_rows no more arithmetic to speak of. The dispatch's outputs and gradients.
        b, n = x.shape[0], len(ids)
        if b > capacity:  # an expert may get more choices than it has places
            kept = _places_taken(top_slots, n, capacity)
            gates = gates if kept is None else gates * kept.to(gates.dtype)
        w1, b1 = self._stacked("w1", ids), self._stacked("b1", ids)  # [n, hidden, in], [n, hidden]
        w2, b2 = self._stacked("w2", ids), self._stacked("b2", ids)  # [n, out, hidden], [n, out]
        hidden = F.relu(F.linear(x, w1.flatten(0, 1), b1.flatten()))  # [B, n*hidden]
        hidden = hidden.view(b, n, self.hidden).transpose(0, 1)  # [n, B, hidden]
        out = torch.baddbmm(b2.unsqueeze(1), hidden, w2.transpose(1, 2))  # [n, B, out]
        if self.activation:
            out = F.relu(out)
        return (out * gates.t().unsqueeze(2)).sum(0)

    def _record_path(
        self, key: str, ids: list[int], top_slots: torch.Tensor, top_gates: torch.Tensor
    ) -> None:
        # ids: the n slots' experts; top_slots, top_gates: [B, k]
        # Kept and summed in bulk (:meth:`_fold`): at an acting batch of one, a bincount and an
        # index_add on every pass cost a tenth of it.
        if top_gates.requires_grad:
            top_gates = top_gates.detach()
        self._pending.append((key, ids, top_slots, top_gates))
        self._pending_size += top_gates.numel()
        if self._pending_size >= PENDING_CHOICES:
            self._fold()

    def _fold(self) -> None:
        """Add the pending passes' choices to :attr:`_routing`: picks and importance."""
        groups: dict[tuple[str, tuple[int, ...]], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        for key, ids, slots, gates in self._pending:
            groups.setdefault((key, tuple(ids)), []).append((slots, gates))
        self._pending, self._pending_size = [], 0
        for (key, ids), parts in groups.items():
            routing = self._routing.get(key)
            if routing is None:
                routing = self._routing[key] = Routing.empty(self.num_modules)
            slots = torch.cat([part[0] for part in parts]).cpu()  # [tokens, k]
            gates = torch.cat([part[1] for part in parts]).float().cpu()
            experts = torch.tensor(ids)[slots]
            chosen = experts[gates > 0]  # an underflowed gate is no choice
            routing.picks += torch.bincount(chosen, minlength=self.num_modules).float()
            routing.importance.index_add_(0, experts.flatten(), gates.flatten())
            routing.allowed[list(ids)] = True
            routing.tokens += slots.shape[0]

    @torch.no_grad()
    def _record(
        self,
        key: str,
        experts: torch.Tensor,
        slots: torch.Tensor,
        gates: torch.Tensor,
        importance: torch.Tensor,
    ) -> None:
        # experts: [S] slot -> expert; slots, gates: [T, k]; importance: [P, n] (S = P*n)
        routing = self._routing.get(key)
        if routing is None:
            routing = self._routing[key] = Routing.empty(self.num_modules)
        chosen = experts[slots[gates > 0]].cpu()  # a zero gate (a masked repeat) is no choice
        routing.picks += torch.bincount(chosen, minlength=self.num_modules).float()
        routing.importance.index_add_(0, experts.cpu(), importance.detach().flatten().float().cpu())
        routing.allowed[experts.cpu()] = True
        routing.tokens += slots.shape[0]

    def take_routing(self) -> dict[str, Routing]:
        """Where each task's tokens went since the last call (for TensorBoard), then reset."""
        self._fold()
        taken = {key.replace("\x1f", "."): routing for key, routing in self._routing.items()}
        self._routing = {}
        return taken

    def _stacked(self, name: str, ids: list[int]) -> torch.Tensor:
        """The experts ``ids`` of parameter kind ``name``: [S, ...], as a view where possible.

        ``torch.stack`` allocates and fills S·|w| fresh floats on every pass (256 experts of
        512×256: two 128 MB copies, mostly page faults, a quarter of a training step). When the
        experts are consecutive modules of one large private storage, a view of it serves
        instead, and its backward hands each expert its slice of the gradient: the same values,
        no copy. With autograd, small kinds (the copy is cheaper), reordered or repeated experts
        and shared memory (other processes update it in place; the backward must see the
        forward's weights) take the copy; without it, only reordered or repeated experts do.
        """
        params = self._module_lists[name]
        first = params[ids[0]]
        grad = torch.is_grad_enabled()
        small = len(ids) * first.numel() < 1 << 18
        if grad and (small or in_shared_memory(first)) or not first.is_contiguous():
            return self.gather(name, ids)
        # Consecutive addresses within the first expert's storage: one storage, in order.
        start, step = first.data_ptr(), first.numel() * first.element_size()
        storage = first.untyped_storage()
        if start + len(ids) * step > storage.data_ptr() + storage.nbytes() or [
            params[m].data_ptr() for m in ids
        ] != list(range(start, start + len(ids) * step, step)):
            return self.gather(name, ids)
        size, stride = (len(ids), *first.shape), (first.numel(), *first.stride())
        view = torch.as_strided(first.detach(), size, stride, first.storage_offset())
        return _ExpertsView.apply(view, *(params[m] for m in ids)) if grad else view

    def _dispatch(
        self,
        x: torch.Tensor,
        slots: torch.Tensor,
        gates: torch.Tensor,
        experts: torch.Tensor,
        capacities: torch.Tensor,
    ) -> torch.Tensor:
        # x: [T, in]; slots: [T, k] global slot ids (path p's experts are slots p*n .. p*n+n-1);
        # gates: [T, k]; experts: [S] long slot -> expert id; capacities: [S] places per slot
        # -> [T, out]
        tokens, k = slots.shape
        num_slots = experts.numel()
        capacity = int(capacities.max())  # the buffer's places per slot
        # Preference order: all first choices, then all second choices, ... (k-major).
        choice_slot = slots.t().reshape(-1)  # [k*T]
        choice_token = torch.arange(tokens, device=x.device).repeat(k)
        choice_gate = gates.t().reshape(-1)
        order = torch.argsort(choice_slot, stable=True)
        counts = torch.bincount(choice_slot, minlength=num_slots)
        starts = torch.cumsum(counts, 0) - counts
        position = torch.empty_like(choice_slot)
        position[order] = torch.arange(order.numel(), device=x.device) - starts[choice_slot[order]]
        kept = position < capacities[choice_slot]
        place = choice_slot[kept] * capacity + position[kept]  # [K] index into the buffer
        token = choice_token[kept]
        buffer = x.new_zeros(num_slots * capacity, self.in_features)
        buffer = buffer.index_copy(0, place, x[token])  # [S*C, in]
        ids = experts.tolist()
        out = expert_mlp(
            buffer.view(num_slots, capacity, -1),  # [S, C, in]
            self._stacked("w1", ids),  # [S, hidden, in]
            self._stacked("b1", ids),
            self._stacked("w2", ids),  # [S, out, hidden]
            self._stacked("b2", ids),
            self.activation,
            self._grad_buffers,
        ).view(num_slots * capacity, -1)  # [S*C, out]
        weighted = out[place] * choice_gate[kept].unsqueeze(1)
        return x.new_zeros(tokens, self.out_features).index_add(0, token, weighted)


def _places_taken(top_slots: torch.Tensor, n: int, capacity: int) -> torch.Tensor | None:
    """[B, n] 0/1: the choices that found a place at their expert, in the dispatch's order
    (all first choices, then all second choices, ..., each in batch order); ``None`` when
    every choice did. top_slots: [B, k] distinct slots per token."""
    order = top_slots.t().reshape(-1, 1)  # [k*B, 1]: choices in preference order
    if int(torch.bincount(order.flatten(), minlength=n).max()) <= capacity:
        return None
    chosen = torch.zeros(order.shape[0], n, dtype=torch.long, device=order.device)
    chosen.scatter_(1, order, 1)  # [k*B, n]: choice i is of slot s
    before = chosen.cumsum(0) - chosen  # the slot's earlier choices
    kept = (chosen * (before < capacity)).view(-1, top_slots.shape[0], n)  # [k, B, n]
    return kept.sum(0)


class _ExpertsView(torch.autograd.Function):
    """A view of consecutive experts' storage that routes its gradient to each expert."""

    @staticmethod
    def forward(ctx, view: torch.Tensor, *experts: torch.Tensor) -> torch.Tensor:
        del ctx, experts
        return view

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        del ctx
        return (None, *grad.unbind(0))


def moe_layer_factory(
    expert_hidden: int,
    k: int = 2,
    capacity_factor: float | None = 1.25,
    w_importance: float = 0.1,
    w_load: float = 0.1,
) -> functools.partial[MoEModuleLayer]:
    """A :data:`pathevo.modules.library.LayerFactory` for MoE layers whose experts end in a ReLU
    (they feed the next layer or a head, as PathNet's modules do); the gate, not ``reduce``, weighs
    the experts. A ``partial``, so libraries that keep it stay picklable."""
    return functools.partial(
        _library_moe_layer, expert_hidden=expert_hidden, k=k, capacity_factor=capacity_factor,
        w_importance=w_importance, w_load=w_load,
    )  # fmt: skip


def _library_moe_layer(
    num_modules: int,
    in_features: int,
    out_features: int,
    reduce: str,
    *,
    expert_hidden: int,
    k: int,
    capacity_factor: float | None,
    w_importance: float,
    w_load: float,
) -> MoEModuleLayer:
    del reduce  # the gate's weights combine the experts
    return MoEModuleLayer(
        num_modules, in_features, expert_hidden, out_features, k, capacity_factor,
        w_importance, w_load, activation=True,
    )  # fmt: skip


def _key(task: str) -> str:
    # ParameterDict keys may not contain "."; task names such as "ALE/Pong-v5" may.
    return task.replace(".", "\x1f")
