"""Per-task heads: each task owns its output layer(s); the library below is shared."""

from __future__ import annotations

from torch import nn


class TaskHeads(nn.Module):
    """Heads kept by task name (a classifier, or a policy + value head for RL tasks)."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleDict()

    def add(self, task: str, head: nn.Module) -> nn.Module:
        """Register ``head`` for ``task``, replacing any earlier head of that name."""
        self.heads[_key(task)] = head
        return head

    def __getitem__(self, task: str) -> nn.Module:
        key = _key(task)
        if key not in self.heads:
            raise KeyError(f"no head for task {task!r}; known: {sorted(self.tasks())}")
        return self.heads[key]

    def __contains__(self, task: str) -> bool:
        return _key(task) in self.heads

    def tasks(self) -> list[str]:
        return [key.replace("\x1f", ".") for key in self.heads]


def _key(task: str) -> str:
    # ModuleDict keys may not contain "."; task names such as "ALE/Pong-v5" or "3v5.noisy" may.
    return task.replace(".", "\x1f")
