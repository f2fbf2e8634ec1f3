"""The process-wide pool of warm sandbox workers that runs untrusted Python tools (see ``sandbox_worker``).

One pool per trainer process, started lazily on the first call and shut down at exit. Every environment and
trajectory shares it. Each worker is served by one thread of this process that forwards jobs from a shared
queue over the worker's pipes, so callers on any event loop (or none) can submit concurrently: an async
caller awaits a ``concurrent.futures.Future``. A worker that dies, hangs or answers garbage is killed and
replaced, and the call gets an error result; the trainer process itself never executes tool code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .base import check_numbers
from .sandbox_worker import DIR_PREFIX, read_frame
from .trusted_pool import ServingThreads, kill_process

WORKER_SCRIPT = Path(__file__).with_name("sandbox_worker.py")
_TAGGED_DIR = re.compile(re.escape(DIR_PREFIX) + r"(\d+)\.(\d+)-")
logger = logging.getLogger(__name__)


def process_tag(pid: int) -> str | None:
    """``pid.starttime`` (from ``/proc``): names a process across pid reuse; None if it is gone or there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid}.{stat.rsplit(')', 1)[1].split()[19]}"  # field 22, counted after the command name


def remove_stale_dirs(temp_root: str | None) -> int:
    """Remove the workers' temp dirs whose owning pool process is gone; returns how many.

    A pool's process can die without closing it (Ray kills its actors at the end of a job), and its workers die
    with it (``PR_SET_PDEATHSIG``) before they can clean up. Each dir is named after its pool's :func:`process_tag`,
    so the next pool on the machine can tell them apart from a live pool's."""
    root = temp_root or tempfile.gettempdir()
    removed = 0
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    for name in names:
        m = _TAGGED_DIR.match(name)
        if m and process_tag(int(m.group(1))) != f"{m.group(1)}.{m.group(2)}":
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            removed += not os.path.exists(os.path.join(root, name))
    return removed


@dataclass
class SandboxLimits:
    """Per-call limits, applied in the tool's own process."""

    timeout_s: float = 5.0  # wall-clock limit per call; the tool process is killed after it
    cpu_s: float = 5.0  # RLIMIT_CPU of the tool process (rounded up to whole seconds)
    memory_mb: int = 1024  # RLIMIT_AS of the tool process (address space, MiB)
    file_size_mb: int = 16  # RLIMIT_FSIZE: largest file the tool may write, fd-level stdout included
    max_processes: int = 64  # RLIMIT_NPROC (bites for non-root users; the seccomp filter blocks fork anyway)
    max_open_files: int = 64  # RLIMIT_NOFILE of the tool process
    max_print_chars: int = 1 << 20  # printing more than this is a "resource" error
    max_result_chars: int = 65536  # longer observation texts are truncated with a visible marker

    def __post_init__(self) -> None:
        check_numbers(self, "sandbox limits", positive=("timeout_s", "cpu_s"),
                      at_least_one=("memory_mb", "file_size_mb", "max_processes", "max_open_files", "max_print_chars", "max_result_chars"))


@dataclass
class SandboxConfig:
    """How the pool is built. ``configure_pool`` sets the process default before the first call."""

    workers: int = 0  # warm worker processes; 0 means os.cpu_count()
    limits: SandboxLimits = field(default_factory=SandboxLimits)  # per-call limits
    network_namespace: bool = True  # unshare an empty network namespace in each worker when permitted
    landlock: bool = True  # confine writes to the call's directory (and TCP, signals) with Landlock
    seccomp: bool = True  # seccomp filter: no sockets, no fork/exec, no namespaces/ptrace/io_uring
    drop_privileges: bool = True  # when the trainer is root, tools run as uid/gid 65534 (nobody)
    temp_root: str | None = None  # parent of the workers' private temp dirs; None = system temp dir
    python: str = sys.executable  # interpreter for the workers (tools can import what it has installed)
    max_calls_per_worker: int = 5000  # a worker retires after this many calls (bounds leaks and tampering)
    startup_timeout_s: float = 30.0  # a worker that is not ready by then counts as failed
    grace_s: float = 2.0  # wait beyond timeout_s before the pool declares a worker hung and replaces it

    def __post_init__(self) -> None:
        check_numbers(self, "sandbox", positive=("startup_timeout_s",), non_negative=("workers", "grace_s"), at_least_one=("max_calls_per_worker",))
        if not isinstance(self.limits, SandboxLimits):
            raise ValueError(f"sandbox: limits must be a SandboxLimits, got {type(self.limits).__name__}")


class _WorkerFailure(Exception):
    def __init__(self, kind: str, text: str, delivered: bool = True):
        super().__init__(text)
        self.kind, self.text = kind, text
        self.delivered = delivered  # False: the request never reached the worker, so it is safe to resend


class _Worker:
    """One worker process as seen from its serving thread."""

    def __init__(self, config: SandboxConfig):
        cfg = {
            "limits": asdict(config.limits),
            "network_namespace": config.network_namespace,
            "landlock": config.landlock,
            "seccomp": config.seccomp,
            "drop_privileges": config.drop_privileges,
            "temp_root": config.temp_root,
            "parent_pid": os.getpid(),
            "max_calls": config.max_calls_per_worker,
            "max_request_bytes": 64 << 20,
            "max_result_bytes": 6 * config.limits.max_result_chars + (64 << 10),
        }
        self.max_reply = cfg["max_result_bytes"] + (64 << 10)
        # The pool creates the worker's private dir, so it can always remove it, even if the worker dies
        # before its handshake.
        tag = process_tag(os.getpid())
        self.base_dir = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{tag}-" if tag else DIR_PREFIX, dir=config.temp_root)
        cfg["base_dir"] = self.base_dir
        # Minimal environment: tools must not see the trainer's secrets (API keys, tokens).
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            [config.python, "-I", str(WORKER_SCRIPT), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
            start_new_session=True,
        )
        self.wfd, self.rfd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        try:
            hello = read_frame(self.rfd, 1 << 20, time.monotonic() + config.startup_timeout_s)
        except TimeoutError:
            self.kill()
            raise _WorkerFailure("resource", f"sandbox worker did not start within {config.startup_timeout_s} s") from None
        if not hello or not hello.get("ready"):
            code = self.proc.poll()
            self.kill()
            raise _WorkerFailure("resource", f"sandbox worker failed to start (exit status {code}; see its stderr)")
        self.isolation: dict[str, Any] = hello["isolation"]

    def exchange(self, payload: bytes, deadline: float) -> dict:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(self.wfd, view) :]
        except (BrokenPipeError, OSError) as e:
            raise _WorkerFailure("resource", f"sandbox worker is gone ({e})", delivered=False) from None
        try:
            reply = read_frame(self.rfd, self.max_reply, deadline)
        except TimeoutError:
            raise _WorkerFailure("timeout", "the sandbox worker stopped responding and was replaced") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise _WorkerFailure("resource", f"the sandbox worker sent a malformed reply ({e}) and was replaced") from None
        if reply is None:
            raise _WorkerFailure("resource", f"the sandbox worker died during the call ({self.exit_reason()}) and was replaced")
        return reply

    def exit_reason(self) -> str:
        try:
            code = self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "it closed its pipe"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name}" + (", the CPU time limit" if name == "SIGXCPU" else "")
        return f"exit status {code}"

    def kill(self) -> None:
        kill_process(self.proc)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def stop(self, wait_s: float = 2.0) -> None:
        """Polite shutdown: EOF on stdin makes the worker clean its temp dir and exit."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=wait_s)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class SandboxPool(ServingThreads):
    """Warm sandbox workers shared by all Python tool environments of this process."""

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        super().__init__(self.config.workers or os.cpu_count() or 1, "toolmaster-sandbox")
        self._workers: list[_Worker | None] = [None] * self.size
        self._ready = threading.Event()
        self.isolation: dict[str, Any] | None = None  # what the workers could enforce (from their handshake)
        self.stats = {"calls": 0, "errors": 0, "worker_starts": 0, "worker_replacements": 0, "worker_retirements": 0}
        self._swept = False

    # ---------------------------------------------------------------------------------------- public API
    def submit(self, fn: str, code: str, kwargs: dict[str, Any]) -> concurrent.futures.Future:
        """Queue one call; the future resolves to ``{"ok", "text", "error_kind"}`` (never raises for tool faults)."""
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        self._start()
        fut: concurrent.futures.Future = concurrent.futures.Future()
        data = json.dumps({"fn": fn, "code": code, "kwargs": kwargs}, ensure_ascii=False).encode("utf-8")
        self._jobs.put((len(data).to_bytes(4, "big") + data, fut, fn))
        return fut

    async def call(self, fn: str, code: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.wrap_future(self.submit(fn, code, kwargs))

    def call_sync(self, fn: str, code: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        return self.submit(fn, code, kwargs).result()

    def wait_ready(self, timeout: float | None = None) -> dict[str, Any]:
        """Start the workers and block until one is ready; returns the isolation report."""
        self._start()
        if not self._ready.wait(timeout if timeout is not None else self.config.startup_timeout_s + 5):
            raise RuntimeError("no sandbox worker became ready")
        return self.isolation or {}

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w is not None]

    def close(self) -> None:
        """Stop the workers (they remove their temp dirs) and the serving threads. Idempotent."""
        if not self._stop_threads(join_s=self.config.limits.timeout_s + self.config.grace_s + 3):
            return
        for i, w in enumerate(self._workers):
            if w is not None:
                w.stop()
                self._workers[i] = None
        while True:  # anything still queued gets an answer rather than hanging its caller
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and job[1].set_running_or_notify_cancel():
                job[1].set_result({"ok": False, "error_kind": "resource", "text": "Error: the sandbox pool was shut down."})

    # ---------------------------------------------------------------------------------------- internals
    def _start(self) -> None:
        if not self._swept:  # once per pool, before its own workers make dirs
            self._swept = True
            if removed := remove_stale_dirs(self.config.temp_root):
                logger.info("removed %d temp dirs of sandbox pools whose processes are gone", removed)
        super()._start()

    def _spawn(self, slot: int) -> _Worker:
        w = _Worker(self.config)
        self._workers[slot] = w
        with self._lock:
            self.stats["worker_starts"] += 1
            if self.isolation is None:
                self.isolation = w.isolation
                _warn_missing_layers(w.isolation)
        self._ready.set()
        return w

    def _serve(self, slot: int) -> None:
        worker: _Worker | None = None
        try:
            worker = self._spawn(slot)
        except _WorkerFailure:
            worker = None  # retried on the first job; that job gets the error if it fails again
        limits = self.config.limits
        while True:
            job = self._jobs.get()
            if job is None:
                break
            payload, fut, fn = job
            if not fut.set_running_or_notify_cancel():
                continue
            res = None
            for attempt in (0, 1):
                try:
                    if worker is None:
                        worker = self._spawn(slot)
                    res = worker.exchange(payload, time.monotonic() + limits.timeout_s + self.config.grace_s)
                    break
                except _WorkerFailure as e:
                    if worker is not None:
                        worker.kill()
                        self._workers[slot] = worker = None
                        with self._lock:
                            self.stats["worker_replacements"] += 1
                    if e.delivered or attempt == 1:
                        res = {"ok": False, "error_kind": e.kind, "text": f"Error: tool {fn!r} failed: {e.text}."}
                        break
                except Exception as e:  # noqa: BLE001 - e.g. the interpreter cannot be started at all
                    res = {"ok": False, "error_kind": "resource", "text": f"Error: the sandbox is unavailable: {type(e).__name__}: {e}"}
                    break
            retire = res.pop("retire", None)
            with self._lock:
                self.stats["calls"] += 1
                self.stats["errors"] += 0 if res.get("ok") else 1
                if retire:
                    self.stats["worker_retirements"] += 1
            fut.set_result(res)
            if retire and worker is not None:  # it exits after answering; start its successor now
                worker.stop()
                self._workers[slot] = worker = None
                try:
                    worker = self._spawn(slot)
                except _WorkerFailure:
                    worker = None
        if worker is not None:
            worker.stop()
            self._workers[slot] = None


_WARNED_LAYERS: set[str] = set()


def missing_layers(isolation: dict[str, Any]) -> list[str]:
    """The protections the workers run without (unavailable, weak or switched off), as report lines."""
    return [f"{k}: {v}" for k, v in isolation.items() if k in ("network", "filesystem", "seccomp") and
            any(w in str(v) for w in ("unavailable", "weak", "disabled"))]


def _warn_missing_layers(isolation: dict[str, Any]) -> None:
    """Say once per process which protection the sandbox runs without (docs/environments.md: what still holds)."""
    missing = [m for m in missing_layers(isolation) if m not in _WARNED_LAYERS]
    if missing:
        _WARNED_LAYERS.update(missing)
        logger.warning("the tool sandbox runs without: %s (the other layers still apply; docs/environments.md)", "; ".join(missing))


_DEFAULT: SandboxPool | None = None
_DEFAULT_CONFIG = SandboxConfig()
_DEFAULT_LOCK = threading.Lock()


def configure_pool(config: SandboxConfig) -> None:
    """Set the configuration of this process's shared pool (closes a running one; the next call restarts it)."""
    global _DEFAULT, _DEFAULT_CONFIG
    with _DEFAULT_LOCK:
        _DEFAULT_CONFIG = config
        old, _DEFAULT = _DEFAULT, None
    if old is not None and old.pid == os.getpid():
        old.close()


def get_pool() -> SandboxPool:
    """This process's shared pool (created lazily; a forked child process gets its own)."""
    global _DEFAULT
    pool = _DEFAULT
    if pool is not None and pool.pid == os.getpid() and not pool._closed:
        return pool
    with _DEFAULT_LOCK:
        if _DEFAULT is None or _DEFAULT.pid != os.getpid() or _DEFAULT._closed:
            _DEFAULT = SandboxPool(_DEFAULT_CONFIG)
        return _DEFAULT

