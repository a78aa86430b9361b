"""Demo kits for `listsync demo`, and what they share."""

from __future__ import annotations

import shutil
from pathlib import Path


def fresh_directory(target: Path) -> Path:
    """`target`, emptied: every demo run starts from the same generated data."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    return target
