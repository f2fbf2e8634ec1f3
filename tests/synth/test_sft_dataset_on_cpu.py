"""The synthesized SFT parquet loads with verl's multi-turn SFT dataset on the tiny tokenizer: assistant turns
(phase tag, reasoning, tool calls, end of turn) are in the loss mask, tool responses and prompts are not."""

from __future__ import annotations

from omegaconf import OmegaConf
from synth_helpers import synth, written

from verl_toolmaster import compat
from verl_toolmaster.data.sft_dataset import ToolSFTDataset
from verl_toolmaster.synth.quality import message_text

EOT = "<|im_end|>\n"


def _runs(ids, mask, tokenizer):
    """(mask value, decoded text) for each run of equal mask values."""
    out, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            out.append((mask[start], tokenizer.decode(ids[start:i], skip_special_tokens=False)))
            start = i
    return out


def test_loss_mask_covers_assistant_turns_only(scripted_run, tiny_tokenizer):
    _, out = scripted_run
    ds = ToolSFTDataset(str(out), tiny_tokenizer, OmegaConf.create({"max_length": 32768, "truncation": "error", "pad_mode": "no_padding"}))
    assert isinstance(ds, compat.MultiTurnSFTDataset)
    rows = written(out)
    assert len(ds) == len(rows)
    for k in range(len(rows)):
        item = ds[k]
        ids, mask = item["input_ids"].tolist(), item["loss_mask"].tolist()
        runs = _runs(ids, mask, tiny_tokenizer)
        trained = [text for m, text in runs if m == 1]
        masked = "".join(text for m, text in runs if m == 0)
        assistants = [m for m in rows[k]["messages"] if m["role"] == "assistant"]
        assert trained == [message_text(m) + EOT for m in assistants]  # exactly the assistant turns, in order
        for m in rows[k]["messages"]:
            if m["role"] == "tool":
                assert f"<tool_response>\n{m['content']}\n</tool_response>" in masked
        assert not any("<tool_response>" in t for t in trained)
        assert any(t.startswith("<trial>") for t in trained)


def test_plain_nested_layout_is_refused_not_corrupted(rl_data, tiny_model_dir, tmp_path):
    """Rows with failed probes cannot be stored in verl's plain nested layout without parquet adding null keys to
    the calls: the writer refuses (exit 2) instead of writing altered calls."""
    out = tmp_path / "nested.parquet"
    run = synth("scripted", [rl_data["toolhop"]], out, "--format", "nested", tokenizer=tiny_model_dir)
    assert run.code == 2
    assert "--format nested" in run.stderr and "json-tools" in run.stderr
    assert not out.exists()


def test_max_length_drops_exactly_the_long_rows(scripted_run, rl_data, tiny_model_dir, tiny_tokenizer, tmp_path):
    def length(row):
        return len(tiny_tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=True, return_dict=True)["input_ids"])

    _, out = scripted_run
    full = [r for r in written(out) if r["data_source"] == "toolhop" and r["variant"] == 0]
    lengths = sorted(length(r) for r in full)
    limit = lengths[len(lengths) // 2]  # the median: some rows fit, some do not
    run = synth("scripted", [rl_data["toolhop"]], tmp_path / "s.parquet", "--max-length", str(limit), tokenizer=tiny_model_dir)
    kept = written(tmp_path / "s.parquet")
    assert {r["task_id"] for r in kept} == {r["task_id"] for r in full if length(r) <= limit}
    assert run.summary["dropped"]["too_long"] == sum(1 for n in lengths if n > limit) > 0
