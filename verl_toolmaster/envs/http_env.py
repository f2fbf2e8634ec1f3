"""Kind ``http`` (StableToolBench): a client of StableToolBench's virtual API server (cache + simulator).

Spec payload: ``{"kind": "http", "tools": [schemas], "api_map": {tool_name: {"category", "tool_name",
"api_name"}}}``. The server URL and key come from :class:`HttpConfig` (``configure_http`` or environment
variables), never from the spec.

Wire format (StableToolBench ``server/main.py``, ``POST /virtual``): request JSON ``{"category",
"tool_name", "api_name", "tool_input": <JSON string of the arguments>, "strip", "toolbench_key"}`` with
header ``toolbench_key``; reply JSON ``{"error": str, "response": ...}``. The observation text is the reply
as JSON, as StableToolBench shows it to its agents; a non-empty ``error`` makes it an error observation.

Transport faults (refused, timeout, 429/5xx, malformed or oversized reply) are retried with exponential
backoff and jitter inside a per-call time bound; consecutive failed calls open a circuit breaker that
fails calls fast until a probe succeeds; a semaphore bounds concurrent requests. Every outcome is counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from .base import Observation, ToolEnv, check_numbers, digest, register_env
from .schemas import tool_map


@dataclass
class HttpConfig:
    """Where and how to reach the virtual API server."""

    url: str = "http://127.0.0.1:8080/virtual"  # the server's /virtual endpoint
    toolbench_key: str = ""  # sent as the toolbench_key field and header
    strip: str = "truncate"  # StableToolBench's observation compression method, passed through
    timeout_s: float = 30.0  # per attempt (connect + response)
    deadline_s: float = 90.0  # bound on one call including retries and backoff
    retries: int = 2  # extra attempts after the first, for transient faults only
    backoff_s: float = 0.5  # wait before the first retry; doubles per retry, +-25% jitter
    backoff_max_s: float = 8.0  # cap on one backoff wait
    breaker_failures: int = 5  # consecutive failed calls that open the circuit
    breaker_reset_s: float = 30.0  # open time before one probe call is let through
    max_concurrency: int = 16  # simultaneous requests per event loop
    max_response_bytes: int = 4 << 20  # larger replies count as malformed
    max_observation_chars: int = 8192  # longer observation texts are truncated with a visible marker

    def __post_init__(self) -> None:
        check_numbers(self, "http", positive=("timeout_s", "deadline_s", "backoff_max_s", "breaker_reset_s"), non_negative=("retries", "backoff_s"),
                      at_least_one=("breaker_failures", "max_concurrency", "max_response_bytes", "max_observation_chars"))

    @classmethod
    def from_env(cls) -> "HttpConfig":
        """Defaults overridden by TOOLMASTER_STB_URL, TOOLMASTER_STB_KEY, TOOLMASTER_STB_TIMEOUT."""
        cfg = cls()
        cfg.url = os.environ.get("TOOLMASTER_STB_URL", cfg.url)
        cfg.toolbench_key = os.environ.get("TOOLMASTER_STB_KEY", cfg.toolbench_key)
        if os.environ.get("TOOLMASTER_STB_TIMEOUT"):
            cfg.timeout_s = float(os.environ["TOOLMASTER_STB_TIMEOUT"])
        return cfg


@dataclass
class HttpCounters:
    """What the client did, summed over its lifetime."""

    calls: int = 0  # env calls served
    ok: int = 0  # calls answered with error == ""
    api_errors: int = 0  # calls answered with a non-empty error field
    failed: int = 0  # calls that got no usable reply (transport faults after retries)
    requests: int = 0  # HTTP attempts sent
    retries: int = 0  # attempts after the first
    timeouts: int = 0  # attempts that timed out
    connect_errors: int = 0  # attempts refused / reset / unreachable
    http_status: dict[int, int] = field(default_factory=dict)  # non-200 status -> count
    malformed: int = 0  # 200 replies that were not a JSON object (or too large)
    breaker_rejections: int = 0  # calls failed fast because the circuit was open
    breaker_trips: int = 0  # times the circuit opened


class _Transient(Exception):
    """A fault worth retrying."""


class _Permanent(Exception):
    """A fault retrying cannot fix (e.g. 4xx)."""


class VirtualApiClient:
    """One client per server; shared by every http env of the process (breaker and counters included)."""

    def __init__(self, config: HttpConfig | None = None):
        self.config = config or HttpConfig.from_env()
        self.counters = HttpCounters()
        self._lock = threading.Lock()
        self._consecutive_failures = 0
        self._open_until = 0.0
        self._probing = False
        self._semaphores: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()

    # ---------------------------------------------------------------------------------- circuit breaker
    def _admit(self) -> tuple[bool, bool]:
        """(admitted, is_probe)."""
        with self._lock:
            if self._consecutive_failures < self.config.breaker_failures:
                return True, False
            if time.monotonic() >= self._open_until and not self._probing:
                self._probing = True
                return True, True
            self.counters.breaker_rejections += 1
            return False, False

    def _settle(self, success: bool, probe: bool) -> None:
        with self._lock:
            if probe:
                self._probing = False
            if success:
                self._consecutive_failures = 0
                return
            self._consecutive_failures += 1
            if self._consecutive_failures >= self.config.breaker_failures:
                if probe or self._consecutive_failures == self.config.breaker_failures:
                    self.counters.breaker_trips += 1
                self._open_until = time.monotonic() + self.config.breaker_reset_s

    @property
    def circuit_open(self) -> bool:
        return self._consecutive_failures >= self.config.breaker_failures

    # ------------------------------------------------------------------------------------------ calls
    async def query(self, payload: dict[str, Any]) -> Observation:
        """POST one request (retries, breaker, concurrency limit). Never raises for transport faults."""
        cfg = self.config
        with self._lock:
            self.counters.calls += 1
        admitted, probe = self._admit()
        if not admitted:
            left = max(0.0, self._open_until - time.monotonic())
            return Observation(
                False,
                f"Error: the tool server {cfg.url} is unavailable (circuit open after {cfg.breaker_failures} consecutive failed calls; next probe in {left:.1f} s).",
                "http",
            )
        deadline = time.monotonic() + cfg.deadline_s
        last = "no attempt made"
        reply = None
        attempts = 0
        for attempt in range(cfg.retries + 1):
            if attempt:
                wait = min(cfg.backoff_max_s, cfg.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)
                if time.monotonic() + wait >= deadline:
                    break
                await asyncio.sleep(wait)
                with self._lock:
                    self.counters.retries += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0.01:
                last = f"{last}; the {cfg.deadline_s} s call deadline passed" if attempts else f"the {cfg.deadline_s} s call deadline passed"
                break
            attempts += 1
            try:
                reply = await self._attempt(payload, min(cfg.timeout_s, remaining))
                break
            except _Transient as e:
                last = str(e)
            except _Permanent as e:
                last = str(e)
                break
        self._settle(reply is not None, probe)
        if reply is None:
            with self._lock:
                self.counters.failed += 1
            return Observation(False, f"Error: the tool server request failed after {attempts} attempt{'s' * (attempts != 1)}: {last}.", "http")
        text = json.dumps(reply, ensure_ascii=False)
        if len(text) > cfg.max_observation_chars:
            text = text[: cfg.max_observation_chars] + f"...[truncated: {len(text) - cfg.max_observation_chars} more characters]"
        error = reply.get("error")
        with self._lock:
            if error:
                self.counters.api_errors += 1
            else:
                self.counters.ok += 1
        return Observation(not error, text, "exception" if error else None)

    async def _attempt(self, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        import aiohttp

        cfg = self.config
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            sem = self._semaphores[loop] = asyncio.Semaphore(cfg.max_concurrency)
        with self._lock:
            self.counters.requests += 1
        try:
            async with sem:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=max(timeout, 0.001))) as session:
                    async with session.post(cfg.url, json=payload, headers={"toolbench_key": cfg.toolbench_key}) as resp:
                        status = resp.status
                        body = await resp.content.read(cfg.max_response_bytes + 1)
        except asyncio.TimeoutError:
            with self._lock:
                self.counters.timeouts += 1
            raise _Transient(f"no reply within {timeout:.1f} s") from None
        except aiohttp.ClientError as e:
            with self._lock:
                self.counters.connect_errors += 1
            raise _Transient(f"cannot reach {cfg.url} ({type(e).__name__}: {e})") from None
        if status != 200:
            with self._lock:
                self.counters.http_status[status] = self.counters.http_status.get(status, 0) + 1
            if status == 429 or status >= 500:
                raise _Transient(f"HTTP {status} from {cfg.url}")
            raise _Permanent(f"HTTP {status} from {cfg.url}: {body[:200].decode('utf-8', 'replace')}")
        try:
            if len(body) > cfg.max_response_bytes:
                raise ValueError(f"reply larger than {cfg.max_response_bytes} bytes")
            reply = json.loads(body)
            if not isinstance(reply, dict):
                raise ValueError(f"reply is a JSON {type(reply).__name__}, not an object")
        except ValueError as e:
            with self._lock:
                self.counters.malformed += 1
            raise _Transient(f"malformed reply ({e})") from None
        return reply


_DEFAULT: VirtualApiClient | None = None


def configure_http(config: HttpConfig) -> VirtualApiClient:
    """Set the process-wide client used by http envs built without an explicit client."""
    global _DEFAULT
    _DEFAULT = VirtualApiClient(config)
    return _DEFAULT


def get_client() -> VirtualApiClient:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = VirtualApiClient(HttpConfig.from_env())
    return _DEFAULT


@register_env("http")
class HttpEnv(ToolEnv):
    """StableToolBench tools served by the virtual API server."""

    def __init__(self, spec: dict[str, Any], client: VirtualApiClient | None = None):
        super().__init__(spec)
        self._tools = tool_map(spec.get("tools", []), "http environment")
        api_map = spec.get("api_map")
        if not isinstance(api_map, dict):
            raise ValueError(f"http environment: 'api_map' must map tool names to {{category, tool_name, api_name}}, got {type(api_map).__name__}")
        for name in self._tools:
            entry = api_map.get(name)
            if not isinstance(entry, dict) or any(not isinstance(entry.get(k), str) for k in ("category", "tool_name", "api_name")):
                raise ValueError(f"http environment: api_map entry of tool {name!r} needs string category, tool_name and api_name, got {entry!r}")
        self._api_map: dict[str, dict[str, str]] = api_map
        self._client = client

    @property
    def client(self) -> VirtualApiClient:
        return self._client or get_client()

    def tools(self) -> list[dict[str, Any]]:
        return list(self._tools.values())

    async def call(self, name: str, arguments: dict[str, Any] | str) -> Observation:
        started = time.perf_counter()
        args, err = self._checked(name, arguments, self._tools)
        if err is not None:
            return self._finish(err, started)
        api = self._api_map[name]
        client = self.client
        payload = {
            "category": api["category"],
            "tool_name": api["tool_name"],
            "api_name": api["api_name"],
            "tool_input": json.dumps(args, ensure_ascii=False),
            "strip": client.config.strip,
            "toolbench_key": client.config.toolbench_key,
        }
        return self._finish(await client.query(payload), started)

    def fork(self) -> "HttpEnv":
        twin = HttpEnv.__new__(HttpEnv)
        ToolEnv.__init__(twin, self.spec)
        twin._tools, twin._api_map, twin._client, twin.turn = self._tools, self._api_map, self._client, self.turn
        return twin

    def fingerprint(self, name: str) -> str:
        return digest({"kind": self.kind, "api": self._api_map.get(name)})
