"""NEAT genomes of CPPNs on top of neat-python 2.0 (Stanley & Miikkulainen 2002, "Evolving
Neural Networks through Augmenting Topologies", sections 3.1-3.2; CPPNs: Stanley 2007).

neat-python supplies the genome (``DefaultGenome``: node genes with bias/response/activation/
aggregation, connection genes with innovation numbers), its initial full connectivity, the
add-connection mutation (cycle-free for feed-forward genomes), weight perturb/replace and enable
toggles, crossover aligned by innovation number and the compatibility distance. Two things are
ours:

* ``mutate_add_node``: neat-python draws the new node's key from a per-run counter, so two
  genomes splitting the same connection in one generation get different node keys and hence
  different innovation numbers (its tracker keys innovations by node pair). NEAT gives them the
  same node and the same two innovation numbers; ``NeatTracker.node_for_split`` does that. We also
  split enabled connections only, so the new node (bias 0, response 1, in-weight 1, out-weight the
  old weight) preserves the function when its activation is the identity.
* ``CPPNNodeGene``: output nodes draw their activation from ``output_activation_options``
  (bounded by default), hidden nodes from ``activation_options``.

neat-python draws from the global ``random`` module. ``seeded_random`` seeds it for a block and
restores the caller's state afterwards; the toolbox uses it around population creation and
``next_generation`` around each generation's operators, so a fixed toolbox seed reproduces a run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from neat.genes import DefaultConnectionGene, DefaultNodeGene
from neat.genome import DefaultGenome, DefaultGenomeConfig
from neat.graphs import creates_cycle
from neat.innovation import InnovationTracker

from pathevo.evolution.neat_config import NeatConfig


def _is_output(key: int, config: DefaultGenomeConfig) -> bool:
    return 0 <= key < config.num_outputs


class CPPNNodeGene(DefaultNodeGene):
    """A neat-python node gene whose output nodes use ``config.output_activation_options``."""

    def init_attributes(self, config: DefaultGenomeConfig) -> None:
        super().init_attributes(config)
        if _is_output(self.key, config):
            self.activation = random.choice(config.output_activation_options)

    def mutate(self, config: DefaultGenomeConfig) -> None:
        activation = self.activation
        super().mutate(config)
        if _is_output(self.key, config):
            self.activation = activation
            if random.random() < config.activation_mutate_rate:
                self.activation = random.choice(config.output_activation_options)


class NeatTracker(InnovationTracker):
    """neat-python's innovation tracker plus the run's other counters.

    ``global_counter`` numbers connection innovations; ``next_node_key`` numbers hidden nodes
    (a connection split twice in one generation yields the same node); ``next_genome_key``
    numbers genomes. ``reset_generation`` forgets this generation's innovations and splits.
    """

    def __init__(self, start_number: int = 0, next_node_key: int = 0, next_genome_key: int = 0):
        super().__init__(start_number)
        self.next_node_key = next_node_key
        self.next_genome_key = next_genome_key
        self.split_nodes: dict[tuple[int, int], int] = {}

    def reset_generation(self) -> None:
        super().reset_generation()
        self.split_nodes.clear()

    def node_for_split(self, connection: tuple[int, int]) -> int:
        """The hidden node key that splits ``connection`` this generation."""
        if connection not in self.split_nodes:
            self.split_nodes[connection] = self.next_node_key
            self.next_node_key += 1
        return self.split_nodes[connection]

    def new_genome_key(self) -> int:
        key = self.next_genome_key
        self.next_genome_key += 1
        return key

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def genome_to_data(genome: DefaultGenome) -> dict[str, Any]:
    """A CPPN genome as plain data (a ``weights_only`` checkpoint holds it): its key, neat's
    fitness and every gene's attributes, genes in the genome's order (neat sums in that order)."""
    return {
        "key": genome.key,
        "fitness": genome.fitness,
        "nodes": [[key, _gene_attributes(gene)] for key, gene in genome.nodes.items()],
        "connections": [[list(key), _gene_attributes(gene)]
                        for key, gene in genome.connections.items()],
    }  # fmt: skip


def genome_from_data(data: dict[str, Any]) -> DefaultGenome:
    """The genome :func:`genome_to_data` stored (equal genes, innovation numbers, order)."""
    genome = DefaultGenome(data["key"])
    genome.fitness = data["fitness"]
    for key, attributes in data["nodes"]:
        genome.nodes[key] = _gene(CPPNNodeGene(key), attributes)
    for key, attributes in data["connections"]:
        key = tuple(key)
        connection = DefaultConnectionGene(key, innovation=attributes["innovation"])
        genome.connections[key] = _gene(connection, attributes)
    return genome


def _gene_attributes(gene: Any) -> dict[str, Any]:
    return {name: value for name, value in vars(gene).items() if name != "key"}


def _gene(gene: Any, attributes: dict[str, Any]) -> Any:
    vars(gene).update(attributes)
    return gene


def make_genome_config(cfg: NeatConfig, num_inputs: int, num_outputs: int) -> DefaultGenomeConfig:
    """A neat-python genome config built from ``cfg`` (no INI file), with a fresh tracker.

    Feed-forward, fully connected inputs -> outputs at start, no hidden nodes, sum aggregation,
    response fixed at 1. neat's own add-node and the delete mutations are switched off (we add
    nodes with :func:`mutate_add_node`; NEAT only complexifies). Picklable.
    """
    if num_inputs <= 0 or num_outputs <= 0:
        raise ValueError(f"a CPPN needs inputs and outputs, got {num_inputs}, {num_outputs}")
    params: dict[str, Any] = {
        "node_gene_type": CPPNNodeGene,
        "connection_gene_type": DefaultConnectionGene,
        "num_inputs": num_inputs,
        "num_outputs": num_outputs,
        "num_hidden": 0,
        "feed_forward": "true",
        "initial_connection": "full_direct",
        "compatibility_disjoint_coefficient": cfg.disjoint_coefficient,
        "compatibility_weight_coefficient": cfg.weight_coefficient,
        "conn_add_prob": cfg.conn_add_prob,
        "conn_delete_prob": 0.0,
        "node_add_prob": 0.0,
        "node_delete_prob": 0.0,
        "single_structural_mutation": "false",
        "structural_mutation_surer": "false",
        "activation_default": "random",
        "activation_options": " ".join(cfg.activation_options),
        "activation_mutate_rate": cfg.activation_mutate_rate,
        "aggregation_default": "sum",
        "aggregation_options": "sum",
        "aggregation_mutate_rate": 0.0,
        "enabled_default": "true",
        "enabled_mutate_rate": cfg.enabled_mutate_rate,
    }
    floats = {
        "bias": (0.0, cfg.bias_init_stdev, cfg.bias_mutate_rate, cfg.bias_mutate_power,
                 cfg.bias_replace_rate, cfg.bias_max),
        "response": (1.0, 0.0, 0.0, 0.0, 0.0, 1.0),
        "weight": (0.0, cfg.weight_init_stdev, cfg.weight_mutate_rate, cfg.weight_mutate_power,
                   cfg.weight_replace_rate, cfg.weight_max),
    }  # fmt: skip
    for name, (mean, stdev, rate, power, replace, bound) in floats.items():
        params |= {
            f"{name}_init_mean": mean,
            f"{name}_init_stdev": stdev,
            f"{name}_mutate_rate": rate,
            f"{name}_mutate_power": power,
            f"{name}_replace_rate": replace,
            f"{name}_max_value": max(bound, mean),
            f"{name}_min_value": min(-bound, mean),
        }
    config = DefaultGenomeConfig(params)
    config.output_activation_options = list(cfg.output_activation_options)
    config.innovation_tracker = NeatTracker(next_node_key=num_outputs)
    return config


@contextmanager
def seeded_random(seed: int) -> Iterator[None]:
    """Seed the global ``random`` module (which neat-python uses) for a block, then restore it."""
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


def new_cppn_genome(config: DefaultGenomeConfig) -> DefaultGenome:
    """A minimal fully connected CPPN genome with a fresh key and random attributes."""
    genome = DefaultGenome(config.innovation_tracker.new_genome_key())
    genome.configure_new(config)
    return genome


def mutate_add_node(genome: DefaultGenome, config: DefaultGenomeConfig) -> int | None:
    """Split a random enabled connection i->o into i->new (weight 1) and new->o (old weight).

    The new node has bias 0 and response 1 and its activation drawn from the hidden options; the
    old connection is disabled. Returns the new node's key (None if nothing to split).
    """
    enabled = [cg for cg in genome.connections.values() if cg.enabled]
    if not enabled:
        return None
    split = random.choice(enabled)
    tracker: NeatTracker = config.innovation_tracker
    node_key = tracker.node_for_split(split.key)
    if node_key in genome.nodes:
        return None
    node = DefaultGenome.create_node(config, node_key)
    node.bias, node.response = 0.0, 1.0
    genome.nodes[node_key] = node
    split.enabled = False
    i, o = split.key
    in_innovation = tracker.get_innovation_number(i, node_key, "add_node_in")
    out_innovation = tracker.get_innovation_number(node_key, o, "add_node_out")
    genome.add_connection(config, i, node_key, 1.0, True, innovation=in_innovation)
    genome.add_connection(config, node_key, o, split.weight, True, innovation=out_innovation)
    return node_key


def mutate_genome(genome: DefaultGenome, config: DefaultGenomeConfig, node_add_prob: float) -> None:
    """One NEAT mutation in place: maybe add a node, then neat-python's ``mutate`` (maybe add a
    connection; perturb/replace weights and biases, toggle enables, redraw activations)."""
    if random.random() < node_add_prob:
        mutate_add_node(genome, config)
    genome.mutate(config)


def crossover_genomes(
    parent1: DefaultGenome,
    fitness1: float,
    parent2: DefaultGenome,
    fitness2: float,
    key: int,
    config: DefaultGenomeConfig,
) -> DefaultGenome:
    """A child aligned by innovation number (neat-python's ``configure_crossover``).

    Matching genes come from either parent at random, disjoint and excess genes from the fitter
    one (on a tie, ``parent2`` counts as fitter); node genes follow the fitter parent's nodes.
    The parents' ``fitness`` attributes are set from the given values, which neat-python compares.
    """
    parent1.fitness, parent2.fitness = fitness1, fitness2
    child = DefaultGenome(key)
    child.configure_crossover(parent1, parent2, config)
    return child


def is_acyclic(genome: DefaultGenome) -> bool:
    """True if the connection graph (enabled or not) has no directed cycle."""
    seen: list[tuple[int, int]] = []
    for key in genome.connections:
        if creates_cycle(seen, key):
            return False
        seen.append(key)
    return True
