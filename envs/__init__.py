"""Environment ids and factories: all code reaches an environment through `make_env(env_id, seed)`.

Importing `pathevo.envs` registers every pathevo id with gymnasium (`MinAtar/<Game>-v1` and
`pathevo/Labyrinth-<Level>-v0`), so `gymnasium.make` serves them after `import pathevo.envs`,
and `gymnasium.make("pathevo.envs:pathevo/Labyrinth-NavMaze-v0")` imports it by itself.
Registration is cheap: nothing heavy is imported (no torch, ale-py, minatar or ViZDoom); each
family loads its engine when one of its environments is first made. `python -m pathevo.envs`
lists the ids.
"""

import pathevo.envs.labyrinth  # noqa: F401  (registers the Labyrinth ids)
from pathevo.envs.registry import list_env_ids, make_env

__all__ = ["list_env_ids", "make_env"]
