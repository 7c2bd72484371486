"""The CLI of every runner: our validation messages, one-line parse errors, documented commands."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import re
import shlex
import subprocess
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
import tyro

from pathevo.runners.__main__ import BENCH, PACKAGE, recipes
from pathevo.runners.plumbing.cli import parse_config, parse_error_line

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def runner_modules() -> dict[str, ModuleType]:
    """Every recipe and benchmark the ``pathevo`` command lists (``a3c``, ``bench moe``), each
    with a ``main(cfg: SomeConfig)``."""
    found = {}
    for prefix, package in (("", PACKAGE), ("bench ", BENCH)):
        for name in recipes(package):
            module = importlib.import_module(f"{package}.{name}")
            assert "cfg" in typing.get_type_hints(module.main), name
            found[prefix + name] = module
    return found


RUNNERS = runner_modules()


def config_type(runner: str) -> type:
    return typing.get_type_hints(RUNNERS[runner].main)["cfg"]


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(where, runner, arguments) of each `pathevo RECIPE …` in the README and docs/.

    A command ends at a closing backtick or the end of its line (``\\`` continues it); a usage
    synopsis with ``[optional]`` parts is not a command.
    """
    commands = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in re.finditer(r"(?m)(?:^|`|\$ |&& )pathevo ((?:bench )?\w+)", text):
            rest, position = "", match.end()
            while True:
                end = min(
                    (i for i in (text.find("`", position), text.find("\n", position)) if i >= 0),
                    default=len(text),
                )
                rest += text[position:end]
                if not (text.startswith("\n", end) and rest.rstrip().endswith("\\")):
                    break
                rest, position = rest.rstrip()[:-1] + " ", end + 1
            fenced = text.count("```", 0, match.start()) % 2 == 1
            if match.group(1) == "bench":  # `pathevo bench --help`: the listing (test_command)
                continue
            if "[" in rest or (match.group(0).startswith("pathevo") and not fenced):
                continue  # a synopsis, or prose that starts a line with the project's name
            line = text.count("\n", 0, match.start()) + 1
            commands.append(
                (f"{document.name}:{line}", match.group(1), shlex.split(rest, comments=True))
            )
    return commands


COMMANDS = documented_commands()


def test_every_runner_is_found_and_documented() -> None:
    assert {"a3c", "binary_digits", "atari_transfer", "transfer_matrix"} <= set(RUNNERS)
    assert {runner for _, runner, _ in COMMANDS} <= set(RUNNERS)
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize(("where", "runner", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_documented_command_lines_parse(where: str, runner: str, args: list[str]) -> None:
    try:
        cfg = parse_config(config_type(runner), "test", args)
    except SystemExit as exit_:  # `--help`
        assert args == ["--help"] and exit_.code in (0, None), where
        return
    assert isinstance(cfg, config_type(runner))


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_help_renders_every_flag(runner: str) -> None:
    shown = io.StringIO()
    with pytest.raises(SystemExit) as exit_, contextlib.redirect_stdout(shown):
        parse_config(config_type(runner), "the description", ["--help"])
    assert exit_.value.code in (0, None)
    for name in flags(config_type(runner)):
        assert name in shown.getvalue(), name


def flags(cls: type, prefix: str = "") -> list[str]:
    """``--name`` of every field, ``--section.name`` inside nested config dataclasses (plain
    ``--name`` inside a section marked ``tyro.conf.OmitArgPrefixes``)."""
    names = []
    hints = typing.get_type_hints(cls, include_extras=True)
    for item in dataclasses.fields(cls):
        hint = hints[item.name]
        extras = typing.get_args(hint)[1:] if typing.get_origin(hint) is typing.Annotated else ()
        hint = typing.get_args(hint)[0] if extras else hint
        name = prefix + item.name.replace("_", "-")
        if dataclasses.is_dataclass(hint):
            names += flags(hint, "" if tyro.conf.OmitArgPrefixes in extras else f"{name}.")
        else:
            names.append(f"--{name}")
    return names


@dataclass
class Inner:
    size: int = 1
    """A size."""

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"size must be positive, got {self.size}")


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    limit: int = 5
    """An upper bound of inner.size."""

    def __post_init__(self) -> None:
        if self.inner.size > self.limit:
            raise ValueError(f"inner size {self.inner.size} exceeds limit {self.limit}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inner.size", "0"], "size must be positive, got 0"),
        (["--inner.size", "9"], "inner size 9 exceeds limit 5"),
    ],
)
def test_validation_messages_are_exactly_ours(args: list[str], message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_config(Outer, "test", args)
    assert str(error.value) == message
    assert parse_config(Outer, "test", ["--inner.size", "4"]) == Outer(Inner(4), 5)
    with pytest.raises(ValueError, match="must be positive"):  # checks are back after parsing
        Inner(0)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--no-such-flag", "3"], "--no-such-flag"),
        (["--limit", "many"], "--limit"),
        (["--inner.size=x"], "--inner.size"),
        (["--limit"], "--limit"),
    ],
)
def test_parse_errors_are_one_line_naming_the_flag(args: list[str], flag: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_config(Outer, "test", args)
    assert "\n" not in str(error.value) and str(error.value)
    assert flag in str(error.value)


def test_parse_error_line_relies_on_structure_not_wording() -> None:
    box = (
        "╭─ Some title ──────────────╮\n"
        "│ Something wrong with      │\n"
        "│ --alpha: it is not a int  │\n"
        "│ ───────────────────────── │\n"
        "│ Argument helptext: …      │\n"
        "╰───────────────────────────╯\n"
    )
    assert parse_error_line(box, ["--alpha", "x"]) == (
        "Something wrong with --alpha: it is not a int"
    )
    plain = "usage: prog [-h]\nprog: error: unrecognized arguments"
    message = parse_error_line(plain, ["--beta"])
    assert "\n" not in message and "--beta" in message
    assert parse_error_line("", []) == "invalid command line (command line: empty)"


@pytest.mark.parametrize(
    ("args", "flag"), [(["--bogus", "3"], "--bogus"), (["--pairs", "x"], "--pairs")]
)
def test_runner_parse_error_exits_2_with_one_line(args: list[str], flag: str) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("pathevo")), "binary_digits", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0]
    assert "Traceback" not in result.stderr


def test_every_flag_spelled_in_the_docs_is_a_runner_flag() -> None:
    known = {"--help", "--logdir", "--latest", "--refresh"}  # TensorBoard's, .ci/run's
    known |= {"--head", "--address", "--port", "--num-cpus"}  # `ray start`'s
    for runner in RUNNERS:
        for name in flags(config_type(runner)):
            section, _, leaf = name[2:].rpartition(".")
            known |= {name, f"--{section}.no-{leaf}" if section else f"--no-{leaf}"}
    spelled = {
        (document.name, match.group(0).rstrip("."))
        for document in DOCUMENTS
        for match in re.finditer(r"(?<![\w-])--[a-z][\w.-]*", document.read_text())
    }
    assert {(where, flag) for where, flag in spelled if flag not in known} == set()


def test_no_document_spells_a_command_the_old_way() -> None:
    """Recipes run as `pathevo RECIPE` (or `python -m pathevo.runners.RECIPE`); a script path
    with flags, or a bare `python -m envs`, would send a user to what no longer runs."""
    old = re.compile(r"python runners/|runners/\w+\.py --|python -m (envs|runners|agents)\b")
    found = [
        f"{document.name}:{number}"
        for document in DOCUMENTS
        for number, line in enumerate(document.read_text().splitlines(), 1)
        if old.search(line)
    ]
    assert found == []
