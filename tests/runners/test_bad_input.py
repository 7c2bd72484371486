"""Bad input, every runner: each case exits 2 with one line, no traceback, nothing on disk.

Table-driven: the cases every runner shares (its run directory and --resume), and per runner
the cases its flags allow (unknown names, N > M, non-positive budgets, probabilities). Each
case runs through the runner's own CLI entry (``run_cli``) in this process, in an empty working
directory whose contents are compared before and after.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from pathevo.runners import labyrinth_transfer, transfer_matrix
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli
from tests.runners.test_cli import RUNNERS, config_type

TRAINING = [
    "a3c", "atari_transfer", "binary_digits", "continual", "hyperneat", "labyrinth_transfer",
    "lottery", "moe_capacity", "path_tickets", "transfer_matrix",
]  # fmt: skip

SPECIFIC = {
    "a3c": [
        (["--env-id", "CartPol-v1"], "did you mean: CartPole-v1"),
        (["--agent", "pathnett"], "did you mean: pathnet"),
        (["--pathnet.active", "11"], "active N=11 > modules M=10"),
        (["--steps", "0"], "must be positive"),
        (["--backend", "rayy"], "did you mean: ray"),
        (["--backend", "ray", "--ray-address", "127.0.0.1:1"], "no Ray cluster answers"),
    ],
    "lottery": [
        (["--prune-fraction", "1.5"], "prune_fraction"),
        (["--agent", "pathnet", "--pathnet.active", "11"], "active N=11"),
        (["--steps", "0"], "must be positive"),
        (["--checkpoint-minutes", "0"], "must be positive"),
        (["--output-prune-fraction", "1.5"], "output_prune_fraction"),
    ],
    "binary_digits": [
        (["--tasks", "digits/1v3:digits/1v33"], "1v33"),
        (["--evo.active", "11"], "active N=11"),
        (["--backend", "rayy"], "did you mean: ray"),
        (["--max-generations", "0"], "must be positive"),
        (["--train.noise", "1.5"], "noise must lie in [0, 1]"),
    ],
    "atari_transfer": [
        (["--env-a", "MinAtar/Breakout-v9"], "did you mean: MinAtar/Breakout-v1"),
        (["--agent", "pathnett"], "did you mean: pathnet"),
        (["--threshold-fraction", "1.5"], "threshold_fraction"),
        (["--backend", "proceses"], "did you mean: processes"),
    ],
    "labyrinth_transfer": [(["--pathnet.active", "11"], "active N=11")],
    "transfer_matrix": [
        (["--envs", "MinAtar/Breakout-v1", "MinAtar/Nope-v1"], "MinAtar/Nope-v1"),
        (["--transfer.steps", "0"], "must be positive"),
        (["--transfer.backend", "rayy"], "did you mean: ray"),
    ],
    "hyperneat": [
        (["--agent", "neatt"], "did you mean: hyperneat"),
        (["--backend", "rayy"], "did you mean: ray"),
        (["--node-add-prob", "1.5"], "node_add_prob"),
        (["--generations", "0"], "must be positive"),
    ],
    "continual": [
        (["--tasks", "digits/0v1", "digits/2v33"], "2v33"),
        (["--evo.active", "11"], "active N=11"),
        (["--backend", "rayy"], "did you mean: ray"),
        (["--checkpoint-minutes", "0"], "must be positive"),
    ],
    "moe_capacity": [(["--k", "0"], "k must be")],
}

if not torch.cuda.is_available():  # where there is a GPU, --device cuda is good input
    for runner in ("binary_digits", "hyperneat", "moe_capacity"):
        SPECIFIC[runner].append((["--device", "cuda"], "CUDA is not available"))
SPECIFIC["hyperneat"].append((["--device", "gpu"], "unknown device 'gpu'"))

SHARED = [
    ("missing run dir", lambda cwd: ["--resume", str(cwd / "nowhere")], "no such run directory"),
    ("uncreatable run dir", lambda cwd: ["--run-dir", str(cwd / "afile" / "run")],
     "cannot create run directory"),
    ("corrupt config", lambda cwd: ["--resume", str(cwd / "broken")], "unreadable config.json"),
    ("another runner's run", lambda cwd: ["--resume", str(cwd / "other")], "another runner"),
    ("corrupt checkpoint", lambda cwd: ["--resume", str(cwd / "corrupt")], "unreadable checkpoint"),
    ("checkpoint whose pickle would run a command", lambda cwd: ["--resume", str(cwd / "code")],
     "is not data only"),
    ("checkpoint of an earlier version's Python objects",
     lambda cwd: ["--resume", str(cwd / "objects")], "written by an earlier pathevo"),
    ("checkpoint lacking what a resume needs", lambda cwd: ["--resume", str(cwd / "lacking")],
     "checkpoint.pt lacks '"),
    ("checkpoint with a wrong-typed entry", lambda cwd: ["--resume", str(cwd / "mistyped")],
     "' is a str, not "),
    ("another recipe's checkpoint", lambda cwd: ["--resume", str(cwd / "foreign")], "lacks '"),
]  # fmt: skip

FIRST_NEED = {
    "a3c": "model", "atari_transfer": "phase", "labyrinth_transfer": "phase",
    "transfer_matrix": "phase", "binary_digits": "pair", "continual": "done",
    "hyperneat": "population", "lottery": "runs", "moe_capacity": "results",
    "path_tickets": "results",
}  # fmt: skip
"""The first entry each recipe's resume needs (a checkpoint with it mistyped is refused)."""


class RunsACommand:
    """Pickles to ``os.system("touch <marker>")``: a checkpoint whose loading would run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def checkpoints(cwd: Path, runner: str) -> dict[str, Callable[[Path], None]]:
    """Per run directory name: how its checkpoint.pt is written."""
    from pathevo.modules.cppn import CPPNGraph, CPPNNode

    graph = CPPNGraph(1, 1, (CPPNNode(0, "sin", 0.5, 1.0),), ((-1, 0, 0.25),))
    other = {"results": {}, "models": {}, "summary": None} if runner == "lottery" else {
        "runs": {}, "summary": None}  # fmt: skip
    return {
        "corrupt": lambda path: path.write_bytes(b"\x80\x02 not a checkpoint"),
        "code": lambda path: torch.save({"summary": RunsACommand(cwd / "marker")}, path),
        "objects": lambda path: torch.save({"summary": None, "best": graph}, path),
        "lacking": lambda path: torch.save({"summary": None}, path),
        "mistyped": lambda path: torch.save({FIRST_NEED[runner]: "oops", "summary": None}, path),
        "foreign": lambda path: torch.save(other, path),
    }


def bad_run(path: Path, runner: str, write: Callable[[Path], None]) -> None:
    """A run directory as ``runner`` writes it (its default config) whose checkpoint.pt
    ``write`` makes; a transfer matrix keeps its checkpoints in its units' sub-runs."""
    path.mkdir()
    if runner == "labyrinth_transfer":  # it writes the Atari transfer runner's config
        rd.save_config(path, labyrinth_transfer.transfer_config(config_type(runner)()))
    else:
        rd.save_config(path, config_type(runner)())
    if runner == "transfer_matrix":  # a killed unit: its config and checkpoint
        matrix = config_type(runner)()
        unit = transfer_matrix.Unit("learn", matrix.transfer.seed, *matrix.envs[:1] * 2)
        path = unit.path(path)
        path.mkdir(parents=True)
        rd.save_config(path, transfer_matrix.unit_config(matrix, unit, path.parent.parent))
    write(path / rd.CHECKPOINT)


def prepared(cwd: Path, runner: str) -> None:
    """The files the shared cases point at: a plain file, a broken run, another runner's, runs
    with a corrupt, a code-running, an old, an incomplete, a mistyped and another's checkpoint."""
    (cwd / "afile").write_text("not a directory\n")
    (cwd / "broken").mkdir()
    (cwd / "broken" / rd.CONFIG).write_text("{not json")
    (cwd / "other").mkdir()
    rd.save_config(cwd / "other", config_type("reproduction" if runner != "reproduction" else
                                              "a3c")())  # fmt: skip
    for name, write in checkpoints(cwd, runner).items():
        bad_run(cwd / name, runner, write)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run(runner: str, args: list[str], monkeypatch) -> tuple[object, str]:
    module = RUNNERS[runner]
    monkeypatch.setattr(sys, "argv", [runner, *args])
    stderr = io.StringIO()
    quiet = contextlib.redirect_stdout(io.StringIO())
    with contextlib.redirect_stderr(stderr), quiet, pytest.raises(SystemExit) as exit_:
        run_cli(module.main, config_type(runner), "test")
    return exit_.value.code, stderr.getvalue()


CASES = [(r, f"shared: {name}", make, text) for r in TRAINING for name, make, text in SHARED]
CASES.append((
    "continual", "corrupt checkpoint with --grow (which would rewrite config.json)",
    lambda cwd: ["--resume", str(cwd / "corrupt"), "--grow"], "unreadable checkpoint",
))  # fmt: skip
CASES += [
    (r, " ".join(args), (lambda _, a=args: a), text)
    for r, cases in SPECIFIC.items()
    for args, text in cases
]


@pytest.mark.parametrize(("runner", "case", "make_args", "expected"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    runner, case, make_args, expected, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PATHEVO_DEBUG", raising=False)
    prepared(tmp_path, runner)
    before = snapshot(tmp_path)
    code, stderr = run(runner, make_args(tmp_path), monkeypatch)
    lines = stderr.strip().splitlines()
    assert code == 2, case
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert expected in lines[0] and "Traceback" not in stderr
    assert snapshot(tmp_path) == before  # nothing written, nothing half-written
    assert not (tmp_path / "marker").exists()  # no command from a checkpoint ran


@pytest.mark.parametrize("name", ["code", "objects", "lacking", "mistyped", "foreign"])
def test_reproduction_refuses_a_bad_checkpoint_of_any_variant_before_one_runs(
    name, tmp_path, monkeypatch
):
    """The reproduction resumes its variants' binary_digits runs in --out: a bad checkpoint in
    the last variant stops it, in one line, before the first variant trains."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PATHEVO_DEBUG", raising=False)
    out = tmp_path / "out"
    out.mkdir()
    bad_run(out / "evolve-finetune", "binary_digits", checkpoints(tmp_path, "binary_digits")[name])
    before = snapshot(tmp_path)
    code, stderr = run("reproduction", ["--out", str(out), "--no-progress"], monkeypatch)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "cannot resume from" in lines[0], stderr
    assert snapshot(tmp_path) == before and not (tmp_path / "marker").exists()


MALFORMED = [
    ("binary_digits", {"pair": 0, "phase": 0, "results": [], "search": None,
                       "library": {"w": torch.zeros(1)}, "head": {}, "rng": (3, (), None),
                       "torch_rng": torch.zeros(1)}, "'library' does not fit this run"),
    ("binary_digits", {"pair": 0, "phase": 0, "results": [], "search": {"population": 3}},
     "'search' does not fit this run"),
    ("hyperneat", {"population": [{"genome": {}}], "state": {}, "history": [], "best": None,
                   "checked": {}, "rng": (3, (), None)}, "'population' does not fit this run"),
    ("a3c", {"model": {"w": torch.zeros(3)}, "optimizer": {}, "steps": torch.zeros(2), "log": {},
             "summary": None}, "'model' does not fit this run"),
    ("atari_transfer", {"phase": 0, "logs": {}, "paths": {}, "after_a": None, "best_a": None,
                        "current": {"model": {}}}, "lacks 'optimizer'"),
    ("lottery", {"runs": {0: []}, "summary": None}, "'runs[0]' is a list, not dict"),
    ("continual", {"done": 0, "reference": [], "models": {"pathnet": {"state": {}}}, "grown": [],
                   "probes": [], "R": {}, "records": {}, "occupancy": [],
                   "modules_per_layer": []}, "lacks 'sizes'"),
]  # fmt: skip


def _genome(runner: str, gene: int = 0) -> list[int]:
    """A path genome of ``runner``'s default config, every module id ``gene``."""
    cfg = config_type(runner)()
    evo = cfg.evo if runner == "binary_digits" else cfg.pathnet
    return [gene] * (evo.layers * evo.active)


def _atari(**entries) -> Callable[[], dict]:
    """An atari_transfer checkpoint after phase A (with A's best path) but for ``entries``."""
    return lambda: {"phase": 1, "logs": {}, "paths": {}, "after_a": {"w": torch.zeros(1)},
                    "best_a": _genome("atari_transfer"), "current": None, **entries}  # fmt: skip


def _lottery(**entries) -> Callable[[], dict]:
    """A lottery checkpoint whose repeat 0 holds ``entries``."""
    return lambda: {"runs": {0: {"results": {}, "masks": {}, **entries}}, "summary": None}


def _continual(**entries) -> Callable[[], dict]:
    """A continual checkpoint of the default config, fresh but for ``entries``."""
    from pathevo.evolution.continual import empty_matrix

    def make() -> dict:
        cfg = config_type("continual")()
        count = len(cfg.tasks)
        return {"done": 1, "reference": [0.5] * count, "models": {}, "grown": [], "probes": [],
                "R": {c: empty_matrix(count) for c in cfg.conditions},
                "records": {c: [] for c in cfg.conditions}, "occupancy": [],
                "modules_per_layer": [], **entries}  # fmt: skip

    return make


def _binary_digits(**entries) -> Callable[[], dict]:
    """A binary_digits checkpoint inside pair 0's first phase, with the default config's
    library and head, but for ``entries``."""
    from pathevo.runners import binary_digits

    def make() -> dict:
        cfg = config_type("binary_digits")()
        cpu = torch.device("cpu")
        name = binary_digits.choose_pairs(cfg)[0][0]
        task = binary_digits.load_tasks(cfg, [name], cpu)[0][name]
        library = binary_digits.fresh_library(cfg, task.input_size, cpu)
        head = torch.nn.Linear(cfg.hidden, 2)
        state = {"pair": 0, "phase": 0, "results": [], "search": None,
                 "library": library.state_dict(), "head": head.state_dict(),
                 "rng": random.Random(0).getstate(),
                 "torch_rng": torch.get_rng_state()}  # fmt: skip
        return {key: value for key, value in {**state, **entries}.items() if value is not _DROP}

    return make


_DROP = object()
"""An entry a checkpoint lacks."""


def _a3c(**entries) -> Callable[[], dict]:
    """An a3c checkpoint of the default config's fresh run, but for ``entries``."""
    from pathevo.agents.phase import Phase, env_spaces
    from pathevo.runners import a3c

    def make() -> dict:
        cfg = config_type("a3c")()
        model, population = a3c.build_agent(cfg, *env_spaces(cfg.env_id, cfg.seed))
        phase = Phase.create(model, cfg.a3c, cfg.workers, cfg.seed, population=population,
                             pathnet=cfg.pathnet)  # fmt: skip
        return {"model": model.state_dict(), **phase.state(), "summary": None, **entries}

    return make


WRONG = {"w": torch.zeros(1)}
"""A network's weights of another network."""

MALFORMED += [
    ("atari_transfer", _atari(), "'after_a' does not fit this run"),
    ("atari_transfer", _atari(best_a=_genome("atari_transfer", 99)),
     "'best_a' does not fit this run"),
    ("atari_transfer", _atari(best_a=None), "'best_a' does not fit this run"),
    ("atari_transfer", _atari(phase=0, current={"model": WRONG, "optimizer": {},
                                                "steps": torch.zeros(2), "log": {}}),
     "'current' does not fit this run"),
    ("lottery", _lottery(rewind=WRONG), "\"runs[0]['rewind']\" does not fit this run"),
    ("lottery", _lottery(init=WRONG), "\"runs[0]['init']\" does not fit this run"),
    ("lottery", _lottery(trained=WRONG), "\"runs[0]['trained']\" does not fit this run"),
    ("lottery", _lottery(masks={1: [torch.zeros(1)]}),
     "\"runs[0]['masks'][1]\" does not fit this run"),
    ("continual", _continual(R={}), "'R' does not fit this run"),
    ("continual", _continual(models={"finetune": {"state": WRONG, "sizes": []}}),
     "\"models['finetune']\" does not fit this run"),
    ("continual", _continual(records={}), "'records' does not fit this run"),
    ("continual", _continual(done=-1), "'done' does not fit this run"),
    ("binary_digits", _binary_digits(results=["oops"]), "'results[0]' does not fit this run"),
    ("binary_digits", _binary_digits(results=[{"task_a": 3, "task_b": "x"}]),
     "'results[0]' does not fit this run"),
    ("binary_digits", _binary_digits(rng=_DROP), "'rng' does not fit this run"),
    ("binary_digits", _binary_digits(head=WRONG), "'head' does not fit this run"),
    ("hyperneat", lambda: {"population": [], "state": {}, "history": [{"max": 1.0}],
                           "best": None, "checked": {}, "rng": (3, (), None)},
     "'history[0]' does not fit this run"),
    ("hyperneat", lambda: {"population": [], "state": {}, "history": ["oops"], "best": None,
                           "checked": {}, "rng": (3, (), None)},
     "'history[0]' does not fit this run"),
    ("a3c", _a3c(optimizer={"state": 5}), "'optimizer' does not fit this run"),
    ("a3c", _a3c(steps=torch.zeros(99)), "'steps' does not fit this run"),
    ("a3c", _a3c(log={"bogus": 1}), "'log' does not fit this run"),
]  # fmt: skip


@pytest.mark.parametrize(("runner", "checkpoint", "expected"), MALFORMED,
                         ids=[f"{c[0]}-{c[2]}" for c in MALFORMED])  # fmt: skip
def test_a_checkpoint_without_what_the_run_needs_says_what_is_wrong(
    runner, checkpoint, expected, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PATHEVO_DEBUG", raising=False)
    if callable(checkpoint):
        checkpoint = checkpoint()
    bad_run(tmp_path / "run", runner, lambda path: torch.save(checkpoint, path))
    before, listing = snapshot(tmp_path), sorted(tmp_path.rglob("*"))
    code, stderr = run(runner, ["--resume", str(tmp_path / "run")], monkeypatch)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and expected in lines[0], stderr
    assert "cannot resume from" in lines[0] and snapshot(tmp_path) == before
    assert sorted(tmp_path.rglob("*")) == listing  # no new directory (no writer's) either
