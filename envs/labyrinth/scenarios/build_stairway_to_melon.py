"""Regenerate ``stairway_to_melon.wad``: a ViZDoom level in the spirit of DeepMind Lab's
``stairway_to_melon`` (Beattie et al. 2016, arXiv:1612.03801), one of the Labyrinth levels of
PathNet (Fernando et al. 2017, arXiv:1701.08734).

The player starts facing an apple (+1) a short walk ahead. Behind and to the right, a stairway
of nine steps climbs to a gallery that leads back over the start room to a melon (+10). Picking
either one ends the level, so the agent must choose between the near small reward in plain view
and the far large one it has to turn away to find.

The map is a text grid (one character per 64×64 cell, like Lab's text mazes) turned into a UDMF
map with omgifol; the engine builds the BSP nodes when it loads the map. Rewards are the armor
points the two DECORATE items give; the environment reads them from the ARMOR game variable.

Run ``python envs/labyrinth/scenarios/build_stairway_to_melon.py`` to rewrite the shipped file.
"""

from __future__ import annotations

from pathlib import Path

import omg
from omg.udmf import ULinedef, UMapEditor, USector, USidedef, UThing, UVertex

CELL = 64
STEP = 16
CEILING = 256
# '#' is solid; a digit is a floor at that many steps up; letters are floor-0 or top-floor cells
# holding a thing: P player start, a apple, m melon.
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
LEVEL_OF = {".": 0, "P": 0, "a": 0, "m": 9} | {str(d): d for d in range(10)}
DOOMEDNUM = {"P": 1, "a": 20001, "m": 20002}
PLAYER_ANGLE = 180  # facing west, towards the apple; the stairway is behind, to the right
EXIT_NORMAL = 243  # action special run when the item is picked up: the level (episode) ends

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


def _collinear(a: tuple[int, int], b: tuple[int, int], c: tuple[int, int]) -> bool:
    """True if the three points lie on one line."""
    return (b[0] - a[0]) * (c[1] - b[1]) == (b[1] - a[1]) * (c[0] - b[0])


def build_map(grid: str = GRID) -> UMapEditor:
    """Turn the text grid into a UDMF map: one sector per floor level, merged wall lines."""
    rows = grid.splitlines()
    n_rows = len(rows)
    m = UMapEditor(namespace="zdoom")
    sectors: dict[int, USector] = {}
    vertexes: dict[tuple[int, int], UVertex] = {}

    def level(r: int, c: int) -> int | None:
        inside = 0 <= r < n_rows and 0 <= c < len(rows[r])
        return LEVEL_OF.get(rows[r][c]) if inside else None

    def sector(lvl: int) -> USector:
        if lvl not in sectors:
            sectors[lvl] = USector(
                texturefloor="FLOOR0_1" if lvl else "FLAT5_4",
                textureceiling="CEIL1_1",
                heightfloor=lvl * STEP,
                heightceiling=CEILING,
                lightlevel=192,
            )
            m.sectors.append(sectors[lvl])
        return sectors[lvl]

    def vertex(x: int, y: int) -> UVertex:
        if (x, y) not in vertexes:
            vertexes[x, y] = UVertex(float(x), float(y))
            m.vertexes.append(vertexes[x, y])
        return vertexes[x, y]

    def side(lvl: int, other: int | None) -> USidedef:
        wall = "BROWN1" if other is None else "-"
        lower = "STEP1" if other is not None and other > lvl else "-"
        sd = USidedef(sector=sector(lvl), texturemiddle=wall, texturebottom=lower)
        m.sidedefs.append(sd)
        return sd

    # Unit edges keyed by the cells on their two sides; the front (right-hand) side of a line is
    # the open cell, or the lower floor where both are open. Collinear runs with equal sides merge.
    runs: list[tuple[tuple[int, int], tuple[int, int], int, int | None]] = []
    for r in range(n_rows + 1):  # horizontal edges between row r-1 (north) and row r (south)
        y = (n_rows - r) * CELL
        for c in range(len(rows[0])):
            north, south = level(r - 1, c), level(r, c)
            if north == south:
                continue
            x0, x1 = c * CELL, (c + 1) * CELL
            if north is not None and (south is None or north < south):
                runs.append(((x1, y), (x0, y), north, south))  # heading west: right side is north
            else:
                runs.append(((x0, y), (x1, y), south, north))
    for c in range(len(rows[0]) + 1):  # vertical edges between column c-1 (west) and c (east)
        x = c * CELL
        for r in range(n_rows):
            west, east = level(r, c - 1), level(r, c)
            if west == east:
                continue
            y1, y0 = (n_rows - r) * CELL, (n_rows - r - 1) * CELL
            if west is not None and (east is None or west < east):
                runs.append(((x, y1), (x, y0), west, east))  # heading south: right side is west
            else:
                runs.append(((x, y0), (x, y1), east, west))

    merged: list[list] = []
    for start, end, front, back in runs:
        last = merged[-1] if merged else None
        if last is not None and last[2:] == [front, back]:
            if last[1] == start and _collinear(last[0], start, end):
                last[1] = end
                continue
            if last[0] == end and _collinear(start, end, last[1]):
                last[0] = start
                continue
        merged.append([start, end, front, back])
    for start, end, front, back in merged:
        line = ULinedef(vertex(*start), vertex(*end), side(front, back))
        if back is None:
            line.blocking = True
        else:
            line.sideback = side(back, front)
            line.twosided = True
        m.linedefs.append(line)

    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            if ch in DOOMEDNUM:
                x, y = c * CELL + CELL // 2, (n_rows - r - 1) * CELL + CELL // 2
                angle = PLAYER_ANGLE if ch == "P" else 0
                thing = UThing(float(x), float(y), DOOMEDNUM[ch], angle=angle)
                for flag in ("skill1", "skill2", "skill3", "skill4", "skill5", "single"):
                    setattr(thing, flag, True)
                if ch != "P":
                    thing.special = EXIT_NORMAL
                m.things.append(thing)
    return m


def build_wad(path: Path) -> None:
    """Write the map and DECORATE lumps to ``path``."""
    wad = omg.WAD()
    wad.data["DECORATE"] = omg.Lump(DECORATE.encode())
    wad.udmfmaps["MAP01"] = build_map().to_lumps()
    wad.to_file(str(path))


if __name__ == "__main__":
    build_wad(Path(__file__).with_name("stairway_to_melon.wad"))
