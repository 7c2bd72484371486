"""pathevo installs as one package: the wheel's only top-level name is `pathevo`, and it works
beside other packages that own the generic names `agents` and `envs`, from outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("agents", "envs", "evolution", "modules", "runners")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pathevo's wheel, built from a copy of the checkout's sources (setuptools writes build/
    beside them) with the environment's setuptools."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(out), str(source)],
        capture_output=True, text=True, timeout=300, cwd=out,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (found,) = out.glob("pathevo-*.whl")
    return found


def test_the_wheel_holds_one_top_level_package_with_every_source_file(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == {"pathevo"}
    (top_level,) = [name for name in names if name.endswith(".dist-info/top_level.txt")]
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["pathevo"]
    sources = {
        f"pathevo/{path.relative_to(ROOT).as_posix()}"
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*")
        if path.suffix in (".py", ".wad", ".cfg") and "__pycache__" not in path.parts
    }
    assert sources - set(names) == set()  # pyproject's package list misses no folder
    entry_points = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    assert (
        "pathevo = pathevo.runners.__main__:main"
        in zipfile.ZipFile(wheel).read(entry_points[0]).decode()
    )


def test_every_package_folder_is_listed_in_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {
        "pathevo." + init.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert listed == folders


def other_packages(where: Path) -> Path:
    """Stand-ins for popular distributions that own top-level `agents` (a package, as
    openai-agents) and `envs` (a module, as a pytorch-a3c checkout's envs.py)."""
    (where / "agents").mkdir(parents=True)
    (where / "agents" / "__init__.py").write_text("OWNER = 'another agents package'\n")
    (where / "envs.py").write_text("OWNER = 'another envs module'\n")
    return where


CHECK = """
import agents, envs
assert agents.OWNER == 'another agents package', agents.__file__
assert envs.OWNER == 'another envs module', envs.__file__
import gymnasium
import pathevo.agents.registry, pathevo.envs
from pathevo.envs import make_env
env = make_env('CartPole-v1', 0)
env.reset(seed=0)
env.close()
env = gymnasium.make('pathevo.envs:MinAtar/Breakout-v1')
env.close()
assert 'pathnet' in pathevo.agents.registry.agent_names()
import pathevo.agents
print(pathevo.agents.__file__)
"""


@pytest.mark.parametrize("install", ["editable", "wheel"])
def test_pathevo_works_beside_packages_named_agents_and_envs(
    install: str, wheel: Path, tmp_path: Path
) -> None:
    """From a directory outside the checkout, with the other `agents` and `envs` first on the
    path: both they and pathevo import and work, and a recipe runs its worker processes."""
    paths = [str(other_packages(tmp_path / "others"))]
    command = [str(Path(sys.executable).with_name("pathevo"))]
    if install == "wheel":  # the wheel's files, ahead of the editable install on the path
        target = tmp_path / "site"
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
             str(target), str(wheel)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        paths.append(str(target))
        command = [sys.executable, "-m", "pathevo.runners"]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    check = subprocess.run([sys.executable, "-c", CHECK], cwd=work, env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert check.returncode == 0, check.stderr
    loaded_from = Path(check.stdout.strip().splitlines()[-1])
    expected = target / "pathevo" if install == "wheel" else ROOT
    assert loaded_from.is_relative_to(expected), loaded_from
    run = subprocess.run(
        [*command, "a3c", "--env-id", "CartPole-v1", "--workers", "2", "--steps", "1500",
         "--a3c.hidden", "16", "--no-progress", "--run-dir", str(work / "run")],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (work / "run" / "summary.json").exists()
