"""The offline tiny model: Qwen2.5 chat rendering, determinism, loadable by transformers, CLI errors."""

from __future__ import annotations

import subprocess
import sys

import torch

from verl_toolmaster.tiny import TinyConfig, build_tiny

TOOLS = [{"type": "function", "function": {"name": "add", "description": "Add.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}]
MESSAGES = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "Q"},
    {"role": "assistant", "content": "<trial>p</trial>", "tool_calls": [
        {"type": "function", "function": {"name": "add", "arguments": {"a": 1}}}]},
    {"role": "tool", "content": "2"},
    {"role": "tool", "content": "3"},
    {"role": "assistant", "content": "<answer>2</answer>"},
]
# What Qwen2.5-Instruct's template renders for MESSAGES + TOOLS (written out by hand from the template).
EXPECTED = (
    "<|im_start|>system\nS\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    '{"type": "function", "function": {"name": "add", "description": "Add.", "parameters": {"type": "object", '
    '"properties": {"a": {"type": "integer"}}, "required": ["a"]}}}\n</tools>\n\n'
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> "
    'XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\nQ<|im_end|>\n"
    '<|im_start|>assistant\n<trial>p</trial>\n<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\n<tool_response>\n2\n</tool_response>\n<tool_response>\n3\n</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n<answer>2</answer><|im_end|>\n"
    "<|im_start|>assistant\n"
)


def test_chat_template_renders_like_qwen25(tiny_tokenizer):
    text = tiny_tokenizer.apply_chat_template(MESSAGES, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert text == EXPECTED
    no_tools = tiny_tokenizer.apply_chat_template(MESSAGES[:2], tokenize=False)
    assert no_tools == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n"


def test_special_tokens_are_single_ids_and_text_round_trips(tiny_tokenizer):
    for tok in ("<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"):
        assert len(tiny_tokenizer.encode(tok, add_special_tokens=False)) == 1, tok
    ids = tiny_tokenizer.encode(EXPECTED, add_special_tokens=False)
    assert tiny_tokenizer.decode(ids) == EXPECTED
    assert tiny_tokenizer.eos_token == "<|im_end|>" and tiny_tokenizer.pad_token == "<|endoftext|>"


def test_model_loads_and_is_deterministic(tiny_model_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(tiny_model_dir)
    assert cfg.model_type == "qwen2"
    again = build_tiny(tmp_path / "again", TinyConfig())
    for name in ("model.safetensors", "tokenizer.json"):
        assert (tiny_model_dir / name).read_bytes() == (again / name).read_bytes(), name
    other = build_tiny(tmp_path / "other", TinyConfig(seed=1))
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    n_params = sum(p.numel() for p in model.parameters())
    assert 50_000 < n_params < 500_000
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, cfg.vocab_size)


def test_cli_error_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = subprocess.run([sys.executable, "-m", "verl_toolmaster.tiny", "--out", str(blocker / "x")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: cannot build the tiny model")
