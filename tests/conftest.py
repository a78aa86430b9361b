"""Suite-wide guards: every async test must leave no task running behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio


@pytest_asyncio.fixture(autouse=True)
async def no_leftover_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if request.node.get_closest_marker("asyncio") is None:
        return
    await asyncio.sleep(0)  # let tasks that are finishing finish
    current = asyncio.current_task()
    leftover = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in leftover:
        task.cancel()
    assert not leftover, f"the test left tasks running: {leftover}"
