"""Fold process pools: a fresh pool per LOSO run, or one pool shared by the runs inside `shared_fold_pool()`.

Starting a spawn pool costs each worker a fresh import of torch and Lightning (about 10 s on a small CPU), which a
seed study or `mer compare` would otherwise pay once per seed and method. A shared pool is reused only while the
worker settings, the working folder and the environment match those it was started with; there is at most one.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_shared: dict[str, Any] = {"depth": 0, "key": None, "pool": None}


def _close_shared() -> None:
    pool = _shared["pool"]
    _shared.update(key=None, pool=None)
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def shared_fold_pool() -> Iterator[None]:
    """Within this block, LOSO runs with the same worker settings reuse one fold process pool; closed at the end."""
    _shared["depth"] += 1
    try:
        yield
    finally:
        _shared["depth"] -= 1
        if _shared["depth"] == 0:
            _close_shared()


@contextlib.contextmanager
def fold_pool(
    workers: int, initializer: Callable[..., None], initargs: tuple, shareable: bool = True
) -> Iterator[ProcessPoolExecutor]:
    """A spawn pool of `workers` processes: the shared one inside `shared_fold_pool()` when `shareable` (its settings
    match), else a fresh pool closed on exit. A run that fails or is interrupted closes the shared pool too."""
    ctx = mp.get_context("spawn")
    if not shareable or _shared["depth"] == 0:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs) as pool:
            yield pool
        return
    key = (workers, initializer.__module__, initializer.__qualname__, repr(initargs), os.getcwd(),
           tuple(sorted(os.environ.items())))  # fmt: skip
    if _shared["key"] != key:
        _close_shared()
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
        _shared.update(key=key, pool=pool)
    try:
        yield _shared["pool"]
    except BaseException:
        _close_shared()
        raise
