"""BENCHMARKS.md is shared by every benchmark: each one owns a section between its own markers."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def markers(name: str) -> tuple[str, str]:
    """The begin/end comment lines of section ``name`` (``<!-- name:begin -->``)."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_section(name: str, section: str) -> None:
    """Put ``section`` (markers included) in place of section ``name``, or append it.

    The file is re-read right now: other benchmarks may have rewritten their sections meanwhile.
    """
    begin, end = markers(name)
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    BENCHMARKS.write_text(text)
