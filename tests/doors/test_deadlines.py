"""The deadline sweeper: late tasks are cancelled and marked; others are left alone."""

from __future__ import annotations

import asyncio

from intercept.doors.deadlines import Deadlines


async def test_a_task_past_its_deadline_is_cancelled_and_marked() -> None:
    deadlines = Deadlines(tick=0.02)
    sweeper = asyncio.create_task(deadlines.run())

    async def slow() -> str:
        task = asyncio.current_task()
        assert task is not None
        deadlines.set(task, 0.05)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "expired" if deadlines.clear(task) else "cancelled elsewhere"
        return "finished"

    async def quick() -> str:
        task = asyncio.current_task()
        assert task is not None
        deadlines.set(task, 5)
        await asyncio.sleep(0.1)
        return "expired" if deadlines.clear(task) else "finished"

    results = await asyncio.wait_for(asyncio.gather(slow(), quick()), 3)
    sweeper.cancel()
    await sweeper
    assert list(results) == ["expired", "finished"]


async def test_held_tasks_are_never_swept() -> None:
    deadlines = Deadlines()
    task = asyncio.create_task(asyncio.sleep(5))
    deadlines.set(task, -1)
    deadlines.hold(task)
    assert deadlines.sweep() == 0
    deadlines.set(task, -1)
    assert deadlines.sweep() == 1
    assert deadlines.clear(task) is True
    assert deadlines.clear(task) is False
    assert task.cancelling()
