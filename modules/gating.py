"""Noisy top-k gating and its balancing losses, as pure functions.

Shazeer et al. 2017, "Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts
Layer", arXiv:1701.06538, section 2.1 and appendix A:

* H(x)_i = (x·W_g)_i + StandardNormal() · Softplus((x·W_noise)_i)   (noise only in training)
* G(x) = Softmax(KeepTopK(H(x), k)): the k largest entries, softmax over those, zero elsewhere
* Importance_i = Σ_x G(x)_i;  L_importance = w_importance · CV(Importance)²
* Load_i = Σ_x P(x, i), the smooth probability that expert i is among the top k under a new
  draw of its noise: P(x, i) = Φ(((x·W_g)_i − kth_excluding(H(x), k, i)) / Softplus((x·W_noise)_i));
  L_load = w_load · CV(Load)²

Slots that may not be chosen (an expert the path does not allow, a repeated id) are masked out
with ``available``: they are never in the top k and add nothing to importance or load.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MASKED = -1e9
"""Logit of an unavailable slot: finite, so masked arithmetic never makes NaN."""


@dataclass
class Gating:
    """The gate's decision for T tokens over S slots (experts); sum rows over a batch's tokens
    for Importance (``gates``) and Load (``load``)."""

    top_slots: torch.Tensor
    """[T, k] long: the chosen slots, best first."""
    top_gates: torch.Tensor
    """[T, k]: their gate values (a softmax over the kept logits; rows sum to 1)."""
    gates: torch.Tensor | None
    """[T, S]: G(x), zero outside the top k (``None`` with ``choices_only``)."""
    load: torch.Tensor | None
    """[T, S]: P(x, i), the smooth probability of slot i being in the top k (the hard 0/1
    choice when there is no noise, or when every available slot is chosen anyway); ``None``
    with ``choices_only``."""


def cv_squared(
    values: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-10
) -> torch.Tensor:
    """The squared coefficient of variation var/mean² over the last axis: [..., S] -> [...].

    ``mask`` ([..., S] bool) restricts it to some entries (the experts a path offers); zero
    where fewer than two entries count (one expert is always balanced).
    """
    if mask is None:  # every entry counts: the masked formula with weights of 1, fewer ops
        count = values.shape[-1]
        mean = values.sum(-1) / count
        if count < 2:
            return torch.zeros_like(mean)
        var = ((values - mean.unsqueeze(-1)) ** 2).sum(-1) / count
        return var / (mean**2 + eps)
    weights = mask.to(values.dtype)
    count = weights.sum(-1)
    mean = (values * weights).sum(-1) / count.clamp_min(1)
    var = ((values - mean.unsqueeze(-1)) ** 2 * weights).sum(-1) / count.clamp_min(1)
    return torch.where(count > 1, var / (mean**2 + eps), torch.zeros_like(var))


def noisy_top_k(
    clean: torch.Tensor,
    noise_std: torch.Tensor | None,
    k: int,
    available: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    choices_only: bool = False,
) -> Gating:
    """Noisy top-k gating of T tokens over S slots.

    clean: [T, S] logits x·W_g; noise_std: [T, S] Softplus(x·W_noise), or ``None`` for no noise
    (evaluation); available: [T, S] bool or ``None`` (all). ``k`` is clipped to S.
    ``choices_only=True`` leaves ``gates`` and ``load`` out (``None``), for a pass that takes
    no balancing loss; the choices and the random stream are the same either way.
    """
    tokens, slots = clean.shape
    k = min(k, slots)
    if available is not None:
        clean = clean.masked_fill(~available, MASKED)
    noisy = clean
    if noise_std is not None:
        noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
        noisy = torch.addcmul(clean, noise if clean.is_cpu else noise.to(clean.device), noise_std)
        if available is not None:
            noisy = noisy.masked_fill(~available, MASKED)
    top_k = min(k + 1, slots)
    top_values, top_slots = noisy.topk(top_k, dim=1)  # [T, k+1]
    kept_values, kept_slots = top_values[:, :k], top_slots[:, :k]
    top_gates = torch.softmax(kept_values, dim=1)  # [T, k]
    if choices_only:
        return Gating(kept_slots, top_gates, None, None)
    gates = clean.new_zeros(tokens, slots).scatter(1, kept_slots, top_gates)  # [T, S]
    if noise_std is not None and k < slots:
        load = smooth_load(clean, noisy, noise_std, top_values, k, available)
    else:
        chosen = torch.ones_like(top_gates)
        load = clean.new_zeros(tokens, slots).scatter(1, kept_slots, chosen)
        if available is not None:
            load = load * available.to(load.dtype)
    return Gating(kept_slots, top_gates, gates, load)


def smooth_load(
    clean: torch.Tensor,
    noisy: torch.Tensor,
    noise_std: torch.Tensor,
    top_values: torch.Tensor,
    k: int,
    available: torch.Tensor | None,
) -> torch.Tensor:
    """P(x, i) of every token and slot (appendix A): differentiable in W_g and W_noise.

    clean, noisy, noise_std: [T, S]; top_values: [T, k+1] largest noisy logits, descending.
    A slot in the top k would have to beat the (k+1)-th value to stay there, any other slot the
    k-th value to get in.
    """
    threshold_if_in = top_values[:, k : k + 1]  # [T, 1]
    threshold_if_out = top_values[:, k - 1 : k]
    is_in = noisy > threshold_if_in
    threshold = torch.where(is_in, threshold_if_in, threshold_if_out)
    # Φ in one op (torch.distributions.Normal(0, 1).cdf builds and validates a distribution and
    # takes five ops on every pass).
    probability = torch.special.ndtr((clean - threshold) / noise_std.clamp_min(1e-9))
    if available is not None:
        probability = probability * available.to(probability.dtype)
    return probability


def balance_losses(
    importance: torch.Tensor,
    load: torch.Tensor,
    w_importance: float,
    w_load: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """w_importance · CV²(importance) + w_load · CV²(load): zero when routing is balanced.

    importance, load: [..., S]; mask: [..., S] bool, the slots that count -> [...].
    """
    if mask is None:  # both CV² in one pass, weighed by one matmul: about half the autograd nodes
        both = cv_squared(torch.stack([importance, load]))  # [2, ...]
        return both.new_tensor([w_importance, w_load]) @ both
    return w_importance * cv_squared(importance, mask) + w_load * cv_squared(load, mask)


class AuxLosses:
    """The balancing losses of the forward passes since they were last taken.

    A library or head with MoE layers adds each pass's loss (only with autograd enabled: an
    acting or evaluation pass under ``no_grad`` adds nothing) and the trainer takes their mean
    when it builds its loss. A library without such layers never adds, and pays nothing.
    """

    def __init__(self) -> None:
        self._terms: list[torch.Tensor] = []

    def add(self, term: torch.Tensor | None) -> None:
        if term is not None and torch.is_grad_enabled():
            self._terms.append(term)

    def take(self) -> torch.Tensor | None:
        """The mean of the losses added since the last call (``None`` if none), then forget them."""
        if not self._terms:
            return None
        mean = self._terms[0] if len(self._terms) == 1 else torch.stack(self._terms).mean()
        self._terms = []
        return mean


def sum_aux_losses(*owners: object) -> torch.Tensor | None:
    """The sum of ``owner.take_aux_loss()`` over the owners that have one (libraries, heads)."""
    total = None
    for owner in owners:
        take = getattr(owner, "take_aux_loss", None)
        term = take() if take is not None else None
        if term is not None:
            total = term if total is None else total + term
    return total
