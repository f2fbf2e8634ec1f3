"""docs/knobs.md names every knob of the code, and its tables state the code's defaults and the recipes' values."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields

import pytest
from omegaconf import OmegaConf

import recipe_checks as rc
from verl_toolmaster.agent_config import ToolMasterLoopConfig
from verl_toolmaster.envs.bfcl_env import BfclRuntime
from verl_toolmaster.envs.http_env import HttpConfig
from verl_toolmaster.envs.perturb import PerturbOptions
from verl_toolmaster.envs.sandbox_pool import SandboxConfig, SandboxLimits
from verl_toolmaster.reward.config import ToolMasterRewardConfig
from verl_toolmaster.reward.scorers.stabletoolbench import JudgeConfig

DOC = rc.REPO / "docs" / "knobs.md"
TEXT = DOC.read_text()


def table_rows() -> list[list[str]]:
    """Cells of every markdown table row (header and separator rows included; callers filter)."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in TEXT.splitlines() if line.startswith("|")]


def documented(prefix: str) -> dict[str, tuple[str, str | None]]:
    """``{field: (default cell, GPU-recipes cell or None)}`` for table rows whose key cell names ``prefix<field>``.
    A cell naming several keys pairs them with comma-separated defaults."""
    out = {}
    for cells in table_rows():
        if len(cells) < 3:
            continue
        keys = ["reward.reward_kwargs." + k if k.startswith("judge.") else k for k in re.findall(r"`([^`]+)`", cells[1])]
        keys = [k[len(prefix):] for k in keys if k.startswith(prefix) and "." not in k[len(prefix):]]
        if not keys:
            continue
        defaults = [d.strip() for d in cells[2].split(",")] if len(keys) > 1 else [cells[2]]
        recipe = cells[3] if len(cells) > 3 else None
        for key, default in zip(keys, defaults):
            out[key] = (default, recipe)
    return out


def shown(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def first_token(cell: str) -> str:
    return cell.split(" (")[0].strip().strip("`")


@pytest.mark.parametrize("cls", [ToolMasterLoopConfig, ToolMasterRewardConfig, JudgeConfig, PerturbOptions,
                                 SandboxLimits, SandboxConfig, HttpConfig, BfclRuntime])
def test_every_config_field_is_named(cls):
    missing = [f.name for f in fields(cls) if not re.search(rf"[`.]{f.name}[`.]", TEXT)]
    assert missing == [], f"docs/knobs.md does not name {cls.__name__} fields {missing}"


def test_every_prepare_flag_is_named():
    from verl_toolmaster.data.prepare import build_parser

    flags = [a.option_strings[-1] for a in build_parser()._actions if a.option_strings and a.dest != "help"]
    assert [f for f in flags if f"`{f}`" not in TEXT] == []


@pytest.mark.parametrize("prefix,cls", [("custom.toolmaster.", ToolMasterLoopConfig),
                                        ("reward.reward_kwargs.", ToolMasterRewardConfig),
                                        ("reward.reward_kwargs.judge.", JudgeConfig)])
def test_table_defaults_are_the_code_defaults(prefix, cls):
    rows = documented(prefix)
    checked = 0
    for f in fields(cls):
        if f.name not in rows or f.default is MISSING:
            continue
        assert first_token(rows[f.name][0]) == shown(f.default), f"{prefix}{f.name}: doc {rows[f.name][0]!r}, code {f.default!r}"
        checked += 1
    assert checked >= 8 if cls is not JudgeConfig else checked >= 6


@pytest.mark.parametrize("prefix,section", [("custom.toolmaster.", "actor_rollout_ref.rollout.custom.toolmaster"),
                                            ("reward.reward_kwargs.", "reward.reward_kwargs")])
def test_recipe_column_is_what_the_gpu_recipes_set(prefix, section):
    recipe = next(r for r in rc.discover() if r.rel == "toolmaster_grpo_7b.yaml")
    cfg = rc.compose(recipe, rc.launch_overrides(rc.launch_command(recipe.path)))
    values = OmegaConf.to_container(OmegaConf.select(cfg, section), resolve=True)
    checked = 0
    for key, (_, in_recipe) in documented(prefix).items():
        if in_recipe in (None, "-") or key not in values or isinstance(values[key], dict):
            continue
        assert first_token(in_recipe) == shown(values[key]), f"{prefix}{key}: doc says {in_recipe!r}, recipe sets {values[key]!r}"
        checked += 1
    assert checked >= 8


def test_verl_mapped_loop_knobs_match_the_recipe():
    recipe = next(r for r in rc.discover() if r.rel == "toolmaster_grpo_7b.yaml")
    cfg = rc.compose(recipe, rc.launch_overrides(rc.launch_command(recipe.path)))
    rows = documented("multi_turn.")
    for key in ("max_assistant_turns", "max_parallel_calls", "max_tool_response_length", "tool_response_truncate_side"):
        assert first_token(rows[key][1]) == shown(cfg.actor_rollout_ref.rollout.multi_turn[key]), key
