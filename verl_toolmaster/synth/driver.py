"""Run the real :class:`~verl_toolmaster.agent_loop.ToolMasterAgentLoop` outside verl's workers, for synthesis.

A teacher (scripted or an LLM endpoint) stands in for verl's ``LLMServerClient``: :class:`PolicyServer` hands it
the conversation so far and turns its reply text into token ids. Everything else - the environment built from the
row's spec, trials on a fork, budgets, violations, the call log and the ``toolmaster`` record - is the RL loop's
own code. :class:`RecordingLoop` only remembers the chat messages the loop tokenises (through verl's public
Continuous Token hooks), so the SFT row is exactly the conversation the loop built.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from verl_toolmaster import compat
from verl_toolmaster.agent_loop import EXTRA_KEY, ToolMasterAgentLoop
from verl_toolmaster.protocol.messages import decode_messages
from verl_toolmaster.protocol.parse import decode_turn, parse_turn
from verl_toolmaster.protocol.render import message_from_parsed

# Synthesis budgets when no RL config says otherwise: long enough for multi-hop trajectories with trials
# (tokens of the loop's tokenizer; the SFT stage applies its own data.max_length).
DEFAULT_PROMPT_LENGTH = 32768
DEFAULT_RESPONSE_LENGTH = 16384


@dataclass
class TurnRequest:
    """What a teacher sees when asked for the next assistant turn."""

    messages: list[dict[str, Any]]  # the conversation so far, as the loop holds it (tool calls with dict arguments)
    tools: list[dict[str, Any]]  # tool schemas the environment shows now (OpenAI function format)
    prompt_ids: list[int]  # the token ids the loop would send to its LLM server
    max_tokens: int | None  # tokens left for this turn (the loop's response budget)
    sampling_params: dict[str, Any]  # the sampling parameters given to the loop


@dataclass
class Reply:
    """A teacher's assistant turn."""

    text: str  # the turn as the model wrote it (phase tag, reasoning, <tool_call> blocks), without end-of-turn token
    stopped: bool = True  # False when the model was cut off (no end-of-turn token is appended)


class Teacher(Protocol):
    async def reply(self, request: TurnRequest) -> Reply: ...


class RecordingLoop(ToolMasterAgentLoop):
    """The RL agent loop, remembering the messages and tools it tokenises (nothing else changes)."""

    transcript: list[dict[str, Any]]
    tools_shown: list[dict[str, Any]] | None  # the tools rendered into the initial prompt
    tools_now: list[dict[str, Any]] | None  # the tools passed at the latest context merge (later user turns add some)

    async def ct_build_initial_tokens(self, messages: list[dict], tools: list[dict] | None = None, **kwargs: Any) -> list[int]:
        self.transcript = copy.deepcopy(messages)
        self.tools_shown = copy.deepcopy(tools)
        self.tools_now = self.tools_shown
        return await super().ct_build_initial_tokens(messages, tools=tools, **kwargs)

    async def ct_merge_context_msg(self, previous_messages: list[dict], updated_messages: list[dict], *args: Any, **kwargs: Any):
        self.transcript = copy.deepcopy(updated_messages)
        if kwargs.get("tools") is not None:
            self.tools_now = copy.deepcopy(kwargs["tools"])
        return await super().ct_merge_context_msg(previous_messages, updated_messages, *args, **kwargs)


class PolicyServer:
    """verl's ``LLMServerClient.generate`` for one trajectory, answered by a :class:`Teacher`."""

    def __init__(self, teacher: Teacher, tokenizer: Any):
        self.teacher = teacher
        self.tokenizer = tokenizer
        self.eos = tokenizer.eos_token
        self.loop: RecordingLoop | None = None
        self.turn_ids: list[list[int]] = []  # token ids returned per turn, in order
        self.seen_messages = 0  # length of the conversation at the latest generate call

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **kwargs: Any) -> Any:
        if self.loop is None:
            raise RuntimeError("PolicyServer.generate called before bind(loop)")
        loop = self.loop
        request = TurnRequest(
            messages=copy.deepcopy(loop.transcript),
            tools=copy.deepcopy(loop.tools_now or []),
            prompt_ids=list(prompt_ids),
            max_tokens=sampling_params.get("max_tokens"),
            sampling_params=dict(sampling_params),
        )
        self.seen_messages = len(loop.transcript)
        reply = await self.teacher.reply(request)
        text = reply.text + (self.eos if reply.stopped else "")
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if request.max_tokens is not None:
            ids = ids[: request.max_tokens]
        self.turn_ids.append(ids)
        return compat.TokenOutput(token_ids=ids, log_probs=None, stop_reason="completed" if reply.stopped else "length")

    def bind(self, loop: RecordingLoop) -> None:
        self.loop = loop


@dataclass
class EpisodeResult:
    """One finished trajectory."""

    record: dict[str, Any]  # the loop's "toolmaster" extra field (calls, answers, counts, termination, ...)
    messages: list[dict[str, Any]]  # the whole conversation, ending with the last assistant turn
    tools: list[dict[str, Any]]  # tool schemas rendered into the prompt
    turn_texts: list[str] = field(default_factory=list)  # every assistant turn, decoded with special tokens kept
    tool_names: list[str] = field(default_factory=list)  # every tool the environment showed (later user turns may add some)
    num_turns: int = 0  # AgentLoopOutput.num_turns


@dataclass
class LoopSettings:
    """Everything needed to build the agent loop outside verl's AgentLoopWorker."""

    trainer_config: Any  # the composed trainer config (DictConfig); its actor_rollout_ref.rollout drives the loop
    tokenizer: Any  # HF tokenizer with a chat template (the loop's Continuous Token builder uses it)
    hf_model_type: str | None  # selects verl's Continuous Token builder ("qwen2" -> Qwen boundaries)

    def loop_config(self) -> Any:
        """The validated ToolMasterLoopConfig the loop will use (for reports and the scripted teacher's budgets)."""
        from verl_toolmaster.agent_config import load_config

        return load_config(self.trainer_config.actor_rollout_ref.rollout)


async def run_episode(
    row: dict[str, Any], teacher: Teacher, settings: LoopSettings, sampling_params: dict[str, Any] | None = None
) -> EpisodeResult:
    """Run one RL row through the agent loop with ``teacher`` as the policy. Must be called inside an event loop."""
    cfg = settings.trainer_config
    server = PolicyServer(teacher, settings.tokenizer)
    loop = RecordingLoop(
        trainer_config=compat.DictConfigWrap(cfg),
        server_manager=server,
        tokenizer=settings.tokenizer,
        processor=None,
        dataset_cls=compat.RLHFDataset,
        data_config=compat.DictConfigWrap(cfg.data),
        hf_model_type=settings.hf_model_type,
    )
    server.bind(loop)
    extra_info = dict(row["extra_info"])
    out = await loop.run(
        dict(sampling_params or {}),
        raw_prompt=decode_messages(list(row["prompt"])),  # parquet stores history tool-call arguments as JSON strings
        extra_info=extra_info,
        index=extra_info.get("index"),
        data_source=row.get("data_source"),
        reward_model=row.get("reward_model"),
    )
    record = out.extra_fields[EXTRA_KEY]
    texts = [decode_turn(ids, settings.tokenizer) for ids in server.turn_ids]
    messages = copy.deepcopy(loop.transcript)
    if texts and len(messages) == server.seen_messages:
        # the episode ended right after the last turn, so no context merge carried its message: add it as the loop did
        messages.append(message_from_parsed(parse_turn(texts[-1], trial_mode=record["trial_mode"])))
    shown = [*(loop.tools_shown or []), *(loop.tools_now or [])]
    names = sorted({t["function"]["name"] for t in shown})
    return EpisodeResult(
        record=record,
        messages=messages,
        tools=copy.deepcopy(loop.tools_shown or []),
        turn_texts=texts,
        tool_names=names,
        num_turns=out.num_turns,
    )


# ---------------------------------------------------------------------------------------------- construction


def compose_trainer_config(
    rl_config: str | Path | None = None,
    overrides: list[str] | None = None,
    prompt_length: int | None = None,
    response_length: int | None = None,
) -> Any:
    """The trainer config the loop reads: verl's ``ppo_trainer`` (or an RL recipe YAML) plus overrides.

    With ``rl_config`` (e.g. ``recipes/cpu/grpo_tiny.yaml``) synthesis runs the loop with the same budgets and
    ``custom.toolmaster`` settings as that RL run. ``prompt_length``/``response_length`` set both the rollout and
    data keys; when None they keep the RL config's values, or the synthesis defaults without one.
    """
    import verl
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    overrides = list(overrides or [])
    if rl_config is not None:
        path = Path(rl_config).resolve()
        if not path.is_file():
            raise ValueError(f"RL config {path} does not exist")
        config_dir, name = str(path.parent), path.stem
    else:
        config_dir, name = os.path.join(os.path.dirname(verl.__file__), "trainer", "config"), "ppo_trainer"
        prompt_length = prompt_length or DEFAULT_PROMPT_LENGTH
        response_length = response_length or DEFAULT_RESPONSE_LENGTH
        overrides = ["actor_rollout_ref.rollout.name=vllm", *overrides]
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose(name, overrides=overrides)
    with open_dict(cfg):
        if prompt_length is not None:
            cfg.actor_rollout_ref.rollout.prompt_length = prompt_length
            cfg.data.max_prompt_length = prompt_length
        if response_length is not None:
            cfg.actor_rollout_ref.rollout.response_length = response_length
            cfg.data.max_response_length = response_length
    return cfg


@lru_cache(maxsize=4)
def tiny_tokenizer() -> Any:
    """The offline tiny tokenizer (Qwen2.5 chat template), built in memory; identical to ``verl_toolmaster.tiny``'s."""
    from verl_toolmaster.tiny import TinyConfig, build_tokenizer

    return build_tokenizer(TinyConfig())


def load_tokenizer(path: str | Path | None) -> tuple[Any, str | None]:
    """(tokenizer, hf model_type) from an HF directory, or the in-memory tiny tokenizer ("qwen2") when ``path`` is None."""
    if path is None:
        return tiny_tokenizer(), "qwen2"
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.exists():
        raise ValueError(f"tokenizer path {path} does not exist")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"tokenizer at {path} has no chat template; the agent loop renders prompts with it")
    model_type = None
    config = path / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text()).get("model_type")
    return tokenizer, model_type
