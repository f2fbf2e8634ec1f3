"""The RL parquet loads with verl's RLHFDataset and the SFT parquet with its multi-turn SFT dataset (tiny tokenizer)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from verl_toolmaster import compat
from verl_toolmaster.data import get_adapter
from verl_toolmaster.protocol.messages import decode_messages
from verl_toolmaster.data.sft import read_sft_rows, sft_row, write_sft_parquet
from verl_toolmaster.data.sft_dataset import ToolSFTDataset
from verl_toolmaster.protocol import system_prompt


@pytest.mark.parametrize("dataset", ["toolhop", "bfcl", "apibank", "toolrl", "rotbench", "stabletoolbench"])
def test_rl_parquet_loads_with_rlhf_dataset(dataset, shared_data, prepare, tiny_tokenizer, tmp_path):
    out = tmp_path / "rl.parquet"
    res = prepare(["--dataset", dataset, "--input", str(shared_data / dataset), "--output", str(out), "--limit", "40"])
    cfg = OmegaConf.create({"max_prompt_length": 1_000_000, "filter_overlong_prompts": True, "filter_overlong_prompts_workers": 1})
    ds = compat.RLHFDataset(data_files=[str(out)], tokenizer=tiny_tokenizer, config=cfg)
    assert len(ds) == res.last["written"] > 0
    item = ds[len(ds) - 1]
    assert item["agent_name"] == "toolmaster_agent" and item["data_source"]
    messages = decode_messages(list(item["raw_prompt"]))
    assert messages[0]["content"] == system_prompt("on")
    # the prompt renders through the chat template (what the agent loop does, with the env's tools)
    text = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("dataset", ["apibank", "toolrl", "rotbench", "bfcl"])
def test_sft_parquet_loads_with_multiturn_sft_dataset(dataset, shared_data, prepare, tiny_tokenizer, tmp_path):
    sft = tmp_path / "sft.parquet"
    extra = ["--categories", "live_multiple,parallel"] if dataset == "bfcl" else []
    prepare(["--dataset", dataset, "--input", str(shared_data / dataset), "--output", str(tmp_path / "rl.parquet"), "--sft-output", str(sft), "--limit", "25", *extra])
    rows = read_sft_rows(sft)
    ds = ToolSFTDataset(str(sft), tiny_tokenizer, OmegaConf.create({"max_length": 60_000, "truncation": "error", "pad_mode": "no_padding"}))
    assert isinstance(ds, compat.MultiTurnSFTDataset) and len(ds) == len(rows) > 0
    for i in (0, len(ds) - 1):
        item = ds[i]
        # verl tokenized exactly the in-memory conversation: argument dicts and tool objects, no parquet nulls
        expected = tiny_tokenizer.apply_chat_template(rows[i]["messages"], tools=rows[i]["tools"], tokenize=True, return_dict=True)["input_ids"]
        assert item["input_ids"].tolist() == list(expected)
        assert item["loss_mask"].sum() > 0
        last = rows[i]["messages"][-1]
        assert last["role"] == "assistant"
        text = tiny_tokenizer.decode(item["input_ids"][item["loss_mask"].bool()])
        if last.get("tool_calls"):
            assert f'"name": "{last["tool_calls"][0]["function"]["name"]}"' in text


def _rows(shared_data, n: int):
    adapter = get_adapter("rotbench")()
    tasks = [adapter.convert(r) for r in adapter.records(shared_data / "rotbench")]
    return [sft_row(t, system_prompt("off")) for t in tasks[:n]]


def test_nested_layout_loads_in_plain_verl_when_rows_share_schemas(tiny_tokenizer, tmp_path):
    tool = {"type": "function", "function": {"name": "add", "description": "Add two numbers.", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}
    rows = [
        {
            "messages": [
                {"role": "system", "content": system_prompt("off")},
                {"role": "user", "content": f"What is {a} + {b}?"},
                {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": a, "b": b}}}]},
                {"role": "tool", "content": str(a + b)},
                {"role": "assistant", "content": f"<answer>{a + b}</answer>"},
            ],
            "tools": [tool],
            "data_source": "synthetic",
            "task_id": f"add-{a}-{b}",
        }
        for a, b in ((1, 2), (30, 4))
    ]
    path = tmp_path / "nested.parquet"
    write_sft_parquet(rows, path, fmt="nested")
    ds = compat.MultiTurnSFTDataset(str(path), tiny_tokenizer, OmegaConf.create({"max_length": 60_000, "pad_mode": "no_padding"}))
    for i, row in enumerate(rows):
        expected = tiny_tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=True, return_dict=True)["input_ids"]
        assert ds[i]["input_ids"].tolist() == list(expected)


def test_nested_layout_refuses_rows_parquet_would_alter(shared_data, tmp_path):
    rows = _rows(shared_data, 48)
    path = tmp_path / "nested.parquet"
    with pytest.raises(ValueError, match=r"row \d+ .* json-tools"):
        write_sft_parquet(rows, path, fmt="nested")
    assert not path.exists()
    write_sft_parquet(rows, path)  # the default layout holds them
    back = read_sft_rows(path)
    assert [r["messages"] for r in back] == [r["messages"] for r in rows]
    assert [r["tools"] for r in back] == [r["tools"] for r in rows]


def test_toolhop_sft_observations_come_from_the_python_environment(shared_data, prepare, tmp_path):
    sft = tmp_path / "sft.parquet"
    res = prepare(["--dataset", "toolhop", "--input", str(shared_data / "toolhop"), "--output", str(tmp_path / "rl.parquet"), "--sft-output", str(sft)])
    assert "sft rows: 5;" in res.stdout and '"no_gold_trace": 5' in res.stdout
    row = next(r for r in read_sft_rows(sft) if r["task_id"] == "toolhop-015")
    msgs = row["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant", "tool", "assistant"]
    # outputs of the tools' own code, run in the sandbox (not text from the dataset)
    assert msgs[3]["content"] == '{"father": "John Russell, 3rd Baron Ampthill"}'
    assert msgs[-2]["content"] == "Russell" and msgs[-1]["content"] == "<answer>Russell</answer>"


def test_sft_trainer_builds_tool_sft_dataset_from_config(shared_data, prepare, tiny_tokenizer, tmp_path):
    """The documented config (data.custom_cls pkg:// path) is what verl's SFT trainer resolves."""
    sft = tmp_path / "sft.parquet"
    prepare(["--dataset", "rotbench", "--input", str(shared_data / "rotbench"), "--output", str(tmp_path / "rl.parquet"), "--sft-output", str(sft)])
    create_sft_dataset = compat.resolve("verl.trainer.sft_trainer:create_sft_dataset")
    cfg = OmegaConf.create({
        "custom_cls": {"path": "pkg://verl_toolmaster.data.sft_dataset", "name": "ToolSFTDataset"},
        "max_length": 60_000, "truncation": "error", "pad_mode": "no_padding",
    })  # fmt: skip
    ds = create_sft_dataset([str(sft)], cfg, tiny_tokenizer, None)
    assert isinstance(ds, ToolSFTDataset) and len(ds) == 48
    assert ds[0]["loss_mask"].sum() > 0
