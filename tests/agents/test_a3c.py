"""The A3C network, rollouts and the batched loss pass; Atari and MinAtar smoke tests."""

import copy
import math
import queue

import numpy as np
import pytest
import torch

from pathevo.agents import a3c
from pathevo.agents.a3c import (
    A3CConfig,
    A3CNet,
    WorkerSpec,
    a3c_gradients,
    collect_rollout,
    run_worker,
    scale_obs,
)
from pathevo.agents.env_batch import EnvBatch
from pathevo.agents.pathnet_a3c import PathNetA3C, PathNetA3CConfig, pathnet_library
from pathevo.agents.shared_optim import make_shared_optimizer


@pytest.mark.parametrize(
    "obs",
    [
        torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8),  # Atari frames
        torch.rand(3, 7, 10, 10) > 0.5,  # MinAtar channels
        torch.rand(3, 5),  # vectors
    ],
)
def test_scale_obs_gives_floats_in_the_unit_range_images_channels_last(obs):
    scaled = scale_obs(obs)
    expected = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
    assert scaled.dtype == torch.float32 and scaled.shape == obs.shape
    torch.testing.assert_close(scaled, expected)
    if obs.dim() == 4:
        assert scaled.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    ("obs_shape", "lstm"), [((4,), 0), ((4,), 8), ((4, 10, 10), 0), ((4, 84, 84), 0)]
)
def test_network_shapes(obs_shape, lstm):
    net = A3CNet(obs_shape, num_actions=3, hidden=32, lstm=lstm)
    obs = torch.rand(5, 2, *obs_shape)  # [T, B, ...]
    starts = torch.zeros(5, 2, dtype=torch.bool)
    logits, values, state = net(obs, starts, net.initial_state(2))
    assert logits.shape == (5, 2, 3) and values.shape == (5, 2)
    assert (state is None) == (lstm == 0)


def test_lstm_state_resets_at_episode_starts():
    torch.manual_seed(0)
    net = A3CNet((3,), 2, hidden=8, lstm=4)
    obs = torch.randn(1, 1, 3)
    start = torch.ones(1, 1, dtype=torch.bool)
    fresh, _, _ = net(obs, start, None)
    _, _, state = net(torch.randn(4, 1, 3), torch.zeros(4, 1, dtype=torch.bool), None)
    after_reset, _, _ = net(obs, start, state)
    carried, _, _ = net(obs, ~start, state)
    assert torch.allclose(fresh, after_reset)
    assert not torch.allclose(fresh, carried)


@pytest.mark.parametrize("lstm", [0, 6])
def test_batched_loss_pass_sees_what_acting_saw(lstm):
    """Recomputing the rollout in one pass gives the acting-time values (same parameters)."""
    torch.manual_seed(0)
    net = A3CNet((4,), 2, hidden=16, lstm=lstm)
    envs = EnvBatch("CartPole-v1", [0, 1, 2])
    recorded = []

    def forward(obs, starts, state):
        logits, values, state = net(obs, starts, state)
        recorded.append(values.detach())
        return logits, values, state

    rollout, _ = collect_rollout(forward, envs, t_max=30, state=net.initial_state(3))
    assert rollout.obs.shape == (30, 3, 4) and rollout.num_steps == 90
    assert rollout.dones.any() and rollout.episodes  # CartPole episodes end within 30 steps
    assert rollout.starts[1:][rollout.dones[:-1]].all()  # an end is followed by a start
    _, values, _ = net(rollout.obs, rollout.starts, rollout.initial_state)
    assert torch.allclose(values, torch.cat(recorded[:-1]), atol=1e-6)
    assert torch.allclose(rollout.bootstrap, recorded[-1][0], atol=1e-6)
    grads, stats = a3c_gradients(net, list(net.parameters()), rollout, A3CConfig())
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert math.isfinite(stats["policy_loss"]) and stats["grad_norm"] > 0


@pytest.mark.parametrize("lstm", [0, 6])
def test_keeping_the_acting_graph_gives_the_recomputed_gradients(lstm):
    """keep_graph skips the second pass; the gradients and the carried state are the same."""
    torch.manual_seed(0)
    net = A3CNet((4,), 2, hidden=16, lstm=lstm)
    params = list(net.parameters())
    results = []
    for keep_graph in (False, True):
        torch.manual_seed(1)  # the same sampled actions in both modes
        envs = EnvBatch("CartPole-v1", [0, 1])
        rollout, state = collect_rollout(net, envs, 25, net.initial_state(2), keep_graph=keep_graph)
        assert (rollout.logits is not None) == keep_graph
        assert state is None or not state[0].requires_grad
        grads, stats = a3c_gradients(net, params, rollout, A3CConfig())
        results.append((rollout.actions, grads, stats["policy_loss"]))
    (actions, grads, loss), (kept_actions, kept_grads, kept_loss) = results
    assert torch.equal(actions, kept_actions)
    assert kept_loss == pytest.approx(loss, rel=1e-5)
    for grad, kept in zip(grads, kept_grads, strict=True):
        torch.testing.assert_close(kept, grad, rtol=1e-4, atol=1e-6)


def test_a_time_limit_bootstraps_from_the_value_of_the_last_observation():
    envs = EnvBatch("MountainCar-v0", [0])  # truncated at 200 steps; random play never wins
    for _ in range(195):
        envs.step(np.array([1]))
    seen = []

    def forward(obs, starts, state):  # a uniform policy; the value is 10 * the car's position
        seen.append(obs[0, 0, 0].item())
        return torch.zeros(*obs.shape[:2], 3), 10 * obs[..., 0].float(), state

    rollout, _ = collect_rollout(forward, envs, t_max=10, state=None)
    cut = 4  # the 200th step
    assert rollout.dones[:, 0].tolist() == [t == cut for t in range(10)]
    values = rollout.truncation_values[:, 0]
    # forward saw obs 0..4, then the last observation of the cut episode, then obs 5..9, bootstrap
    assert values[cut].item() == pytest.approx(10 * seen[cut + 1])
    assert values[cut] != 0 and (values[:cut] == 0).all() and (values[cut + 1 :] == 0).all()
    assert seen[cut + 1] != rollout.obs[cut + 1, 0, 0]  # not the new episode's first observation
    envs.close()


def test_gradient_clipping_bounds_the_global_norm():
    torch.manual_seed(0)
    net = A3CNet((4,), 2, hidden=16)
    envs = EnvBatch("CartPole-v1", [0])
    rollout, _ = collect_rollout(net, envs, t_max=20, state=None)
    grads, stats = a3c_gradients(
        net, list(net.parameters()), rollout, A3CConfig(max_grad_norm=1e-3)
    )
    total = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
    assert stats["grad_norm"] > 1e-3
    assert total.item() == pytest.approx(1e-3, rel=1e-3)


def test_worker_counts_steps_and_reports_episodes():
    torch.manual_seed(0)
    cfg = A3CConfig(t_max=10, envs_per_worker=2, hidden=16, log_every=2)
    model = A3CNet((4,), 2, hidden=16)
    model.share_memory()
    optimizer = make_shared_optimizer("adam", model.parameters(), 1e-3)
    steps = torch.zeros(2, dtype=torch.long)
    messages = queue.Queue()
    spec = WorkerSpec(
        "CartPole-v1", 0, 2, cfg, model, optimizer, steps, 200, torch.tensor(False), messages,
        torch.full((2,), 1e-3),
    )  # fmt: skip
    assert spec.env_seeds(1) == [1, 3]
    local = copy.deepcopy(model)
    pairs = list(local.parameters()), list(model.parameters())
    run_worker(1, spec, local, lambda: pairs, None)
    assert steps.tolist() == [0, 200]
    kinds = [messages.get()["kind"] for _ in range(messages.qsize())]
    assert kinds.count("update") == 5 and "episodes" in kinds


def test_a_resumed_or_restarted_worker_gets_new_random_streams_that_a_resume_repeats():
    cfg = A3CConfig(envs_per_worker=2)
    spec = WorkerSpec("CartPole-v1", 7, 3, cfg, None, None, None, 0, None, None, None)
    assert [spec.session_seed(rank) for rank in range(3)] == [7, 8, 9]  # a fresh run
    assert spec.env_seeds(2) == [9, 12]
    later = {spec.session_seed(rank, done) for rank in range(3) for done in (40, 80, 120)}
    assert len(later) == 9 and not later & {7, 8, 9}
    assert spec.session_seed(1, 80) == spec.session_seed(1, 80)  # two resumes draw alike
    first = spec.session_seed(1, 80)
    assert spec.env_seeds(1, 80) == [first, first + 3] and 0 <= first < 2**63


def test_a_non_finite_loss_skips_the_update_and_is_counted(monkeypatch):
    """Every other update's loss is NaN: the shared parameters move only on the finite ones,
    the skipped updates are reported, and the reported losses stay finite."""
    import pathevo.agents.a3c as a3c_module

    torch.manual_seed(0)
    cfg = A3CConfig(t_max=10, envs_per_worker=1, hidden=16, log_every=4)
    model = A3CNet((4,), 2, hidden=16)
    model.share_memory()
    optimizer = make_shared_optimizer("adam", model.parameters(), 1e-3)
    calls, moved = [], []
    real_gradients, real_apply = a3c_module.a3c_gradients, a3c_module.apply_gradients

    def every_other_nan(*args, **kwargs):
        grads, stats = real_gradients(*args, **kwargs)
        calls.append(len(calls))
        if len(calls) % 2 == 0:
            stats = {**stats, "value_loss": math.nan}
            grads = [None if g is None else torch.full_like(g, math.nan) for g in grads]
        return grads, stats

    def recording_apply(shared, grads, opt):
        moved.append(len(calls))
        real_apply(shared, grads, opt)

    monkeypatch.setattr(a3c_module, "a3c_gradients", every_other_nan)
    monkeypatch.setattr(a3c_module, "apply_gradients", recording_apply)
    messages = queue.Queue()
    spec = WorkerSpec(
        "CartPole-v1", 0, 1, cfg, model, optimizer, torch.zeros(1, dtype=torch.long), 80,
        torch.tensor(False), messages, torch.full((1,), 1e-3),
    )  # fmt: skip
    local = copy.deepcopy(model)
    pairs = list(local.parameters()), list(model.parameters())
    run_worker(0, spec, local, lambda: pairs, None)
    assert moved == [1, 3, 5, 7]  # the odd-numbered (finite) updates only
    assert all(torch.isfinite(p).all() for p in model.parameters())
    updates = [
        m for m in (messages.get() for _ in range(messages.qsize())) if m["kind"] == "update"
    ]
    assert [m["skipped_updates"] for m in updates] == [2, 2]
    assert all(math.isfinite(m["value_loss"]) for m in updates)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_atari_pong_smoke_observations_and_finite_loss(precision):
    """The first steps of ALE/Pong-v5: [4, 84, 84] uint8 frames, a finite loss for both agents."""
    envs = EnvBatch("ALE/Pong-v5", [0, 1])
    assert envs.obs.shape == (2, 4, 84, 84) and envs.obs.dtype == torch.uint8
    torch.manual_seed(0)
    plain = A3CNet((4, 84, 84), 6, precision=precision)
    rollout, _ = collect_rollout(plain, envs, t_max=5, state=None)
    assert rollout.obs.shape == (5, 2, 4, 84, 84)
    _, stats = a3c_gradients(plain, list(plain.parameters()), rollout, A3CConfig())
    assert all(math.isfinite(v) for v in stats.values())
    library = pathnet_library((4, 84, 84), PathNetA3CConfig())
    assert [type(layer).__name__ for layer in library.layers] == ["Conv2dModuleLayer"] * 3 + [
        "LinearModuleLayer"
    ]
    assert library.output_size == 50 and library.modules_per_layer == [10] * 4
    pathnet = PathNetA3C(library, (4, 84, 84), precision=precision)
    pathnet.add_task("ALE/Pong-v5", 6)
    path = torch.tensor([[0, 1, 2, 3]] * 4)

    def forward(obs, starts, state):
        return pathnet(obs, starts, state, path=path, task="ALE/Pong-v5")

    rollout, _ = collect_rollout(forward, envs, t_max=5, state=None)
    _, stats = a3c_gradients(forward, list(pathnet.parameters()), rollout, A3CConfig())
    assert all(math.isfinite(v) for v in stats.values())
    envs.close()


def atari_networks(precision: str) -> list[tuple[torch.nn.Module, object]]:
    """(network, forward) of a plain and a PathNet agent for Atari frames, seeded alike."""
    torch.manual_seed(0)
    plain = A3CNet((4, 84, 84), 6, precision=precision)
    pathnet = PathNetA3C(
        pathnet_library((4, 84, 84), PathNetA3CConfig()), (4, 84, 84), 0, precision
    )
    pathnet.add_task("pong", 6)
    path = torch.tensor([[0, 1, 2, 3], [4, 4, 5, 6], [7, 8, 9, 0], [1, 3, 5, 7]])

    def forward(obs, starts, state):
        return pathnet(obs, starts, state, path=path, task="pong")

    return [(plain, plain), (pathnet, forward)]


def test_bfloat16_torsos_give_float32_outputs_and_nearly_the_float32_gradients():
    """Mixed precision: the same parameters, outputs within bfloat16 rounding, float32 heads and
    gradients pointing the same way as float32's."""
    torch.manual_seed(1)
    obs = torch.randint(0, 256, (3, 8, 4, 84, 84), dtype=torch.uint8)  # [T, B, C, H, W]
    starts = torch.zeros(3, 8, dtype=torch.bool)
    weights = torch.randn(3, 8, 6)
    for (exact, exact_forward), (mixed, mixed_forward) in zip(
        atari_networks("float32"), atari_networks("bfloat16"), strict=True
    ):
        results = []
        for net, forward in ((exact, exact_forward), (mixed, mixed_forward)):
            logits, values, _ = forward(obs, starts, None)
            assert logits.dtype == values.dtype == torch.float32
            loss = (logits * weights).sum() + values.square().sum()
            params = [p for p in net.parameters() if p.requires_grad]
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            used = torch.cat([g.flatten() for g in grads if g is not None])
            assert used.dtype == torch.float32
            results.append((logits.detach(), values.detach(), used))
        (logits, values, grads), (mixed_logits, mixed_values, mixed_grads) = results
        assert not torch.equal(mixed_values, values)  # the torso did run in bfloat16
        torch.testing.assert_close(mixed_logits, logits, rtol=0.05, atol=5e-3)
        torch.testing.assert_close(mixed_values, values, rtol=0.05, atol=5e-3)
        assert torch.nn.functional.cosine_similarity(mixed_grads, grads, dim=0) > 0.99


def test_minatar_smoke_with_channel_padding():
    envs = EnvBatch("MinAtar/Breakout-v1", [0])
    assert envs.obs.shape == (1, 4, 10, 10)
    pathnet = PathNetA3C(pathnet_library((6, 10, 10), PathNetA3CConfig()), (6, 10, 10))
    pathnet.add_task("breakout", 3)
    path = torch.tensor([[0, 1, 2, 3]] * 4)
    logits, values, _ = pathnet(envs.obs[None], envs.starts[None], None, path=path, task="breakout")
    assert logits.shape == (1, 1, 3) and torch.isfinite(values).all()


def test_auto_precision_is_bfloat16_only_for_atari_frames_on_cpus_that_have_it(monkeypatch):
    for choice in ("float32", "bfloat16"):
        assert a3c.resolve_precision(choice, (4,)) == choice  # an explicit choice is kept
    assert a3c.resolve_precision("auto", (4,)) == "float32"  # an MLP gains nothing
    assert a3c.resolve_precision("auto", (4, 10, 10)) == "float32"  # nor do MinAtar's 3x3 convs
    frames = "bfloat16" if a3c.native_bfloat16() else "float32"
    assert a3c.resolve_precision("auto", (4, 84, 84)) == frames
    assert A3CNet((4, 84, 84), 3, precision="auto").precision == frames
    library = pathnet_library((4, 84, 84), PathNetA3CConfig(layers=2, modules=4, active=2))
    assert PathNetA3C(library, (4, 84, 84), precision="auto").precision == frames
    monkeypatch.setattr(a3c, "native_bfloat16", lambda: False)
    assert a3c.resolve_precision("auto", (4, 84, 84)) == "float32"
    with pytest.raises(ValueError, match="choose auto or one of"):
        a3c.resolve_precision("float16", (4,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="choose auto or one of"):
        A3CConfig(precision="float16")  # type: ignore[arg-type]


def test_bfloat16_pixels_are_the_values_autocast_would_give():
    frames = torch.arange(256, dtype=torch.uint8).repeat(2 * 4 * 6 * 6 // 256 + 1)
    frames = frames[: 2 * 4 * 6 * 6].view(2, 4, 6, 6)
    with a3c.torso_precision("bfloat16"):
        scaled = scale_obs(frames)
    assert scaled.dtype == torch.bfloat16
    assert scaled.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(scaled, scale_obs(frames).to(torch.bfloat16))
