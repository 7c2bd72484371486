"""The `pathevo` command: the recipe listing, dispatch with each recipe's own flags and errors,
benchmarks under `pathevo bench`, and runners/ holding only recipes at its top."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pathevo.runners.__main__ import BENCH, PACKAGE, main, recipes

ROOT = Path(__file__).resolve().parents[2]
PATHEVO = str(Path(sys.executable).with_name("pathevo"))


def pathevo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PATHEVO, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_every_file_at_the_top_of_runners_is_a_recipe() -> None:
    files = {p.stem for p in (ROOT / "runners").glob("*.py") if not p.stem.startswith("_")}
    assert files == set(recipes(PACKAGE))
    assert len(files) >= 10
    assert {"moe", "a3c", "envs", "library", "hyper", "prune"} <= set(recipes(BENCH))


def test_help_lists_every_recipe_with_one_line(tmp_path: Path) -> None:
    shown = pathevo("--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for name, summary in recipes(PACKAGE).items():
        (line,) = [row for row in shown.stdout.splitlines() if row.split()[:1] == [name]]
        assert summary and summary in line
    assert any(row.split()[:1] == ["bench"] for row in shown.stdout.splitlines())
    benches = pathevo("bench", "--help", cwd=tmp_path)
    assert benches.returncode == 0 and "moe" in benches.stdout


def test_a_recipe_runs_with_its_own_flags_help_and_errors(tmp_path: Path) -> None:
    shown = pathevo("binary_digits", "--help", cwd=tmp_path)
    assert (
        shown.returncode == 0
        and "--preset" in shown.stdout
        and "pathevo binary_digits" in (shown.stdout)
    )
    bad = pathevo("a3c", "--workers", "0", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
    bench = pathevo("bench", "moe", "--help", cwd=tmp_path)
    assert bench.returncode == 0 and "--json" in bench.stdout


@pytest.mark.parametrize(
    ("args", "hint"),
    [(["a3cc"], "did you mean: a3c"), (["bench", "mo"], "did you mean: moe"), (["zzz"], "one of:")],
)
def test_unknown_names_are_one_line_errors(
    args: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: unknown") and hint in error and "\n" not in error


def test_no_recipe_prints_the_listing_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "a3c" in capsys.readouterr().err


def test_python_dash_m_runs_a_recipe(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pathevo.runners.binary_digits", "--bogus", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "--bogus" in done.stderr
