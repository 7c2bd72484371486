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
"""

from __future__ import annotations

import os
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
    )
    if spec.reward_variables:
        env = GameVariableReward(env, spec.reward_variables)

    table = np.array([[b in combo for b in buttons] for combo in spec.actions], dtype=np.int8)
    env = ChannelsFirstScreen(ButtonCombos(env, table), frame_size)
    channels = env.observation_space.shape[0]
    env = FrameStackObservation(env, frame_stack)
    return ReshapeObservation(env, (frame_stack * channels, frame_size, frame_size))
