"""TensorBoard images of a population's paths: module usage per layer and an MoE layer's routing.

Drawn while training runs: by the A3C phase's TensorBoard reporter
(:mod:`pathevo.agents.phase_reporters`) and by the supervised recipes. The PNG figures of
finished runs are drawn by the recipes' plotting helpers (runners/plumbing/plots.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

CELL = 12


def usage_image(
    usage: torch.Tensor, frozen: torch.Tensor | Sequence[torch.Tensor] | None = None
) -> np.ndarray:
    """An RGB uint8 image [3, L*CELL, max M*CELL] of module usage per layer.

    usage: [L, max M] counts (brightness = share of the population using the module);
    frozen: per layer a bool [M_l] (or one [L, M] tensor), drawn in blue (frozen modules also
    used are cyan). Layers may differ in size (a grown library): cells past a layer's last
    module are dark grey.
    """
    share = usage.float() / max(float(usage.max()), 1.0)  # [L, max M] in [0, 1]
    red = green = share
    blue = torch.zeros_like(share)
    if frozen is not None:
        rows = [torch.as_tensor(row, dtype=torch.bool) for row in frozen]
        mask = torch.zeros_like(share, dtype=torch.bool)  # [L, max M]
        absent = torch.ones_like(mask)
        for layer, row in enumerate(rows):
            mask[layer, : len(row)] = row
            absent[layer, : len(row)] = False
        blue = mask.float()
        red = share * (~mask).float()
        red, green, blue = (torch.where(absent, 0.15, channel) for channel in (red, green, blue))
    image = torch.stack([red, green, blue])  # [3, L, max M]
    image = image.repeat_interleave(CELL, 1).repeat_interleave(CELL, 2)
    image[:, ::CELL, :] = 0.25  # grid lines between layers
    image[:, :, ::CELL] = 0.25
    return (image * 255).round().to(torch.uint8).numpy()


def routing_image(
    picks: Sequence[float] | torch.Tensor, allowed: Sequence[bool] | torch.Tensor
) -> np.ndarray:
    """An RGB uint8 image [3, CELL, E*CELL] of an MoE layer's routing for one task.

    Brightness (white) = the expert's share of the gate's picks; experts the path does not
    offer the gate are dark red.
    """
    counts = torch.as_tensor(picks, dtype=torch.float)  # [E]
    offered = torch.as_tensor(allowed, dtype=torch.bool)
    share = (counts / max(float(counts.max()), 1.0)).unsqueeze(0)  # [1, E]
    red = torch.where(offered, share, torch.full_like(share, 0.35))
    image = torch.stack([red, share, share])  # [3, 1, E]
    image = image.repeat_interleave(CELL, 1).repeat_interleave(CELL, 2)
    image[:, :, ::CELL] = 0.25  # grid lines between experts
    return (image * 255).round().to(torch.uint8).numpy()
