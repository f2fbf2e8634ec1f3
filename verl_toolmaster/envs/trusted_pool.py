"""Warm child processes that run *trusted* package code (bfcl-eval's API classes and checkers) with a time limit.

Why: bfcl-eval's classes are trusted but pure Python; a call such as ``power`` with a huge integer exponent
holds the GIL for minutes. Run in the event loop's process, it stalls every trajectory of the worker; in a
thread it still holds the GIL. Here it runs in a child process: when it outlives its limit the child is
killed and replaced, the caller gets :class:`CallTimeout`, and only that trajectory paid for it.

Jobs name a module-level function (``"package.module:function"``) and its arguments; both travel as pickle
over the child's pipes. Pickle is acceptable *only* because the child runs nothing but this package and
bfcl-eval (never dataset tool code: that goes to :mod:`.sandbox_pool`, whose frames are JSON).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from .sandbox_worker import read_exact

_HDR = 4


class CallTimeout(Exception):
    """The call did not finish within its limit; its process was killed (state it held is lost)."""


class WorkerLost(Exception):
    """The child process died or answered garbage during the call."""


@dataclass
class TrustedPoolConfig:
    """Size and limits of a :class:`TrustedPool`."""

    workers: int = 2  # warm child processes; calls beyond that wait in a queue
    startup_timeout_s: float = 60.0  # a child that is not ready by then counts as lost
    memory_mb: int = 4096  # RLIMIT_AS of each child (MiB): a call that allocates past it gets MemoryError
    python: str = sys.executable  # interpreter of the children (must import this package)

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"trusted pool: workers={self.workers!r} must be an integer >= 1")
        if not self.startup_timeout_s > 0:
            raise ValueError(f"trusted pool: startup_timeout_s={self.startup_timeout_s!r} must be > 0")
        if not isinstance(self.memory_mb, int) or self.memory_mb < 256:
            raise ValueError(f"trusted pool: memory_mb={self.memory_mb!r} must be an integer >= 256")


def _send(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(len(data).to_bytes(_HDR, "big") + data)
    while view:
        view = view[os.write(fd, view) :]


def _recv(fd: int, deadline: float | None) -> Any:
    """One pickled object; raises EOFError on a closed pipe, TimeoutError past ``deadline``."""
    hdr = read_exact(fd, _HDR, deadline)
    if hdr is None:
        raise EOFError
    data = read_exact(fd, int.from_bytes(hdr, "big"), deadline)
    if data is None:
        raise EOFError
    return pickle.loads(data)


class _Child:
    def __init__(self, config: TrustedPoolConfig):
        self.proc = subprocess.Popen(
            [config.python, "-m", "verl_toolmaster.envs.trusted_pool", str(config.memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C of the trainer's terminal is the trainer's to handle
        )
        self.wfd, self.rfd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        try:
            hello = _recv(self.rfd, time.monotonic() + config.startup_timeout_s)
        except (TimeoutError, EOFError, pickle.UnpicklingError) as e:
            self.kill()
            raise WorkerLost(f"trusted worker did not start ({type(e).__name__})") from None
        if hello != "ready":
            self.kill()
            raise WorkerLost("trusted worker sent a bad handshake")

    def run(self, job: tuple[str, tuple, dict], deadline: float) -> Any:
        try:
            _send(self.wfd, job)
            ok, value = _recv(self.rfd, deadline)
        except TimeoutError:
            raise CallTimeout from None
        except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
            raise WorkerLost(f"trusted worker died during the call ({type(e).__name__})") from None
        if ok:
            return value
        raise value

    def kill(self) -> None:
        kill_process(self.proc)


def kill_process(proc: subprocess.Popen) -> None:
    """SIGKILL a pool's child, reap it and close its pipes (shared with :mod:`.sandbox_pool`)."""
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()
    for f in (proc.stdin, proc.stdout):
        try:
            f.close()
        except OSError:
            pass


_LIVE: "weakref.WeakSet[ServingThreads]" = weakref.WeakSet()


class ServingThreads:
    """One daemon thread per slot running ``self._serve(slot)`` on jobs from one queue (``None`` stops a thread).
    Shared by :class:`TrustedPool` and :class:`~.sandbox_pool.SandboxPool`."""

    def __init__(self, size: int, name: str):
        self.size, self._name = size, name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self.pid = os.getpid()
        _LIVE.add(self)  # closed at exit

    def _serve(self, slot: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _start(self) -> None:
        if self._threads:
            return
        with self._lock:
            if self._threads or self._closed:
                return
            for i in range(self.size):
                t = threading.Thread(target=self._serve, args=(i,), name=f"{self._name}-{i}", daemon=True)
                t.start()
                self._threads.append(t)

    def _stop_threads(self, join_s: float) -> bool:
        """Mark closed and stop the serving threads; False when it was closed already."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout=join_s)
        return True


class TrustedPool(ServingThreads):
    """Serve jobs on warm children, one serving thread per child; a timed-out child is killed and replaced."""

    def __init__(self, config: TrustedPoolConfig | None = None):
        self.config = config or TrustedPoolConfig()
        super().__init__(self.config.workers, "toolmaster-trusted")
        self.stats = {"calls": 0, "timeouts": 0, "lost": 0, "starts": 0}
        self._children: list[_Child | None] = [None] * self.config.workers

    def submit(self, fn: str, *args: Any, timeout_s: float, **kwargs: Any) -> concurrent.futures.Future:
        """Queue ``fn(*args, **kwargs)``; the limit counts from when a child takes the job."""
        if self._closed:
            raise RuntimeError("the trusted pool is closed")
        self._start()
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put(((fn, args, kwargs), timeout_s, fut))
        return fut

    async def call(self, fn: str, *args: Any, timeout_s: float, **kwargs: Any) -> Any:
        return await asyncio.wrap_future(self.submit(fn, *args, timeout_s=timeout_s, **kwargs))

    def child_pids(self) -> list[int]:
        return [c.proc.pid for c in self._children if c is not None]

    def close(self) -> None:
        if not self._stop_threads(join_s=5):
            return
        for i, c in enumerate(self._children):
            if c is not None:
                c.kill()
                self._children[i] = None

    def _serve(self, slot: int) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, timeout_s, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                child = self._children[slot]
                if child is None:
                    child = self._children[slot] = _Child(self.config)
                    self._count("starts")
                fut.set_result(child.run(job, time.monotonic() + timeout_s))
            except (CallTimeout, WorkerLost) as e:
                self._count("timeouts" if isinstance(e, CallTimeout) else "lost")
                child = self._children[slot]
                if child is not None:
                    child.kill()
                    self._children[slot] = None
                fut.set_exception(e)
            except BaseException as e:  # noqa: BLE001 - the job's own exception, re-raised in the caller
                fut.set_exception(e)
            self._count("calls")

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1


_SHARED: dict[tuple[Any, ...], TrustedPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(config: TrustedPoolConfig) -> TrustedPool:
    """This process's pool for ``config`` (a forked child gets its own)."""
    key = (config.workers, config.startup_timeout_s, config.memory_mb, config.python)
    with _SHARED_LOCK:
        pool = _SHARED.get(key)
        if pool is None or pool.pid != os.getpid() or pool._closed:
            pool = _SHARED[key] = TrustedPool(config)
        return pool


@atexit.register
def _close_all() -> None:
    """Close every pool of this process (trusted and sandbox) at interpreter exit."""
    for pool in list(_LIVE):
        if pool.pid == os.getpid():
            pool.close()


def _resolve(path: str) -> Any:
    import importlib

    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def main() -> None:
    """The child: read ``(fn, args, kwargs)`` jobs, answer ``(True, result)`` or ``(False, exception)``."""
    from .sandbox_worker import PR_SET_PDEATHSIG, _prctl

    _prctl(PR_SET_PDEATHSIG, 9)  # never outlive the trainer, even inside a call that never returns
    import resource

    limit = int(sys.argv[1]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # prints of the called code must not corrupt a frame
    _send(wfd, "ready")
    while True:
        try:
            fn, args, kwargs = _recv(rfd, None)
        except EOFError:
            return
        try:
            reply = (True, _resolve(fn)(*args, **kwargs))
            pickle.dumps(reply)
        except BaseException as e:  # noqa: BLE001 - sent back to the caller
            try:
                pickle.dumps(e)
                reply = (False, e)
            except Exception:  # noqa: BLE001 - an exception that does not pickle travels as its text
                reply = (False, RuntimeError(f"{type(e).__name__}: {e}"))
        _send(wfd, reply)


if __name__ == "__main__":
    main()
