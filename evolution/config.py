"""Configuration of path evolution (the PathNet genotype and tournament)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvoConfig:
    """PathNet evolution settings (defaults: the paper's binary-MNIST experiment)."""

    layers: int = 3
    """L: layers of the module library a path goes through."""
    modules: int = 10
    """M: modules per layer."""
    active: int = 3
    """N: modules a path may use per layer (at most; duplicate ids count once)."""
    population: int = 64
    """Number of path genomes."""
    max_shift: int = 2
    """Mutation moves a gene by a uniform integer in [-max_shift, max_shift]."""
    wrap: bool = False
    """Wrap mutated genes around modulo M instead of clamping them to [0, M-1]."""
    tournaments_at_once: int = 0
    """K: binary tournaments per round whose 2K contestants (distinct genomes) are evaluated
    together — trained concurrently in one batched call where the evaluator can
    (``toolbox.evaluate_together``), so shared modules and the head get their summed gradients
    each step, as with the paper's parallel workers. Each tournament is still one generation,
    settled and logged in order (:func:`pathevo.evolution.tournament.evolve`). 0: the paper's
    serial tournament, contestants evaluated one after the other. At most population / 2."""

    def __post_init__(self) -> None:
        for name in ("layers", "modules", "active", "population"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.active > self.modules:
            raise ValueError(
                f"a path cannot use more modules per layer than exist: "
                f"active N={self.active} > modules M={self.modules}"
            )
        if self.population < 2:
            raise ValueError(
                f"a tournament needs a population of at least 2, got {self.population}"
            )
        if self.max_shift < 0:
            raise ValueError(f"max_shift must be non-negative, got {self.max_shift}")
        if not 0 <= 2 * self.tournaments_at_once <= self.population:
            raise ValueError(
                f"tournaments_at_once must lie in [0, population / 2 = {self.population // 2}] "
                f"(each of the K tournaments of a round needs two genomes of its own), "
                f"got {self.tournaments_at_once}"
            )

    @property
    def mutation_rate(self) -> float:
        """The paper's per-gene mutation probability 1 / (N * L)."""
        return 1.0 / (self.active * self.layers)
