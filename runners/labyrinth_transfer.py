"""PathNet-A3C transfer between two Labyrinth levels, with the scratch and fine-tuning controls.

Fernando et al. 2017, arXiv:1701.08734, section 3.4 (Labyrinth) with A3C workers and an LSTM
core (Mnih et al. 2016, arXiv:1602.01783). The phases, controls, figures and summary.json are
those of :mod:`pathevo.runners.atari_transfer`; this runner only sets Labyrinth defaults and
the LSTM switch. Every level gives [4, 84, 84] observations, so one conv library serves both tasks.
Run ``pathevo labyrinth_transfer --help``; ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pathevo.runners import atari_transfer
from pathevo.runners.atari_transfer import TransferConfig
from pathevo.runners.plumbing.cli import run_cli


@dataclass
class LabyrinthTransferConfig(TransferConfig):
    """PathNet-A3C transfer from Labyrinth level A to B: the Atari transfer config, new defaults."""

    env_a: str = "pathevo/Labyrinth-NavMaze-v0"
    """Source level id (task A)."""
    env_b: str = "pathevo/Labyrinth-StairwayToMelon-v0"
    """Target level id (task B)."""
    run_dir: str | None = None
    """Where to write the run (default: runs/labyrinth_transfer-<time>-s<seed>)."""
    lstm: bool = True
    """Give every task head an LSTM core (the paper's Labyrinth agent); overrides --a3c.lstm."""
    lstm_units: int = 256
    """Units of the LSTM core when --lstm is on."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lstm_units <= 0:
            raise ValueError(f"lstm_units must be positive, got {self.lstm_units}")


def transfer_config(cfg: LabyrinthTransferConfig) -> TransferConfig:
    """The Atari transfer runner's config for ``cfg``: its fields, with the LSTM switch applied."""
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(TransferConfig)}
    values["a3c"] = dataclasses.replace(cfg.a3c, lstm=cfg.lstm_units if cfg.lstm else 0)
    return TransferConfig(**values)


def main(cfg: LabyrinthTransferConfig) -> dict[str, Any]:
    """Run (or resume) the transfer and return the summary written to summary.json."""
    return atari_transfer.main(transfer_config(cfg), runner="labyrinth_transfer")


if __name__ == "__main__":
    run_cli(main, LabyrinthTransferConfig, description=__doc__.split("\n\n")[0])
