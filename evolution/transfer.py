"""PathNet transfer (Fernando et al. 2017, arXiv:1701.08734, section 2).

After task A: fix the parameters on A's best path, re-initialise every other module (and, in
the caller, the population and a new head), then evolve on task B. The frozen modules stay
usable by B's paths; which of them B's final path ends up using measures reuse.
"""

from __future__ import annotations

import torch

from pathevo.evolution.operators import path_modules
from pathevo.modules.library import PathLibrary


def begin_transfer(library: PathLibrary, best_path: torch.Tensor, task: str | None = None) -> None:
    """Freeze ``best_path`` ([L, N]) of the finished ``task`` (its modules, and its own parts
    of the layers such as an MoE gate) and re-initialise the rest."""
    library.freeze(best_path, task)
    library.reinit_unfrozen()


def reused_modules(path_b: torch.Tensor, path_a: torch.Tensor) -> list[list[int]]:
    """Per layer, the module ids of B's path that lie on A's (frozen) path."""
    return [
        sorted(on_b & on_a)
        for on_b, on_a in zip(path_modules(path_b), path_modules(path_a), strict=True)
    ]


def module_reuse(path_b: torch.Tensor, path_a: torch.Tensor) -> float:
    """Fraction of B's distinct modules (over all layers) that lie on A's path."""
    used = sum(len(layer) for layer in path_modules(path_b))
    shared = sum(len(layer) for layer in reused_modules(path_b, path_a))
    return shared / used
