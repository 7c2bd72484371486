"""Settings of the static-hypernetwork layer kind: a library last layer with generated kernels.

Ha, Dai, Le 2016 (arXiv:1609.09106, §3.1) inside a PathNet library (Fernando et al. 2017,
arXiv:1701.08734): each module of the last layer owns small embeddings z and its bias, and a
generator shared by the layer's modules maps every z to a tile of the module's weights
(:mod:`pathevo.modules.hyper_layer`). Registered as the ``hyper`` layer kind in
:data:`pathevo.agents.registry.LAYER_KINDS` (``--library-kind hyper``) from this file's
:class:`HyperConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pathevo.modules.hyper_layer import hyper_layer_factory
from pathevo.modules.library import LayerFactory


@dataclass
class HyperConfig:
    """Static hypernetwork settings (Ha et al. 2016, §3.1)."""

    z_dim: int = 64
    """Numbers in each embedding z (the paper's 64; 8 trained as well on binary digits)."""
    hidden: int = 16
    """d: the generator's hidden size (z -> in_tile vectors of d -> out_tile weights each)."""
    out_tile: int = 16
    """Output units of one generated tile (clipped to the layer's outputs)."""
    in_tile: int = 16
    """Inputs of one generated tile (clipped to the layer's inputs); a module's weights take
    ceil(out/out_tile) * ceil(in/in_tile) embeddings."""
    reset_generator: bool = False
    """Re-initialise the shared generator for the next task even when modules are frozen (they
    keep their cached weights either way); default: keep the trained generator."""
    generator_bias: bool = False
    """Ha's generator biases B_in, B_out: shared offsets of every tile, whose summed gradient
    kills the layer's ReLUs under PathNet's SGD (binary digits: 0.50 accuracy, 0.83 without)."""

    def __post_init__(self) -> None:
        if min(self.z_dim, self.hidden, self.out_tile, self.in_tile) <= 0:
            raise ValueError("hyper.z_dim, hyper.hidden, hyper.out_tile, hyper.in_tile must be > 0")

    def layer_factory(self) -> LayerFactory:
        """Library layers of linear modules with hypernetwork-generated weights."""
        return hyper_layer_factory(
            self.z_dim, self.hidden, self.out_tile, self.in_tile, self.reset_generator,
            self.generator_bias,
        )  # fmt: skip
