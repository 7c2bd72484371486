"""Regenerate ``stairway_to_melon.wad``: a ViZDoom level in the spirit of DeepMind Lab's
``stairway_to_melon`` (Beattie et al. 2016, arXiv:1612.03801), one of the Labyrinth levels of
PathNet (Fernando et al. 2017, arXiv:1701.08734).

The player starts facing an apple (+1) a short walk ahead. Behind and to the right, a stairway
of nine steps climbs to a gallery that leads back over the start room to a melon (+10). Picking
either one ends the level, so the agent must choose between the near small reward in plain view
and the far large one it has to turn away to find.

The map is a text grid (:mod:`pathevo.envs.labyrinth.textmap`). Rewards are the armor points the two
DECORATE items give; the environment reads them from the ARMOR game variable.

Run
``python -m pathevo.envs.labyrinth.scenarios.build_stairway_to_melon`` to rewrite the shipped file.
"""

from __future__ import annotations

from pathlib import Path

from pathevo.envs.labyrinth.textmap import TextLevel, build_wad

# '#' is solid; a digit is a floor at that many steps up; P player start, a apple, m melon (on
# the top floor).
GRID = """\
###########
#m99999999#
#999999999#
########88#
########77#
########66#
########55#
########44#
########33#
########22#
########11#
#a....P...#
#.........#
###########"""

DECORATE = """\
actor PathevoApple : ArmorBonus 20001
{
  Armor.SaveAmount 1
  Armor.MaxSaveAmount 1000
  Inventory.PickupMessage ""
}

actor PathevoMelon : ArmorBonus 20002
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
    items={"a": 20001, "m": 20002},
    decorate=DECORATE,
    exits=frozenset("am"),
    raised={"m": 9},
    player_angle=180,  # facing west, towards the apple; the stairway is behind, to the right
)

if __name__ == "__main__":
    build_wad(LEVEL, Path(__file__).with_name("stairway_to_melon.wad"))
