"""Run a policy over prepared rows: one ``ToolMasterAgentLoop`` per row, scored like verl's agent-loop worker.

Per row (verl-0.9.1.md §9, "testing one loop in isolation"): the loop is instantiated from verl's agent-loop
registry entry (or the config's ``agent_loop_config_path`` YAML, with its extra keys) with
``DictConfigWrap(cfg)``, the policy as ``server_manager``, the task tokenizer and the config's dataset class;
``run(sampling_params, **row)`` gets the row's columns. The output is scored by the reward manager that
``load_reward_manager`` builds from the same config, on a one-row ``DataProto`` laid out as
``AgentLoopWorker._compute_score`` lays it out (``tool_extra_fields`` carrying the ``toolmaster`` record).

At most ``concurrency`` rows are in flight. Each finished row is appended to ``trajectories.jsonl`` at once;
a policy failure (endpoint down, model error) stops the run, and the outputs written so far describe the rows
that finished; re-running the same command continues with the rest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as metrics_mod
from . import store as store_mod
from . import trajectory
from .options import EvalOptions, OptionsError, compose_trainer_config, sampling_params
from .gold import GoldError
from .policies import PolicyError
from .rows import Row, RowError, load_rows, select, with_system_prompt

logger = logging.getLogger(__name__)


@dataclass
class EvalSummary:
    """What a run did (also the bookkeeping part of metrics.json)."""

    selected: int = 0  # rows chosen by --ids / --limit
    resumed: int = 0  # of those, already in trajectories.jsonl when the run started
    finished: int = 0  # rows finished by this run (run or skipped as no_gold)
    errors: list[dict[str, Any]] = field(default_factory=list)  # rows that failed (not written; retried on re-run)
    fatal: str | None = None  # why the run stopped early (policy failure, interrupt)
    complete: bool = False  # every selected row is in trajectories.jsonl

    @property
    def exit_code(self) -> int:
        if self.fatal is not None:
            return 3
        return 1 if self.errors else 0


class _Scorer:
    """The reward manager built the way verl's RewardLoopWorker builds it, scoring one trajectory at a time."""

    def __init__(self, cfg: Any, tokenizer: Any):
        from .. import compat
        from ..reward.manager import ToolMasterRewardManager

        self.manager = compat.load_reward_manager(cfg, tokenizer)
        if not isinstance(self.manager, ToolMasterRewardManager):
            raise OptionsError(f"the config's reward manager is {type(self.manager).__name__}; the harness needs ToolMasterRewardManager")

    async def score(self, output: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        import torch
        from verl import DataProto

        prompts = torch.tensor([list(output.prompt_ids)], dtype=torch.int64)
        responses = torch.tensor([list(output.response_ids)], dtype=torch.int64)
        input_ids = torch.cat([prompts, responses], dim=1)
        batch = {
            "prompts": prompts,
            "responses": responses,
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "response_mask": torch.tensor([list(output.response_mask)], dtype=torch.int64),
        }
        non_tensor = {k: _column(v) for k, v in kwargs.items()}
        non_tensor["__num_turns__"] = _column(output.num_turns)
        non_tensor["tool_extra_fields"] = _column(output.extra_fields)
        non_tensor["prompt_len"] = _column(len(output.prompt_ids))
        non_tensor["response_len"] = _column(len(output.response_ids))
        return await self.manager.run_single(DataProto.from_dict(tensors=batch, non_tensors=non_tensor))


def _column(value: Any) -> np.ndarray:
    arr = np.empty(1, dtype=object)
    arr[0] = value
    return arr


class _LoopFactory:
    """Builds the row's agent loop exactly as ``AgentLoopWorker._run_agent_loop`` does (hydra instantiate of the
    registry entry, YAML entries from ``agent.agent_loop_config_path`` included)."""

    def __init__(self, cfg: Any, tokenizer: Any, hf_model_type: str | None):
        from omegaconf import OmegaConf

        from .. import compat
        from ..registration import AGENT_LOOP_ENTRY, AGENT_NAME

        self.cfg, self.tokenizer, self.hf_model_type = cfg, tokenizer, hf_model_type
        self.entries: dict[str, Any] = {AGENT_NAME: dict(AGENT_LOOP_ENTRY)}
        path = cfg.actor_rollout_ref.rollout.agent.get("agent_loop_config_path")
        if path:
            for entry in OmegaConf.load(compat.resolve_config_path(path)):
                self.entries[entry.name] = entry
        self.dataset_cls = compat.get_dataset_class(cfg.data)
        self.default = cfg.actor_rollout_ref.rollout.agent.default_agent_loop

    def entry(self, row: Row) -> Any:
        name = row.kwargs.get("agent_name") or self.default
        if name not in self.entries:
            raise RowError(f"row {row.id}: agent_name {name!r} is not ToolMasterAgentLoop's; the harness needs the toolmaster record")
        return self.entries[name]

    def build(self, row: Row, server: Any) -> Any:
        import hydra

        from .. import compat
        from ..agent_loop import ToolMasterAgentLoop

        loop = hydra.utils.instantiate(
            config=self.entry(row),
            trainer_config=compat.DictConfigWrap(config=self.cfg),
            server_manager=server,
            tokenizer=self.tokenizer,
            processor=None,
            hf_model_type=self.hf_model_type,
            dataset_cls=self.dataset_cls,
            data_config=compat.DictConfigWrap(self.cfg.data),
            tools=compat.ToolListWrap([]),
        )
        if not isinstance(loop, ToolMasterAgentLoop):
            raise RowError(f"row {row.id}: its agent loop is {type(loop).__name__}, not ToolMasterAgentLoop")
        return loop


def make_policy(opts: EvalOptions, loop_cfg: Any) -> Any:
    """The policy object for ``opts.policy`` with its tokenizer loaded."""
    from .policies import HFPolicy, OpenAIPolicy, load_tokenizer, tiny_tokenizer_dir

    path = opts.tokenizer_path()
    if path is None:  # gold without --tokenizer: the offline tiny tokenizer
        path = str(tiny_tokenizer_dir(opts.cache_dir))
    tokenizer, model_type = load_tokenizer(path)
    if opts.policy == "gold":
        from .gold import GoldPolicy

        return GoldPolicy(tokenizer, model_type, loop_cfg, path)
    if opts.policy == "hf":
        if model_type is None and opts.model:
            _, model_type = load_tokenizer(opts.model)
        return HFPolicy(opts.model, tokenizer, model_type, path, device=opts.device, dtype=opts.dtype,
                        max_num_seqs=opts.hf_max_num_seqs, max_batch_tokens=opts.hf_max_batch_tokens,
                        prefix_cache_tokens=opts.hf_prefix_cache_tokens)
    base_url = opts.base_url or os.environ["OPENAI_BASE_URL"]
    api_key = os.environ.get(opts.api_key_env) or "EMPTY"
    return OpenAIPolicy(base_url, opts.model, api_key, tokenizer, model_type, path, prompt_format=opts.prompt_format,
                        extra_body=opts.openai_extra_body, timeout_s=opts.request_timeout_s, max_retries=opts.max_retries)


def run_signature(opts: EvalOptions, policy: Any, cfg: Any, loop_cfg: Any, params: dict[str, Any]) -> dict[str, Any]:
    """run.json: what was evaluated and how (the SIGNATURE_KEYS must match for a resumed run)."""
    from dataclasses import asdict

    from omegaconf import OmegaConf

    reward_kwargs = cfg.reward.get("reward_kwargs")
    return {
        **policy.describe(),
        "policy": opts.policy,
        "trial_mode": loop_cfg.trial_mode,
        "system_prompt": opts.system_prompt,
        "sampling": params,
        "loop": asdict(loop_cfg),
        "reward_kwargs": OmegaConf.to_container(reward_kwargs, resolve=True) if reward_kwargs is not None else None,
        "lengths": {"prompt": int(cfg.actor_rollout_ref.rollout.prompt_length), "response": int(cfg.actor_rollout_ref.rollout.response_length)},
        "data": [str(Path(p).resolve()) for p in opts.data],
        "config": str(opts.config) if opts.config else None,
        "overrides": list(opts.overrides),
        "options": opts.to_json(),
    }


async def _run(opts: EvalOptions, summary: EvalSummary) -> tuple[list[Row], store_mod.TrajectoryStore, bool]:
    from ..agent_config import load_config

    cfg = compose_trainer_config(opts)
    try:
        loop_cfg = load_config(cfg.actor_rollout_ref.rollout)
    except ValueError as e:
        raise OptionsError(str(e)) from None
    store = store_mod.TrajectoryStore(opts.out)
    store.load()
    if store.dropped_partial_line:
        print(f"note: dropped a cut last line of {store.path} (a killed run); that row runs again", file=sys.stderr)
    policy = make_policy(opts, loop_cfg)
    rows = select(load_rows(opts.data, cfg, policy.tokenizer), opts.ids, opts.limit)
    params = sampling_params(opts, cfg)
    store.check_run(run_signature(opts, policy, cfg, loop_cfg, params))
    summary.selected = len(rows)
    todo = [r for r in rows if r.id not in store.done]
    summary.resumed = len(rows) - len(todo)
    gold = opts.policy == "gold"
    if not todo:
        return rows, store, gold

    prompt_length = int(cfg.actor_rollout_ref.rollout.prompt_length)
    factory = _LoopFactory(cfg, policy.tokenizer, policy.hf_model_type)
    scorer = _Scorer(cfg, policy.tokenizer)
    queue: asyncio.Queue[Row] = asyncio.Queue()
    for r in todo:
        queue.put_nowait(r)
    bar = _progress(len(todo), opts.progress)
    stop = asyncio.Event()

    async def one(row: Row) -> dict[str, Any]:
        try:
            reason = policy.skip_reason(row)
            if reason is not None:
                return trajectory.skipped(row, reason, policy=opts.policy, trial_mode=loop_cfg.trial_mode)
            server = await policy.server_for(row)
        except GoldError as e:  # a data defect the oracle found: reported per row, not a failure of the run
            return trajectory.skipped(row, "bad_gold", policy=opts.policy, trial_mode=loop_cfg.trial_mode, detail=str(e))
        kwargs, prompt_source = with_system_prompt(row, opts.system_prompt, loop_cfg.trial_mode)
        kwargs.pop("agent_name", None)  # verl's worker consumes it to pick the loop; run() never sees it
        loop = factory.build(row, server)
        started = time.perf_counter()
        output = await loop.run(dict(params), **kwargs)
        reward = await scorer.score(output, kwargs)
        return trajectory.build(
            row, output, reward, policy.tokenizer, policy=opts.policy, trial_mode=loop_cfg.trial_mode,
            system_prompt=prompt_source, prompt_length=prompt_length, latency_s=time.perf_counter() - started,
            policy_notes=getattr(server, "notes", None),
        )

    async def worker() -> None:
        while not stop.is_set():
            try:
                row = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                traj = await one(row)
            except PolicyError as e:
                if summary.fatal is None:
                    summary.fatal = f"{e} (stopped at row {row.id})"
                stop.set()
                return
            except Exception as e:  # noqa: BLE001 - a broken row must not take the others down; it is reported
                logger.debug("row %s failed", row.id, exc_info=True)
                summary.errors.append({"id": row.id, "data_source": row.source, "error": f"{type(e).__name__}: {e}",
                                       "traceback": traceback.format_exc(limit=8)})
                bar.update(1)
                continue
            store.append(traj)
            summary.finished += 1
            bar.update(1)
            if traj.get("status") == "ok":
                bar.set_postfix(answer=f"{traj['reward'].get('answer', 0):.2f}", refresh=False)

    await policy.start()
    try:
        tasks = [asyncio.create_task(worker()) for _ in range(min(opts.concurrency, len(todo)))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        bar.close()
        store.close()
        await policy.close()
    return rows, store, gold


def evaluate(opts: EvalOptions) -> EvalSummary:
    """Run the evaluation ``opts`` describes and write every output. Never raises for a failing row or policy:
    those end up in the summary (``errors``, ``fatal``); bad options raise :class:`OptionsError` / RowError /
    StoreError."""
    opts.check()
    summary = EvalSummary()
    try:
        rows, store, gold = asyncio.run(_run(opts, summary))
    except KeyboardInterrupt:
        summary.fatal = "interrupted"
        store = store_mod.TrajectoryStore(opts.out)
        store.load()
        rows, gold = None, opts.policy == "gold"
    except PolicyError as e:  # raised before any row ran (policy start-up)
        summary.fatal = str(e)
        store = store_mod.TrajectoryStore(opts.out)
        store.load()
        rows, gold = None, opts.policy == "gold"
    store.close()
    write_outputs(opts, summary, store, rows, gold)
    return summary


def write_outputs(opts: EvalOptions, summary: EvalSummary, store: store_mod.TrajectoryStore, rows: list[Row] | None, gold: bool) -> None:
    """metrics.json, errors.jsonl and report.html over the selected rows that are in trajectories.jsonl."""
    from .verl_metrics import log_with_verl, validation_metrics

    if rows is not None:
        selected = [r.id for r in rows]
        trajs = [store.done[i] for i in selected if i in store.done]
        summary.complete = len(trajs) == len(selected) and summary.fatal is None
        pending = len(selected) - len(trajs)
    else:  # the run stopped before the rows were read
        trajs = list(store.done.values())
        pending = None
    body = metrics_mod.compute(trajs, gold=gold)
    body["verl"] = validation_metrics(trajs)
    body["run"] = {
        "complete": summary.complete,
        "selected": summary.selected,
        "done": len(trajs),
        "pending": pending,
        "resumed": summary.resumed,
        "finished_now": summary.finished,
        "errors": len(summary.errors),
        "fatal": summary.fatal,
        "policy": opts.policy,
    }
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    store_mod.write_json(Path(opts.out) / store_mod.METRICS, body)
    store_mod.write_errors(Path(opts.out), summary.errors)
    if opts.report:
        from .report import write_report

        write_report(Path(opts.out) / store_mod.REPORT, body, trajs, title=f"{opts.policy} on {', '.join(Path(p).name for p in opts.data)}",
                     max_trajectories=opts.report_max_trajectories)
    if opts.log_to and body["verl"]:
        log_with_verl(body["verl"], opts.log_to, opts.log_project, opts.log_experiment or Path(opts.out).name, opts.log_step)


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="eval", unit="row", file=sys.stderr, disable=not enabled, mininterval=0.5)


__all__ = ["EvalSummary", "evaluate"]
