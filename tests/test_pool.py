"""Fold process pools: fresh per run by default, one shared pool inside `shared_fold_pool()`."""

from __future__ import annotations

import os

import pytest

from mer.evaluation import pool as pool_module
from mer.evaluation.pool import fold_pool, shared_fold_pool


def _pids(pool) -> set[int]:
    return {pool.submit(os.getpid).result() for _ in range(4)}


def test_runs_share_one_pool_only_inside_the_block(monkeypatch):
    with fold_pool(2, os.getpid, ()) as a, fold_pool(2, os.getpid, ()) as b:
        assert a is not b  # outside the block: a fresh pool per run, as before
    with shared_fold_pool():
        with fold_pool(2, os.getpid, ()) as first:
            pids = _pids(first)
        with fold_pool(2, os.getpid, ()) as second:
            assert second is first and _pids(second) <= pids  # the same worker processes
        with fold_pool(2, os.getpid, (), shareable=False) as own:
            assert own is not first  # GPU placement queues are never shared
        monkeypatch.setenv("MER_POOL_TEST", "1")
        with fold_pool(2, os.getpid, ()) as third:
            assert third is not first  # another environment: a new pool, the old one closed
        assert pool_module._shared["pool"] is third
    assert pool_module._shared["pool"] is None and pool_module._shared["depth"] == 0


def test_a_failed_run_closes_the_shared_pool():
    with shared_fold_pool():
        with pytest.raises(RuntimeError), fold_pool(2, os.getpid, ()):
            raise RuntimeError("fold failed")
        assert pool_module._shared["pool"] is None
        with fold_pool(2, os.getpid, ()) as fresh:
            assert fresh.submit(os.getpid).result() > 0
