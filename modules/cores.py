"""Kinds of recurrent core by name: the one place heads, agents and the CLI learn them from.

A kind builds its cell (a :class:`~pathevo.modules.recurrent.RecurrentCore`, which knows its own
state layout) from the input size, the units and its own settings. Heads take one picklable
:class:`CoreSpec` (a kind's name and its settings) instead of every kind's keywords, and
``--a3c.core`` offers the registered names (:class:`pathevo.agents.a3c.A3CConfig`). A new kind is a
file holding its cell and one :func:`register_core` call here:

    register_core(CoreKind("gru", "a GRU (Cho et al. 2014)", GRUCore))

Built in: ``lstm`` (:class:`torch.nn.LSTMCell`; Hochreiter & Schmidhuber 1997) and
``hyperlstm`` (Ha et al. 2016, arXiv:1609.09106, :mod:`pathevo.modules.hyper_lstm`).

Example:
    >>> CoreSpec("hyperlstm", {"hyper_units": 8})(16, 32).state_size
    40
    >>> core_kind("lstn")
    Traceback (most recent call last):
    ...
    ValueError: unknown core kind 'lstn'; did you mean: lstm?
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pathevo.modules.hyper_lstm import HyperLSTMCell
from pathevo.modules.recurrent import LSTMCore, RecurrentCore

CoreFactory = Callable[[int, int], RecurrentCore]
"""``core(in_features, units)`` -> a recurrent core with ``units`` outputs (a :class:`CoreSpec`)."""


@dataclass(frozen=True)
class CoreKind:
    """How to build one kind of recurrent core."""

    name: str
    description: str
    build: Callable[..., RecurrentCore]
    """``build(in_features, units, **settings)`` -> the core (a cell class does)."""
    settings: tuple[str, ...] = ()
    """The keyword settings ``build`` takes. :meth:`pathevo.agents.a3c.A3CConfig.core_spec` passes
    the config's fields of these names (``--a3c.<name>``); a kind without settings needs no flag."""


CORE_KINDS: dict[str, CoreKind] = {}


def register_core(kind: CoreKind) -> CoreKind:
    """Add ``kind`` to the registry (replacing one of the same name)."""
    CORE_KINDS[kind.name] = kind
    return kind


def core_names() -> list[str]:
    """The registered kinds' names, sorted."""
    return sorted(CORE_KINDS)


def core_kind(name: str) -> CoreKind:
    """The kind called ``name``; a one-line ValueError with close names if there is none."""
    if name in CORE_KINDS:
        return CORE_KINDS[name]
    known = core_names()
    close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.5)
    hint = f"did you mean: {', '.join(close)}?" if close else f"choose one of {', '.join(known)}"
    raise ValueError(f"unknown core kind {name!r}; {hint}")


@dataclass(frozen=True)
class CoreSpec:
    """A kind of core and its settings: ``spec(in_features, units)`` builds the core.

    Heads keep the spec, not the kind record, so it pickles to spawned workers and a head built
    there finds the kind by name. The kind is checked when the spec is made.
    """

    kind: str = "lstm"
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Keywords of the kind's ``build`` (e.g. ``hyper_units`` for ``hyperlstm``)."""

    def __post_init__(self) -> None:
        kind = core_kind(self.kind)
        unknown = sorted(set(self.settings) - set(kind.settings))
        if unknown:
            takes = ", ".join(kind.settings) or "none"
            raise ValueError(f"core kind {self.kind!r} has no setting {unknown[0]!r}; it takes "
                             f"{takes}")  # fmt: skip

    def __call__(self, in_features: int, units: int) -> RecurrentCore:
        return core_kind(self.kind).build(in_features, units, **self.settings)


def _hyper_lstm(
    in_features: int,
    units: int,
    hyper_units: int = 32,
    hyper_embedding: int = 4,
    hyper_layer_norm: bool = True,
) -> HyperLSTMCell:
    """The ``hyperlstm`` kind: settings named as the A3C config's fields (``--a3c.hyper-units``)."""
    return HyperLSTMCell(in_features, units, hyper_units, hyper_embedding, hyper_layer_norm)


for _kind in (
    CoreKind("lstm", "a plain LSTM (Hochreiter & Schmidhuber 1997)", LSTMCore),
    CoreKind("hyperlstm", "a HyperLSTM: a small hyper LSTM rescales the main LSTM's weight rows "
             "at every step (Ha et al. 2016)", _hyper_lstm,
             ("hyper_units", "hyper_embedding", "hyper_layer_norm")),
):  # fmt: skip
    register_core(_kind)


DEFAULT_CORE = CoreSpec()
"""A plain LSTM: what heads get unless told otherwise."""
