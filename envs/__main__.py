"""`python -m pathevo.envs [FAMILY]`: print the registered environment ids, grouped by family."""

from __future__ import annotations

import argparse

from pathevo.envs.registry import FAMILIES, list_env_ids

TITLES = {
    "ale": "ALE: Atari 2600 via ale-py (84x84 gray, frame skip 4, 4 stacked frames, sticky 0.25)",
    "minatar": "MinAtar: 10x10 miniature Atari (channels-first float32, sticky 0.1)",
    "labyrinth": "Labyrinth: first-person 3D mazes from pixels",
    "control": "Classic control (gymnasium)",
}


def main(argv: list[str] | None = None) -> None:
    """Print each requested family's ids, one per line under a header."""
    parser = argparse.ArgumentParser(prog="python -m pathevo.envs", description=__doc__)
    parser.add_argument("family", nargs="?", choices=FAMILIES, help="list only this family")
    args = parser.parse_args(argv)
    for family in [args.family] if args.family else FAMILIES:
        try:
            ids = list_env_ids(family)
        except ImportError as exc:
            print(f"{TITLES[family]}\n  not available: {exc}\n")
            continue
        print(f"{TITLES[family]} [{len(ids)}]")
        print("".join(f"  {env_id}\n" for env_id in ids))


if __name__ == "__main__":
    main()
