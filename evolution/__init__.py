"""DEAP wiring for path genomes: operators, tournaments, map backends, transfer."""
