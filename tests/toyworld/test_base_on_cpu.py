"""The protocol-neutral base pretraining: exact chat-template tokens, assistant-only targets, nothing of either arm."""

from __future__ import annotations

import json
import random

from verl_toolmaster.toyworld import base
from verl_toolmaster.toyworld import world as tw


def test_pieces_tokenize_like_the_whole_conversation_and_mask_only_the_assistant(tiny_tokenizer):
    rng = random.Random(0)
    for _ in range(20):
        messages, tools = base.conversation(rng, list(tw.NAME_WORDS))
        ids, mask = base.encode(tiny_tokenizer, messages, tools)
        whole = tiny_tokenizer.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=True)["input_ids"]
        assert ids == list(whole) and len(mask) == len(ids)
        target = tiny_tokenizer.decode([i for i, m in zip(ids, mask) if m])
        call = messages[2]["tool_calls"][0]["function"]
        assert target == f'<tool_call>\n{json.dumps(call)}\n</tool_call><|im_end|>{messages[4]["content"]}<|im_end|>'


def test_base_data_shows_nothing_of_either_arm():
    rng = random.Random(1)
    for _ in range(200):
        messages, tools = base.conversation(rng, list(tw.NAME_WORDS))
        text = json.dumps(messages) + json.dumps(tools)
        assert not any(tag in text for tag in ("<trial>", "<execute>", "Error", "Usage", tw.SYSTEM_TRIAL, tw.SYSTEM_DIRECT))
        call = messages[2]["tool_calls"][0]["function"]
        props = tools[0]["function"]["parameters"]["properties"]
        assert list(call["arguments"]) == list(props)  # the documentation is right
        assert call["name"] == tools[0]["function"]["name"]
        assert tools[0]["function"]["description"] == "A tool."  # says nothing about a behaviour


def test_pretrain_runs_saves_and_reports(tiny_model_dir, tmp_path):
    out = tmp_path / "base"
    summary = base.pretrain(tiny_model_dir, out, base.BaseConfig(steps=3, batch_size=2, log_every=1), log=lambda s: None)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    assert [h["step"] for h in summary["history"]] == [1, 2, 3] and all(h["loss"] > 0 for h in summary["history"])
    assert 0.0 <= summary["copy_exact_match"] <= 1.0
    assert json.loads((out / "toyworld_base.json").read_text())["steps"] == 3


def test_cli_refuses_a_missing_model(tmp_path, capsys):
    assert base.main(["--model", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "holds no model" in capsys.readouterr().err
