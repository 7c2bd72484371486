"""The learner mode (GA3C, Babaeizadeh et al. 2017): actors' slices of one batched pass map back
to the right actors, the batched path forward equals per-path forwards, A3C and PathNet-A3C
learn through ``pathevo a3c``, frozen paths stay frozen, a killed actor restarts, checkpoints
resume across modes, and what it does not run is refused in one line."""

import functools
import os
import signal
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

from pathevo.agents.a3c import A3CConfig, a3c_worker
from pathevo.agents.learner import (
    Learner,
    PathBatching,
    check_learner_target,
    to_device,
)
from pathevo.agents.lottery_agents import keep_zero_worker
from pathevo.agents.pathnet_a3c import (
    PathNetA3C,
    PathNetA3CConfig,
    pathnet_library,
    pathnet_worker,
)
from pathevo.agents.phase import Phase, new_population, run_phase
from pathevo.agents.phase_reporters import Reporter
from pathevo.agents.processes import torch_threads
from pathevo.agents.shared_optim import make_shared_optimizer
from pathevo.runners import a3c as runner
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli
from tests.devices import needs_cuda, without_cuda

CARTPOLE_A3C = A3CConfig(
    optimizer="adam", lr=2e-3, t_max=5, envs_per_worker=4, hidden=64, mode="learner"
)
"""The Hogwild CartPole settings of tests/runners/test_a3c.py, in the learner mode."""
SMALL_PATHS = PathNetA3CConfig(
    layers=2, modules=4, active=2, units=64, last_reduce="mean", episodes_per_evaluation=20,
    rivals=1,
)  # fmt: skip


def path_model(obs_shape, lstm=0, seed=0, task="t", actions=3):
    torch.manual_seed(seed)
    cfg = PathNetA3CConfig(layers=3, modules=5, active=2, kernels=4, units=16)
    model = PathNetA3C(pathnet_library(obs_shape, cfg), obs_shape, lstm=lstm)
    model.add_task(task, actions)
    return model


# --- the batched path forward ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("obs_shape", "library_shape", "lstm"),
    [((4,), (4,), 0), ((4,), (4,), 8), ((3, 10, 10), (4, 10, 10), 0)],
)
def test_forward_paths_gives_every_actor_its_own_paths_forward(obs_shape, library_shape, lstm):
    """Three actors of two envs, two steps, along three paths (one repeats a module): each
    slice of one batched pass equals that actor's own forward along its path (MinAtar's fewer
    channels are zero-padded as in the single-path forward)."""
    model = path_model(library_shape, lstm)
    paths = torch.tensor([[[0, 1], [2, 3], [4, 0]], [[1, 1], [0, 4], [3, 2]],
                          [[4, 3], [2, 2], [0, 1]]])  # fmt: skip
    steps, actors, envs = 2, 3, 2
    obs = torch.rand(steps, actors * envs, *obs_shape)
    starts = torch.rand(steps, actors * envs) < 0.3
    states = [model.initial_state("t", envs) for _ in range(actors)]
    state = None if lstm == 0 else tuple(torch.randn(actors * envs, lstm) for _ in range(2))
    logits, values, after = model.forward_paths(obs, starts, state, paths=paths, task="t")
    assert logits.shape == (steps, actors * envs, 3) and values.shape == (steps, actors * envs)
    for actor in range(actors):
        part = slice(actor * envs, (actor + 1) * envs)
        own = states[actor] if state is None else tuple(piece[part] for piece in state)
        expected = model(obs[:, part], starts[:, part], own, path=paths[actor], task="t")
        torch.testing.assert_close(logits[:, part], expected[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(values[:, part], expected[1], atol=1e-5, rtol=1e-5)
        if lstm:
            for mine, theirs in zip(after, expected[2], strict=True):
                torch.testing.assert_close(mine[part], theirs, atol=1e-5, rtol=1e-5)


def test_an_update_trains_the_union_of_the_paths_and_the_head_once_each():
    model = path_model((4,))
    paths = [torch.tensor([[0, 1], [2, 3], [4, 0]]), torch.tensor([[0, 1], [2, 2], [3, 0]])]
    params = PathBatching("t").parameters(model, paths)
    assert len({id(p) for p in params}) == len(params)
    expected = {id(p) for path in paths for p in model.path_parameters(path, "t")}
    assert {id(p) for p in params} == expected


# --- actors' slices map back to them ---------------------------------------------------------


class Pipe:
    """The learner's end of an actor's pipe: records what the learner sends."""

    def __init__(self) -> None:
        self.sent: list = []

    def send(self, value) -> None:
        self.sent.append(value)

    def close(self) -> None:
        pass


class EchoNet(nn.Module):
    """Acts deterministically: the action is the observation's first feature (plain agents)
    or, along paths, the first module id of the actor's path's first layer."""

    def __init__(self, actions: int = 6) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.actions = actions
        self.library = None

    def initial_state(self, batch):
        return None

    def forward(self, obs, starts, state=None):
        # obs: [T, B, D] -> logits [T, B, A] peaked at obs[..., 0]
        chosen = obs[..., 0].long()
        logits = torch.nn.functional.one_hot(chosen, self.actions).float() * 1e4
        return logits * self.scale, obs[..., 0] * self.scale, state


def echo_learner(workers: int, envs: int, tmp_path) -> Learner:
    model = EchoNet()
    a3c = A3CConfig(t_max=2, envs_per_worker=envs, mode="learner", log_every=1)
    phase = Phase.create(model, a3c, workers, seed=0)

    class Group:
        stop, queue = torch.zeros((), dtype=torch.bool), None

    args = phase.worker_args(Group(), env_id="CartPole-v1", budget=10_000)
    learner = Learner(args[0][1], torch.device("cpu"))
    for rank in range(workers):
        learner.connect(rank, Pipe())
    return learner


def step_message(envs: int, reward: float = 1.0):
    return (np.full(envs, reward, dtype=np.float32), np.zeros(envs, dtype=bool),
            np.zeros(envs, dtype=bool), None, [])  # fmt: skip


def test_one_batched_pass_sends_every_actor_the_actions_of_its_own_observations(tmp_path):
    """Three actors of two envs arrive (in another order than their ranks): each gets back the
    actions its own observations chose, and its rollout records its own observations."""
    learner = echo_learner(workers=3, envs=2, tmp_path=tmp_path)
    buffers = {rank: torch.tensor([[rank * 2.0, 0.0], [rank * 2.0 + 1, 0.0]]) for rank in range(3)}
    order = [2, 0, 1]
    learner.step([(learner.slots[rank], buffers[rank]) for rank in order])
    for rank in range(3):
        slot = learner.slots[rank]
        (actions,) = slot.conn.sent
        assert actions.tolist() == [rank * 2, rank * 2 + 1]
        torch.testing.assert_close(slot.trajectory.obs[0], buffers[rank])
    # Only two of them step next: only they are answered.
    learner.step([(learner.slots[rank], step_message(2)) for rank in (1, 2)])
    assert [len(learner.slots[rank].conn.sent) for rank in range(3)] == [1, 2, 2]


def test_completed_rollouts_count_their_steps_and_report_as_hogwild_workers_do(tmp_path):
    learner = echo_learner(workers=2, envs=2, tmp_path=tmp_path)
    for rank in range(2):
        learner.step([(learner.slots[rank], torch.zeros(2, 2))])
    messages = []
    for _ in range(2):  # t_max = 2 steps: both rollouts complete in the second iteration
        message = step_message(2)
        message[4].append((0, 3.0, 7))
        messages += learner.step([(learner.slots[rank], message) for rank in range(2)])
    assert learner.base.steps.tolist() == [4, 4]
    kinds = sorted((m["kind"], m["rank"]) for m in messages)
    assert kinds == [("episodes", 0), ("episodes", 1), ("update", 0), ("update", 1)]
    assert all(len(learner.slots[rank].trajectory.obs) == 1 for rank in range(2))


# --- refusals --------------------------------------------------------------------------------


@without_cuda
def test_cuda_without_a_gpu_is_a_one_line_error():
    with pytest.raises(ValueError, match="CUDA is not available") as error:
        A3CConfig(mode="learner", device="cuda")
    assert "\n" not in str(error.value)


def test_auto_is_the_cpu_for_hogwild_and_bad_devices_are_one_line_errors():
    A3CConfig(device="auto")  # Hogwild's CPU, GPU or not
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        A3CConfig(mode="learner", device="gpu")
    with pytest.raises(ValueError, match="unknown mode"):
        A3CConfig(mode="ga3c")


@pytest.mark.cuda
@needs_cuda
def test_a_gpu_for_hogwild_workers_is_refused():
    with pytest.raises(ValueError, match="needs mode learner"):
        A3CConfig(device="cuda")


def test_the_learner_mode_on_ray_is_refused_at_config_time():
    pytest.importorskip("ray")
    with pytest.raises(ValueError, match="mode learner runs local actor processes"):
        runner.A3CRunConfig(backend="ray", a3c=A3CConfig(mode="learner"))


def test_workers_the_learner_cannot_stand_in_for_are_refused_in_one_line():
    check_learner_target(a3c_worker)
    check_learner_target(functools.partial(keep_zero_worker, worker=a3c_worker))  # the lottery's
    with pytest.raises(ValueError, match="does not run print workers"):
        check_learner_target(functools.partial(keep_zero_worker, worker=print))
    with pytest.raises(ValueError, match="does not run print workers"):
        check_learner_target(functools.partial(print, worker=a3c_worker))


@without_cuda
def test_the_cli_says_cuda_is_absent_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["a3c", "--a3c.mode", "learner", "--a3c.device", "cuda"])
    with pytest.raises(SystemExit) as exit_:
        run_cli(runner.cli_main, runner.A3CRunConfig, "test")
    assert exit_.value.code != 0
    err = capsys.readouterr().err.strip()
    assert "CUDA is not available" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


# --- end to end ------------------------------------------------------------------------------


def test_a3c_in_the_learner_mode_solves_cartpole(tmp_path):
    """Measured on the loaded 2-core machine: 195 at 38k steps, 18 s (Hogwild: 24k-35k)."""
    cfg = runner.A3CRunConfig(
        env_id="CartPole-v1", workers=2, steps=150_000, seed=0, target_return=195.0,
        a3c=CARTPOLE_A3C, run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    assert summary["solved"], summary["curve"][-5:]
    assert summary["steps"] <= 150_000 + 2 * 20


@pytest.mark.slow
def test_pathnet_in_the_learner_mode_learns_cartpole(tmp_path):
    """Measured: 195 at 81k steps, 50 s on the loaded 2-core machine (seed 0)."""
    cfg = runner.A3CRunConfig(
        env_id="CartPole-v1", agent="pathnet", workers=2, steps=150_000, seed=0,
        target_return=195.0, a3c=CARTPOLE_A3C, pathnet=SMALL_PATHS,
        run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    first = summary["curve"][min(19, len(summary["curve"]) - 1)][1]
    best = max(value for _, value in summary["curve"])
    assert best >= 100.0 and best > 4 * first, (first, best, summary["final_mean_return"])


def minatar_config(run, agent="pathnet", **a3c):
    return runner.A3CRunConfig(
        env_id="MinAtar/Breakout-v1", agent=agent, workers=2, steps=800, seed=1,
        checkpoint_every=200,
        a3c=A3CConfig(**{"t_max": 5, "hidden": 16, "lstm": 8, "log_every": 1, **a3c}),
        pathnet=PathNetA3CConfig(layers=2, modules=4, active=2, units=8,
                                 episodes_per_evaluation=1),
        run_dir=str(run), progress=False,
    )  # fmt: skip


@pytest.mark.parametrize("agent", ["pathnet", "pathnet-moe", "moe"])
def test_agents_run_in_the_learner_mode_with_tournaments_and_checkpoints(tmp_path, agent):
    summary = runner.main(minatar_config(tmp_path / "run", agent, mode="learner"))
    assert summary["steps"] >= 800 and summary["episodes"] > 0
    assert summary["skipped_updates"] == 0
    if agent != "moe":
        state = torch.load(tmp_path / "run" / rd.CHECKPOINT, weights_only=True)
        assert int(state["adoptions"].sum()) + int((~state["fitness"].isnan()).sum()) > 0
    names = {path.name for path in (tmp_path / "run").iterdir()}
    assert {"config.json", "checkpoint.pt", "learning_curve.png"} <= names


@pytest.mark.parametrize(("first", "then"), [("hogwild", "learner"), ("learner", "hogwild")])
def test_a_checkpoint_written_in_one_mode_resumes_in_the_other(tmp_path, first, then):
    run = tmp_path / "run"
    summary = runner.main(minatar_config(run, mode=first))
    state = torch.load(run / rd.CHECKPOINT, weights_only=True)
    state["summary"] = None  # killed after its last checkpoint
    rd.save_checkpoint(run, state)
    resume = runner.A3CRunConfig(resume=str(run), a3c=A3CConfig(mode=then))
    if then == "hogwild":  # the saved mode is learner: the config file says how to go back
        config = (run / rd.CONFIG).read_text().replace('"learner"', '"hogwild"')
        (run / rd.CONFIG).write_text(config)
    resumed = runner.main(resume)
    assert resumed["steps"] >= summary["steps"] and resumed["episodes"] >= summary["episodes"]


def test_frozen_modules_stay_bitwise_fixed_under_the_learner(tmp_path):
    """A library with a frozen path (after a transfer) trained by the learner: the frozen
    modules do not move, the others do."""
    obs_shape, workers = (4,), 2
    model = path_model(obs_shape, task="CartPole-v1", actions=2)
    frozen = torch.tensor([[0, 1], [2, 3], [4, 0]])
    model.library.freeze(frozen)
    before = [p.detach().clone() for p in model.library.path_parameters(frozen)]
    others = [p.detach().clone() for p in model.library.layers[0].weights]
    pathnet = PathNetA3CConfig(layers=3, modules=5, active=2, kernels=4, units=16,
                               episodes_per_evaluation=1)  # fmt: skip
    population = new_population(pathnet, workers, seed=0)
    # Both paths cross frozen and free modules (an actor slow to start under load may find
    # the budget spent by the other).
    population.genomes[0] = torch.tensor([0, 2, 2, 3, 4, 0])
    population.genomes[1] = torch.tensor([1, 3, 2, 3, 4, 1])
    a3c = A3CConfig(optimizer="adam", t_max=5, envs_per_worker=2, mode="learner")
    phase = Phase.create(model, a3c, workers, 0, population=population, pathnet=pathnet)
    phase.run(pathnet_worker, env_id="CartPole-v1", budget=1000, reporters=[])
    after = model.library.path_parameters(frozen)
    assert all(torch.equal(b, a) for b, a in zip(before, after, strict=True))
    moved = [p.detach() for p in model.library.layers[0].weights]
    assert not (torch.equal(others[2], moved[2]) and torch.equal(others[3], moved[3]))


class KillsAnActor(Reporter):
    """SIGKILLs actor 0 once, after the first update it sends."""

    def __init__(self) -> None:
        self.killed = False

    def handled(self, *, done, workers) -> None:
        if not self.killed and done > 0:
            os.kill(workers.actors.processes[0].pid, signal.SIGKILL)
            self.killed = True


def test_a_killed_actor_restarts_with_a_fresh_slot_and_the_phase_goes_on(tmp_path):
    model = runner.get_agent("a3c").build_for_task(
        runner.A3CRunConfig(a3c=A3CConfig(hidden=16)), (4,), 2, "CartPole-v1"
    )
    a3c = A3CConfig(t_max=5, hidden=16, mode="learner", log_every=1)
    phase = Phase.create(model, a3c, 2, seed=0)
    killer = KillsAnActor()
    budget = 3000
    with torch_threads(1):
        run_phase(
            a3c_worker, functools.partial(phase.worker_args, env_id="CartPole-v1", budget=budget),
            steps=phase.steps, budget=budget, log=phase.log, reporters=[killer],
            max_restarts=2, workdir=tmp_path / "workers", a3c=a3c,
        )  # fmt: skip
    assert killer.killed and phase.log.worker_restarts == 1
    assert int(phase.steps.sum()) >= budget and phase.steps.min() > 0


# --- a learner on another device -------------------------------------------------------------


def test_to_device_copies_the_network_and_the_optimisers_groups_and_state():
    model = path_model((4,))
    optimizer = make_shared_optimizer("adam", model.parameters(), lr=1e-3)
    for param in model.parameters():
        param.grad = torch.ones_like(param)
    optimizer.step()
    moved, copied = to_device(model, optimizer, torch.device("cpu"))
    assert all(a is not b for a, b in zip(moved.parameters(), model.parameters(), strict=True))
    for mine, theirs in zip(moved.parameters(), model.parameters(), strict=True):
        assert torch.equal(mine, theirs)
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(copied.state[mine][key], optimizer.state[theirs][key])
    assert copied.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("agent", ["a3c", "pathnet", "pathnet-moe", "moe"])
def test_the_learner_on_cuda_trains_and_checkpoints_cpu_tensors(tmp_path, agent):
    summary = runner.main(minatar_config(tmp_path / "run", agent, mode="learner", device="cuda"))
    assert summary["steps"] >= 800 and summary["skipped_updates"] == 0
    state = torch.load(tmp_path / "run" / rd.CHECKPOINT, weights_only=True)
    assert all(value.device.type == "cpu" for value in state["model"].values())
    resumed = runner.main(runner.A3CRunConfig(resume=str(tmp_path / "run")))
    assert resumed == summary


@pytest.mark.cuda
@needs_cuda
def test_forward_paths_on_cuda_equals_the_cpu():
    model = path_model((4, 10, 10))
    paths = torch.tensor([[[0, 1], [2, 3], [4, 0]], [[1, 1], [0, 4], [3, 2]]])
    obs, starts = torch.rand(3, 4, 4, 10, 10), torch.zeros(3, 4, dtype=torch.bool)
    on_cpu = model.forward_paths(obs, starts, None, paths=paths, task="t")
    cuda = torch.device("cuda")
    gpu_model = model.to(cuda)
    on_gpu = gpu_model.forward_paths(obs.to(cuda), starts.to(cuda), None,
                                     paths=paths.to(cuda), task="t")  # fmt: skip
    torch.testing.assert_close(on_gpu[0].cpu(), on_cpu[0], atol=1e-4, rtol=1e-4)


@pytest.mark.cuda
@needs_cuda
def test_a_learner_group_on_cuda_keeps_its_state_until_synced():
    model = runner.get_agent("a3c").build_for_task(
        runner.A3CRunConfig(a3c=A3CConfig(hidden=16)), (4,), 2, "CartPole-v1"
    )
    a3c = A3CConfig(t_max=5, hidden=16, mode="learner", device="cuda")
    phase = Phase.create(model, a3c, 2, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    start = time.monotonic()
    phase.run(a3c_worker, env_id="CartPole-v1", budget=2000, reporters=[])
    assert time.monotonic() - start < 120
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.slow
def test_pathnet_transfer_runs_end_to_end_in_the_learner_mode(tmp_path):
    """All four phases (A, B with A's path frozen, scratch, fine-tuning without tournaments)."""
    from pathevo.runners import atari_transfer

    cfg = atari_transfer.TransferConfig(
        env_a="MinAtar/Breakout-v1", env_b="MinAtar/SpaceInvaders-v1", workers=2, steps=600,
        a3c=A3CConfig(t_max=5, hidden=16, mode="learner"),
        pathnet=PathNetA3CConfig(layers=2, modules=4, active=2, kernels=4, units=8,
                                 episodes_per_evaluation=2),
        run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = atari_transfer.main(cfg)
    assert set(summary["conditions"]) == {"pathnet", "scratch", "finetune"}
    assert all(condition["curve"] for condition in summary["conditions"].values())
