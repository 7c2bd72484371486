"""The mixture-of-experts agents: A3C with an MoE head, PathNet-A3C with an MoE last layer.

Shazeer et al. 2017 (arXiv:1701.06538) inside A3C (Mnih et al. 2016, arXiv:1602.01783) and
PathNet-A3C (Fernando et al. 2017, arXiv:1701.08734):

- ``moe``: the standard torso, then a policy/value head that is a noisy top-k mixture of E
  small expert heads (:class:`pathevo.modules.moe_head.MoEActorCriticHead`);
- ``pathnet-moe``: a PathNet library whose last layer is an MoE layer: the path's N module ids
  are the experts the task's own gate may route each observation to (top k of them).

Both add the gates' importance and load losses to the A3C loss; both are registered in
:mod:`pathevo.agents.registry` from this file's :class:`MoEConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pathevo.modules.actor_critic import HeadFactory
from pathevo.modules.library import LayerFactory
from pathevo.modules.moe import moe_layer_factory
from pathevo.modules.moe_head import moe_head_factory


@dataclass
class MoEConfig:
    """Mixture-of-experts settings (Shazeer et al. 2017)."""

    experts: int = 8
    """E: experts of the MoE head (`moe`); the `pathnet-moe` last layer has pathnet.modules."""
    expert_hidden: int = 32
    """Hidden units of each expert (a two-layer ReLU network)."""
    k: int = 2
    """Experts each observation is sent to (at most the path's N in a path library)."""
    capacity_factor: float | None = 2.0
    """Places per expert = factor * batch * k / experts: compute stays flat in E (None: every
    expert takes the whole batch, nothing dropped, compute grows with E)."""
    w_importance: float = 1.0
    """Coefficient of the importance loss (CV² of the per-expert gate sums). The paper's 0.1
    is too weak against A3C's loss: CartPole's MoE head ended with a load CV² of 2.0 (1.0: 0.2)."""
    w_load: float = 1.0
    """Coefficient of the load loss (CV² of the smooth per-expert load)."""

    def __post_init__(self) -> None:
        if min(self.experts, self.expert_hidden, self.k) <= 0:
            raise ValueError("moe.experts, moe.expert_hidden and moe.k must be positive")
        if self.k > self.experts:  # the MoE head's check; in a path library k is clipped to N
            raise ValueError(f"moe.k={self.k} exceeds moe.experts={self.experts}")
        if self.capacity_factor is not None and self.capacity_factor <= 0:
            raise ValueError(f"moe.capacity_factor must be positive, got {self.capacity_factor}")
        if self.w_importance < 0 or self.w_load < 0:
            raise ValueError("moe.w_importance and moe.w_load must be non-negative")

    def head_factory(self) -> HeadFactory:
        """Heads that are a mixture of ``experts`` small expert heads (the ``moe`` agent)."""
        return moe_head_factory(
            self.experts, self.expert_hidden, self.k, self.capacity_factor, self.w_importance,
            self.w_load,
        )  # fmt: skip

    def layer_factory(self) -> LayerFactory:
        """Library layers that are mixtures of their modules (``pathnet-moe``, binary digits)."""
        return moe_layer_factory(
            self.expert_hidden, self.k, self.capacity_factor, self.w_importance, self.w_load
        )
