"""Prompt token lengths of RL rows as the agent loop will build them (chat template + the task's own tools).

verl left-truncates prompts past ``data.max_prompt_length`` and only warns; ``prepare.py --tokenizer`` reports the
lengths of the rows it writes and ``--max-prompt-tokens`` refuses rows that would be cut.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from typing import Any

from ..envs import make_env
from ..protocol.messages import decode_messages


def load_tokenizer(path: str) -> Any:
    """An HF tokenizer with a chat template, from a local directory or name (ValueError when it has no template)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"tokenizer {path!r} has no chat template; prompt lengths would not match the agent loop's")
    return tok


def prompt_tokens(row: dict[str, Any], tokenizer: Any) -> int:
    """Tokens of the row's initial prompt: its messages and the tools its environment shows at user turn 0,
    through the chat template with the generation prompt (what ``ct_build_initial_tokens`` renders)."""
    env = make_env(json.loads(row["extra_info"]["env"]))
    try:
        tools = env.tools()
    finally:
        asyncio.run(env.close())
    ids = tokenizer.apply_chat_template(decode_messages(row["prompt"]), tools=tools or None, tokenize=True, add_generation_prompt=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return len(ids)


def length_report(lengths: list[int], task_ids: list[str], limit: int | None) -> str:
    """One line: min / median / max prompt tokens, the longest task, and how many rows exceed ``limit``."""
    if not lengths:
        return "no rows"
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    over = "" if limit is None else f"; over {limit}: {sum(n > limit for n in lengths)}"
    return (f"min {min(lengths)}, median {statistics.median(lengths):g}, max {lengths[longest]} "
            f"(task {task_ids[longest]!r}){over}")
