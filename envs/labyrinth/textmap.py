"""Text-grid levels for ViZDoom: a grid of 64×64 cells turned into a UDMF map and a WAD.

DeepMind Lab (Beattie et al. 2016, arXiv:1612.03801) describes its mazes as text, one character
per cell; pathevo's own Labyrinth-like levels (``envs/labyrinth/scenarios/build_*.py``) do the
same for ViZDoom (Kempka et al. 2016, arXiv:1605.02097). ``#`` is solid; ``.`` a floor cell;
a digit a floor that many steps (16 units) up; ``P`` the player start; other letters are items
(DECORATE actors by editor number) on a floor-0 cell, or on the top floor if listed in
``TextLevel.raised``. Items listed in ``TextLevel.exits`` end the level when picked up. The
engine builds the BSP nodes when it loads the map, so no node builder is needed. Needs
``omgifol`` (the ``test`` extra); the environments only read the written WAD.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import omg
from omg.udmf import ULinedef, UMapEditor, USector, USidedef, UThing, UVertex

CELL = 64
STEP = 16
CEILING = 256
PLAYER_START = 1
EXIT_NORMAL = 243  # action special run when an exit item is picked up: the level (episode) ends


@dataclass(frozen=True)
class TextLevel:
    """A level as text: the grid, its items and the DECORATE lump that defines them."""

    grid: str
    items: dict[str, int]
    """Grid letter -> DECORATE editor number of the item placed there."""
    decorate: str
    exits: frozenset[str] = frozenset()
    """Letters of the items whose pickup ends the level."""
    raised: dict[str, int] = field(default_factory=dict)
    """Letters standing on a raised floor -> its height in steps."""
    player_angle: int = 0
    """Direction the player starts facing (degrees, 0 = east, 90 = north)."""

    def floor_of(self, ch: str) -> int | None:
        """Floor height of a cell in steps, or None for solid."""
        if ch.isdigit():
            return int(ch)
        if ch == "#":
            return None
        return self.raised.get(ch, 0)


def _collinear(a: tuple[int, int], b: tuple[int, int], c: tuple[int, int]) -> bool:
    """True if the three points lie on one line."""
    return (b[0] - a[0]) * (c[1] - b[1]) == (b[1] - a[1]) * (c[0] - b[0])


def build_map(level: TextLevel) -> UMapEditor:
    """Turn the text grid into a UDMF map: one sector per floor level, merged wall lines."""
    rows = level.grid.splitlines()
    n_rows = len(rows)
    m = UMapEditor(namespace="zdoom")
    sectors: dict[int, USector] = {}
    vertexes: dict[tuple[int, int], UVertex] = {}

    def floor(r: int, c: int) -> int | None:
        inside = 0 <= r < n_rows and 0 <= c < len(rows[r])
        return level.floor_of(rows[r][c]) if inside else None

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
            north, south = floor(r - 1, c), floor(r, c)
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
            west, east = floor(r, c - 1), floor(r, c)
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
            if ch == "P" or ch in level.items:
                x, y = c * CELL + CELL // 2, (n_rows - r - 1) * CELL + CELL // 2
                angle = level.player_angle if ch == "P" else 0
                number = PLAYER_START if ch == "P" else level.items[ch]
                thing = UThing(float(x), float(y), number, angle=angle)
                for flag in ("skill1", "skill2", "skill3", "skill4", "skill5", "single"):
                    setattr(thing, flag, True)
                if ch in level.exits:
                    thing.special = EXIT_NORMAL
                m.things.append(thing)
    return m


def build_wad(level: TextLevel, path: Path) -> None:
    """Write the level's map (MAP01) and DECORATE lumps to ``path``."""
    wad = omg.WAD()
    wad.data["DECORATE"] = omg.Lump(level.decorate.encode())
    wad.udmfmaps["MAP01"] = build_map(level).to_lumps()
    wad.to_file(str(path))
