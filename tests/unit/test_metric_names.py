"""Every metric the code emits is one docs/rules/logs.md lists: an alarm or a dashboard built
from the document watches a name that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# count("Name", ...) or count(f"Prefix_{...}", ...): the literal part of the name.
EMITTED = re.compile(r"""(?<![.\w])count\(\s*f?["']([A-Za-z]+_?)""")


def emitted_metric_names() -> set[str]:
    names: set[str] = set()
    for source in (ROOT / "chalicelib").rglob("*.py"):
        names |= set(EMITTED.findall(source.read_text()))
    return names


def test_every_emitted_metric_is_documented() -> None:
    documented = (ROOT / "docs" / "rules" / "logs.md").read_text()
    names = emitted_metric_names()
    assert {"UnhandledErrors", "WebhookRejected", "WorkMessages_"} <= names
    missing = sorted(name for name in names if f"`{name}" not in documented)
    assert not missing, f"metrics emitted but not in docs/rules/logs.md: {missing}"
