"""The settings of one evaluation run, and the verl trainer config they compose to.

The agent loop and the reward manager read their settings from a composed ``ppo_trainer`` config, exactly as in
training. By default that is verl's own ``ppo_trainer`` with evaluation-sized lengths; ``--config`` composes a
training recipe instead (e.g. ``recipes/cpu/grpo_tiny.yaml``), so an evaluation uses the run's own loop budgets,
reward weights and validation sampling. ``--override`` applies Hydra overrides on top.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..generation import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_NUM_SEQS, DEFAULT_PREFIX_CACHE_TOKENS

POLICIES = ("gold", "hf", "openai")
SYSTEM_PROMPT_MODES = ("auto", "row", "default")
PROMPT_FORMATS = ("ids", "text")
# Lengths used when neither --config nor a flag sets them: room for ToolHop/BFCL prompts with verbose tool
# schemas even under the offline tiny tokenizer (its 1k vocabulary needs ~3x the tokens of Qwen's).
DEFAULT_PROMPT_LENGTH = 16384
DEFAULT_RESPONSE_LENGTH = 8192
# vLLM's extensions of the completions request: keep special tokens in the text, return the sampled ids.
DEFAULT_OPENAI_EXTRA_BODY = {"skip_special_tokens": False, "return_token_ids": True}
REWARD_MANAGER_OVERRIDES = {  # eval always scores with the ToolMaster reward manager (class resolved like verl does)
    "source": "importlib",
    "name": "ToolMasterRewardManager",
    "module": {"path": "pkg://verl_toolmaster.reward.manager", "name": None},
}


class OptionsError(ValueError):
    """Bad options (exit code 2): the message names the option and the problem."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "verl_toolmaster"


@dataclass
class EvalOptions:
    """Everything one ``python -m verl_toolmaster.eval`` run needs (see ``--help`` for each option)."""

    data: list[Path]  # prepared RL parquet files (data_prep/prepare.py output)
    out: Path  # output directory: trajectories.jsonl, metrics.json, report.html, run.json, errors.jsonl
    policy: str  # "gold" | "hf" | "openai"
    model: str | None = None  # hf: local model directory; openai: the served model name (default $OPENAI_MODEL)
    tokenizer: str | None = None  # tokenizer directory; gold default: the offline tiny tokenizer; hf default: model
    base_url: str | None = None  # openai: endpoint base URL, e.g. http://127.0.0.1:8000/v1 (default $OPENAI_BASE_URL)
    api_key_env: str = "OPENAI_API_KEY"  # openai: environment variable holding the key ("EMPTY" when unset)
    prompt_format: str = "ids"  # openai: send the prompt as token ids ("ids") or as decoded text ("text")
    openai_extra_body: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_OPENAI_EXTRA_BODY))  # openai: extra request fields
    request_timeout_s: float = 600.0  # openai: per request
    max_retries: int = 2  # openai: the client's retries on connection errors, 429 and 5xx before the run stops
    device: str = "auto"  # hf: torch device ("auto": cuda when available, else cpu)
    dtype: str = "auto"  # hf: torch dtype name ("auto": bfloat16 on cuda, float32 on cpu)
    hf_max_num_seqs: int = DEFAULT_MAX_NUM_SEQS  # hf: turns decoded together (also bounded by concurrency)
    hf_max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS  # hf: padded KV cache (rows x longest row) a new turn may grow the batch to
    hf_prefix_cache_tokens: int = DEFAULT_PREFIX_CACHE_TOKENS  # hf: tokens of finished turns kept for the next turn's prefill (0: off)
    ids: list[str] | None = None  # only these row ids (extra_info.task_id), in data order
    limit: int | None = None  # at most this many rows (after --ids), in data order
    concurrency: int = 4  # rows in flight at once
    trial_mode: str | None = None  # "on" | "off" overrides the loop's trial_mode (A/B runs); None: the config's
    system_prompt: str = "auto"  # auto: protocol text of the active trial_mode when the row carries a protocol text; row; default
    prompt_length: int | None = None  # rollout.prompt_length; None: the --config's, else DEFAULT_PROMPT_LENGTH
    response_length: int | None = None  # rollout.response_length (all turns + observations); None: as above
    max_tokens_per_turn: int | None = None  # cap of one generation call; None: the remaining response budget
    temperature: float | None = None  # None: actor_rollout_ref.rollout.val_kwargs (what verl validation uses)
    top_p: float | None = None  # None: val_kwargs.top_p
    top_k: int | None = None  # None: val_kwargs.top_k
    config: Path | None = None  # a training recipe YAML (Hydra, composes ppo_trainer); None: verl's ppo_trainer
    overrides: list[str] = field(default_factory=list)  # Hydra overrides applied to the composed config
    cache_dir: Path = field(default_factory=default_cache_dir)  # where the gold policy's tiny tokenizer is built
    progress: bool = True  # tqdm progress bar on stderr
    report: bool = True  # write report.html
    report_max_trajectories: int = 300  # trajectories shown in the report's viewer (all are in trajectories.jsonl)
    log_to: list[str] = field(default_factory=list)  # verl Tracking backends (console, file, wandb, ...) for the verl-named metrics
    log_project: str = "verl_toolmaster_eval"  # Tracking project name
    log_experiment: str | None = None  # Tracking experiment name (default: the --out directory name)
    log_step: int = 0  # step the metrics are logged at (e.g. the checkpoint's global step)

    def check(self) -> None:
        """Raise :class:`OptionsError` naming the first bad option."""
        if not self.data:
            raise OptionsError("--data: give at least one prepared parquet file")
        for path in self.data:
            if not Path(path).is_file():
                raise OptionsError(f"--data {path}: no such file")
        if self.policy not in POLICIES:
            raise OptionsError(f"--policy must be one of {POLICIES}, got {self.policy!r}")
        if self.policy == "hf" and not self.model:
            raise OptionsError("--policy hf needs --model PATH (a local transformers model directory)")
        if self.policy == "hf" and not Path(self.model).is_dir():
            raise OptionsError(f"--model {self.model}: not a directory (the hf policy loads a local model)")
        if self.policy == "openai":
            self.model = self.model or os.environ.get("OPENAI_MODEL")
            if not self.model:
                raise OptionsError("--policy openai needs --model NAME or $OPENAI_MODEL (the model name the server serves)")
            if not (self.base_url or os.environ.get("OPENAI_BASE_URL")):
                raise OptionsError("--policy openai needs --base-url URL or $OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1)")
            if not self.tokenizer and not Path(self.model).is_dir():
                raise OptionsError(
                    "--policy openai needs --tokenizer PATH (the served model's tokenizer): the agent loop applies the "
                    "chat template and counts tokens itself"
                )
        if self.tokenizer and not Path(self.tokenizer).is_dir():
            raise OptionsError(f"--tokenizer {self.tokenizer}: not a directory")
        if self.prompt_format not in PROMPT_FORMATS:
            raise OptionsError(f"--prompt-format must be one of {PROMPT_FORMATS}, got {self.prompt_format!r}")
        if self.system_prompt not in SYSTEM_PROMPT_MODES:
            raise OptionsError(f"--system-prompt must be one of {SYSTEM_PROMPT_MODES}, got {self.system_prompt!r}")
        if self.trial_mode not in (None, "on", "off"):
            raise OptionsError(f"--trial-mode must be on or off, got {self.trial_mode!r}")
        for name in ("concurrency", "limit", "prompt_length", "response_length", "max_tokens_per_turn", "report_max_trajectories",
                     "hf_max_num_seqs", "hf_max_batch_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise OptionsError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        if not isinstance(self.hf_prefix_cache_tokens, int) or self.hf_prefix_cache_tokens < 0:
            raise OptionsError(f"--hf-prefix-cache-tokens must be an integer >= 0, got {self.hf_prefix_cache_tokens!r}")
        if self.max_retries < 0 or self.request_timeout_s <= 0:
            raise OptionsError("--max-retries must be >= 0 and --request-timeout > 0")
        if self.config is not None and not Path(self.config).is_file():
            raise OptionsError(f"--config {self.config}: no such file")
        if not isinstance(self.openai_extra_body, dict):
            raise OptionsError("--openai-extra-body must be a JSON object")

    def tokenizer_path(self) -> str | None:
        """The tokenizer directory to load (None: the gold policy's offline tiny tokenizer)."""
        if self.tokenizer:
            return self.tokenizer
        if self.policy in ("hf", "openai") and self.model and Path(self.model).is_dir():
            return self.model
        return None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return json.loads(json.dumps(d, default=str))


_COMPOSED: dict[tuple, Any] = {}


def compose_trainer_config(opts: EvalOptions) -> Any:
    """The verl trainer config (DictConfig) the agent loop and reward manager of this run read."""
    import verl
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    if opts.config is not None:
        config_dir, config_name = str(Path(opts.config).resolve().parent), Path(opts.config).stem
        stamp = Path(opts.config).stat().st_mtime_ns
    else:
        config_dir, config_name = os.path.join(os.path.dirname(verl.__file__), "trainer", "config"), "ppo_trainer"
        stamp = 0
    key = (config_dir, config_name, tuple(opts.overrides), stamp)
    if key not in _COMPOSED:  # composing ppo_trainer takes seconds; repeated runs in one process reuse it
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=config_dir, version_base=None):
                _COMPOSED[key] = compose(config_name, overrides=list(opts.overrides))
        except (HydraException, OmegaConfBaseException) as e:
            where = f"--config {opts.config}" if opts.config else "verl's ppo_trainer config"
            raise OptionsError(f"cannot compose {where} with overrides {opts.overrides}: {e}") from None
        finally:
            GlobalHydra.instance().clear()
    cfg = copy.deepcopy(_COMPOSED[key])

    rollout = cfg.actor_rollout_ref.rollout
    with open_dict(cfg):
        prompt_length = opts.prompt_length or (None if opts.config else DEFAULT_PROMPT_LENGTH)
        response_length = opts.response_length or (None if opts.config else DEFAULT_RESPONSE_LENGTH)
        if prompt_length is not None:
            rollout.prompt_length = cfg.data.max_prompt_length = prompt_length
        if response_length is not None:
            rollout.response_length = cfg.data.max_response_length = response_length
        rollout.multi_turn.enable = True
        cfg.data.filter_overlong_prompts = False  # every selected row is evaluated; truncation is reported per row
        if opts.trial_mode is not None:
            custom = OmegaConf.to_container(rollout.custom, resolve=True) if rollout.get("custom") else {}
            custom = custom or {}
            custom.setdefault("toolmaster", {})
            custom["toolmaster"] = {**(custom["toolmaster"] or {}), "trial_mode": opts.trial_mode}
            rollout.custom = OmegaConf.create(custom)
        manager = cfg.reward.reward_manager
        manager.source = REWARD_MANAGER_OVERRIDES["source"]
        manager.name = REWARD_MANAGER_OVERRIDES["name"]
        manager.module.path = REWARD_MANAGER_OVERRIDES["module"]["path"]
    try:
        int(rollout.prompt_length), int(rollout.response_length)
    except (TypeError, ValueError, OmegaConfBaseException) as e:
        raise OptionsError(f"rollout.prompt_length / response_length are not set: {e} (give --prompt-length / --response-length)") from None
    return cfg


def sampling_params(opts: EvalOptions, cfg: Any) -> dict[str, Any]:
    """Sampling parameters as verl's agent-loop worker builds them for validation (``val_kwargs``), with the
    options' explicit values on top."""
    rollout = cfg.actor_rollout_ref.rollout
    val = rollout.val_kwargs
    params: dict[str, Any] = {
        "temperature": float(opts.temperature if opts.temperature is not None else val.temperature),
        "top_p": float(opts.top_p if opts.top_p is not None else val.top_p),
        "top_k": int(opts.top_k if opts.top_k is not None else val.top_k),
        "repetition_penalty": 1.0,
        "logprobs": bool(rollout.calculate_log_probs),
    }
    if opts.max_tokens_per_turn is not None:
        params["max_tokens"] = opts.max_tokens_per_turn
    return params
