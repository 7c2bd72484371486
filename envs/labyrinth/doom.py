"""Labyrinth-like levels on ViZDoom (Kempka et al. 2016, arXiv:1605.02097).

PathNet (Fernando et al. 2017, arXiv:1701.08734) trained on four DeepMind Lab levels (Beattie et
al. 2016, arXiv:1612.03801): a static maze, a seek-avoid arena, "stairway to melon" and laser
tag. DeepMind Lab is not installable from the package registries, so each level is imitated by a
ViZDoom scenario: LaserTag ships with ViZDoom, the other three are pathevo's own
(``scenarios/*.wad``). docs/labyrinth.md says how each one matches its level.

The environment is ViZDoom's own gymnasium env with wrappers around it: a small discrete action
set of button combinations, the screen resized to ``frame_size``² and turned channels-first, and
gymnasium's frame stack, giving ``[frame_stack * C, H, W]`` uint8. The wrappers written here do
not record their constructor arguments, so ``env.spec`` can remake the env (``check_env`` does).

The engine is a program of its own that ViZDoom starts; it writes its crash log
(``vizdoom-crash.log``) and a ``_vizdoom/`` folder into its working directory and its crash
handler prints a dump. :func:`engine_launcher` starts it in a worker's own directory (or a private
temporary one), with its output in ``vizdoom.log`` there: a crash is the exception ViZDoom raises
in Python, not files in the user's working directory and a dump on the terminal.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FrameStackObservation, ReshapeObservation

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # vizdoom's wrapper imports pygame

import vizdoom as vzd  # noqa: E402
from vizdoom.gymnasium_wrapper.base_gymnasium_env import VizdoomEnv  # noqa: E402

from pathevo.envs.labyrinth.reaper import ensure_reaper  # noqa: E402

SCENARIOS = Path(__file__).with_name("scenarios")
# ZDoom writes its own ini at exit; by default into the working directory.
DOOM_INI = Path(tempfile.gettempdir()) / "pathevo-vizdoom" / "vizdoom.ini"
# A worker's own directory, in its environment: pathevo.agents.processes.WORKER_DIR_ENV.
WORKER_DIR_ENV = "PATHEVO_WORKER_DIR"
ENGINE_LOG = "vizdoom.log"
"""The engine's stdout and stderr, in the directory it runs in."""

# Lab-style movement: step forward/back/sideways, turn, and turn while walking forward.
NAVIGATION = (
    ("MOVE_FORWARD",),
    ("MOVE_BACKWARD",),
    ("MOVE_LEFT",),
    ("MOVE_RIGHT",),
    ("TURN_LEFT",),
    ("TURN_RIGHT",),
    ("MOVE_FORWARD", "TURN_LEFT"),
    ("MOVE_FORWARD", "TURN_RIGHT"),
)
SHOOTING = (
    ("ATTACK",),
    ("TURN_LEFT",),
    ("TURN_RIGHT",),
    ("MOVE_FORWARD",),
    ("TURN_LEFT", "ATTACK"),
    ("TURN_RIGHT", "ATTACK"),
)


@dataclass(frozen=True)
class LabyrinthTask:
    """One Labyrinth-like level: a ViZDoom scenario, its actions and how it pays reward."""

    config: Path
    """The ViZDoom scenario .cfg (map, skill, built-in rewards)."""
    actions: tuple[tuple[str, ...], ...]
    """Each discrete action is a set of ViZDoom buttons held for ``frame_skip`` tics."""
    reward_variables: tuple[tuple[str, float], ...] = ()
    """Game variables whose increase is paid as reward on top of the scenario's own:
    (variable, reward per unit of increase)."""


TASKS: dict[str, LabyrinthTask] = {
    "NavMaze": LabyrinthTask(SCENARIOS / "nav_maze.cfg", NAVIGATION, (("ARMOR", 1.0),)),
    "SeekAvoid": LabyrinthTask(
        SCENARIOS / "seekavoid_arena.cfg", NAVIGATION, (("ARMOR", 1.0), ("AMMO2", -1.0))
    ),
    "StairwayToMelon": LabyrinthTask(
        SCENARIOS / "stairway_to_melon.cfg", NAVIGATION, (("ARMOR", 1.0),)
    ),
    "LaserTag": LabyrinthTask(Path(vzd.scenarios_path) / "defend_the_center.cfg", SHOOTING),
}


class ButtonCombos(gym.ActionWrapper):
    """Discrete actions, each a row of a 0/1 table over the env's binary buttons."""

    def __init__(self, env: gym.Env, table: np.ndarray) -> None:
        super().__init__(env)
        self.table = table  # [n_actions, n_buttons] int8
        self.action_space = gym.spaces.Discrete(len(table))

    def action(self, action: int) -> np.ndarray:
        return self.table[action]


class ChannelsFirstScreen(gym.ObservationWrapper):
    """The ``screen`` entry of ViZDoom's observation, resized, as ``[C, size, size]``.

    Bilinear resizing: area averaging costs five times more at this non-integer ratio. Only
    ``rgb_array`` rendering is declared: ``human`` needs a display, which pathevo's machines lack.
    """

    def __init__(self, env: gym.Env, size: int) -> None:
        super().__init__(env)
        self.size = size
        channels = env.observation_space["screen"].shape[-1]
        self.observation_space = gym.spaces.Box(0, 255, (channels, size, size), np.uint8)
        self.metadata = {**env.metadata, "render_modes": ["rgb_array"]}

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        # screen: [H, W, C] uint8; cv2 drops C when it is 1, the reshape puts it back.
        size = (self.size, self.size)
        frame = cv2.resize(observation["screen"], size, interpolation=cv2.INTER_LINEAR)
        return frame.reshape(self.size, self.size, -1).transpose(2, 0, 1)


class GameVariableReward(gym.Wrapper):
    """Add the step's increases of ViZDoom game variables, each times its scale, to the reward."""

    def __init__(self, env: gym.Env, variables: tuple[tuple[str, float], ...]) -> None:
        super().__init__(env)
        self.variables = [getattr(vzd.GameVariable, name) for name, _ in variables]
        self.scales = np.array([scale for _, scale in variables])
        self.last = np.zeros(len(variables))

    def _read(self) -> np.ndarray:
        # The engine keeps the values readable after the episode ends (the state is then None).
        game = self.env.unwrapped.game
        return np.array([game.get_game_variable(variable) for variable in self.variables])

    def reset(self, **kwargs: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.last = self._read()
        return obs, info

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        values = self._read()
        gained = np.maximum(values - self.last, 0.0)
        reward, self.last = float(reward) + float(self.scales @ gained), values
        return obs, reward, terminated, truncated, info


def private_dir() -> Path:
    """This user's own temporary directory for ViZDoom engines: their launchers, and the
    directory they run in outside a worker. Made readable by its owner only, and refused if
    anyone else could write into it (the launchers there are run)."""
    path = Path(tempfile.gettempdir()) / f"pathevo-vizdoom-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise RuntimeError(f"{path} is not a directory that only this user can write; remove it")
    return path


def engine_launcher() -> str:
    """The program to start ViZDoom's engine with (``DoomGame.set_vizdoom_path``): a shell
    script that starts it in the directory :data:`WORKER_DIR_ENV` names (else
    :func:`private_dir`) with its output appended to :data:`ENGINE_LOG` there. ViZDoom has no
    setting for the engine's working directory or output. The engine itself where there is no
    POSIX shell."""
    if os.name != "posix":
        return vzd.exe_path
    home = private_dir()
    script = (
        "#!/bin/sh\n"
        "# pathevo: ViZDoom's engine in a worker's directory, its crash log and output there.\n"
        f'dir=${{{WORKER_DIR_ENV}:-}}\n[ -n "$dir" ] || dir={shlex.quote(str(home))}\n'
        'cd "$dir" || exit 1\n'
        f'exec {shlex.quote(str(Path(vzd.exe_path).resolve()))} "$@" >>{ENGINE_LOG} 2>&1\n'
    )
    path = home / f"engine-{hashlib.sha256(script.encode()).hexdigest()[:16]}.sh"
    if not path.exists():  # named after its text: once written, it is this script
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(script)
        partial.chmod(0o700)
        os.replace(partial, path)
    return str(path)


def make_doom_env(
    task: str,
    frame_size: int = 84,
    grayscale: bool = True,
    frame_stack: int = 4,
    frame_skip: int = 4,
    render_mode: str | None = None,
) -> gym.Env:
    """Build the ``task`` level with observations ``[frame_stack * C, frame_size, frame_size]``.

    C is 1 for gray and 3 for RGB. The engine renders at 160×120; the frame is resized
    bilinearly. Episode length limits come from the registered ``max_episode_steps``.

    Example:
        >>> env = make_doom_env("NavMaze", frame_stack=1)
        >>> env.observation_space.shape
        (1, 84, 84)
    """
    if task not in TASKS:
        raise ValueError(f"unknown Labyrinth task {task!r}; known: {', '.join(TASKS)}")
    if min(frame_size, frame_stack, frame_skip) < 1:
        raise ValueError("frame_size, frame_stack and frame_skip must be at least 1")
    spec = TASKS[task]
    ensure_reaper()
    DOOM_INI.parent.mkdir(parents=True, exist_ok=True)
    buttons = list(dict.fromkeys(b for combo in spec.actions for b in combo))
    env: gym.Env = VizdoomEnv(
        config_file=str(spec.config),
        frame_skip=frame_skip,
        max_buttons_pressed=0,
        render_mode=render_mode,
        screen_resolution=vzd.ScreenResolution.RES_160X120,
        screen_format=vzd.ScreenFormat.GRAY8 if grayscale else vzd.ScreenFormat.RGB24,
        available_buttons=[getattr(vzd.Button, b) for b in buttons],
        episode_timeout=0,  # gymnasium's TimeLimit truncates, so the last frame is a real one
        doom_config_path=str(DOOM_INI),
        vizdoom_path=engine_launcher(),
    )
    if spec.reward_variables:
        env = GameVariableReward(env, spec.reward_variables)

    table = np.array([[b in combo for b in buttons] for combo in spec.actions], dtype=np.int8)
    env = ChannelsFirstScreen(ButtonCombos(env, table), frame_size)
    channels = env.observation_space.shape[0]
    env = FrameStackObservation(env, frame_stack)
    return ReshapeObservation(env, (frame_stack * channels, frame_size, frame_size))
