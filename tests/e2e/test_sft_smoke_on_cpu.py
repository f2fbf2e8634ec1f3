"""Slow: verl's sft_trainer (torchrun, FSDP2 over gloo) on CPU on ToolHop gold-trace SFT rows."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from e2e_helpers import REPO, parse_steps, run_script

pytestmark = pytest.mark.slow


def test_sft_trains_and_leaves_hf_checkpoint(tmp_path, shared_data, tiny_tokenizer):
    out = tmp_path / "out"
    proc = run_script("recipes/cpu/run_sft_tiny.sh", out, "trainer.total_training_steps=3",
                      env={"TOOLMASTER_SHARED_DATA": str(shared_data)})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    steps = parse_steps(log)
    assert {1, 2, 3} <= set(steps), sorted(steps)
    losses = [steps[i]["train/loss"] for i in (1, 2, 3)]
    assert losses[-1] < losses[0], losses
    hf = out / "sft_ckpt" / "global_step_3" / "huggingface"
    assert (hf / "model.safetensors").is_file() and (hf / "tokenizer.json").is_file()

    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(hf)
    initial = AutoModelForCausalLM.from_pretrained(out / "model")
    deltas = [(a - b).abs().max().item() for a, b in zip(trained.parameters(), initial.parameters())]
    assert max(deltas) > 0, "the checkpoint holds the initial weights"

    # What the trainer consumed: tool responses are present and outside the loss, assistant turns inside it.
    from omegaconf import OmegaConf

    from verl_toolmaster.data.sft_dataset import ToolSFTDataset

    cfg = OmegaConf.create({"messages_key": "messages", "tools_key": "tools", "max_length": 8192,
                            "truncation": "error", "pad_mode": "no_padding"})
    ds = ToolSFTDataset(parquet_files=str(out / "data" / "toolhop_sft.parquet"), tokenizer=tiny_tokenizer, config=cfg)
    assert len(ds) >= 1
    resp_id = tiny_tokenizer.convert_tokens_to_ids("<tool_response>")
    call_id = tiny_tokenizer.convert_tokens_to_ids("<tool_call>")
    for i in range(len(ds)):
        item = ds[i]
        ids, mask = item["input_ids"].tolist(), item["loss_mask"].tolist()
        assert resp_id in ids and call_id in ids
        assert all(m == 0 for t, m in zip(ids, mask) if t == resp_id)
        in_loss = [t for t, m in zip(ids, mask) if m]
        assert call_id in in_loss  # the assistant's calls are trained (the system text's example call is not)
        text_in_loss = tiny_tokenizer.decode(in_loss)
        assert "<answer>" in text_in_loss and "</tool_response>" not in text_in_loss and "<|im_start|>user" not in text_in_loss
