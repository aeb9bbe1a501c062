"""python-cqrs 5.x paths: ``cqrs.bootstrap.requests`` and ``cqrs.bootstrap.events``.

``cqrs.bootstrap`` is also our ``bootstrap()`` function; importing this package replaces that attribute
of ``cqrs`` with the package, so the package is callable and does the same.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from cqrs.requests.bootstrap import bootstrap as _bootstrap

__all__: list[str] = []


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _bootstrap(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
