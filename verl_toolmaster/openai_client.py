"""One client for OpenAI-compatible endpoints (``vllm serve``, hosted APIs), shared by evaluation's
``--policy openai`` and synthesis' LLM teacher.

The ``openai`` package does the HTTP (its own retries are off); :class:`OpenAIEndpoint` adds the retry policy:
429, 5xx, 408/409, timeouts and connection errors are retried with exponential backoff and jitter, honouring a
server's ``Retry-After``; every retry is counted by kind. What no retry fixes is raised at once. Every failure
that ends a request is a :class:`RequestFailed` saying what happened (kind, HTTP status, the server's message,
retries made), which each caller turns into its own outcome (eval stops the run, synthesis drops or defers the item).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

T = TypeVar("T")

RETRIED_STATUS = (408, 409, 429)  # with every 5xx: transient, worth retrying
REFUSING_STATUS = (401, 403, 404)  # wrong key, permissions, model or URL: every request would fail the same way


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before retrying a failed request."""

    max_retries: int = 2  # retries of one request on 429/5xx/408/409/timeouts/connection errors
    backoff_s: float = 1.0  # first backoff; doubles per retry, times a jitter factor in [0.5, 1]
    backoff_max_s: float = 60.0  # cap of one backoff (also of a server's Retry-After)

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ValueError("max_retries, backoff and backoff cap must be >= 0")


class RequestFailed(Exception):
    """A request that failed for good: refused by the endpoint, or still failing after the retries."""

    def __init__(self, kind: str, detail: str, *, status: int | None = None, transient: bool = False, retries: int = 0):
        self.kind = kind  # "429", "5xx", "408", "409", "timeout", "connection", "bad_request", "http_<status>", or an error class
        self.detail = detail  # the server's message (or the connection error), one line
        self.status = status  # HTTP status when the server answered
        self.transient = transient  # a retryable failure that outlasted the retries (a later run may succeed)
        self.retries = retries  # retries made before giving up
        super().__init__(f"{kind}: {detail}")

    @property
    def refused(self) -> bool:
        """The endpoint refuses every request like this one (authentication, permissions, unknown model or URL)."""
        return self.status in REFUSING_STATUS


def classify(e: BaseException) -> tuple[str, bool, float | None]:
    """(kind, retryable, Retry-After seconds) of an ``openai`` error."""
    import openai

    if isinstance(e, openai.APITimeoutError):
        return "timeout", True, None
    if isinstance(e, openai.APIConnectionError):
        return "connection", True, None
    if isinstance(e, openai.APIStatusError):
        status = e.status_code
        retry_after = None
        try:
            value = e.response.headers.get("retry-after")
            retry_after = float(value) if value is not None else None
        except (TypeError, ValueError):
            retry_after = None
        if status == 429:
            return "429", True, retry_after
        if status >= 500:
            return "5xx", True, retry_after
        if status in RETRIED_STATUS:
            return str(status), True, retry_after
        return ("bad_request" if status == 400 else f"http_{status}"), False, None
    return type(e).__name__, False, None  # e.g. a reply that is not valid JSON


def describe(e: BaseException) -> str:
    """The error's message on one line (the server's body for HTTP errors, the underlying cause for connection errors)."""
    import openai

    if isinstance(e, openai.APIStatusError):
        text = str(getattr(e, "body", "") or e.message)
    elif isinstance(e, openai.APIConnectionError) and not isinstance(e, openai.APITimeoutError) and e.__cause__ is not None:
        text = f"{type(e.__cause__).__name__}: {e.__cause__}"
    else:
        text = str(getattr(e, "message", None) or e)
    return " ".join(text.split())[:300]


class OpenAIEndpoint:
    """An ``openai.AsyncOpenAI`` client with the retry policy above; one instance serves all concurrent requests."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float, retry: RetryPolicy,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, jitter_seed: int = 0):
        import openai

        if timeout_s <= 0:
            raise ValueError("the request timeout must be > 0")
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.retry = retry
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self.requests = 0  # requests that got an answer
        self.retries: Counter = Counter()  # kind -> retries made
        self._sleep = sleep
        self._jitter = random.Random(jitter_seed)

    async def close(self) -> None:
        await self.client.close()

    async def request(self, make: Callable[[Any], Awaitable[T]]) -> T:
        """``await make(client)``, retried per the policy; raises :class:`RequestFailed` when it fails for good."""
        import openai

        attempt = 0
        while True:
            try:
                resp = await make(self.client)
            except openai.OpenAIError as e:
                kind, retryable, retry_after = classify(e)
                status = getattr(e, "status_code", None)
                if not retryable:
                    raise RequestFailed(kind, describe(e), status=status, retries=attempt) from None
                if attempt >= self.retry.max_retries:
                    raise RequestFailed(kind, describe(e), status=status, transient=True, retries=attempt) from None
                self.retries[kind] += 1
                delay = min(self.retry.backoff_max_s, self.retry.backoff_s * 2**attempt) * (0.5 + 0.5 * self._jitter.random())
                if retry_after is not None:
                    delay = max(delay, min(retry_after, self.retry.backoff_max_s))
                attempt += 1
                await self._sleep(delay)
                continue
            self.requests += 1
            return resp
