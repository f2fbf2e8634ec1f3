"""The plugin keeps the rollout loop responsive: gc.freeze() after AgentLoopWorker start-up and at most N trajectory
starts per loop iteration; both switchable, measured in bench/loop_stall.py."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys

from verl_toolmaster.loop_health import ENV_SWITCH, FULL_COLLECTION_THRESHOLD, START_GATE_ENV, collect_between_batches, freeze_after_init, gate_starts


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
            "print(getattr(compat.AgentLoopWorker.__init__, '_toolmaster_gc', False), "
            "getattr(getattr(compat.AgentLoopWorker, compat.RUN_TRAJECTORY_METHOD), '_toolmaster_gate', False), "
            "getattr(compat.AgentLoopWorker.generate_sequences, '_toolmaster_gc', False))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "True True True", out.stderr[-2000:]


def _starts_per_iteration(monkeypatch, gate: str) -> list[int]:
    """Start 40 gated "trajectories" at once; how many began in each event-loop iteration."""
    monkeypatch.setenv(START_GATE_ENV, gate)

    class Worker:
        async def run_one(self, i: int, log: list) -> int:
            log.append(iteration[0])
            return i

    gate_starts(Worker, "run_one")
    iteration = [0]

    async def main() -> list[int]:
        stop = False

        def tick() -> None:  # counts loop iterations
            iteration[0] += 1
            if not stop:
                asyncio.get_running_loop().call_soon(tick)

        asyncio.get_running_loop().call_soon(tick)
        log: list[int] = []
        w = Worker()
        assert await asyncio.gather(*(w.run_one(i, log) for i in range(40))) == list(range(40))
        stop = True
        return [log.count(k) for k in sorted(set(log))]

    return asyncio.run(main())


def test_start_gate_spreads_a_burst_of_trajectory_starts(monkeypatch):
    assert max(_starts_per_iteration(monkeypatch, "4")) <= 4
    assert max(_starts_per_iteration(monkeypatch, "0")) == 40  # no gate: all start in one iteration


def test_full_collections_move_between_batches(monkeypatch):
    monkeypatch.delenv(ENV_SWITCH, raising=False)
    before = gc.get_threshold()

    class Worker:
        async def generate_sequences(self, n: int) -> int:
            assert gc.get_threshold()[2] == FULL_COLLECTION_THRESHOLD  # raised while the batch runs
            return n

    collect_between_batches(Worker, "generate_sequences")
    full = gc.get_stats()[2]["collections"]
    try:
        assert asyncio.run(Worker().generate_sequences(3)) == 3
        assert gc.get_stats()[2]["collections"] >= full + 1  # one full collection after the batch
    finally:
        gc.set_threshold(*before)
