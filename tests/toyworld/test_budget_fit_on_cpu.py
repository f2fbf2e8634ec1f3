"""Every teacher trajectory of every arm and level fits the ToyWorld GRPO recipe's budgets (and the main job's
trial-arm trajectories of its levels fit pipeline_grpo.yaml's) (turns, trial and execute
replies, prompt and response tokens with SmolLM2's tokenizer) with room for one more recovery turn: a policy that
imitates its SFT data perfectly and then makes one mistake can still repair it inside the rollout's budget."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from verl_toolmaster.data.task import rl_row
from verl_toolmaster.protocol.messages import decode_messages
from verl_toolmaster.toyworld import generate as gen
from verl_toolmaster.toyworld import teachers
from verl_toolmaster.toyworld import world as tw

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "cpu"
# (recipe, SFT flavour, levels): the ToyWorld experiment trains every arm on every level; the main job
# (recipes/cpu/run_pipeline.sh, LEVELS=1,2,3) the trial arm on levels 1-3
CASES = [("toyworld_grpo.yaml", f, tw.LEVELS) for f in ("direct", "selfcorrect", "trial")] + [("pipeline_grpo.yaml", "trial", (1, 2, 3))]


def _budgets(recipe: str) -> dict[str, int]:
    cfg = OmegaConf.load(RECIPES / recipe)
    loop = cfg.actor_rollout_ref.rollout.custom.toolmaster
    return {"prompt": cfg.data.max_prompt_length, "response": cfg.data.max_response_length,
            "turns": cfg.actor_rollout_ref.rollout.multi_turn.max_assistant_turns,
            "trial": loop.max_trial_turns, "execute": loop.max_execute_turns}


def _ids(x):
    return list(x["input_ids"] if hasattr(x, "keys") else x)


def _measure(tok, row: dict) -> dict[str, int]:
    msgs = decode_messages(row["messages"])
    tools = row["tools"]
    tools = json.loads(tools) if isinstance(tools, str) else tools
    prompt = _ids(tok.apply_chat_template(msgs[:2], tools=tools, tokenize=True, add_generation_prompt=True))
    full = _ids(tok.apply_chat_template(msgs, tools=tools, tokenize=True))
    # one recovery = one more reply with a call and its observation: as long as the longest such pair here
    pairs = [len(_ids(tok.apply_chat_template(msgs[:i + 2], tools=tools, tokenize=True))) - len(_ids(tok.apply_chat_template(msgs[:i], tools=tools, tokenize=True)))
             for i, m in enumerate(msgs) if m["role"] == "assistant" and m.get("tool_calls") and i + 1 < len(msgs)]
    tags = [(m.get("content") or "").split(">", 1)[0] for m in msgs if m["role"] == "assistant"]
    return {"prompt": len(prompt), "response": len(full) - len(prompt), "room": max(pairs, default=0),
            "turns": len(tags), "trial": tags.count("<trial"), "execute": sum(bool(m.get("tool_calls")) for m in msgs if m["role"] == "assistant") - tags.count("<trial")}


@pytest.mark.parametrize("recipe,flavour,levels", CASES, ids=[f"{r.split('.')[0]}-{f}" for r, f, _ in CASES])
def test_teacher_trajectories_fit_the_grpo_budgets_with_room_for_one_recovery(recipe, flavour, levels, smollm2_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2_model_dir))
    budget = _budgets(recipe)
    world = tw.build_world(seed=3, tools_per_split=80)
    tasks = tw.make_tasks(world, "train", 80, levels)
    if flavour == "direct":
        rows = gen.direct_sft_rows(tasks)
    else:
        rl = [rl_row(t, i, tw.system_text(teachers.TRIAL_MODE[flavour])) for i, t in enumerate(tasks)]
        rows, dropped = asyncio.run(teachers.synthesize(flavour, rl, concurrency=4, progress=False, err=io.StringIO()))
        assert dropped == {}
    assert len(rows) == len(tasks)
    worst: dict[str, int] = {}
    for t, row in zip(tasks, rows):
        m = _measure(tok, row)
        where = f"{flavour} {t.id} level {t.tags['level']}: {m} vs {budget}"
        assert m["prompt"] <= budget["prompt"], where
        assert m["response"] + m["room"] <= budget["response"], where
        assert m["turns"] + 1 <= budget["turns"], where
        assert m["trial"] <= budget["trial"], where
        assert m["execute"] + 1 <= budget["execute"], where
        for k, v in m.items():
            worst[k] = max(worst.get(k, 0), v)
    # the measurement saw real trajectories (a direct one: a call and the answer; the others up to five replies)
    assert worst["turns"] >= (2 if flavour == "direct" else 5) and worst["response"] >= 80 and worst["room"] >= 40, worst
