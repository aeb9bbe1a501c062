"""Types of the compiled direct wire encoder (``_cwire.pyx``)."""

from collections.abc import Callable, Iterable
from typing import Any

KINDS: tuple[str, ...]
FIELD_LIMIT: int

class DirectEncoder:
    def __init__(
        self, cls: type, slow: Callable[[Any], bytes], fields: Iterable[tuple[str, int, bytes]]
    ) -> None: ...
    def __call__(self, obj: Any) -> bytes: ...
