"""One run-directory layout for all runners, and atomic writes.

::

    runs/<runner>-<YYYYmmdd-HHMMSS>-s<seed>/
        config.json      the resolved config (what --resume reads back)
        checkpoint.pt    the latest checkpoint (written atomically)
        summary.json     results, written at the end
        events.out...    TensorBoard events (``tensorboard --logdir runs``)
        <segment>/       events of a phase, task or training with its own step axis
        *.png            figures

Every file is written to a temporary name in the same directory and renamed into place, so an
interrupted run never leaves a half-written file and never loses the previous version.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from torch.utils.tensorboard import SummaryWriter

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
SUMMARY = "summary.json"
KIND = "_config"
"""The key in ``config.json`` naming the config class that wrote it (which runner's run it is)."""


def new_run_dir(runner: str, seed: int, root: str | Path = "runs") -> Path:
    """A fresh directory ``root/<runner>-<time>-s<seed>`` (suffixed if it already exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{runner}-{stamp}-s{seed}"
    path, suffix = base, 1
    while path.exists():
        suffix += 1
        path = base.with_name(f"{base.name}-{suffix}")
    path.mkdir(parents=True)
    return path


def prepare_run_dir(path: str | Path | None, runner: str, seed: int) -> Path:
    """The run directory to write to: ``path`` (created if missing) or a new one under ``runs/``."""
    if path is None:
        return new_run_dir(runner, seed)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"run directory {path} exists and is not a directory")
    if (path / CHECKPOINT).exists() or (path / SUMMARY).exists():
        raise ValueError(f"{path} already holds a run; use --resume {path} or another --run-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create run directory {path}: {error.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ValueError(f"cannot write to run directory {path}")
    return path


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    text = json.dumps(data, indent=2, default=_jsonable) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))


def save_config(run_dir: Path, cfg: Any) -> None:
    """Write the resolved config dataclass to ``config.json`` (with its class name)."""
    write_json(run_dir / CONFIG, {KIND: type(cfg).__name__, **dataclasses.asdict(cfg)})


def load_config(run_dir: str | Path, config_type: type) -> Any:
    """The config a run was started with, read back from its ``config.json``; a one-line
    ValueError for a missing or unreadable file, or another runner's run directory."""
    path = Path(run_dir) / CONFIG
    if not Path(run_dir).is_dir():
        raise ValueError(f"cannot resume from {run_dir}: no such run directory")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else f"not JSON: {error}"
        raise ValueError(f"cannot resume from {run_dir}: unreadable {CONFIG} ({reason})") from None
    if not isinstance(data, dict):
        raise ValueError(f"cannot resume from {run_dir}: {CONFIG} does not hold a config")
    kind = data.pop(KIND, config_type.__name__)
    if kind != config_type.__name__:
        raise ValueError(
            f"cannot resume from {run_dir}: it is another runner's run ({kind}, not "
            f"{config_type.__name__})"
        )
    try:
        return _build(config_type, data)
    except ValueError as error:
        raise ValueError(f"cannot resume from {run_dir}: {error}") from None


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` to ``checkpoint.pt``."""
    atomic_write(run_dir / CHECKPOINT, lambda handle: torch.save(state, handle))


def load_checkpoint(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's checkpoint, or ``None`` if it has none yet; a clear error if it is unreadable."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        # Our own file, holding DEAP genomes and logbooks as well as tensors.
        state = torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_RENAMING_PICKLE
        )
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise ValueError(f"unreadable checkpoint {path}: {type(error).__name__}") from None
    if not isinstance(state, dict):
        raise ValueError(f"unreadable checkpoint {path}: not a pathevo checkpoint")
    return state


_MOVED_MODULES = {
    "runners.phase": "pathevo.agents.phase",
    "runners.hybrid": "pathevo.agents.hybrid",
    "runners.continual_tasks": "pathevo.runners.tasks.continual",
}
"""Modules that moved when pathevo became one package (others only gained the prefix)."""
_OLD_TOP_LEVEL = ("agents", "envs", "evolution", "modules", "runners")


def current_module(module: str) -> str:
    """Where a class pickled under ``module`` lives now: checkpoints written before pathevo was
    one package name their classes ``evolution.…``, ``modules.…`` (e.g. HyperNEAT's genomes)."""
    if module.partition(".")[0] not in _OLD_TOP_LEVEL:
        return module
    return _MOVED_MODULES.get(module, f"pathevo.{module}")


class _RenamingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(current_module(module), name)


_RENAMING_PICKLE = types.SimpleNamespace(
    Unpickler=_RenamingUnpickler, load=pickle.load, loads=pickle.loads, __name__="pickle"
)
"""``pickle`` for ``torch.load``, resolving the module names of earlier run directories."""


def segment_writer(run_dir: Path, segment: str, start: int = 0) -> SummaryWriter:
    """The TensorBoard writer of one segment of a run whose step axis starts afresh (a phase, a
    task, one training): its own directory ``run_dir/segment``, a run of its own in TensorBoard.
    ``start`` is the first step this session writes (0 for a segment begun afresh, the step
    after its checkpoint when resumed): events that an earlier, killed session wrote from there
    on are purged, so the curves continue without duplicated steps. Segment ``""`` is the run
    directory itself (what every session writes in full: the config, the summary)."""
    return SummaryWriter(str(run_dir / segment), purge_step=start)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _build(config_type: type, data: dict[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from its ``asdict`` form."""
    hints = {field.name: field for field in dataclasses.fields(config_type)}
    kwargs = {}
    for name, value in data.items():
        if name not in hints:
            raise ValueError(
                f"{CONFIG} has an unknown field {name!r} for {config_type.__name__} (another "
                f"runner's run, or one of another version)"
            )
        field_type = hints[name].type
        nested = _dataclass_type(config_type, name, field_type)
        if nested is not None and isinstance(value, dict):
            value = _build(nested, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return config_type(**kwargs)


def _dataclass_type(owner: type, name: str, annotation: Any) -> type | None:
    import typing

    resolved = typing.get_type_hints(owner).get(name, annotation)
    return resolved if dataclasses.is_dataclass(resolved) else None
