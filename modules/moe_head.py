"""An actor-critic head that is a sparsely-gated mixture of small expert heads.

Shazeer et al. 2017 (arXiv:1701.06538) on top of A3C (Mnih et al. 2016, arXiv:1602.01783): the
features (after the optional LSTM core) go through an MoE layer whose E experts are small
two-layer networks, each producing policy logits and a value; the gate picks k experts per
observation. Its balancing loss is taken with :meth:`MoEActorCriticHead.take_aux_loss`.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from pathevo.modules.actor_critic import HeadFactory
from pathevo.modules.cores import DEFAULT_CORE, CoreFactory
from pathevo.modules.gating import AuxLosses
from pathevo.modules.moe import MoEModuleLayer
from pathevo.modules.recurrent import CoreState, unroll_core, zero_state


class MoEActorCriticHead(nn.Module):
    """Features -> (policy logits, value) through E expert heads, k per observation.

    The optional recurrent core (``lstm_units`` > 0) is built by ``core``, as in
    :class:`pathevo.modules.actor_critic.ActorCriticHead`.
    """

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        lstm_units: int = 0,
        experts: int = 8,
        expert_hidden: int = 32,
        k: int = 2,
        capacity_factor: float | None = None,
        w_importance: float = 0.1,
        w_load: float = 0.1,
        core: CoreFactory = DEFAULT_CORE,
    ) -> None:
        super().__init__()
        if in_features <= 0 or num_actions <= 0 or lstm_units < 0:
            raise ValueError("a head needs positive features and actions, lstm_units >= 0")
        self.lstm = core(in_features, lstm_units) if lstm_units else None
        self.num_actions = num_actions
        self.experts = MoEModuleLayer(
            experts, lstm_units or in_features, expert_hidden, num_actions + 1, k,
            capacity_factor, w_importance, w_load,
        )  # fmt: skip
        self.all_experts = list(range(experts))
        with torch.no_grad():  # a near-uniform initial policy, as ActorCriticHead's
            for m in self.all_experts:
                self.experts.w2[m][:num_actions].mul_(0.01)
                self.experts.b2[m][:num_actions].zero_()
        self._aux_losses = AuxLosses()

    def initial_state(self, batch: int) -> CoreState | None:
        return zero_state(self.lstm, batch)

    def forward(
        self, features: torch.Tensor, starts: torch.Tensor, state: CoreState | None
    ) -> tuple[torch.Tensor, torch.Tensor, CoreState | None]:
        # features: [T, B, F]; starts: [T, B] bool -> logits [T, B, A], values [T, B], state
        if self.lstm is not None:
            features, state = unroll_core(self.lstm, features, starts, state)
        steps, batch = features.shape[:2]
        if torch.is_grad_enabled():
            out, aux = self.experts.forward_with_aux(features.flatten(0, 1), self.all_experts)
            self._aux_losses.add(aux)
        else:  # acting: nobody takes a balancing loss computed without autograd
            out = self.experts(features.flatten(0, 1), self.all_experts)
        out = out.view(steps, batch, -1)  # [T, B, A+1]
        return out[..., : self.num_actions], out[..., self.num_actions], state

    def take_aux_loss(self) -> torch.Tensor | None:
        """The mean balancing loss of the passes since the last call (autograd enabled ones)."""
        return self._aux_losses.take()


def moe_head_factory(
    experts: int = 8,
    expert_hidden: int = 32,
    k: int = 2,
    capacity_factor: float | None = None,
    w_importance: float = 0.1,
    w_load: float = 0.1,
) -> HeadFactory:
    """A :data:`~pathevo.modules.actor_critic.HeadFactory` making :class:`MoEActorCriticHead` s.

    A ``partial`` of the class, not a closure: models keep their factory and are pickled to
    spawned workers.
    """
    return functools.partial(
        MoEActorCriticHead, experts=experts, expert_hidden=expert_hidden, k=k,
        capacity_factor=capacity_factor, w_importance=w_importance, w_load=w_load,
    )  # fmt: skip
