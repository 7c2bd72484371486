"""Configuration of NEAT evolution of CPPN genomes (Stanley & Miikkulainen 2002, "Evolving
Neural Networks through Augmenting Topologies"; CPPNs: Stanley 2007).

Defaults follow neat-python's examples, with gentler attribute mutations (tuned on small
function-matching CPPN tasks); the species-count target, the tournament within species and the
bounded output activations are pathevo's choices.
"""

from __future__ import annotations

from dataclasses import dataclass

# neat-python 2.0's built-in activations (neat.activations.ActivationFunctionSet).
KNOWN_ACTIVATIONS = (
    "abs", "clamped", "cube", "elu", "exp", "gauss", "hat", "identity", "inv", "lelu", "log",
    "relu", "selu", "sigmoid", "sin", "softplus", "square", "tanh",
)  # fmt: skip
# Bounded activations: sin, tanh, clamped in [-1, 1]; gauss, sigmoid, hat in [0, 1].
BOUNDED_ACTIVATIONS = ("sin", "tanh", "clamped", "gauss", "sigmoid", "hat")

_PROBABILITIES = (
    "node_add_prob",
    "conn_add_prob",
    "weight_mutate_rate",
    "weight_replace_rate",
    "bias_mutate_rate",
    "bias_replace_rate",
    "enabled_mutate_rate",
    "activation_mutate_rate",
    "crossover_prob",
)


@dataclass
class NeatConfig:
    """NEAT settings: genome mutation rates, speciation, selection, stagnation, elitism."""

    population: int = 100
    """Number of CPPN genomes."""
    target_species: int = 8
    """Species count the compatibility threshold is steered towards each generation."""
    compatibility_threshold: float = 3.0
    """Initial compatibility threshold (distance below which a genome joins a species)."""
    threshold_step: float = 0.3
    """Amount the threshold moves per generation: up if too many species, down if too few."""
    min_threshold: float = 0.3
    """Lower bound of the compatibility threshold."""
    disjoint_coefficient: float = 1.0
    """c1 = c2 of the compatibility distance: weight of disjoint and excess genes
    (neat-python does not tell excess from disjoint)."""
    weight_coefficient: float = 0.5
    """c3 of the compatibility distance: weight of attribute differences of matching genes."""
    node_add_prob: float = 0.2
    """Probability per mutation of splitting an enabled connection with a new node."""
    conn_add_prob: float = 0.3
    """Probability per mutation of adding a connection (never one that closes a cycle)."""
    weight_mutate_rate: float = 0.8
    """Per-connection probability of a Gaussian weight perturbation."""
    weight_mutate_power: float = 0.2
    """Standard deviation of a weight perturbation (smaller than neat-python's XOR example's 0.5:
    neat's sin/tanh/sigmoid scale their input by 5/2.5/5, so 0.5 mostly destroys a CPPN)."""
    weight_replace_rate: float = 0.02
    """Per-connection probability of redrawing the weight from its initial distribution."""
    weight_init_stdev: float = 1.0
    """Standard deviation of initial (and replacement) weights, mean 0."""
    weight_max: float = 5.0
    """Weights are clamped to [-weight_max, weight_max]."""
    bias_mutate_rate: float = 0.7
    """Per-node probability of a Gaussian bias perturbation."""
    bias_mutate_power: float = 0.2
    """Standard deviation of a bias perturbation."""
    bias_replace_rate: float = 0.02
    """Per-node probability of redrawing the bias."""
    bias_init_stdev: float = 1.0
    """Standard deviation of initial (and replacement) biases, mean 0."""
    bias_max: float = 5.0
    """Biases are clamped to [-bias_max, bias_max]."""
    enabled_mutate_rate: float = 0.01
    """Per-connection probability of redrawing the enabled flag (a toggle half the time)."""
    activation_mutate_rate: float = 0.05
    """Per-node probability of redrawing the activation function."""
    activation_options: tuple[str, ...] = ("sin", "gauss", "sigmoid", "tanh", "abs", "identity")
    """Activations hidden nodes draw from (neat-python names)."""
    output_activation_options: tuple[str, ...] = ("tanh", "sin")
    """Activations output nodes draw from: bounded and symmetric in [-1, 1] by default, the range
    HyperNEAT's weight expression reads (gauss/sigmoid are bounded too, but never negative)."""
    crossover_prob: float = 0.75
    """Probability that an offspring comes from crossover (else from one parent) before
    mutation."""
    tournament_size: int = 3
    """Tournament size of parent selection within a species."""
    elitism: int = 1
    """Best members of each species copied unchanged to the next generation."""
    max_stagnation: int = 15
    """A species whose best fitness has not improved for this many generations gets no
    offspring (unless protected by species_elitism)."""
    species_elitism: int = 1
    """Number of best species protected from stagnation removal."""
    min_species_size: int = 2
    """Minimum offspring of a surviving species (reduced if the population cannot afford it)."""

    def __post_init__(self) -> None:
        for name in ("population", "target_species", "tournament_size", "max_stagnation"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("elitism", "species_elitism", "min_species_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        for name in _PROBABILITIES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.weight_mutate_rate + self.weight_replace_rate > 1.0:
            raise ValueError("weight_mutate_rate + weight_replace_rate must not exceed 1")
        if self.bias_mutate_rate + self.bias_replace_rate > 1.0:
            raise ValueError("bias_mutate_rate + bias_replace_rate must not exceed 1")
        for name in (
            "compatibility_threshold",
            "threshold_step",
            "min_threshold",
            "weight_max",
            "bias_max",
            "weight_mutate_power",
            "bias_mutate_power",
            "weight_init_stdev",
            "bias_init_stdev",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.disjoint_coefficient < 0 or self.weight_coefficient < 0:
            raise ValueError("compatibility coefficients must be non-negative")
        for name in ("activation_options", "output_activation_options"):
            options = getattr(self, name)
            if not options:
                raise ValueError(f"{name} must not be empty")
            unknown = [a for a in options if a not in KNOWN_ACTIVATIONS]
            if unknown:
                raise ValueError(f"unknown activation(s) {unknown} in {name}")
        if self.population < 2:
            raise ValueError(f"NEAT needs a population of at least 2, got {self.population}")
        if self.target_species > self.population:
            raise ValueError(
                f"target_species={self.target_species} exceeds population={self.population}"
            )
