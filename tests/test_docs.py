"""The front-page documents stay short, and the docs' relative links point at files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_WORDS = 1500
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def words(path: Path) -> int:
    return len(path.read_text().split())


@pytest.mark.parametrize("name", ["README.md", "BENCHMARKS.md"])
def test_front_page_documents_stay_under_the_word_limit(name: str) -> None:
    count = words(ROOT / name)
    assert count <= MAX_WORDS, f"{name} has {count} words; move detail into docs/ (limit {MAX_WORDS})"


def relative_links(doc: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)  # code blocks hold no links
    targets = (target.split("#", 1)[0] for target in LINK.findall(text))
    return [t for t in targets if t and not re.match(r"[a-z][a-z0-9+.-]*:", t)]


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file(doc: Path) -> None:
    broken = [target for target in relative_links(doc) if not (doc.parent / target).exists()]
    assert not broken, f"{doc.relative_to(ROOT)} links to missing files: {broken}"
