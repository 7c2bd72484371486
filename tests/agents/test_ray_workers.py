"""A3C / PathNet-A3C workers as Ray actors around a parameter server, on a real local Ray
instance (and, slow, a two-node localhost cluster): the server's updates, learning as with
processes, tournaments and checkpoints, a SIGKILLed actor restarted, a failing one stopping."""

import copy
import functools
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from pathevo.agents.a3c import A3CConfig, WorkerSpec, a3c_worker
from pathevo.agents.pathnet_a3c import PathNetA3C, PathNetA3CConfig, pathnet_library
from pathevo.agents.phase import run_phase
from pathevo.agents.phase_log import PhaseLog
from pathevo.agents.phase_reporters import RestartReporter, ThroughputReporter
from pathevo.agents.processes import WorkerError
from pathevo.agents.ray_workers import ParameterServer
from pathevo.agents.shared_optim import apply_gradients, make_shared_optimizer
from pathevo.runners import a3c as runner
from pathevo.runners.plumbing import run_dir as rd
from tests.ray_cluster import needs_ray_cli

if os.environ.get("CI") == "true":
    import ray  # CI installs the ray extra: its Ray tests must run, never skip
else:
    ray = pytest.importorskip("ray")

CARTPOLE_A3C = A3CConfig(optimizer="adam", lr=2e-3, t_max=5, envs_per_worker=4, hidden=64)
ROOT = Path(__file__).resolve().parents[2]
SMALL_PATHNET = PathNetA3CConfig(
    layers=2, modules=4, active=2, units=16, episodes_per_evaluation=2, rivals=1
)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance of 2 CPUs for the module; runners join it instead of starting
    their own."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_the_server_steps_like_the_shared_optimiser_and_keeps_frozen_modules(local_ray):
    torch.manual_seed(0)
    model = PathNetA3C(pathnet_library((4,), SMALL_PATHNET), (4,))
    model.add_task("cartpole", 2)
    frozen_path = torch.tensor([[0, 1], [2, 3]])
    model.library.freeze(frozen_path)
    optimizer = make_shared_optimizer("adam", model.parameters(), 1e-2)
    reference, reference_optimizer = copy.deepcopy((model, optimizer))
    reference.library.guard(reference_optimizer)
    server = ray.remote(ParameterServer).remote(
        (model, optimizer), torch.zeros(2, dtype=torch.long), 100
    )
    path = torch.tensor([[0, 2], [3, 1]])  # frozen and free modules together
    params = reference.path_parameters(path, "cartpole")
    names = {id(p): name for name, p in reference.named_parameters()}
    keys = [names[id(p)] for p in params]
    for rank, lr in ((0, 1e-2), (1, 3e-3), (0, 1e-2)):
        grads = [torch.randn_like(p) for p in params]
        for group in reference_optimizer.param_groups:
            group["lr"] = lr
        apply_gradients(params, grads, reference_optimizer)
        step, finished = ray.get(server.push.remote(rank, keys, grads, 40, lr, []))
    assert (step, finished) == (120, True)
    state = ray.get(server.state.remote())
    for name, value in reference.state_dict().items():
        assert torch.equal(state["model"][name], value), name
    for name in model.library.layers[0].frozen_parameter_names():
        assert torch.equal(state["model"][f"library.layers.0.{name}"],
                           model.library.layers[0].get_parameter(name))  # fmt: skip
    values = ray.get(server.pull.remote(keys))
    assert all(torch.equal(v, p) for v, p in zip(values, params, strict=True))


def test_a3c_on_ray_solves_cartpole_as_with_processes(local_ray, tmp_path):
    """Measured: solved (195) in 26.9k steps on Ray (27 s), 24.8k with processes (6 s)."""
    cfg = runner.A3CRunConfig(
        env_id="CartPole-v1", workers=2, steps=150_000, seed=0, target_return=195.0,
        a3c=CARTPOLE_A3C, backend="ray", run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    assert summary["solved"] and summary["final_mean_return"] >= 195.0, summary["curve"][-5:]
    # The runner's counters are the server's: the checkpoint holds what the workers did.
    state = torch.load(tmp_path / "run" / rd.CHECKPOINT, weights_only=True)
    assert int(state["steps"].sum()) == summary["steps"]


def test_pathnet_on_ray_runs_tournaments_and_checkpoints_the_servers_state(local_ray, tmp_path):
    torch.manual_seed(1)
    initial = runner.build_agent(
        runner.A3CRunConfig(agent="pathnet", env_id="CartPole-v1", pathnet=SMALL_PATHNET,
                            a3c=A3CConfig(hidden=16)), (4,), 2,
    )[0].state_dict()  # fmt: skip
    run = tmp_path / "run"
    cfg = runner.A3CRunConfig(
        env_id="CartPole-v1", agent="pathnet", workers=2, steps=4000, seed=1,
        checkpoint_every=1000, a3c=A3CConfig(t_max=5, hidden=16, envs_per_worker=2, log_every=2),
        pathnet=SMALL_PATHNET, backend="ray", run_dir=str(run), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    state = torch.load(run / rd.CHECKPOINT, weights_only=True)  # the phase layout
    assert not torch.isnan(state["fitness"]).all() or state["adoptions"].sum() > 0
    assert summary["best_path"] in state["genomes"].tolist()
    moved = [
        name for name, value in state["model"].items() if not torch.equal(value, initial[name])
    ]
    assert any(name.startswith("library.") for name in moved)
    assert any(name.startswith("heads.") for name in moved)
    assert state["optimizer"]["state"]  # the server's Adam statistics came back
    assert runner.main(runner.A3CRunConfig(resume=str(run))) == summary


class KillingHub:
    """A hub that SIGKILLs its worker's process at its ``at``-th push, once per marker file."""

    def __init__(self, hub, marker: Path, at: int) -> None:
        self.hub, self.marker, self.at, self.pushes = hub, marker, at, 0

    def __getattr__(self, name):
        return getattr(self.hub, name)

    def push(self, *args):
        self.pushes += 1
        if self.pushes == self.at and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.hub.push(*args)


def killed_once(rank: int, spec: WorkerSpec, hub, *, marker: str) -> None:
    if rank == 1:
        hub = KillingHub(hub, Path(marker), at=5)
    a3c_worker(rank, spec, hub)


def always_failing(rank: int, spec: WorkerSpec, hub) -> None:
    if rank == 1:
        raise RuntimeError("this worker always fails")
    a3c_worker(rank, spec, hub)


def run_ray_phase(tmp_path: Path, target, budget: int = 3000) -> tuple[PhaseLog, torch.Tensor]:
    """A plain A3C phase on CartPole with 2 Ray actors running ``target``."""
    from pathevo.agents.a3c import A3CNet

    cfg = A3CConfig(t_max=5, hidden=16, envs_per_worker=2, log_every=1)
    model = A3CNet((4,), 2, hidden=16)
    optimizer = make_shared_optimizer("adam", model.parameters(), 1e-3)
    steps, log = torch.zeros(2, dtype=torch.long), PhaseLog()

    def build_args(group):
        spec = WorkerSpec("CartPole-v1", 0, 2, cfg, model, optimizer, steps, budget, group.stop,
                          group.queue, torch.full((2,), 1e-3))  # fmt: skip
        return [(rank, spec) for rank in range(2)]

    writer = SummaryWriter(str(tmp_path / "tb"))
    run_phase(
        target, build_args, steps=steps, budget=budget, log=log,
        reporters=[ThroughputReporter(writer, log), RestartReporter(writer)],
        max_restarts=2, backend="ray",
    )  # fmt: skip
    writer.close()
    return log, steps


def test_a_sigkilled_worker_actor_is_restarted_and_the_run_completes(local_ray, tmp_path, capfd):
    marker = tmp_path / "killed"
    target = functools.partial(killed_once, marker=str(marker))
    log, steps = run_ray_phase(tmp_path, target)
    assert marker.exists()  # the actor's process was killed
    assert log.worker_restarts == 1
    assert int(steps.sum()) >= 3000 and int(steps[1]) > 0
    assert "worker 1 failed and was restarted (1 of 2)" in capfd.readouterr().err


def test_a_worker_actor_that_keeps_failing_stops_the_run(local_ray, tmp_path):
    with pytest.raises(WorkerError, match="worker 1 failed 3 times .*always fails"):
        run_ray_phase(tmp_path, always_failing, budget=100_000)


@pytest.mark.slow
@needs_ray_cli
def test_pathnet_a3c_on_a_two_node_localhost_cluster(on_two_nodes, tmp_path):
    """The runner's CLI joins the cluster by address (in its own process, as a user runs it).
    One CPU per node and one per worker actor: the two workers run on different nodes and meet
    through the server."""
    run = tmp_path / "run"
    command = [
        sys.executable, str(ROOT / "runners" / "a3c.py"), "--env-id", "CartPole-v1",
        "--agent", "pathnet", "--workers", "2", "--steps", "3000", "--a3c.t-max", "5",
        "--a3c.hidden", "16", "--a3c.envs-per-worker", "2", "--pathnet.layers", "2",
        "--pathnet.modules", "4", "--pathnet.active", "2", "--pathnet.units", "16",
        "--pathnet.episodes-per-evaluation", "2", "--backend", "ray",
        "--ray-address", on_two_nodes, "--run-dir", str(run), "--no-progress",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    summary = json.loads((run / rd.SUMMARY).read_text())
    assert summary["steps"] >= 3000 and summary["episodes"] > 0
    assert math.isfinite(summary["best_fitness"])


@pytest.mark.slow
def test_pathnet_a3c_learns_cartpole_on_ray(local_ray, tmp_path):
    """The local test's settings and criterion (tests/runners/test_a3c.py)."""
    cfg = runner.A3CRunConfig(
        env_id="CartPole-v1", agent="pathnet", workers=2, steps=150_000, seed=0,
        target_return=195.0, a3c=CARTPOLE_A3C, backend="ray",
        pathnet=PathNetA3CConfig(
            layers=2, modules=4, active=2, units=64, last_reduce="mean",
            episodes_per_evaluation=20, rivals=1,
        ),
        run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    first = summary["curve"][min(19, len(summary["curve"]) - 1)][1]
    best = max(value for _, value in summary["curve"])
    assert best >= 100.0 and best > 4 * first, (first, best, summary["final_mean_return"])
