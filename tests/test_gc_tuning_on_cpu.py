"""gc.freeze() after AgentLoopWorker start-up: applied by the plugin's hook, switchable, measured in bench/loop_stall.py."""

from __future__ import annotations

import gc
import subprocess
import sys

from verl_toolmaster.gc_tuning import ENV_SWITCH, freeze_after_init


def _worker_class():
    class Worker:
        def __init__(self):
            self.heap = [object() for _ in range(1000)]

    freeze_after_init(Worker)
    freeze_after_init(Worker)  # idempotent: one wrapper
    return Worker


def test_worker_init_freezes_the_startup_heap(monkeypatch):
    monkeypatch.delenv(ENV_SWITCH, raising=False)
    gc.unfreeze()
    try:
        worker = _worker_class()()
        assert gc.get_freeze_count() >= len(worker.heap)
    finally:
        gc.unfreeze()


def test_freeze_can_be_switched_off(monkeypatch):
    monkeypatch.setenv(ENV_SWITCH, "0")
    gc.unfreeze()
    _worker_class()()
    assert gc.get_freeze_count() == 0


def test_plugin_wraps_verls_agent_loop_worker():
    code = ("import verl\nfrom verl_toolmaster import compat\n"
            "print(getattr(compat.AgentLoopWorker.__init__, '_toolmaster_gc', False))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr[-2000:]
