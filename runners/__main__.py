"""The ``pathevo`` command: ``pathevo RECIPE [flags]`` runs one recipe of this folder.

``pathevo --help`` lists the recipes, ``pathevo bench --help`` the benchmarks
(``pathevo bench moe [flags]``). A recipe runs exactly as ``python -m pathevo.runners.RECIPE``
would, with the same flags, help and one-line errors; the listing reads each recipe's docstring
without importing it, so it is instant.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import pkgutil
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

PACKAGE = "pathevo.runners"
BENCH = f"{PACKAGE}.bench"


def recipes(package: str = PACKAGE) -> dict[str, str]:
    """The runnable modules of ``package`` (those with a ``__main__`` block), name -> summary."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations is not None
    found = {}
    for info in pkgutil.iter_modules(spec.submodule_search_locations):
        if info.ispkg or info.name.startswith("_"):
            continue
        path = Path(spec.submodule_search_locations[0]) / f"{info.name}.py"
        source = path.read_text(encoding="utf-8")
        if 'if __name__ == "__main__":' in source:
            docstring = ast.get_docstring(ast.parse(source)) or ""
            found[info.name] = docstring.split("\n\n")[0].replace("\n", " ")
    return dict(sorted(found.items()))


def usage(command: str, listed: dict[str, str], what: str) -> str:
    width = max(map(len, listed), default=0)
    word = what.upper()
    lines = [f"usage: {command} {word} [flags]   ({command} {word} --help: its flags)", "",
             f"{what}s:"]  # fmt: skip
    lines += [f"  {name:<{width}}  {summary}" for name, summary in listed.items()]
    if command == "pathevo":
        lines += ["", "  bench" + " " * max(width - 3, 2) + "benchmarks: pathevo bench --help"]
    return "\n".join(lines)


def dispatch(command: str, package: str, args: Sequence[str], what: str) -> int:
    """Run the module of ``package`` named by ``args[0]`` as ``__main__`` with the rest."""
    listed = recipes(package)
    if not args or args[0] in ("-h", "--help"):
        print(usage(command, listed, what), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    name, rest = args[0], list(args[1:])
    if command == "pathevo" and name == "bench":
        return dispatch("pathevo bench", BENCH, rest, "benchmark")
    if name not in listed:
        close = difflib.get_close_matches(name, listed, n=3, cutoff=0.5)
        hint = f"did you mean: {', '.join(close)}?" if close else f"one of: {', '.join(listed)}"
        print(f"error: unknown {what} {name!r}; {hint}", file=sys.stderr)
        return 2
    sys.argv[1:] = rest  # runpy puts the recipe's file in sys.argv[0]
    try:
        runpy.run_module(f"{package}.{name}", run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pathevo`` console script."""
    return dispatch("pathevo", PACKAGE, list(sys.argv[1:] if argv is None else argv), "recipe")


if __name__ == "__main__":
    sys.exit(main())
