"""benchmarks/RESULTS.md: one ``## `` section per benchmark script, replaced in place by --write.

Each script owns its section; rewriting it leaves every other section as it was.
"""

from __future__ import annotations

import re
from pathlib import Path

from devis_core.toolkit.files import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _pattern(title: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)


def current_section(title: str, path: Path = RESULTS) -> str:
    """The present text of the section headed ``title`` ('' when there is none)."""
    content = path.read_text() if path.exists() else ""
    match = _pattern(title).search(content)
    return match.group(0) if match else ""


def replace_section(title: str, section: str, path: Path = RESULTS) -> Path:
    """Put ``section`` (which starts with ``title``) in place of the old one, or append it."""
    content = path.read_text() if path.exists() else "# Benchmark results\n"
    body = section.rstrip("\n") + "\n\n"
    match = _pattern(title).search(content)
    if match:
        content = content[: match.start()] + body + content[match.end() :]
    else:
        content = content.rstrip("\n") + "\n\n" + body
    atomic_write_text(path, content.rstrip("\n") + "\n")
    return path
