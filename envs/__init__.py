"""Environment ids and factories: all code reaches an environment through `make_env(env_id, seed)`.

Importing `envs` registers the MinAtar ids with gymnasium and imports nothing heavy (no torch,
ale-py or minatar); each family loads its backend on first use. `python -m envs` lists the ids.
"""

from envs.registry import list_env_ids, make_env

__all__ = ["list_env_ids", "make_env"]
