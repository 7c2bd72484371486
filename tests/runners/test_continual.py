"""runners/continual.py: R and its summaries, zero forgetting bitwise, fine-tuning's forgetting,
the full library (error and --grow), resume after the second task, canonical image task ids and
their data (Fashion-MNIST from written IDX files), a MinAtar smoke run."""

import ast
import dataclasses
import json
import random
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.agents.phase import Phase
from pathevo.agents.supervised import SupervisedConfig
from pathevo.envs import image_data
from pathevo.evolution.config import EvoConfig
from pathevo.evolution.operators import genome_to_path
from pathevo.runners import continual as runner
from pathevo.runners.figures.tensorboard import scalar_tags
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli
from pathevo.runners.tasks import continual as continual_tasks
from tests.envs.test_image_data import write_dataset

TASKS = ("digits/0v1", "digits/2v3", "digits/4v5")


def tiny(run: Path, **changes) -> runner.ContinualConfig:
    """Three digit tasks at 8x8, short evaluations: a few seconds for all three conditions."""
    cfg = runner.ContinualConfig(
        tasks=TASKS, resolution=8, max_generations=10, threshold=0.95,
        evo=EvoConfig(population=16), train=SupervisedConfig(minibatches=8),
        run_dir=str(run), progress=False, image_every=5,
    )  # fmt: skip
    return dataclasses.replace(cfg, **changes)


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    run = tmp_path_factory.mktemp("continual") / "run"
    return run, runner.main(tiny(run))


def test_summary_holds_r_and_its_summaries_for_every_condition(sequence):
    run, summary = sequence
    assert json.loads((run / rd.SUMMARY).read_text()) == json.loads(json.dumps(summary))
    assert (run / "continual.png").exists()
    assert set(summary["conditions"]) == set(runner.CONDITIONS)
    for name, condition in summary["conditions"].items():
        matrix = condition["R"]
        assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
        assert all(0.0 <= value <= 1.0 for row in matrix for value in row)
        assert condition["acc"] == pytest.approx(sum(matrix[-1]) / 3)
        bwt = (matrix[2][0] - matrix[0][0] + matrix[2][1] - matrix[1][1]) / 2
        assert condition["bwt"] == pytest.approx(bwt), name
        b = summary["fwt_reference"]
        assert condition["fwt"] == pytest.approx((matrix[0][1] - b[1] + matrix[1][2] - b[2]) / 2)
        assert len(condition["tasks"]) == 3
    # Independent networks: earlier rows stand, untrained tasks are at their reference.
    scratch = summary["conditions"]["scratch"]["R"]
    assert scratch[2][0] == scratch[0][0] and scratch[0][2] == summary["fwt_reference"][2]
    # Library occupancy grows with every frozen path; reuse is a fraction per task.
    occupancy = summary["occupancy"]
    assert len(occupancy) == 3 and all(len(layers) == 3 for layers in occupancy)
    shares = torch.tensor(occupancy)  # [tasks, layers]
    assert bool((shares[1:] >= shares[:-1]).all())
    assert summary["module_reuse"][0] == 0.0 and all(0 <= r <= 1 for r in summary["module_reuse"])


def test_conditions_share_their_tensorboard_tags(sequence):
    run, _ = sequence
    tags = scalar_tags(run)
    rows = {f"charts/R/task{j}" for j in range(3)}
    for condition in runner.CONDITIONS:
        for index in range(3):
            name = f"{condition}/task{index}"
            assert tags[name] == {"evolution/fitness_best", "charts/accuracy"}, name
        occupancy = {f"evolution/occupancy/layer{layer}" for layer in range(3)}
        assert tags[condition] == rows | (occupancy if condition == "pathnet" else set())
    assert tags[""] == {f"summary/{c}_{key}" for c in runner.CONDITIONS
                        for key in ("acc", "bwt", "fwt")}  # fmt: skip


def test_pathnet_forgets_nothing_bitwise(sequence):
    run, summary = sequence
    assert summary["bwt"]["pathnet"] == 0.0  # exactly, not approximately
    assert summary["pathnet_outputs_identical"] == [True, True, True]
    matrix = summary["conditions"]["pathnet"]["R"]
    assert all(matrix[i][j] == matrix[j][j] for i in range(3) for j in range(i + 1))
    # Independently of the runner's own check: the final library and heads give the outputs
    # recorded right after each task was learned, bit for bit.
    state = torch.load(run / rd.CHECKPOINT, weights_only=False)
    family = runner.load_family(tiny(run))
    model = runner.restore(family, state["models"]["pathnet"])
    for j, record in enumerate(state["records"]["pathnet"]):
        path = genome_to_path(record["genome"], 3, 3)
        assert torch.equal(family.probe(model, j, path), state["probes"][j])
        assert all(model.library.frozen_mask()[layer][path[layer]].all() for layer in range(3))


def test_fine_tuning_forgets(sequence):
    _, summary = sequence
    # Seed 0: fine-tuning one path loses about 0.1-0.2 accuracy on earlier tasks.
    assert summary["bwt"]["finetune"] < -0.03, summary["conditions"]["finetune"]["R"]


def test_resume_after_the_second_task_redoes_nothing(sequence, tmp_path, monkeypatch):
    _, uninterrupted = sequence
    run = tmp_path / "run"
    trained = []
    original = runner.Images.train

    def train(self, model, step):
        if step.index == 2:
            raise KeyboardInterrupt
        trained.append((step.index, step.condition))
        return original(self, model, step)

    monkeypatch.setattr(runner.Images, "train", train)
    with pytest.raises(KeyboardInterrupt):
        runner.main(tiny(run))
    assert torch.load(run / rd.CHECKPOINT, weights_only=False)["done"] == 6
    assert trained == [(i, c) for i in (0, 1) for c in runner.CONDITIONS]
    calls = []
    monkeypatch.setattr(
        runner.Images, "train",
        lambda self, model, step: calls.append(step.index) or original(self, model, step),
    )  # fmt: skip
    summary = runner.main(runner.ContinualConfig(resume=str(run), progress=False))
    assert calls == [2, 2, 2]  # only the third task, once per condition
    for name in runner.CONDITIONS:  # a resumed run is the uninterrupted run, exactly
        assert summary["conditions"][name]["R"] == uninterrupted["conditions"][name]["R"]
    assert runner.main(runner.ContinualConfig(resume=str(run))) == summary


def test_a_full_library_stops_before_the_task_or_grows(tmp_path):
    small = EvoConfig(modules=3, active=2, population=16)
    cfg = tiny(tmp_path / "full", evo=small, conditions=("pathnet",))
    with pytest.raises(ValueError, match=r"library is full before task 'digits/2v3': layer \d"):
        runner.main(cfg)
    # Nothing of the second task was trained; the finished first one is kept, and --grow on
    # resume carries on from it.
    assert torch.load(Path(cfg.run_dir) / rd.CHECKPOINT, weights_only=False)["done"] == 1
    summary = runner.main(runner.ContinualConfig(resume=cfg.run_dir, grow=True, progress=False))
    assert summary["grown"] and summary["grown"][0]["before_task"] == 1
    sizes = summary["modules_per_layer"]
    assert sizes[0] == [3, 3, 3] and max(sizes[-1]) > 3
    assert_grown_by_shortfall(summary)
    assert summary["bwt"]["pathnet"] == 0.0
    assert summary["pathnet_outputs_identical"] == [True, True, True]
    assert rd.load_config(cfg.run_dir, runner.ContinualConfig).grow  # recorded for later resumes


def assert_grown_by_shortfall(summary: dict) -> None:
    """Each growth added to every layer exactly what it lacked (nothing to layers with room)."""
    sizes = summary["modules_per_layer"]  # after each task
    for growth in summary["grown"]:
        task = growth["before_task"]
        expected = [m + lack for m, lack in zip(sizes[task - 1], growth["lacking"], strict=True)]
        assert sizes[task] == expected


def test_grow_adds_modules_only_to_the_layers_that_lack_them(tmp_path):
    cfg = tiny(tmp_path / "r", evo=EvoConfig(modules=3, active=2, population=8), grow=True)
    family = runner.load_family(cfg)
    model = family.build(0)
    # Task 0 froze two modules of layer 0 but only one of layers 1 and 2 (a repeated id).
    model.library.freeze(torch.tensor([[0, 1], [0, 0], [2, 2]]), "digits/0v1")
    before = [layer.clone() for layer in model.library.frozen_mask()]
    state = {"grown": []}
    runner.prepare_pathnet_task(cfg, model, family, 1, state)
    assert model.library.modules_per_layer == [4, 3, 3]
    assert state["grown"] == [{"before_task": 1, "lacking": [1, 0, 0]}]
    frozen = model.library.frozen_mask()
    assert torch.equal(frozen[0][:3], before[0]) and not frozen[0][3]
    # The next task evolves on the ragged library, each layer's genes within its own size.
    with family.progress(Console()) as progress:
        step = continual_tasks.Step(
            1, "pathnet", model.library.modules_per_layer, random.Random(0), tmp_path, progress
        )
        record = family.train(model, step)
    path = genome_to_path(record["genome"], 3, 2)
    assert int(path[0].max()) < 4 and int(path[1:].max()) < 3
    with pytest.raises(ValueError, match="N=2"):
        continual_tasks.make_toolbox(cfg.evo, sizes=[4, 1, 3])


def test_grow_from_the_start(tmp_path):
    small = EvoConfig(modules=2, active=2, population=16)
    cfg = tiny(tmp_path / "grow", evo=small, conditions=("pathnet",), grow=True)
    summary = runner.main(cfg)
    assert [g["before_task"] for g in summary["grown"]] == [1, 2]
    assert summary["pathnet_outputs_identical"] == [True, True, True]
    state = torch.load(Path(cfg.run_dir) / rd.CHECKPOINT, weights_only=False)
    assert state["models"]["pathnet"]["sizes"] == summary["modules_per_layer"][-1]
    assert_grown_by_shortfall(summary)


@pytest.mark.parametrize("kind", ["moe", "hyper", "cppn"])
def test_grow_with_every_last_layer_kind(tmp_path, kind):
    # Gated, hyper-generated and CPPN-painted last layers grow like linear ones, and every
    # earlier task still gives its recorded outputs bit for bit.
    small = EvoConfig(modules=2, active=2, population=8)
    cfg = tiny(tmp_path / kind, evo=small, conditions=("pathnet",), grow=True,
               library_kind=kind, tasks=TASKS[:2], max_generations=4)  # fmt: skip
    summary = runner.main(cfg)
    assert [g["before_task"] for g in summary["grown"]] == [1]
    assert min(summary["modules_per_layer"][-1]) > 2  # with M = N = 2 every layer lacks room
    assert_grown_by_shortfall(summary)
    assert summary["pathnet_outputs_identical"] == [True, True]
    assert summary["bwt"]["pathnet"] == 0.0
    resumed = runner.main(runner.ContinualConfig(resume=cfg.run_dir, progress=False))
    assert resumed == summary  # the grown checkpoint reloads into a fresh model


def test_bad_task_lists_are_one_line_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="at least 2 tasks"):
        runner.ContinualConfig(tasks=("digits/0v1",))
    with pytest.raises(ValueError, match=r"mixes image tasks and env ids \(MinAtar/Breakout-v1\)"):
        runner.ContinualConfig(tasks=("digits/0v1", "MinAtar/Breakout-v1"))
    with pytest.raises(ValueError, match=r"\(fashon/1v7\).*one of digits, mnist, fashion"):
        runner.ContinualConfig(tasks=("fashion/0v1", "fashon/1v7"))
    with pytest.raises(ValueError, match="duplicate tasks"):
        runner.ContinualConfig(tasks=("digits/0v1", "digits/0v1"))
    with pytest.raises(ValueError, match="duplicate tasks in --tasks: fashion/trouser-v-sneaker"):
        runner.ContinualConfig(tasks=("fashion/1v7", "fashion/trouser-v-sneaker"))
    with pytest.raises(ValueError, match="mixes environment families"):
        runner.main(runner.ContinualConfig(tasks=("MinAtar/Breakout-v1", "CartPole-v1"),
                                           run_dir=str(tmp_path / "mixed")))  # fmt: skip
    assert not (tmp_path / "mixed").exists()
    monkeypatch.setattr(sys, "argv", ["continual.py", "--tasks", "digits/0v1", "digits/3v3"])
    with pytest.raises(SystemExit) as exit_:
        run_cli(runner.main, runner.ContinualConfig, "test")
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: unknown task 'digits/3v3': expected two different digits like 'digits/3v5'"
    ]
    monkeypatch.setattr(sys, "argv", ["continual.py", "--tasks", "fashion/0v1", "fashion/bag"])
    with pytest.raises(SystemExit):
        run_cli(runner.main, runner.ContinualConfig, "test")
    (error,) = capsys.readouterr().err.splitlines()
    assert "unknown task 'fashion/bag': expected two different classes like" in error


def test_image_tasks_of_any_data_set_are_stored_canonical(tmp_path, monkeypatch):
    # Fashion-MNIST from small written IDX files (random pictures: a smoke run, not a result).
    write_dataset(tmp_path / "data" / "fashion-mnist", 200)
    monkeypatch.setattr(image_data, "DEBIAN_DATASETS", tmp_path / "nowhere")
    monkeypatch.delenv(image_data.DATA_ENV, raising=False)
    run = tmp_path / "run"
    cfg = tiny(run, tasks=("fashion/0v1", "fashion/pullover-v-dress"), max_generations=3,
               conditions=("pathnet", "finetune"), data_dir=str(tmp_path / "data"))  # fmt: skip
    assert cfg.tasks == ("fashion/tshirt-v-trouser", "fashion/pullover-v-dress")
    summary = runner.main(cfg)
    assert summary["tasks"] == list(cfg.tasks) and summary["measure"] == "held-out accuracy"
    assert summary["pathnet_outputs_identical"] == [True, True]
    finetune = summary["conditions"]["finetune"]["R"]
    assert all(0.0 <= value <= 1.0 for row in finetune for value in row)
    saved = json.loads((run / "config.json").read_text())
    assert saved["tasks"] == list(cfg.tasks) and saved["data_dir"] == str(tmp_path / "data")
    state = torch.load(run / rd.CHECKPOINT, weights_only=False)
    model = runner.restore(runner.load_family(cfg), state["models"]["pathnet"])
    assert sorted(model.heads.tasks()) == sorted(cfg.tasks)  # heads named by canonical ids
    assert runner.main(runner.ContinualConfig(resume=str(run), progress=False)) == summary


def test_missing_image_files_stop_before_the_run_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(image_data, "DEBIAN_DATASETS", tmp_path / "nowhere")
    monkeypatch.delenv(image_data.DATA_ENV, raising=False)
    cfg = tiny(tmp_path / "run", tasks=("digits/0v1", "kmnist/o-v-ki"), data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no Kuzushiji-MNIST IDX files in .*--data-dir") as error:
        runner.main(cfg)
    assert "\n" not in str(error.value) and not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["moe", "hyper", "cppn"])
def test_every_last_layer_kind_forgets_nothing(tmp_path, kind):
    cfg = tiny(tmp_path / kind, library_kind=kind, conditions=("pathnet", "finetune"))
    summary = runner.main(cfg)
    assert summary["bwt"]["pathnet"] == 0.0
    assert summary["pathnet_outputs_identical"] == [True, True, True]


MINATAR = dict(
    tasks=("MinAtar/Breakout-v1", "MinAtar/SpaceInvaders-v1"), steps=300, workers=2,
    pathnet=PathNetA3CConfig(layers=2, modules=4, active=2, units=16, episodes_per_evaluation=1),
    a3c=A3CConfig(t_max=5, hidden=16), eval_episodes=2, eval_max_steps=100, probe_size=16,
    progress=False,
)  # fmt: skip


def test_minatar_sequence_smoke(tmp_path):
    summary = runner.main(
        runner.ContinualConfig(**MINATAR, conditions=("pathnet",), run_dir=str(tmp_path / "r"))
    )
    assert summary["measure"] == "mean return"
    assert summary["bwt"]["pathnet"] == 0.0
    assert summary["pathnet_outputs_identical"] == [True, True]
    assert [task["steps"] >= 300 for task in summary["conditions"]["pathnet"]["tasks"]] == [
        True, True,
    ]  # fmt: skip
    assert len(summary["occupancy"]) == 2


def test_minatar_sequence_in_the_learner_mode_freezes_and_forgets_nothing(tmp_path):
    """The continual runner through the shared phase's learner mode (actors and one learner)."""
    settings = {**MINATAR, "a3c": A3CConfig(t_max=5, hidden=16, mode="learner")}
    cfg = runner.ContinualConfig(**settings, conditions=("pathnet",), run_dir=str(tmp_path / "r"))
    summary = runner.main(cfg)
    assert summary["bwt"]["pathnet"] == 0.0
    assert summary["pathnet_outputs_identical"] == [True, True]
    assert all(task["steps"] >= 300 for task in summary["conditions"]["pathnet"]["tasks"])


@pytest.mark.parametrize("agent", ["pathnet-moe", "pathnet-hyper"])
def test_minatar_grows_gated_and_hyper_libraries(tmp_path, agent):
    pathnet = PathNetA3CConfig(layers=2, modules=2, active=2, units=16, episodes_per_evaluation=1)
    cfg = runner.ContinualConfig(
        **(MINATAR | {"pathnet": pathnet}), agent=agent, conditions=("pathnet",), grow=True,
        run_dir=str(tmp_path / "r"),
    )  # fmt: skip
    summary = runner.main(cfg)
    assert summary["grown"] and min(summary["modules_per_layer"][-1]) > 2
    assert summary["pathnet_outputs_identical"] == [True, True]
    assert_grown_by_shortfall(summary)


@pytest.mark.slow
def test_minatar_sequence_all_conditions_with_growth(tmp_path):
    pathnet = PathNetA3CConfig(layers=2, modules=2, active=2, units=16, episodes_per_evaluation=1)
    cfg = runner.ContinualConfig(
        **(MINATAR | {"pathnet": pathnet}), grow=True, run_dir=str(tmp_path / "r")
    )
    summary = runner.main(cfg)
    assert set(summary["conditions"]) == set(runner.CONDITIONS)
    assert summary["grown"] and summary["pathnet_outputs_identical"] == [True, True]
    assert summary["bwt"]["pathnet"] == 0.0
    assert_grown_by_shortfall(summary)


@pytest.mark.slow
def test_minatar_resumes_inside_a_task(tmp_path, monkeypatch):
    run = tmp_path / "r"
    cfg = runner.ContinualConfig(
        **(MINATAR | {"steps": 900}), conditions=("pathnet",), checkpoint_every=300,
        run_dir=str(run),
    )  # fmt: skip
    real, interrupted = rd.save_checkpoint, []

    def save_then_stop(path, state):  # Ctrl-C right after the first checkpoint inside a task
        real(path, state)
        if state.get("current") is not None and not interrupted:
            interrupted.append(int(state["current"]["steps"].sum()))
            raise KeyboardInterrupt

    monkeypatch.setattr(rd, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        runner.main(cfg)
    state = torch.load(run / rd.CHECKPOINT, weights_only=False)
    assert state["done"] == 0 and int(state["current"]["steps"].sum()) >= interrupted[0] >= 300
    monkeypatch.setattr(rd, "save_checkpoint", real)
    starts, real_run = [], Phase.run

    def recorded(phase, *args, **kwargs):
        starts.append(int(phase.steps.sum()))
        return real_run(phase, *args, **kwargs)

    monkeypatch.setattr(Phase, "run", recorded)
    summary = runner.main(runner.ContinualConfig(resume=str(run), progress=False))
    # The first task went on from its checkpoint's steps, not from 0; the second began afresh.
    assert starts == [int(state["current"]["steps"].sum()), 0]
    assert summary["pathnet_outputs_identical"] == [True, True]
    assert summary["conditions"]["pathnet"]["tasks"][0]["steps"] >= 900


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports (at any level, TYPE_CHECKING blocks included), and
    every ``module.name`` it imports by name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


RUNNERS_DIR = Path(__file__).resolve().parents[2] / "runners"


def test_the_task_families_do_not_import_the_recipe_that_uses_them():
    assert "pathevo.runners.continual" not in imported_modules(
        RUNNERS_DIR / "tasks" / "continual.py"
    )


def runner_module_aliases(tree: ast.AST) -> set[str]:
    """Local names bound to modules of pathevo.runners (``from pathevo.runners import a3c``,
    ``from pathevo.runners.plumbing import run_dir as rd``)."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pathevo.runners"):
            aliases.update(alias.asname or alias.name for alias in node.names)
    return aliases


def test_no_runner_imports_another_runners_private_names():
    for path in RUNNERS_DIR.rglob("*.py"):
        where = path.relative_to(RUNNERS_DIR)
        for name in imported_modules(path):
            if name.startswith("pathevo.runners."):
                assert not name.rsplit(".", 1)[-1].startswith("_"), f"{where} imports {name}"
        tree = ast.parse(path.read_text())
        aliases = runner_module_aliases(tree)
        for node in ast.walk(tree):  # nor reaches one through a module: atari_transfer._x
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                private = node.attr.startswith("_") and not node.attr.startswith("__")
                assert not (node.value.id in aliases and private), f"{where}: {node.attr}"
