"""Deliberately broken copies of the real RTL modules, to show each property can fail.

A mutant is the source of an ``rtl`` module with a few exact text edits (each
``old`` must occur exactly once, so an edit cannot land somewhere unintended),
compiled as a module of its own. The rest of the design is untouched:
:func:`mutant` returns a fresh module object, ``rtl.*`` in ``sys.modules`` stay
the originals, except while the mutant's own imports run, when ``deps`` may
put other mutants in their place (a :class:`~rtl.top.TSP` built on a broken
``rtl.icu``).

If the RTL changes so that an edit no longer applies, :func:`mutant` raises
:class:`MutationError` naming the edit: the check must then be updated, it
never silently tests the unbroken design.
"""

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass


__all__ = ["Edit", "MutationError", "mutant"]


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` (which must occur exactly once) by ``new``; ``why`` names the bug."""
    old: str
    new: str
    why: str


class MutationError(LookupError):
    pass


_count = 0


def mutant(module_name, edits, deps=None):
    """A copy of ``module_name`` (e.g. ``"rtl.icu"``) with ``edits`` applied."""
    global _count
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise MutationError(f"no module {module_name}")
    source = open(spec.origin).read()
    for edit in edits:
        found = source.count(edit.old)
        if found != 1:
            raise MutationError(f"{spec.origin}: the mutation '{edit.why}' expects its text "
                                f"exactly once, found it {found} times: {edit.old!r}")
        source = source.replace(edit.old, edit.new)
    _count += 1
    name = f"{module_name}__mutant{_count}"
    module = types.ModuleType(name)
    module.__file__ = spec.origin
    module.__package__ = module_name.rpartition(".")[0]
    saved = {}
    for dep, replacement in (deps or {}).items():
        saved[dep] = sys.modules.get(dep)
        sys.modules[dep] = replacement
    try:
        exec(compile(source, f"{spec.origin} ({', '.join(e.why for e in edits) or 'copy'})",
                     "exec"), module.__dict__)
    finally:
        for dep, original in saved.items():
            if original is None:
                sys.modules.pop(dep, None)
            else:
                sys.modules[dep] = original
    return module
