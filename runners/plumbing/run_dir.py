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
import re
import tempfile
import time
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


def load_checkpoint(
    run_dir: str | Path, recipe: str | None = None, needs: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The run's checkpoint, or ``None`` if it has none yet; a one-line ValueError if it is
    unreadable, stores anything but data, or (``needs``, see :func:`require`) lacks what
    ``recipe`` resumes from.

    Loaded with ``weights_only=True``: a checkpoint is tensors and plain containers only, so
    loading one never runs code from the file (a pickle naming any other callable is refused
    before it is called). Genomes, logbooks and NEAT state are stored as plain data (see
    ``to_data``/``from_data`` beside their classes in :mod:`pathevo.evolution`).
    """
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" not in str(error):  # not a refused callable: a broken file
            raise ValueError(f"unreadable checkpoint {path}: UnpicklingError") from None
        raise ValueError(_refusal(run_dir, path, str(error))) from None
    except Exception as error:  # noqa: BLE001 - any load failure means the same to the user
        raise ValueError(f"unreadable checkpoint {path}: {type(error).__name__}") from None
    if not isinstance(state, dict):
        raise ValueError(f"unreadable checkpoint {path}: not a pathevo checkpoint")
    if needs is not None:
        require(state, needs, run_dir, recipe or "pathevo")
    return state


_EARLIER_PATHEVO = ("pathevo.", "deap.", "neat.", "agents.", "envs.", "evolution.", "modules.",
                    "runners.")  # fmt: skip
"""Where the classes pickled by checkpoints of earlier versions (DEAP genomes, NEAT state) lived
(before pathevo was one package, without the ``pathevo.`` prefix)."""
_PLAIN_STDLIB = ("builtins.", "_operator.", "operator.", "collections.", "copyreg.", "_codecs.")
"""Standard-library names those checkpoints also pickled beside them (DEAP's fitness weights
compare with ``operator.eq``, its logbook chapters are a ``defaultdict``): they say nothing about
who wrote the file."""


def _refusal(run_dir: str | Path, path: Path, error: str) -> str:
    """Why a checkpoint that ``weights_only`` will not load is refused: the Python objects
    (callables) its pickle names, read from the file without running any of them."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - a legacy (not zip) file: the name torch's error gives
        names = re.findall(r"GLOBAL ([\w.]+)", error)[:1]
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    ours = [name for name in names if not name.startswith(_PLAIN_STDLIB)]
    if ours and all(name.startswith(_EARLIER_PATHEVO) for name in ours):
        return (
            f"cannot resume from {run_dir}: its {CHECKPOINT} stores Python objects ({shown}; "
            "written by an earlier pathevo); loading it could run code from the file, so it is "
            "refused - start a new run"
        )
    named = f" ({shown})" if names else ""
    return (
        f"cannot resume from {run_dir}: its {CHECKPOINT} is not data only: it names Python "
        f"objects{named} that loading would call, so it is refused"
    )


def require(state: dict[str, Any], needs: dict[str, Any], run_dir: str | Path, recipe: str) -> None:
    """A one-line ValueError unless ``state`` has every key of ``needs`` with a value of its
    type (a type or tuple of types, as ``isinstance`` takes; ``None`` accepts anything): what a
    recipe checks before it resumes from a checkpoint."""
    hint = f"(is it a {recipe} run?)"
    for key, kind in needs.items():
        if key not in state:
            raise ValueError(f"cannot resume from {run_dir}: {CHECKPOINT} lacks {key!r} {hint}")
        if kind is not None and not isinstance(state[key], kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise ValueError(
                f"cannot resume from {run_dir}: {CHECKPOINT}'s {key!r} is a "
                f"{type(state[key]).__name__}, not {names} {hint}"
            )


def malformed(run_dir: str | Path, key: str, error: Exception) -> ValueError:
    """The one-line error of a checkpoint entry that has the right type but not the content the
    run's config needs (a library of other shapes, a genome without genes)."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ValueError(f"cannot resume from {run_dir}: {CHECKPOINT}'s {key!r} does not fit "
                      f"this run ({detail[:200]})")  # fmt: skip


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
