"""protocol/README.md quotes the example worker instead of carrying a second one: every code block
marked `<!-- excerpt: path -->` must appear, line for line (at any one indentation), in that file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
README = REPO / "protocol" / "README.md"
EXCERPT = re.compile(r"<!-- excerpt: (\S+) -->\n```python\n(.*?)\n```", re.S)


def excerpts() -> list[tuple[str, str]]:
    return EXCERPT.findall(README.read_text())


def appears_in(block: list[str], source: list[str]) -> bool:
    """Whether `block` is a run of lines in `source`, all indented by the same prefix."""
    for start in range(len(source) - len(block) + 1):
        first = source[start]
        indent = first[: len(first) - len(first.lstrip())]
        if all(
            (line == "" and got.strip() == "") or got == indent + line
            for line, got in zip(block, source[start:start + len(block)])
        ):
            return True
    return False


def test_the_protocol_readme_quotes_the_example_worker():
    assert len(excerpts()) >= 2, "protocol/README.md lost its excerpts of the example worker"


@pytest.mark.parametrize("path,code", excerpts(), ids=lambda value: value if "/" in value else "")
def test_each_excerpt_is_the_example_workers_code(path, code):
    source = (REPO / path).read_text().splitlines()
    assert appears_in(code.splitlines(), source), f"protocol/README.md no longer matches {path}"


def test_an_edited_excerpt_would_be_noticed():
    source = ["def f():", "    a = 1", "", "    b = 2"]
    assert appears_in(["a = 1", "", "b = 2"], source)
    assert not appears_in(["a = 1", "b = 2"], source)
    assert not appears_in(["a = 2"], source)
