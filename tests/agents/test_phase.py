"""agents/phase.py and its reporters: checkpoints by steps or by wall time, whichever comes
first; every duty a reporter the driver calls with keywords; one set-up object whose state round
trips and which makes the worker arguments of plain and path agents."""

import ast
import inspect
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from pathevo.agents import phase_reporters
from pathevo.agents.a3c import A3CConfig, WorkerSpec
from pathevo.agents.pathnet_a3c import PathNetA3CConfig, PathNetWorkerSpec
from pathevo.agents.phase import Phase, new_population, run_phase
from pathevo.agents.phase_log import PhaseLog, phase_state, restore_phase
from pathevo.agents.phase_reporters import (
    Checkpointer,
    EarlyStop,
    ProgressReporter,
    Reporter,
    TensorBoardReporter,
    ThroughputReporter,
    make_progress,
)
from pathevo.agents.processes import worker_process
from pathevo.agents.registry import get_agent
from pathevo.agents.shared_optim import make_shared_optimizer

ROOT = Path(__file__).resolve().parents[2]


def slow_worker(rank: int, steps: torch.Tensor, queue, updates: int) -> None:
    """Stands for a slow environment: one step and one update report every 50 ms."""
    with worker_process(rank, queue):
        for _ in range(updates):
            time.sleep(0.05)
            steps[rank] += 1
            queue.put({"kind": "update", "rank": rank, "step": int(steps.sum())})


def checkpoints(tmp_path, checkpoint_every: int, checkpoint_minutes: float | None) -> int:
    steps = torch.zeros(1, dtype=torch.long).share_memory_()
    saved: list[int] = []
    log = PhaseLog()
    with SummaryWriter(str(tmp_path)) as writer, make_progress(Console(), False) as progress:
        reporters = [
            TensorBoardReporter(writer, log), ProgressReporter(progress, "train"),
            ThroughputReporter(writer, log),
            Checkpointer(lambda: saved.append(int(steps.sum())), checkpoint_every,
                         checkpoint_minutes),
        ]  # fmt: skip
        run_phase(
            slow_worker, lambda group: [(0, steps, group.queue, 30)], steps=steps, budget=30,
            log=log, reporters=reporters,
        )  # fmt: skip
    return len(saved)


@pytest.mark.parametrize(
    ("every", "minutes", "expected"),
    [
        (10, None, range(3, 4)),  # by steps only: at 10, 20 and 30
        (10**9, 0.2 / 60, range(3, 12)),  # 1.5 s of updates, a checkpoint every 0.2 s
        (10**9, None, range(0, 1)),  # neither comes due
    ],
)
def test_checkpoints_come_by_steps_or_by_minutes(tmp_path, every, minutes, expected):
    assert checkpoints(tmp_path, every, minutes) in expected


def test_a_phase_state_round_trips_into_fresh_optimiser_counters_and_population():
    cfg = PathNetA3CConfig(layers=2, modules=4, active=2)
    model = torch.nn.Linear(3, 2)
    optimizer = make_shared_optimizer("adam", model.parameters(), 1e-3)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    steps, population = torch.tensor([5, 7]), new_population(cfg, 2, seed=1)
    population.fitness.fill_(0.5)
    log = PhaseLog(episodes=[(5, 1.0)], skipped_updates=2)
    saved = phase_state(optimizer, steps, population, log)

    fresh_optimizer = make_shared_optimizer("adam", model.parameters(), 1e-3)
    fresh_steps, fresh_population = torch.zeros(2, dtype=torch.long), new_population(cfg, 2, 9)
    restored = restore_phase(saved, fresh_optimizer, fresh_steps, fresh_population)
    assert restored == log and fresh_steps.tolist() == [5, 7]
    assert torch.equal(fresh_population.genomes, population.genomes)
    assert fresh_population.fitness.tolist() == [0.5, 0.5]
    assert fresh_optimizer.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()


# --- reporters -------------------------------------------------------------------------------


def chatty_worker(rank: int, steps: torch.Tensor, queue) -> None:
    """One message of every kind a worker sends: an update, episodes (worker 0 one, worker 1 a
    rollout's two in one message), a tournament."""
    with worker_process(rank, queue):
        steps[rank] += 5
        queue.put({"kind": "update", "rank": rank, "step": int(steps.sum()), "value_loss": 0.5,
                   "skipped_updates": 1})  # fmt: skip
        steps[rank] += 5
        if rank == 0:
            queue.put({"kind": "episode", "rank": rank, "step": int(steps.sum()), "return": 2.0})
        else:
            queue.put({"kind": "episodes", "rank": rank, "step": int(steps.sum()),
                       "returns": [2.0, 4.0], "lengths": [3, 4]})  # fmt: skip
        queue.put({"kind": "tournament", "rank": rank, "step": int(steps.sum()), "fitness": 2.0})


HOOKS = sorted(
    name for name, _ in inspect.getmembers(Reporter, inspect.isfunction) if not name.startswith("_")
)


class Recorder(Reporter):
    """A new duty, added without touching run_phase: it records every hook call. Its hooks
    take ``**kwargs`` only, so a positional call would fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []


def _recording(hook: str):
    def record(self, **kwargs) -> None:
        self.calls.append((hook, kwargs))

    return record


for _hook in HOOKS:
    setattr(Recorder, _hook, _recording(_hook))


def test_every_hook_of_every_reporter_takes_keyword_only_arguments():
    classes = [
        cls for _, cls in inspect.getmembers(phase_reporters, inspect.isclass)
        if issubclass(cls, Reporter)
    ]  # fmt: skip
    assert len(classes) >= 8  # the base, the set and the six duties
    for cls in classes:
        for hook in HOOKS:
            parameters = list(inspect.signature(getattr(cls, hook)).parameters.values())[1:]
            kinds = {p.kind for p in parameters}
            assert kinds <= {inspect.Parameter.KEYWORD_ONLY}, f"{cls.__name__}.{hook}"


def test_the_driver_hands_every_message_to_every_reporter_with_its_keywords():
    steps, log = torch.zeros(2, dtype=torch.long).share_memory_(), PhaseLog()
    first, second = Recorder(), Recorder()
    run_phase(
        chatty_worker, lambda group: [(rank, steps, group.queue) for rank in range(2)],
        steps=steps, budget=1000, log=log, reporters=[first, second], max_restarts=0,
    )  # fmt: skip
    assert first.calls == second.calls
    hooks = [hook for hook, _ in first.calls]
    assert hooks[0] == "started" and hooks[-1] == "ended"
    assert first.calls[0][1] == {"done": 0, "budget": 1000, "workers": 2}
    assert first.calls[-1][1] == {"done": 20}
    for hook, kwargs in first.calls:  # the keywords each hook declares, no more, no fewer
        declared = list(inspect.signature(getattr(Reporter, hook)).parameters)[1:]
        assert sorted(kwargs) == sorted(declared), hook
    assert hooks.count("update") == hooks.count("tournament") == 2
    assert hooks.count("episode") == 3  # every episode of a rollout's message
    assert hooks.count("handled") == 6  # after every message
    episodes = [kwargs for hook, kwargs in first.calls if hook == "episode"]
    assert sorted(e["episode_return"] for e in episodes) == [2.0, 2.0, 4.0]
    assert [e["episodes"] for e in episodes] == [1, 2, 3]
    assert episodes[-1]["mean"] == pytest.approx(8.0 / 3)
    assert callable(episodes[0]["workers"].sync)  # the group
    update = next(kwargs for hook, kwargs in first.calls if hook == "update")
    assert update["message"]["value_loss"] == 0.5
    tournament = next(kwargs for hook, kwargs in first.calls if hook == "tournament")
    assert tournament["fitness"] == 2.0
    # What the driver itself keeps: the phase's record.
    assert sorted(episode_return for _, episode_return in log.episodes) == [2.0, 2.0, 4.0]
    assert log.skipped_updates == 2


class CtrlC(Reporter):
    def handled(self, *, done: int, workers) -> None:
        raise KeyboardInterrupt


def test_ctrl_c_checkpoints_once_and_still_accounts_the_session(tmp_path):
    steps, log, saved = torch.zeros(1, dtype=torch.long).share_memory_(), PhaseLog(), []
    reporters = [
        ThroughputReporter(SummaryWriter(str(tmp_path)), log),
        Checkpointer(lambda: saved.append(int(steps.sum())), every=10**9),
        CtrlC(),
    ]
    with pytest.raises(KeyboardInterrupt):
        run_phase(slow_worker, lambda group: [(0, steps, group.queue, 3)], steps=steps,
                  budget=3, log=log, reporters=reporters)  # fmt: skip
    assert len(saved) == 1 and log.seconds > 0


class FakeWorkers:
    def __init__(self) -> None:
        self.stop, self.syncs = torch.zeros((), dtype=torch.bool), 0

    def sync(self) -> None:
        self.syncs += 1


def episode_at(reporter: Reporter, workers: FakeWorkers, *, mean: float, episodes: int) -> None:
    reporter.episode(rank=0, step=episodes, episode_return=mean, mean=mean, episodes=episodes,
                     done=episodes, workers=workers)  # fmt: skip


def test_early_stop_waits_for_a_full_window_at_the_target():
    stop, workers = EarlyStop(195.0), FakeWorkers()
    episode_at(stop, workers, mean=200.0, episodes=19)
    assert not workers.stop.item()
    episode_at(stop, workers, mean=190.0, episodes=25)
    assert not workers.stop.item()
    episode_at(stop, workers, mean=195.0, episodes=20)
    assert workers.stop.item()


def test_the_checkpointer_syncs_then_saves_at_every_multiple_of_its_steps():
    saved, workers = [], FakeWorkers()
    checkpointer = Checkpointer(lambda: saved.append(True), every=10)
    checkpointer.started(done=12, budget=100, workers=1)  # a resumed phase: next at 20
    for done in (15, 19, 21, 25, 33, 40):
        checkpointer.handled(done=done, workers=workers)
    assert len(saved) == workers.syncs == 3  # at 21, 33 and 40
    checkpointer.interrupted(done=41)
    assert len(saved) == 4


def test_throughput_counts_the_steady_state_from_every_workers_first_update(tmp_path):
    log = PhaseLog(seconds=5.0)
    throughput = ThroughputReporter(SummaryWriter(str(tmp_path)), log)
    throughput.started(done=100, budget=1000, workers=2)
    for rank, done in ((0, 110), (0, 120), (1, 130), (0, 150), (1, 170)):
        throughput.update(rank=rank, step=done, message={}, done=done)
    throughput.ended(done=180)
    assert log.session_steps == 40  # from 130 (both have updated) to 170 (the last update)
    assert log.seconds > 5.0 and 0 < log.session_seconds < log.seconds


def test_tensorboard_tags_of_episodes_losses_routing_and_paths(tmp_path):
    cfg = PathNetA3CConfig(layers=2, modules=3, active=2)
    population = new_population(cfg, 2, seed=0)
    population.fitness[0] = 1.5
    frozen = [torch.tensor([True, False, False]), torch.zeros(3, dtype=torch.bool)]
    log = PhaseLog(skipped_updates=3)
    report = {"picks": [3.0, 1.0], "importance": [0.7, 0.3], "allowed": [True, True], "tokens": 4}
    log.moe["layer/task"] = {"0": report}  # recorded by the driver before the reporters run
    writer = SummaryWriter(str(tmp_path))
    board = TensorBoardReporter(writer, log, population, frozen)
    board.episode(rank=1, step=10, episode_return=4.0, mean=3.0, episodes=2, done=10,
                  workers=FakeWorkers())  # fmt: skip
    board.handled(done=10, workers=FakeWorkers())
    board.update(rank=0, step=11, done=11, message={"value_loss": 0.1, "policy_loss": -0.2,
                 "skipped_updates": 1, "moe": {"layer/task": report}})  # fmt: skip
    board.tournament(rank=0, step=12, fitness=1.5)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {
        "charts/episodic_return/worker1", "charts/mean_return_20", "losses/value_loss",
        "losses/policy_loss", "losses/skipped_updates", "moe/layer/task/load_cv2",
        "moe/layer/task/load/expert0", "moe/layer/task/importance/expert1",
        "evolution/fitness/worker0", "evolution/fitness_max", "evolution/fitness_mean",
    } <= scalars  # fmt: skip
    assert {tag.split("/")[0] for tag in scalars} == {"charts", "losses", "moe", "evolution"}
    assert [e.value for e in events.Scalars("losses/skipped_updates")] == [3.0]
    assert {"moe/layer/task/usage", "evolution/paths"} == set(events.Tags()["images"])


def test_tensorboard_writes_the_mean_once_a_message_and_paths_at_most_every_few_seconds(tmp_path):
    cfg = PathNetA3CConfig(layers=2, modules=3, active=2)
    population = new_population(cfg, 2, seed=0)
    frozen = [torch.zeros(3, dtype=torch.bool)] * 2
    writer = SummaryWriter(str(tmp_path))
    board = TensorBoardReporter(writer, PhaseLog(), population, frozen, image_every=3600.0)
    for step, returns in ((5, [1.0, 2.0, 3.0]), (9, [4.0])):  # two messages' episodes
        for index, episode_return in enumerate(returns):
            board.episode(rank=0, step=step, episode_return=episode_return, mean=10.0 + index,
                          episodes=index + 1, done=step, workers=FakeWorkers())  # fmt: skip
        board.handled(done=step, workers=FakeWorkers())
    for step in (20, 30, 40):  # within the hour: the first is drawn, the last when it ends
        board.tournament(rank=0, step=step, fitness=1.0)
    board.ended(done=40)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert len(events.Scalars("charts/episodic_return/worker0")) == 4  # every episode
    means = [(e.step, e.value) for e in events.Scalars("charts/mean_return_20")]
    assert means == [(5, 12.0), (9, 10.0)]  # the mean after each message's last episode
    assert [image.step for image in events.Images("evolution/paths")] == [20, 40]


# --- the set-up object -----------------------------------------------------------------------


def small_pathnet(**overrides) -> PathNetA3CConfig:
    return PathNetA3CConfig(layers=2, modules=4, active=2, units=8, **overrides)


def test_a_phase_set_up_restores_its_state_into_a_fresh_one_and_its_log_in_place():
    cfg = small_pathnet()
    model = torch.nn.Linear(3, 2)
    phase = Phase.create(model, A3CConfig(optimizer="adam"), 2, seed=1,
                         population=new_population(cfg, 2, seed=1), pathnet=cfg)  # fmt: skip
    model(torch.ones(1, 3)).sum().backward()
    phase.optimizer.step()
    phase.steps.copy_(torch.tensor([5, 7]))
    phase.population.fitness.fill_(0.5)
    phase.population.adoptions[1] = 3
    phase.log.episodes.append((5, 1.0))
    saved = phase.state()

    fresh = Phase.create(model, A3CConfig(optimizer="adam"), 2, seed=1,
                         population=new_population(cfg, 2, seed=9), pathnet=cfg)  # fmt: skip
    log = fresh.log  # as a reporter made before the restore holds it
    fresh.restore(saved)
    assert fresh.log is log and log == phase.log and fresh.steps.tolist() == [5, 7]
    for key in ("genomes", "fitness", "adoptions"):
        assert torch.equal(getattr(fresh.population, key), getattr(phase.population, key)), key
    state = fresh.optimizer.state_dict()["state"]
    assert state.keys() == phase.optimizer.state_dict()["state"].keys()


def test_worker_arguments_of_a_plain_agent():
    settings = SimpleNamespace(a3c=A3CConfig(hidden=8, lr=3e-3), pathnet=small_pathnet())
    agent = get_agent("a3c")
    model = agent.build_for_task(settings, (4,), 2, "CartPole-v1")
    population = agent.population(settings.pathnet, 2, seed=0)
    assert population is None
    phase = Phase.create(model, settings.a3c, 2, seed=3, population=population,
                         pathnet=settings.pathnet)  # fmt: skip
    group = SimpleNamespace(stop=torch.zeros((), dtype=torch.bool), queue="queue")
    args = phase.worker_args(group, env_id="CartPole-v1", budget=100)
    assert [rank for rank, _ in args] == [0, 1]
    spec = args[0][1]
    assert isinstance(spec, WorkerSpec) and spec.budget == 100 and spec.seed == 3
    assert spec.stop is group.stop and spec.queue == "queue" and spec.model is model
    assert spec.lrs.tolist() == [3e-3, 3e-3] and phase.frozen is None


def test_worker_arguments_of_a_path_agent():
    pathnet = small_pathnet(sample_lr=True)
    settings = SimpleNamespace(a3c=A3CConfig(hidden=8), pathnet=pathnet)
    agent = get_agent("pathnet")
    model = agent.build_for_task(settings, (4,), 2, "CartPole-v1")
    assert model.heads.tasks() == ["CartPole-v1"]  # the record added the task's head
    population = agent.population(pathnet, 2, seed=0)
    assert population.genomes.shape == (2, 4)
    phase = Phase.create(model, settings.a3c, 2, seed=3, population=population, pathnet=pathnet)
    group = SimpleNamespace(stop=torch.zeros((), dtype=torch.bool), queue=None)
    (_, spec), (_, same) = phase.worker_args(group, env_id="CartPole-v1", budget=50)
    assert isinstance(spec, PathNetWorkerSpec) and spec is same
    assert spec.task == "CartPole-v1" and spec.evolve and spec.population is population
    assert torch.equal(spec.a3c.lrs, pathnet.learning_rates(2, settings.a3c.lr, 3))
    (_, control), _ = phase.worker_args(group, env_id="X-v0", budget=50, task="B", evolve=False)
    assert control.task == "B" and not control.evolve and control.a3c.env_id == "X-v0"
    assert [mask.tolist() for mask in phase.frozen] == [[False] * 4] * 2


def test_the_agent_record_answers_how_many_workers_and_a_population_needs_its_settings():
    with pytest.raises(ValueError, match="pathnet needs at least 2 workers"):
        get_agent("pathnet").check_workers(1)
    get_agent("a3c").check_workers(1)
    with pytest.raises(ValueError, match="needs its PathNet settings"):
        Phase.create(torch.nn.Linear(2, 2), A3CConfig(), 2, 0,
                     population=new_population(small_pathnet(), 2, 0))  # fmt: skip


def test_nothing_below_runners_imports_from_runners():
    for folder in ("agents", "envs", "evolution", "modules"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                for name in names:
                    assert not name.startswith("pathevo.runners"), f"{path}: {name}"


def test_a_phase_reports_to_tensorboard_progress_throughput_and_restarts_and_checkpoints_on_ask(
    tmp_path,
):
    phase = Phase.create(torch.nn.Linear(2, 2), A3CConfig(), 2, seed=0)
    with SummaryWriter(str(tmp_path)) as writer, make_progress(Console(), False) as progress:
        kinds = [type(r).__name__ for r in phase.reporters(writer=writer, name="a",
                                                           progress=progress)]  # fmt: skip
        assert kinds == [
            "TensorBoardReporter", "ProgressReporter", "ThroughputReporter", "RestartReporter",
        ]  # fmt: skip
        reporters = phase.reporters(
            writer=writer, name="a", progress=progress, checkpoint=lambda: None,
            checkpoint_every=100, checkpoint_minutes=1.0, target_return=1.0,
        )  # fmt: skip
    assert [type(r).__name__ for r in reporters[-2:]] == ["Checkpointer", "EarlyStop"]
    assert all(r.log is phase.log for r in reporters if hasattr(r, "log"))
