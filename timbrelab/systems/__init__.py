"""The systems of the book and their registry: the one place the CLI, evaluation, the
benchmarks and the chapters look a system up.

A new system is one module here (its model, loss, data, recipes, metrics and inference, see
:class:`System`) whose ``SYSTEMS`` tuple is listed in :data:`_MODULES`; nothing else in the
package changes. :func:`register` adds one at run time (tests, experiments).

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import importlib

from timbrelab.systems.base import TASKS, System, SystemOutput, Tier

#: Modules whose ``SYSTEMS`` are registered, in the book's order.
_MODULES = (
    "timbrelab.systems.amt",
    "timbrelab.systems.timbre_trap",
    "timbrelab.systems.cerberus",
    "timbrelab.systems.two_branch",
)
_REGISTRY: dict[str, System] = {}


def _load() -> dict[str, System]:
    if not _REGISTRY:
        for module in _MODULES:
            for system in importlib.import_module(module).SYSTEMS:
                _REGISTRY.setdefault(system.name, system)
    return _REGISTRY


def register(system: System) -> System:
    """Add a system to the registry (replacing one of the same name); returns it.

    Chapter: book/02_focal_loss_amt.md
    """
    if not system.name or not set(system.tasks) <= set(TASKS):
        raise ValueError(f"register: a system needs a name and tasks from {TASKS}")
    _load()[system.name] = system
    return system


def unregister(name: str) -> None:
    """Remove a system registered with :func:`register`.

    Chapter: book/02_focal_loss_amt.md
    """
    _load().pop(name, None)


def names() -> list[str]:
    """Every registered system's name, in registration order.

    Chapter: book/02_focal_loss_amt.md
    """
    return list(_load())


def get(name: str) -> System:
    """The system registered as ``name``.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.

    Chapter: book/02_focal_loss_amt.md
    """
    systems = _load()
    if name not in systems:
        raise ValueError(f"unknown system {name!r}; choose from {', '.join(systems)}")
    return systems[name]


__all__ = ["TASKS", "System", "SystemOutput", "Tier", "get", "names", "register", "unregister"]
