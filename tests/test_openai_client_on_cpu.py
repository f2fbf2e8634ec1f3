"""The shared OpenAI-compatible client (verl_toolmaster/openai_client.py): which failures are retried, how long it
waits, what it counts and what a final failure says. Requests are scripted callables raising the openai
package's own exceptions; sleeping is recorded, not done. The eval and synth tests run it against fake servers."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from verl_toolmaster.openai_client import OpenAIEndpoint, RequestFailed, RetryPolicy

REQUEST = httpx.Request("POST", "http://fake/v1/completions")


def status_error(status: int, retry_after: str | None = None) -> openai.APIStatusError:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    response = httpx.Response(status, request=REQUEST, headers=headers, json={"error": f"status {status}"})
    return openai.APIStatusError(f"Error code: {status}", response=response, body={"error": f"status {status}"})


def connection_error() -> openai.APIConnectionError:
    try:
        raise httpx.ConnectError("All connection attempts failed")
    except httpx.ConnectError as cause:
        err = openai.APIConnectionError(request=REQUEST)
        err.__cause__ = cause
        return err


def run(failures: list[BaseException | None], retry: RetryPolicy) -> tuple[OpenAIEndpoint, list[float], object]:
    """Call a request that raises ``failures`` in turn, then answers "ok"; returns the endpoint, the waits and
    the result (or the RequestFailed raised)."""
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    async def main():
        ep = OpenAIEndpoint("http://fake/v1", "EMPTY", timeout_s=5, retry=retry, sleep=sleep)
        script = iter(failures)

        async def make(client):
            assert isinstance(client, openai.AsyncOpenAI) and client.max_retries == 0  # the package's own retries are off
            err = next(script, None)
            if err is not None:
                raise err
            return "ok"

        try:
            result = await ep.request(make)
        except RequestFailed as e:
            result = e
        await ep.close()
        return ep, result

    ep, result = asyncio.run(main())
    return ep, waits, result


def test_transient_failures_are_retried_with_growing_backoff_and_counted():
    retry = RetryPolicy(max_retries=4, backoff_s=1.0, backoff_max_s=3.0)
    ep, waits, result = run([status_error(429), status_error(503), openai.APITimeoutError(REQUEST), connection_error()], retry)
    assert result == "ok" and ep.requests == 1
    assert ep.retries == {"429": 1, "5xx": 1, "timeout": 1, "connection": 1}
    bounds = [(0.5, 1.0), (1.0, 2.0), (1.5, 3.0), (1.5, 3.0)]  # base 1, 2, 4 -> capped 3; jitter in [0.5, 1]
    assert all(lo <= w <= hi for w, (lo, hi) in zip(waits, bounds)), waits


def test_retry_after_is_honoured_up_to_the_cap():
    ep, waits, result = run([status_error(429, retry_after="7"), status_error(503, retry_after="100")],
                            RetryPolicy(max_retries=2, backoff_s=0.01, backoff_max_s=10.0))
    assert result == "ok" and waits == [7.0, 10.0]


def test_exhausted_retries_say_so():
    ep, waits, result = run([status_error(500)] * 3, RetryPolicy(max_retries=2, backoff_s=0.0))
    assert isinstance(result, RequestFailed)
    assert (result.kind, result.status, result.transient, result.retries) == ("5xx", 500, True, 2)
    assert "status 500" in result.detail and not result.refused and ep.retries == {"5xx": 2} and ep.requests == 0


@pytest.mark.parametrize("status, kind, refused", [(400, "bad_request", False), (401, "http_401", True), (404, "http_404", True), (422, "http_422", False)])
def test_errors_no_retry_fixes_are_raised_at_once(status, kind, refused):
    ep, waits, result = run([status_error(status)], RetryPolicy(max_retries=5))
    assert isinstance(result, RequestFailed) and waits == [] and not ep.retries
    assert (result.kind, result.status, result.transient, result.retries, result.refused) == (kind, status, False, 0, refused)


def test_an_unreachable_endpoint_names_the_cause():
    ep, waits, result = run([connection_error()], RetryPolicy(max_retries=0))
    assert isinstance(result, RequestFailed) and result.kind == "connection" and result.transient and result.status is None
    assert result.detail == "ConnectError: All connection attempts failed"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="timeout"):
        OpenAIEndpoint("http://fake/v1", "EMPTY", timeout_s=0, retry=RetryPolicy())
