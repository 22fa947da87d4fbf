"""Package exports resolved on first use (PEP 562), for packages whose ``__init__`` must stay cheap to import.

``lib.graph`` and ``lib.crm`` are imported by nearly every command module; importing their submodules eagerly would
pull ``requests`` and every CRM operation into each CLI start-up (issue #14, P6). A package names where each export
lives and hands the two module hooks this returns to Python::

    __getattr__, __dir__ = lazy_exports(__name__, globals(), {"GraphClient": "client", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], where: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``where`` maps each exported name to its submodule; the
    first lookup imports it and caches the value in the package's ``namespace``."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
