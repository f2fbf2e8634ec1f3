"""The LLM teacher: any OpenAI-compatible endpoint plays the policy inside the real agent loop.

Two ways to talk to the endpoint (``EndpointConfig.api``):

* ``completions`` - the loop's own prompt (its token ids, decoded with special tokens kept) goes to
  ``/v1/completions`` and the returned text becomes the turn. Token-exact: the teacher sees precisely what the RL
  policy would see. Needs the teacher's tokenizer locally (``--tokenizer``), e.g. for ``vllm serve`` of an open model.
* ``chat`` - the loop's conversation goes to ``/v1/chat/completions``. Assistant turns are sent as the text the
  model wrote (phase tag plus ``<tool_call>`` blocks, as the chat template renders them) and tool results as a user
  message of ``<tool_response>`` blocks (how Qwen-style templates present them), so the history is the same text
  whether or not the server parses tool calls. Tools go in the ``tools`` field (``tools_in="param"``) or into the
  system message (``"system"``, for servers that reject names such as ``spotify.play``). Structured ``tool_calls`` in
  a reply are rendered back into ``<tool_call>`` text, so the loop's parser judges every reply the same way.

Requests go through the project's shared OpenAI client (:mod:`verl_toolmaster.openai_client`): retried with
exponential backoff and jitter (honouring ``Retry-After``) on 429, 5xx, 408/409, timeouts and connection errors; the
retries are counted. Errors that no retry fixes end the item (400: the item is dropped) or the whole run
(401/403/404: wrong key, model or URL).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from verl_toolmaster.openai_client import OpenAIEndpoint, RequestFailed, RetryPolicy
from verl_toolmaster.protocol.render import tool_call_text
from verl_toolmaster.protocol.tags import DEFAULT_STOP_STRINGS

from .driver import Reply, TurnRequest
from .quality import message_text
from .runner import AbortRun

APIS = ("chat", "completions")
TOOLS_IN = ("param", "system")


class EndpointFailure(Exception):
    """A request that failed for good: ``permanent`` (the endpoint refuses it) or retries exhausted (transient)."""

    def __init__(self, kind: str, detail: str, permanent: bool):
        self.kind, self.detail, self.permanent = kind, detail, permanent
        super().__init__(f"{kind}: {detail}")


class FatalEndpointError(AbortRun):
    """Every request would fail (authentication, permissions, unknown model or URL): the run stops."""


@dataclass(frozen=True)
class EndpointConfig:
    """How to reach and sample the teacher model."""

    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str  # model name the endpoint serves
    api_key: str  # sent as the bearer token ("EMPTY" for local servers without auth)
    api: str = "chat"  # "chat" (/v1/chat/completions) or "completions" (/v1/completions with the loop's own prompt)
    tools_in: str = "param"  # chat only: tools in the request's "tools" field ("param") or in the system message ("system")
    temperature: float = 0.7  # sampling temperature
    top_p: float = 1.0  # nucleus sampling
    max_tokens: int | None = 1024  # cap per assistant turn (the loop's remaining response budget also caps it)
    seed: int | None = None  # request seed, for endpoints that support reproducible sampling
    timeout_s: float = 120.0  # per request
    max_retries: int = 6  # retries of one request on 429/5xx/408/409/timeouts/connection errors
    backoff_s: float = 1.0  # first backoff; doubles per retry, with jitter in [0.5, 1] of the value
    backoff_max_s: float = 60.0  # cap of one backoff (also of a server's Retry-After)
    extra_body: dict[str, Any] = field(default_factory=dict)  # extra request fields for the server (e.g. vLLM options)

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise ValueError(f"api must be one of {APIS}, got {self.api!r}")
        if self.tools_in not in TOOLS_IN:
            raise ValueError(f"tools_in must be one of {TOOLS_IN}, got {self.tools_in!r}")
        if not self.base_url or not self.model:
            raise ValueError("the teacher endpoint needs a base URL and a model name")
        if self.max_retries < 0 or self.backoff_s < 0 or self.timeout_s <= 0:
            raise ValueError("max_retries and backoff must be >= 0 and timeout > 0")


class Endpoint:
    """The teacher's requests, through the shared :class:`~verl_toolmaster.openai_client.OpenAIEndpoint` (one
    client for all episodes, its retry policy and counters); failures become this module's outcomes."""

    def __init__(self, cfg: EndpointConfig, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.cfg = cfg
        retry = RetryPolicy(max_retries=cfg.max_retries, backoff_s=cfg.backoff_s, backoff_max_s=cfg.backoff_max_s)
        self.api = OpenAIEndpoint(cfg.base_url, cfg.api_key, timeout_s=cfg.timeout_s, retry=retry, sleep=sleep)

    @property
    def retries(self) -> Counter:
        """kind -> retries made."""
        return self.api.retries

    @property
    def requests(self) -> int:
        """Requests that got an answer."""
        return self.api.requests

    async def close(self) -> None:
        await self.api.close()

    def _sampling(self, max_tokens: int | None) -> dict[str, Any]:
        args: dict[str, Any] = {"model": self.cfg.model, "temperature": self.cfg.temperature, "top_p": self.cfg.top_p}
        if max_tokens is not None:
            args["max_tokens"] = max_tokens
        if self.cfg.seed is not None:
            args["seed"] = self.cfg.seed
        if self.cfg.extra_body:
            args["extra_body"] = dict(self.cfg.extra_body)
        return args

    async def complete(self, prompt: str, max_tokens: int | None) -> Reply:
        stop = list(DEFAULT_STOP_STRINGS)
        resp = await self._call(lambda client: client.completions.create(prompt=prompt, stop=stop, **self._sampling(max_tokens)))
        if not resp.choices:
            return Reply("", stopped=True)  # an empty reply is the model's output: the loop records a violation
        choice = resp.choices[0]
        text = choice.text or ""
        for s in stop:  # some servers include the matched stop string
            if text.endswith(s):
                text = text[: -len(s)]
        return Reply(text, stopped=choice.finish_reason != "length")

    async def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, max_tokens: int | None) -> Reply:
        args = self._sampling(max_tokens)
        if tools:
            args["tools"] = tools
        resp = await self._call(lambda client: client.chat.completions.create(messages=messages, **args))
        if not resp.choices:
            return Reply("", stopped=True)
        choice = resp.choices[0]
        message = choice.message
        text = message.content or ""
        for call in message.tool_calls or []:
            fn = call.function
            text += "\n" + tool_call_text(fn.name or "", fn.arguments or "{}")
        return Reply(text, stopped=choice.finish_reason != "length")

    async def _call(self, make: Callable[[Any], Awaitable[Any]]) -> Any:
        try:
            return await self.api.request(make)
        except RequestFailed as e:
            if e.refused:
                raise FatalEndpointError(
                    f"the teacher endpoint refused the request ({e.status}: {e.detail}); check --base-url, --model and the API key"
                ) from None
            detail = f"gave up after {e.retries} retries: {e.detail}" if e.transient else e.detail
            raise EndpointFailure(e.kind, detail, permanent=not e.transient) from None


# ------------------------------------------------------------------------------------------- the teacher


def wire_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool schemas reduced to the OpenAI function fields (BFCL docs carry a non-standard "response" key)."""
    out = []
    for t in tools:
        fn = t["function"]
        keep = {k: fn[k] for k in ("name", "description", "parameters") if k in fn}
        out.append({"type": "function", "function": keep})
    return out


def tools_note(tools: list[dict[str, Any]]) -> str:
    lines = "\n".join(json.dumps(t, ensure_ascii=False) for t in wire_tools(tools))
    return f"\n\nAvailable tools (JSON schemas, one per line):\n<tools>\n{lines}\n</tools>"


def wire_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[dict[str, str]]:
    """The loop's conversation as plain chat messages (see the module docstring); ``tools`` are appended to the
    system message when given."""
    out: list[dict[str, str]] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.append({"role": "user", "content": "\n".join(f"<tool_response>\n{c}\n</tool_response>" for c in pending)})
            pending.clear()

    for m in messages:
        role = m.get("role")
        if role == "tool":
            pending.append(str(m.get("content", "")))
            continue
        flush()
        if role == "assistant":
            out.append({"role": "assistant", "content": message_text(m)})
        else:
            out.append({"role": str(role), "content": str(m.get("content") or "")})
    flush()
    if tools:
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + tools_note(tools)}
        else:
            out.insert(0, {"role": "system", "content": tools_note(tools).lstrip()})
    return out


class LLMTeacher:
    """A :class:`~.driver.Teacher` backed by an :class:`Endpoint`. One instance per trajectory."""

    def __init__(self, endpoint: Endpoint, tokenizer: Any):
        self.endpoint = endpoint
        self.tokenizer = tokenizer

    async def reply(self, request: TurnRequest) -> Reply:
        cfg = self.endpoint.cfg
        caps = [n for n in (cfg.max_tokens, request.max_tokens) if n is not None]
        max_tokens = min(caps) if caps else None
        if cfg.api == "completions":
            prompt = self.tokenizer.decode(request.prompt_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            return await self.endpoint.complete(prompt, max_tokens)
        if cfg.tools_in == "system":
            return await self.endpoint.chat(wire_messages(request.messages, request.tools), None, max_tokens)
        return await self.endpoint.chat(wire_messages(request.messages), wire_tools(request.tools), max_tokens)
