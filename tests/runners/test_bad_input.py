"""Bad input, every runner: each case exits 2 with one line, no traceback, nothing on disk.

Table-driven: the cases every runner shares (its run directory and --resume), and per runner
the cases its flags allow (unknown names, N > M, non-positive budgets, probabilities). Each
case runs through the runner's own CLI entry (``run_cli``) in this process, in an empty working
directory whose contents are compared before and after.
"""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pathevo.runners import labyrinth_transfer, transfer_matrix
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli
from tests.runners.test_cli import RUNNERS, config_type

TRAINING = [
    "a3c", "atari_transfer", "binary_digits", "continual", "hyperneat", "labyrinth_transfer",
    "lottery", "moe_capacity", "transfer_matrix",
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
    ],
    "binary_digits": [
        (["--tasks", "1v3:1v33"], "1v33"),
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
]  # fmt: skip


def corrupt_run(path: Path, runner: str) -> None:
    """A run directory as ``runner`` writes it (its default config) whose checkpoint.pt is
    garbage; a transfer matrix keeps its checkpoints in its pairs' sub-runs."""
    path.mkdir()
    if runner == "labyrinth_transfer":  # it writes the Atari transfer runner's config
        rd.save_config(path, labyrinth_transfer.transfer_config(config_type(runner)()))
    else:
        rd.save_config(path, config_type(runner)())
    if runner == "transfer_matrix":
        matrix = config_type(runner)()
        path = transfer_matrix.pair_dir(path, *matrix.envs[:2])
        path.mkdir()
        rd.save_config(path, replace(matrix.transfer, env_a=matrix.envs[0], env_b=matrix.envs[1]))
    (path / rd.CHECKPOINT).write_bytes(b"\x80\x02 not a checkpoint")


def prepared(cwd: Path, runner: str) -> None:
    """The files the shared cases point at: a plain file, a broken run, another runner's, a run
    with a corrupt checkpoint."""
    (cwd / "afile").write_text("not a directory\n")
    (cwd / "broken").mkdir()
    (cwd / "broken" / rd.CONFIG).write_text("{not json")
    (cwd / "other").mkdir()
    rd.save_config(cwd / "other", config_type("reproduction" if runner != "reproduction" else
                                              "a3c")())  # fmt: skip
    corrupt_run(cwd / "corrupt", runner)


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
