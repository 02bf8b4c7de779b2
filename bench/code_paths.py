"""Which product files a path runs through: a profiler hook records the file of every Python
function called while the path runs (after warm-up, so import-time code is not counted).

"Product" is app.py and chalicelib/; the domain is counted apart, because its modules are pure
rules (what a change means) while the rest is the plumbing a reader follows (entry, wiring,
services, adapters).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
PRODUCT = (str(REPO_ROOT / "chalicelib") + "/", str(REPO_ROOT / "app.py"))
DOMAIN = str(REPO_ROOT / "chalicelib" / "domain") + "/"


@dataclass
class FilesRun:
    files: set[str] = field(default_factory=set)

    @property
    def domain(self) -> list[str]:
        return sorted(f for f in self.files if f.startswith("chalicelib/domain/"))

    @property
    def plumbing(self) -> list[str]:
        return sorted(f for f in self.files if not f.startswith("chalicelib/domain/"))

    def figures(self, prefix: str) -> dict[str, float | int | str]:
        return {
            f"{prefix}_product_files": len(self.plumbing),
            f"{prefix}_domain_files": len(self.domain),
            f"{prefix}_product_files_list": " ".join(self.plumbing),
        }


@contextmanager
def files_run() -> Iterator[FilesRun]:
    seen = FilesRun()

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call":
            name = frame.f_code.co_filename
            if name.startswith(PRODUCT):
                seen.files.add(str(Path(name).relative_to(REPO_ROOT)))

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(previous)
