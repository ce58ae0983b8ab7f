"""The shell blocks of the READMEs, as the tests run them.

Every ```bash block of README.md and lab/README.md carries, after the language, either
``runnable=<where>`` (a test runs the block: ``repo``, in a temporary copy of the example
pillar in a git repository, tests/onboard/test_readme_commands.py; ``lab``, on the salt-master
of the article's running lab, and ``lab-cli``, `python -m lab` with a lab id of its own, both in
tests/lab/test_readme_commands.py) or ``manual``
(it cannot run in a test: it installs, downloads or runs the tests themselves).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tests.conftest import REPO

READMES = ("README.md", "lab/README.md")
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.M | re.S)
PLACES = ("repo", "lab", "lab-cli")


@dataclass(frozen=True)
class Block:
    readme: str
    line: int
    language: str
    tags: tuple
    text: str

    @property
    def runnable(self):
        return next((tag.split("=", 1)[1] for tag in self.tags if tag.startswith("runnable=")), None)

    def __str__(self):
        return f"{self.readme}:{self.line}"


def blocks(language="bash") -> list[Block]:
    found = []
    for readme in READMES:
        text = (REPO / readme).read_text()
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                line = text.count("\n", 0, match.start()) + 1
                found.append(Block(readme, line, language, tuple(match.group(2).split()), match.group(3)))
    return found


def runnable(place: str) -> list[Block]:
    return [block for block in blocks() if block.runnable == place]
