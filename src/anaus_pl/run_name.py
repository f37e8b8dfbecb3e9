"""Run names: ``{run}`` in a config value is replaced by the run's name (``--run``, ``make RUN=...``).

Every stage writes under ``runs/<stage>/{run}/`` and reads the previous stage's
output there, so runs under two names never share a file.
"""

from __future__ import annotations

from typing import Any

from jsonargparse import Namespace
from jsonargparse.typing import restricted_string_type

PLACEHOLDER = "{run}"
# A folder name: letters, digits, '.', '_' and '-', not starting with '.' or '-'.
RunName = restricted_string_type("RunName", r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def fill_run(value: Any, run: str) -> Any:
    """``value`` with ``{run}`` replaced by ``run`` in every string, through dicts, lists and Namespaces (in place)."""
    if isinstance(value, str):
        return value.replace(PLACEHOLDER, run)
    if isinstance(value, list):
        return [fill_run(item, run) for item in value]
    if isinstance(value, tuple):
        return tuple(fill_run(item, run) for item in value)
    if isinstance(value, dict):
        return {key: fill_run(item, run) for key, item in value.items()}
    if isinstance(value, Namespace):
        for key, item in vars(value).items():
            setattr(value, key, fill_run(item, run))
    return value
