"""Helpers of the recipe tests: find and classify recipes, read their headers, compose them, check batch sizes."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"

RL, SFT, INCLUDE = "rl", "sft", "include"
# Qwen2.5 (0.5B-7B Instruct) config.json: max_position_embeddings = 32768; a GPU recipe's context must fit it.
QWEN25_MAX_POSITIONS = 32768
# A Hydra command-line override: optional +/++/~ prefix, a dotted key, "=", a value.
_OVERRIDE = re.compile(r"^[+~]{0,2}[A-Za-z_][\w.]*=\S+$")
_HEADER_SECTIONS = ("Purpose:", "Prerequisites:", "Launch", "Common overrides:")


@dataclass(frozen=True)
class Recipe:
    path: Path
    kind: str  # RL (main_ppo), SFT (sft_trainer) or INCLUDE (merged into others through defaults)
    defaults: tuple[str, ...] = ()  # the names in its defaults list

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(RECIPES))

    @property
    def is_cpu(self) -> bool:
        return self.path.parent.name == "cpu"


def discover() -> list[Recipe]:
    """Every YAML under recipes/ (top level and cpu/), classified by its first defaults entry."""
    out = []
    for path in sorted([*RECIPES.glob("*.yaml"), *RECIPES.glob("cpu/*.yaml")]):
        data = yaml.safe_load(path.read_text()) or {}
        defaults = [d if isinstance(d, str) else next(iter(d)) for d in data.get("defaults", [])]
        kind = {"ppo_trainer": RL, "sft_trainer_engine": SFT}.get(defaults[0] if defaults else "", INCLUDE)
        out.append(Recipe(path, kind, tuple(defaults)))
    return out


def header(path: Path) -> list[str]:
    """The opening comment block, without the leading '# '."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    return lines


def header_sections(path: Path) -> dict[str, list[str]]:
    """Header lines grouped by the section they open (Purpose, Prerequisites, Launch, Common overrides)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in header(path):
        for name in _HEADER_SECTIONS:
            if line.startswith(name):
                current = name.rstrip(":")
                sections[current] = [line[len(name):].lstrip(" :")]
                break
        else:
            if current is not None:
                if not line.strip():
                    current = None
                else:
                    sections[current].append(line)
    return sections


def launch_command(path: Path) -> list[str]:
    """The header's launch command as argv tokens: the first command with --config-name, line continuations joined."""
    lines = header_sections(path).get("Launch", [])
    start = next((i for i, line in enumerate(lines) if "--config-name" in line or " -m verl." in line), None)
    if start is None:
        return []
    cmd = []
    for line in lines[start:]:
        text = line.strip()
        cmd.append(text.rstrip("\\").strip())
        if not text.endswith("\\"):
            break
    return shlex.split(" ".join(cmd))


def launch_overrides(argv: list[str]) -> list[str]:
    """Hydra overrides of a launch command: the key=value tokens after --config-name NAME."""
    if "--config-name" not in argv:
        return []
    rest = argv[argv.index("--config-name") + 2:]
    return [t for t in rest if _OVERRIDE.match(t)]


def header_overrides(path: Path) -> list[list[str]]:
    """The key=value tokens of the header's 'Common overrides' section, one list per line (a line is one use case)."""
    out = []
    for line in header_sections(path).get("Common overrides", []):
        tokens = [t.strip("(),;") for t in line.split()]
        tokens = [t for t in tokens if _OVERRIDE.match(t) and not t.startswith("VERL_")]
        if tokens:
            out.append(tokens)
    return out


def compose(recipe: Recipe, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Compose a recipe with Hydra's compose API against the installed verl (its own pkg:// searchpath)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(recipe.path.parent), version_base=None):
        return hydra_compose(recipe.name, overrides=list(overrides))


def rl_batch_problems(cfg: Any) -> list[str]:
    """What is inconsistent between main_ppo's batch sizes, lengths and GPU counts (empty: consistent)."""
    problems = []
    tr, data, arr = cfg.trainer, cfg.data, cfg.actor_rollout_ref
    actor, rollout, ref = arr.actor, arr.rollout, arr.ref
    n_gpus = tr.n_gpus_per_node * tr.nnodes
    sp = actor.get("ulysses_sequence_parallel_size", 1) or 1
    dp = n_gpus // sp
    n, batch, mini = rollout.n, data.train_batch_size, actor.ppo_mini_batch_size
    seq = data.max_prompt_length + data.max_response_length
    if n_gpus % sp:
        problems.append(f"ulysses_sequence_parallel_size {sp} does not divide {n_gpus} GPUs")
    if (batch * n) % n_gpus:
        problems.append(f"train_batch_size x rollout.n = {batch * n} trajectories do not split over {n_gpus} GPUs")
    if batch % mini:
        problems.append(f"train_batch_size {batch} is not a whole number of ppo_mini_batch_size {mini}")
    if (mini * n) % dp:
        problems.append(f"a mini-batch of {mini * n} trajectories does not split over {dp} data-parallel ranks")
    elif actor.ppo_micro_batch_size_per_gpu and ((mini * n) // dp) % actor.ppo_micro_batch_size_per_gpu:
        problems.append(f"{(mini * n) // dp} trajectories per GPU per update are not a whole number of "
                        f"ppo_micro_batch_size_per_gpu {actor.ppo_micro_batch_size_per_gpu}")
    if actor.use_dynamic_bsz:
        for where, budget in (("actor.ppo_max_token_len_per_gpu", actor.ppo_max_token_len_per_gpu),
                              ("ref.log_prob_max_token_len_per_gpu", ref.log_prob_max_token_len_per_gpu),
                              ("rollout.log_prob_max_token_len_per_gpu", rollout.log_prob_max_token_len_per_gpu)):
            if budget * sp < seq:
                problems.append(f"{where} {budget} x sp {sp} < one sequence of {seq} tokens")
    else:
        for where, mbs in (("ref", ref.log_prob_micro_batch_size_per_gpu), ("rollout", rollout.log_prob_micro_batch_size_per_gpu)):
            if not mbs:
                problems.append(f"{where}.log_prob_micro_batch_size_per_gpu is not set")
    tp = rollout.tensor_model_parallel_size
    replica = tp * rollout.data_parallel_size * rollout.pipeline_model_parallel_size
    if tr.n_gpus_per_node % tp:
        problems.append(f"rollout.tensor_model_parallel_size {tp} does not divide n_gpus_per_node {tr.n_gpus_per_node}")
    if n_gpus % replica:
        problems.append(f"a rollout replica of {replica} GPUs does not divide {n_gpus} GPUs")
    if rollout.prompt_length != data.max_prompt_length or rollout.response_length != data.max_response_length:
        problems.append("rollout.prompt_length/response_length differ from data.max_prompt_length/max_response_length")
    if rollout.get("max_model_len") is not None and rollout.max_model_len < seq:
        problems.append(f"rollout.max_model_len {rollout.max_model_len} < prompt + response {seq}")
    return problems


def sft_batch_problems(cfg: Any) -> list[str]:
    """What is inconsistent between sft_trainer's batch sizes, lengths and GPU counts (empty: consistent)."""
    problems = []
    data, tr = cfg.data, cfg.trainer
    world = tr.n_gpus_per_node * tr.nnodes
    sp = cfg.engine.get("ulysses_sequence_parallel_size", 1) or 1
    dp = world // sp
    if world % sp:
        problems.append(f"ulysses_sequence_parallel_size {sp} does not divide {world} ranks")
    if data.train_batch_size % dp:
        problems.append(f"train_batch_size {data.train_batch_size} does not split over {dp} data-parallel ranks")
    elif (data.train_batch_size // dp) % data.micro_batch_size_per_gpu:
        problems.append(f"{data.train_batch_size // dp} sequences per rank are not a whole number of "
                        f"micro_batch_size_per_gpu {data.micro_batch_size_per_gpu}")
    if data.use_dynamic_bsz and data.max_token_len_per_gpu * sp < data.max_length:
        problems.append(f"max_token_len_per_gpu {data.max_token_len_per_gpu} < one sequence of max_length {data.max_length}")
    if isinstance(tr.test_freq, int) and tr.test_freq > 0 and not data.val_files:
        problems.append(f"trainer.test_freq={tr.test_freq} without data.val_files")
    return problems


def leaf_lines_without_source(path: Path, markers: tuple[str, ...]) -> list[str]:
    """Value lines of a recipe (outside hydra/defaults) whose inline comment or the comment block right above
    them names no source marker."""
    bad, comments, skip_indent = [], [], None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            comments = []
            continue
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("#"):
            comments.append(stripped)
            continue
        if skip_indent is not None and (indent > skip_indent or stripped.startswith("- ")):
            comments = []
            continue
        skip_indent = None
        key, _, value = stripped.partition(":")
        if indent == 0 and key in ("hydra", "defaults"):
            skip_indent = 0
            comments = []
            continue
        value = value.split(" #")[0].strip()
        if value:  # a leaf: key: value
            text = " ".join(comments) + " " + (stripped.split(" #", 1)[1] if " #" in stripped else "")
            if not any(m in text for m in markers):
                bad.append(f"{path.name}:{number}: {stripped}")
        comments = []
    return bad


def markdown_commands(path: Path) -> list[list[str]]:
    """The shell commands of a page's ```bash blocks (continuations joined, comments dropped) that compose a
    recipe (they pass --config-name), as argv lists."""
    commands, block, current = [], False, ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            block = stripped == "```bash"
            continue
        if not block or (not current and stripped.startswith("#")):
            continue
        stripped = stripped.split(" # ")[0].rstrip()
        current += " " + stripped.rstrip("\\")
        if not stripped.endswith("\\"):
            argv = shlex.split(current.replace("$PWD", str(REPO)))
            current = ""
            if "--config-name" in argv:
                commands.append([t for t in argv if t != "&"])
    return commands
