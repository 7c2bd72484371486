"""What an A3C training phase reports while it runs: one reporter per duty.

As neat-python's reporters (``ReporterSet``) and its ``Checkpointer``: the phase driver
(:func:`pathevo.agents.phase.run_phase`) reads the workers' messages, keeps the phase's
:class:`~pathevo.agents.phase_log.PhaseLog` and calls every reporter's hooks, so a new duty is a new
:class:`Reporter` subclass in the list a runner hands the phase, not an edit of the driver.
Hooks take keyword-only arguments (their signatures cannot drift) and do nothing by default: a
reporter overrides only the hooks it needs.

* :class:`TensorBoardReporter`: ``charts/…`` returns, ``losses/…``, ``moe/…`` routing and, with
  a population, ``evolution/…`` fitness and the module-usage image, against global env steps;
* :class:`ProgressReporter`: the progress bar (steps and the mean return of 20 episodes);
* :class:`ThroughputReporter`: ``charts/steps_per_second`` and the log's wall time and
  steady-state throughput;
* :class:`Checkpointer`: every ``every`` steps or ``minutes`` of wall time, and on Ctrl-C;
* :class:`EarlyStop`: stops the workers once the mean return reaches a target;
* :class:`RestartReporter`: a restarted worker on stderr and as TensorBoard text.

Tags name the quantity only (docs/tensorboard.md): each phase writes its own run directory
(``pathnet_b/``, ``scratch/``…), so TensorBoard overlays the same tag of every condition.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from torch.utils.tensorboard import SummaryWriter

from pathevo.agents.curves import WINDOW
from pathevo.agents.images import routing_image, usage_image
from pathevo.agents.phase_log import PhaseLog, record_routing, routing_total
from pathevo.evolution.async_tournament import SharedPopulation
from pathevo.evolution.operators import module_usage


class Workers(Protocol):
    """What a reporter may ask of the running workers (local processes or Ray actors)."""

    stop: torch.Tensor
    """[] bool: set it to ask every worker to finish."""

    def sync(self) -> None:
        """Bring the runner's model, optimiser, counters and population up to date (Ray: from
        the parameter server; local processes share them already)."""
        ...


class Reporter:
    """A phase's reporter: every hook does nothing until a subclass overrides it."""

    def started(self, *, done: int, budget: int, workers: int) -> None:
        """The phase begins, before its workers start: ``done`` of ``budget`` environment steps
        are behind it (a resumed phase), ``workers`` will run."""

    def episode(
        self, *, rank: int, step: int, episode_return: float, mean: float, episodes: int,
        done: int, workers: Workers,
    ) -> None:  # fmt: skip
        """Worker ``rank`` finished an episode at global step ``step``; ``mean``: the mean
        return of the latest 20 of the ``episodes`` logged so far."""

    def update(self, *, rank: int, step: int, message: Mapping[str, Any], done: int) -> None:
        """Worker ``rank``'s update report (losses, gradient norm, ``moe`` routing, skipped
        updates), already recorded in the log."""

    def tournament(self, *, rank: int, step: int, fitness: float) -> None:
        """Worker ``rank`` ran a tournament with ``fitness`` (the population is up to date)."""

    def handled(self, *, done: int, workers: Workers) -> None:
        """After every message the phase took in: ``done`` steps so far."""

    def restarted(
        self, *, rank: int, reason: str, restarts: int, max_restarts: int, done: int
    ) -> None:
        """Worker ``rank`` failed (``reason``) and was started again, its ``restarts``-th time."""

    def interrupted(self, *, done: int) -> None:
        """Ctrl-C: the workers have stopped and their state is the runner's; the phase ends."""

    def ended(self, *, done: int) -> None:
        """The phase is over: finished, stopped early, failed or interrupted."""


class ReporterSet(Reporter):
    """Every hook called on each of ``reporters``, in order."""

    def __init__(self, reporters: Sequence[Reporter]) -> None:
        self.reporters = list(reporters)

    def started(self, *, done: int, budget: int, workers: int) -> None:
        for reporter in self.reporters:
            reporter.started(done=done, budget=budget, workers=workers)

    def episode(
        self, *, rank: int, step: int, episode_return: float, mean: float, episodes: int,
        done: int, workers: Workers,
    ) -> None:  # fmt: skip
        for reporter in self.reporters:
            reporter.episode(rank=rank, step=step, episode_return=episode_return, mean=mean,
                             episodes=episodes, done=done, workers=workers)  # fmt: skip

    def update(self, *, rank: int, step: int, message: Mapping[str, Any], done: int) -> None:
        for reporter in self.reporters:
            reporter.update(rank=rank, step=step, message=message, done=done)

    def tournament(self, *, rank: int, step: int, fitness: float) -> None:
        for reporter in self.reporters:
            reporter.tournament(rank=rank, step=step, fitness=fitness)

    def handled(self, *, done: int, workers: Workers) -> None:
        for reporter in self.reporters:
            reporter.handled(done=done, workers=workers)

    def restarted(
        self, *, rank: int, reason: str, restarts: int, max_restarts: int, done: int
    ) -> None:
        for reporter in self.reporters:
            reporter.restarted(rank=rank, reason=reason, restarts=restarts,
                               max_restarts=max_restarts, done=done)  # fmt: skip

    def interrupted(self, *, done: int) -> None:
        for reporter in self.reporters:
            reporter.interrupted(done=done)

    def ended(self, *, done: int) -> None:
        for reporter in self.reporters:
            reporter.ended(done=done)


def draw_routing(
    writer: SummaryWriter, log: PhaseLog, rank: int, step: int, names: Sequence[str]
) -> None:
    """TensorBoard for the MoE layers and tasks ``names`` after worker ``rank``'s report:
    per-expert load and importance (shares of all workers' latest reports in ``log``), load
    CV², and an image of expert usage per task."""
    for name in names:
        total = routing_total(log.moe[name])
        tag = f"moe/{name}"
        writer.add_scalar(f"{tag}/load_cv2", total.load_cv2(), step)
        picks = total.picks / max(float(total.picks.sum()), 1.0)
        importance = total.importance / max(float(total.importance.sum()), 1e-9)
        for expert in torch.nonzero(total.allowed).flatten().tolist():
            writer.add_scalar(f"{tag}/load/expert{expert}", picks[expert], step)
            writer.add_scalar(f"{tag}/importance/expert{expert}", importance[expert], step)
        if rank == 0:  # one image per round of reports
            writer.add_image(f"{tag}/usage", routing_image(total.picks, total.allowed), step)


def log_routing(
    writer: SummaryWriter,
    log: PhaseLog,
    rank: int,
    step: int,
    reports: dict[str, dict[str, Any]],
) -> None:
    """Record one worker's routing report in ``log`` and draw it (:func:`draw_routing`)."""
    record_routing(log, rank, reports)
    draw_routing(writer, log, rank, step, list(reports))


LOSSES = ("policy_loss", "value_loss", "entropy", "grad_norm", "aux_loss")
"""Update statistics drawn as ``losses/<key>`` when a report has them (aux_loss: MoE layers)."""


class TensorBoardReporter(Reporter):
    """``charts/…`` returns, ``losses/…``, ``moe/…`` routing and, for path agents, the
    population's ``evolution/…`` fitness and module usage; ``writer`` is the phase's own
    directory, so the tags do not name the phase.

    ``population`` and ``frozen`` (per layer a bool [M_l], as ``library.frozen_mask()``): the
    phase's paths, drawn with frozen modules marked after a tournament at most every
    ``image_every`` seconds, and after the last one when the phase ends; None: no paths.

    Every episode's return is a point of ``charts/episodic_return/worker<rank>``; the mean of
    the latest 20 is written once per worker message (a rollout's episodes end at one step).
    TensorBoard's event writer costs ~40 µs of the runner's CPU an event and a PNG ~0.4 ms:
    short games end hundreds of episodes and tournaments a second, and the runner shares the
    cores with the workers.
    """

    def __init__(
        self,
        writer: SummaryWriter,
        log: PhaseLog,
        population: SharedPopulation | None = None,
        frozen: Sequence[torch.Tensor] | None = None,
        image_every: float = 2.0,
    ) -> None:
        self.writer, self.log = writer, log
        self.population, self.frozen = population, frozen
        self.image_every = image_every
        self.unwritten_mean: tuple[int, float] | None = None  # (step, mean) of this message
        self.paths_drawn_at = -math.inf  # time.monotonic() of the latest paths image
        self.undrawn_paths_step: int | None = None  # a tournament's step not drawn yet

    def episode(
        self, *, rank: int, step: int, episode_return: float, mean: float, episodes: int,
        done: int, workers: Workers,
    ) -> None:  # fmt: skip
        self.writer.add_scalar(f"charts/episodic_return/worker{rank}", episode_return, step)
        self.unwritten_mean = (step, mean)

    def handled(self, *, done: int, workers: Workers) -> None:
        self.write_mean()

    def write_mean(self) -> None:
        """``charts/mean_return_20`` after the latest message's episodes, if it has not been."""
        if self.unwritten_mean is not None:
            step, mean = self.unwritten_mean
            self.writer.add_scalar("charts/mean_return_20", mean, step)
            self.unwritten_mean = None

    def update(self, *, rank: int, step: int, message: Mapping[str, Any], done: int) -> None:
        if "moe" in message:
            draw_routing(self.writer, self.log, rank, step, list(message["moe"]))
        for key in LOSSES:
            if key in message:
                self.writer.add_scalar(f"losses/{key}", message[key], step)
        if message.get("skipped_updates"):
            self.writer.add_scalar("losses/skipped_updates", self.log.skipped_updates, step)

    def tournament(self, *, rank: int, step: int, fitness: float) -> None:
        population, frozen = self.population, self.frozen
        if population is None or frozen is None:
            return
        evaluated = population.fitness[~population.fitness.isnan()]  # [<= P] float64
        self.writer.add_scalar(f"evolution/fitness/worker{rank}", fitness, step)
        if evaluated.numel():  # every slot may be between a copy and its evaluation
            self.writer.add_scalar("evolution/fitness_max", evaluated.max(), step)
            self.writer.add_scalar("evolution/fitness_mean", evaluated.mean(), step)
        if time.monotonic() - self.paths_drawn_at >= self.image_every:
            self.draw_paths(step)
        else:
            self.undrawn_paths_step = step

    def ended(self, *, done: int) -> None:
        self.write_mean()
        if self.undrawn_paths_step is not None:
            self.draw_paths(self.undrawn_paths_step)

    def draw_paths(self, step: int) -> None:
        """The population's module usage per layer now, as ``evolution/paths`` at ``step``."""
        population, frozen = self.population, self.frozen
        assert population is not None and frozen is not None
        sizes = [len(row) for row in frozen]
        active = population.genomes.shape[1] // len(sizes)
        usage = module_usage(population.genomes.tolist(), len(sizes), active, sizes)
        self.writer.add_image("evolution/paths", usage_image(usage, frozen), step)
        self.paths_drawn_at, self.undrawn_paths_step = time.monotonic(), None


def make_progress(console: Console, enabled: bool) -> Progress:
    """The progress display of A3C phases: one bar per phase, steps and mean return."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f} steps"),
        TextColumn("mean return {task.fields[mean]:.2f}"), TimeElapsedColumn(),
        console=console, disable=not enabled,
    )  # fmt: skip


class ProgressReporter(Reporter):
    """A bar called ``description`` on ``progress`` (:func:`make_progress`): steps done of the
    budget, and the mean return of the latest 20 episodes."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress, self.description = progress, description
        self.budget = 0
        self.bar: Any = None
        self.mean: float | None = None  # the latest episode's mean, not shown yet

    def started(self, *, done: int, budget: int, workers: int) -> None:
        self.budget = budget
        self.bar = self.progress.add_task(self.description, total=budget, mean=float("nan"))
        self.progress.update(self.bar, completed=done)

    def episode(
        self, *, rank: int, step: int, episode_return: float, mean: float, episodes: int,
        done: int, workers: Workers,
    ) -> None:  # fmt: skip
        self.mean = mean

    def handled(self, *, done: int, workers: Workers) -> None:
        # Once a message: a rollout of short games ends many episodes at one step.
        if self.mean is not None:
            self.progress.update(self.bar, completed=min(done, self.budget), mean=self.mean)
            self.mean = None


class ThroughputReporter(Reporter):
    """``charts/steps_per_second`` every ``every`` seconds of updates, and in ``log`` the
    wall time (all sessions) and the steady-state steps and seconds of this session: from every
    worker's first logged update to the last one, process start-up and shut-down excluded (a
    session too short for that counts whole)."""

    def __init__(self, writer: SummaryWriter, log: PhaseLog, every: float = 2.0) -> None:
        self.writer, self.log, self.every = writer, log, every
        self.start: tuple[float, int] = (time.monotonic(), 0)  # (time, steps) of the session
        self.rate_mark = self.start
        self.steady_from: tuple[float, int] | None = None  # once every worker updated
        self.steady_until: tuple[float, int] | None = None  # the latest update since
        self.updated: set[int] = set()
        self.workers = 0

    def started(self, *, done: int, budget: int, workers: int) -> None:
        self.start = self.rate_mark = (time.monotonic(), done)
        self.workers = workers

    def update(self, *, rank: int, step: int, message: Mapping[str, Any], done: int) -> None:
        self.updated.add(rank)
        if self.steady_from is None and len(self.updated) == self.workers:
            self.steady_from = (time.monotonic(), done)
        elif self.steady_from is not None:
            self.steady_until = (time.monotonic(), done)
        now = time.monotonic()
        if now - self.rate_mark[0] >= self.every:
            rate = (done - self.rate_mark[1]) / (now - self.rate_mark[0])
            self.writer.add_scalar("charts/steps_per_second", rate, step)
            self.rate_mark = (now, done)

    def ended(self, *, done: int) -> None:
        now = time.monotonic()
        self.log.seconds += now - self.start[0]
        steady_from, steady_until = self.steady_from, self.steady_until
        if steady_from is None or steady_until is None:
            steady_from, steady_until = self.start, (now, done)
        self.log.session_seconds = steady_until[0] - steady_from[0]
        self.log.session_steps = steady_until[1] - steady_from[1]


class Checkpointer(Reporter):
    """``checkpoint()`` every ``every`` environment steps or ``minutes`` of wall time,
    whichever comes first (a slow environment loses at most that much work to a killed run),
    and on Ctrl-C. The workers' state is synced into the runner's objects first (Ray)."""

    def __init__(
        self, checkpoint: Callable[[], None], every: int | None = None,
        minutes: float | None = None,
    ) -> None:  # fmt: skip
        self.checkpoint, self.every = checkpoint, every
        self.interval = None if minutes is None else 60.0 * minutes
        self.next: float = math.inf
        self.last = time.monotonic()

    def started(self, *, done: int, budget: int, workers: int) -> None:
        self._schedule(done)

    def handled(self, *, done: int, workers: Workers) -> None:
        overdue = self.interval is not None and time.monotonic() - self.last >= self.interval
        if done >= self.next or overdue:
            workers.sync()  # Ray: the server's state into the runner's objects
            self.checkpoint()
            self._schedule(done)

    def interrupted(self, *, done: int) -> None:
        self.checkpoint()

    def _schedule(self, done: int) -> None:
        """The next checkpoint: at the next multiple of ``every`` steps after ``done``."""
        if self.every is not None:
            self.next = (done // self.every + 1) * self.every
        self.last = time.monotonic()


class EarlyStop(Reporter):
    """Stop the workers once the mean return of the latest ``window`` episodes reaches
    ``target_return`` (and that many episodes were logged)."""

    def __init__(self, target_return: float, window: int = WINDOW) -> None:
        self.target_return, self.window = target_return, window

    def episode(
        self, *, rank: int, step: int, episode_return: float, mean: float, episodes: int,
        done: int, workers: Workers,
    ) -> None:  # fmt: skip
        if mean >= self.target_return and episodes >= self.window:
            workers.stop.fill_(True)


class RestartReporter(Reporter):
    """A restarted worker as one line on stderr, after the phase's ``name`` — what happened
    (the first line of the worker group's ``reason``: the exception, or the signal that killed
    it) — and as TensorBoard text (``events/worker_restarts``) with the rest of ``reason``, the
    worker's traceback."""

    def __init__(self, writer: SummaryWriter, name: str = "") -> None:
        self.writer, self.name = writer, name

    def restarted(
        self, *, rank: int, reason: str, restarts: int, max_restarts: int, done: int
    ) -> None:
        what, _, details = reason.strip().partition("\n")
        event = f"worker {rank} failed and was restarted ({restarts} of {max_restarts}): {what}"
        print(f"{self.name}: {event}" if self.name else event, file=sys.stderr)
        text = f"{event}\n\n```\n{details}\n```" if details else event
        self.writer.add_text("events/worker_restarts", text, done)
