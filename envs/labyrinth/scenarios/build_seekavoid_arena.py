"""Regenerate ``seekavoid_arena.wad``: an open arena of apples and lemons, in the spirit of
DeepMind Lab's ``seekavoid_arena_01`` (Beattie et al. 2016, arXiv:1612.03801), the seek-avoid
level of PathNet's Labyrinth experiments (Fernando et al. 2017, arXiv:1701.08734).

The player starts in the middle of a walled 11×9-cell arena, facing east. Apples (+1) and
lemons (−1) stand in a checkerboard-like scatter; each can be picked up once, and the episode
runs until its time limit. Seek the apples, avoid the lemons.

The map is a text grid (:mod:`pathevo.envs.labyrinth.textmap`). An apple is an armor bonus worth one
armor point, a lemon a clip worth one bullet (with the health-bonus sprite, so it looks unlike
an apple); the environment pays the armor gained and charges the bullets gained.

Run
``python -m pathevo.envs.labyrinth.scenarios.build_seekavoid_arena`` to rewrite the shipped file.
"""

from __future__ import annotations

from pathlib import Path

from pathevo.envs.labyrinth.textmap import TextLevel, build_wad

# '#' is solid, '.' floor; P player start (facing east), a apple, l lemon.
GRID = """\
#############
#.a...l...a.#
#...a...l...#
#.l...a...a.#
#...l...a...#
#.a...P...l.#
#...a...l...#
#.l...a...a.#
#...a...l...#
#.a...l...a.#
#############"""

DECORATE = """\
actor PathevoApple : ArmorBonus 20001
{
  Armor.SaveAmount 1
  Armor.MaxSaveAmount 1000
  Inventory.PickupMessage ""
}

actor PathevoLemon : Clip 20004
{
  Inventory.Amount 1
  Inventory.PickupMessage ""
  States
  {
  Spawn:
    BON1 ABCDCB 6
    Loop
  }
}
"""

LEVEL = TextLevel(grid=GRID, items={"a": 20001, "l": 20004}, decorate=DECORATE)

if __name__ == "__main__":
    build_wad(LEVEL, Path(__file__).with_name("seekavoid_arena.wad"))
