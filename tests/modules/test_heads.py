"""Per-task heads, kept by task name beside the shared library."""

import pytest
import torch
from torch import nn

from pathevo.modules import TaskHeads


def test_heads_are_kept_per_task_even_with_dots_and_slashes_in_names():
    heads = TaskHeads()
    heads.add("ALE/Pong-v5", nn.Linear(4, 6))
    heads.add("digits/3v5.noisy", nn.Linear(4, 2))
    assert sorted(heads.tasks()) == ["ALE/Pong-v5", "digits/3v5.noisy"]
    assert heads["ALE/Pong-v5"](torch.zeros(1, 4)).shape == (1, 6)
    assert "digits/3v5.noisy" in heads and "digits/1v7" not in heads
    assert len(list(heads.parameters())) == 4


def test_unknown_task_head_names_the_known_ones():
    heads = TaskHeads()
    heads.add("digits/3v5", nn.Linear(2, 2))
    with pytest.raises(KeyError, match="digits/3v5"):
        heads["digits/1v7"]


def test_heads_round_trip_through_state_dict():
    heads, copy = TaskHeads(), TaskHeads()
    heads.add("a.b", nn.Linear(3, 2))
    copy.add("a.b", nn.Linear(3, 2))
    copy.load_state_dict(heads.state_dict())
    assert torch.equal(copy["a.b"].weight, heads["a.b"].weight)
