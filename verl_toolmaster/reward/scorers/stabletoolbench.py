"""StableToolBench: an LLM judge over an OpenAI-compatible endpoint, or an offline relevant-API-selection proxy.

StableToolBench's own metric (solvable pass rate) needs a judge model; its tools need a virtual API server.
Offline neither exists, so the default is a *proxy*: how well the executed calls select the query's relevant
APIs. Its metric is named ``api_selection_proxy`` and its reasons start with ``proxy_`` so a proxy number is
never mistaken for a pass rate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from .base import Episode, Scorer, ScoreResult, register_scorer

logger = logging.getLogger(__name__)

JUDGE_MODES = ("proxy", "judge", "auto")
# StableToolBench's pass rate counts "Unsure" as half a pass.
_STATUS_VALUE = {"solved": 1.0, "unsure": 0.5, "unsolved": 0.0}


class JudgeConfigError(ValueError):
    """The StableToolBench judge is required but not configured (raised when the reward manager starts)."""


@dataclass
class JudgeConfig:
    """``reward.reward_kwargs.judge``: how StableToolBench rows are scored."""

    # "proxy": offline relevant-API-selection proxy (default; no network). "judge": LLM judge, required -
    # a missing base_url/model is a start-up error. "auto": the judge when base_url and model are set, else the proxy.
    mode: str = "proxy"
    base_url: str | None = None  # OpenAI-compatible endpoint, e.g. "http://localhost:8000/v1" (`vllm serve`)
    model: str | None = None  # model name the endpoint serves
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the API key; "EMPTY" is sent when unset
    timeout_s: float = 60.0  # per request
    max_retries: int = 2  # the openai client's retries on connection errors, 429 and 5xx
    temperature: float = 0.0  # judge sampling temperature
    max_tokens: int = 256  # judge reply budget
    max_concurrency: int = 8  # concurrent judge requests per reward worker
    max_observation_chars: int = 600  # each tool observation is cut to this many characters in the judge prompt

    def __post_init__(self) -> None:
        if self.mode not in JUDGE_MODES:
            raise JudgeConfigError(f"reward_kwargs.judge.mode must be one of {JUDGE_MODES}, got {self.mode!r}")
        if self.mode == "judge" and not (self.base_url and self.model):
            raise JudgeConfigError(
                "reward_kwargs.judge.mode='judge' needs judge.base_url and judge.model (an OpenAI-compatible "
                "endpoint); set them, or use mode='proxy' for the offline api_selection_proxy"
            )

    @property
    def active(self) -> bool:
        return self.mode != "proxy" and bool(self.base_url and self.model)


def toolbench_function_name(tool_name: str, api_name: str) -> str:
    """ToolBench's function-name convention ``<api>_for_<tool>`` (standardised, last 64 characters)."""

    def standardize(s: str) -> str:
        s = re.sub(r"[^\u4e00-\u9fa5a-zA-Z0-9_]", "_", s)
        s = re.sub(r"_+", "_", s).lower().strip("_")
        return f"get_{s}" if s[:1].isdigit() else s

    api = standardize(api_name)
    if api in {"from", "class", "return", "false", "true", "id", "and"}:
        api = f"is_{api}"
    return f"{api}_for_{standardize(tool_name)}"[-64:]


def _api_of(name: str, api_map: dict[str, Any]) -> tuple[str, str] | None:
    """(tool, api) as the query file's "relevant APIs" name them: the api_map entry's ``source_*`` names
    (the adapter standardises ``tool_name``/``api_name`` for the API server), else its plain names."""
    entry = api_map.get(name)
    if not isinstance(entry, dict):
        return None
    if "source_tool_name" in entry and "source_api_name" in entry:
        return entry["source_tool_name"], entry["source_api_name"]
    if "tool_name" in entry and "api_name" in entry:
        return entry["tool_name"], entry["api_name"]
    return None


JUDGE_SYSTEM = (
    "You grade whether an AI assistant solved a user's query with tools. You see the query, the tool calls the "
    "assistant executed with (truncated) results, and its final answer. The query is Solved when the final answer "
    "addresses every request in the query with information supported by the tool results; Unsolved when it "
    "misses or fabricates something, gives up, or has no final answer; Unsure when the results do not let you tell. "
    'Reply with JSON only: {"answer_status": "Solved" | "Unsolved" | "Unsure", "reason": "<one sentence>"}'
)


@register_scorer("stabletoolbench")
class StableToolBenchScorer(Scorer):
    """Ground truth: ``{"query": str, "relevant_apis": [[tool_name, api_name], ...]}``.

    Proxy (default): selected APIs = the distinct (tool, api) pairs named by execute-phase calls (mapped through
    the env spec's ``api_map``, else ToolBench's ``<api>_for_<tool>`` naming); ``api_selection_proxy`` = F1 of
    selected vs relevant; ``answer`` = that F1 when the episode gave a final answer, else 0.
    Judge: ``answer`` = 1 / 0.5 / 0 for Solved / Unsure / Unsolved (StableToolBench's pass-rate weights).
    """

    detail_keys = (
        "stabletoolbench/api_selection_proxy",
        "stabletoolbench/api_recall_proxy",
        "stabletoolbench/api_precision_proxy",
        "stabletoolbench/judge_solved",
    )
    needs_env_spec = True

    def __init__(self, judge: JudgeConfig | None = None):
        self.judge = judge or JudgeConfig()
        self._async_clients: dict[int, Any] = {}
        self._semaphores: dict[int, asyncio.Semaphore] = {}
        self._sync_client: Any = None

    # ------------------------------------------------------------ proxy

    def proxy(self, ground_truth: dict[str, Any], episode: Episode) -> tuple[ScoreResult, dict[str, Any]]:
        relevant = {tuple(p) for p in ground_truth["relevant_apis"]}
        if not relevant or not all(len(p) == 2 for p in relevant):
            raise ValueError("stabletoolbench ground truth 'relevant_apis' must be a non-empty list of [tool, api] pairs")
        api_map = (episode.env_spec or {}).get("api_map") or {}
        by_function = {toolbench_function_name(t, a): (t, a) for t, a in relevant}
        selected = set()
        for c in episode.execute_calls():
            api = _api_of(c["name"], api_map) if api_map else by_function.get(c["name"])
            selected.add(api if api is not None else ("?", c["name"]))
        hit = len(selected & relevant)
        precision = hit / len(selected) if selected else 0.0
        recall = hit / len(relevant)
        f1 = 2 * precision * recall / (precision + recall) if hit else 0.0
        details: dict[str, Any] = {
            "stabletoolbench/api_selection_proxy": f1,
            "stabletoolbench/api_recall_proxy": recall,
            "stabletoolbench/api_precision_proxy": precision,
            "stabletoolbench/judge_solved": None,
        }
        if not any(a and a.strip() for a in episode.answers):
            return ScoreResult(0.0, "no_answer", details), details
        if f1 >= 1.0 - 1e-12:
            return ScoreResult(1.0, "proxy_all_relevant_apis", details), details
        return ScoreResult(f1, "proxy_partial_api_selection" if f1 > 0 else "proxy_no_relevant_api", details), details

    # ------------------------------------------------------------ judge

    def judge_messages(self, ground_truth: dict[str, Any], episode: Episode) -> list[dict[str, str]]:
        cut = self.judge.max_observation_chars
        lines = []
        for i, c in enumerate(episode.execute_calls()):
            args = c["arguments"] if isinstance(c["arguments"], str) else json.dumps(c["arguments"], ensure_ascii=False)
            text = str(c.get("text", ""))
            text = text if len(text) <= cut else text[:cut] + " ...[truncated]"
            lines.append(f"{i + 1}. {c['name']}({args}) -> {'ok' if c['ok'] else 'error'}: {text}")
        answer = episode.final_answer
        user = (
            f"Query:\n{ground_truth['query']}\n\nExecuted tool calls:\n"
            + ("\n".join(lines) if lines else "(none)")
            + f"\n\nFinal answer:\n{answer if answer and answer.strip() else '(none)'}"
        )
        return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]

    @staticmethod
    def parse_verdict(text: str) -> float | None:
        """1 / 0.5 / 0 from the judge's reply; None when it names no status."""
        match = re.search(r"\{.*\}", text, re.S)
        if match:
            try:
                status = str(json.loads(match.group(0)).get("answer_status", "")).strip().lower()
                if status in _STATUS_VALUE:
                    return _STATUS_VALUE[status]
            except (json.JSONDecodeError, AttributeError):
                pass
        found = re.findall(r"\b(unsolved|solved|unsure)\b", text.lower())
        return _STATUS_VALUE[found[0]] if len(set(found)) == 1 else None

    def _verdict_result(self, reply: str, details: dict[str, Any]) -> ScoreResult:
        value = self.parse_verdict(reply)
        if value is None:
            logger.warning("stabletoolbench judge reply has no status: %.200r", reply)
            return ScoreResult(0.0, "judge_unparsable", details)
        details["stabletoolbench/judge_solved"] = value
        return ScoreResult(value, {1.0: "judge_solved", 0.5: "judge_unsure", 0.0: "judge_unsolved"}[value], details)

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.judge.base_url,
            "api_key": os.environ.get(self.judge.api_key_env) or "EMPTY",
            "timeout": self.judge.timeout_s,
            "max_retries": self.judge.max_retries,
        }

    def _request(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "model": self.judge.model,
            "messages": messages,
            "temperature": self.judge.temperature,
            "max_tokens": self.judge.max_tokens,
        }

    def score(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        result, details = self.proxy(ground_truth, episode)
        if not self.judge.active:
            return result
        import openai

        if self._sync_client is None:
            self._sync_client = openai.OpenAI(**self._client_kwargs())
        try:
            reply = self._sync_client.chat.completions.create(**self._request(self.judge_messages(ground_truth, episode)))
        except openai.OpenAIError as exc:
            logger.error("stabletoolbench judge request failed: %s", exc)
            return ScoreResult(0.0, "judge_error", details)
        return self._verdict_result(reply.choices[0].message.content or "", details)

    async def ascore(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        result, details = self.proxy(ground_truth, episode)
        if not self.judge.active:
            return result
        import openai

        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._async_clients:  # an httpx async client belongs to the loop that created it
            self._async_clients[loop_id] = openai.AsyncOpenAI(**self._client_kwargs())
            self._semaphores[loop_id] = asyncio.Semaphore(self.judge.max_concurrency)
        try:
            async with self._semaphores[loop_id]:
                reply = await self._async_clients[loop_id].chat.completions.create(
                    **self._request(self.judge_messages(ground_truth, episode))
                )
        except openai.OpenAIError as exc:
            logger.error("stabletoolbench judge request failed: %s", exc)
            return ScoreResult(0.0, "judge_error", details)
        return self._verdict_result(reply.choices[0].message.content or "", details)
