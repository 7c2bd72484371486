"""Regenerate ``nav_maze.wad``: a static maze with apples and a goal, in the spirit of DeepMind
Lab's ``nav_maze_static_01`` (Beattie et al. 2016, arXiv:1612.03801), the maze level of PathNet's
Labyrinth experiments (Fernando et al. 2017, arXiv:1701.08734).

Corridors two cells wide wind from the player's start in the north-west corner east, down,
back west, down and east again to the goal (+10) in the south-east corner, about 40 cells (110
agent steps) away; picking the goal up ends the level. Apples (+1) line the way every other cell
in both lanes, so progress pays before the goal is in reach and the next apples are in view, as
in Lab; two dead ends branch off, one holding apples as a lure.

The map is a text grid (:mod:`pathevo.envs.labyrinth.textmap`). Rewards are the armor points the
DECORATE items give; the environment reads them from the ARMOR game variable.

Run ``python -m pathevo.envs.labyrinth.scenarios.build_nav_maze`` to rewrite the shipped file.
"""

from __future__ import annotations

from pathlib import Path

from pathevo.envs.labyrinth.textmap import TextLevel, build_wad

# '#' is solid, '.' floor; P player start (facing east), a apple, g goal.
GRID = """\
#################
#P.a.a.a.a.a.a.a#
#..a.a.a.a.a....#
#########aa######
#########aa######
#.a.a.a.a.a.....#
#.a.a.a.a.a.....#
#aa##############
#aa##############
#..a.a.a.a.a.a..#
#..a.a.a.a.a.a.g#
#################"""

DECORATE = """\
actor PathevoApple : ArmorBonus 20001
{
  Armor.SaveAmount 1
  Armor.MaxSaveAmount 1000
  Inventory.PickupMessage ""
}

actor PathevoGoal : ArmorBonus 20003
{
  Armor.SaveAmount 10
  Armor.MaxSaveAmount 1000
  Inventory.PickupMessage ""
  States
  {
  Spawn:
    SOUL ABCDCB 6 Bright
    Loop
  }
}
"""

LEVEL = TextLevel(
    grid=GRID,
    items={"a": 20001, "g": 20003},
    decorate=DECORATE,
    exits=frozenset("g"),
    player_angle=0,
)

if __name__ == "__main__":
    build_wad(LEVEL, Path(__file__).with_name("nav_maze.wad"))
