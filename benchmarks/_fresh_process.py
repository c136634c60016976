"""Run a benchmark job in a fresh process, so that its peak memory (ru_maxrss) is its own."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable


def run_in_fresh_process(worker: Callable, job: dict) -> dict:
    """``worker(job, queue)`` in a spawned process; returns what it put on the queue."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=worker, args=(job, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result
