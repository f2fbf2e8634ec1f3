"""The ToyWorld base model: the offline tiny model plus a short pretraining in calling a documented tool.

``python -m verl_toolmaster.toyworld.base --model TINY_DIR --out BASE_DIR`` trains the randomly initialised tiny
model (``python -m verl_toolmaster.tiny``) on made-up, correctly documented tools in the chat template: a generic
system text, one tool, "Use the tool on 3 and "open".", the call (the schema's names, the values in order), the
result ``{"label": value}`` and ``<answer>value</answer>``. That is the skill any tool-using policy has before
tool training (the paper starts from Qwen2.5-7B-Instruct): copy names it has just read into what it writes. A
360k-parameter model needs several hundred steps of dense copying before it copies at all (the loss sits on a
plateau for ~500 steps, then drops); ToyWorld's SFT sets alone do not get there within the experiment's budget.

Shared by both arms and protocol-neutral: no phase tags, no errors, no probes, no stale documentation, no
ToyWorld tool (tools are invented per example from all name words, so no name is tied to any behaviour). It
resembles the direct arm's level-1 data more than the trial arm's, which if anything favours the direct arm.
Plain PyTorch (no verl), one process, deterministic for a seed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .world import NAME_WORDS, VALUE_WORDS


@dataclass(frozen=True)
class BaseConfig:
    """Pretraining settings."""

    steps: int = 900  # optimizer steps (the copy skill appears after ~500 at the defaults)
    batch_size: int = 16  # sequences per step
    examples_per_sequence: int = 2  # conversations packed into one sequence
    lr: float = 3e-3  # AdamW learning rate (constant)
    weight_decay: float = 0.01  # AdamW weight decay
    seed: int = 0  # data order and sampling
    threads: int = 1  # torch intra-op threads (a tiny model gains little from more)
    log_every: int = 50  # steps between progress lines


SYSTEM = "You are a helpful assistant."
_ASSISTANT = "<|im_start|>assistant\n"
_END = "<|im_end|>"


def conversation(rng: random.Random, words: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One correctly documented tool, a request to use it on some values, the call, its result and the answer.

    The tool (two-word name, one or two parameters) is made up on the spot from ``words``; its schema is stored
    with sorted keys, as RL rows store schemas. No phase tags, no errors, no probes: nothing of either arm.
    """
    from ..data.schemas import function_tool

    name = "_".join(rng.sample(words, 2))
    keys = sorted(rng.sample([w for w in words if w not in name.split("_")], rng.randint(1, 2)))
    types = [rng.choice(("integer", "string")) for _ in keys]
    values: list[Any] = [rng.randint(1, 9) if t == "integer" else rng.choice(VALUE_WORDS) for t in types]
    tool = json.loads(json.dumps(function_tool(name, "A tool.", {"type": "object", "properties": {k: {"type": t} for k, t in zip(keys, types)}, "required": keys}), sort_keys=True))
    label = rng.choice(words)
    result = rng.choice([rng.randint(1, 99), rng.choice(VALUE_WORDS)])
    shown = " and ".join(json.dumps(v) if isinstance(v, str) else str(v) for v in values)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Use the tool on {shown}."},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": name, "arguments": dict(zip(keys, values))}}]},
        {"role": "tool", "content": json.dumps({label: result})},
        {"role": "assistant", "content": f"<answer>{result}</answer>"},
    ]
    return messages, [tool]


def encode(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """Token ids of the rendered conversation and a mask that is 1 on what the assistant writes.

    The text is split at the chat template's assistant turns, whose borders are special tokens, so tokenizing the
    pieces gives the same ids as tokenizing the whole text.
    """
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    ids: list[int] = []
    mask: list[int] = []
    pos = 0
    while True:
        start = text.find(_ASSISTANT, pos)
        if start < 0:
            break
        start += len(_ASSISTANT)
        stop = text.index(_END, start) + len(_END)
        for piece, target in ((text[pos:start], 0), (text[start:stop], 1)):
            piece_ids = tokenizer.encode(piece, add_special_tokens=False)
            ids += piece_ids
            mask += [target] * len(piece_ids)
        pos = stop
    tail = tokenizer.encode(text[pos:], add_special_tokens=False)
    return ids + tail, mask + [0] * len(tail)


def sample_sequence(rng: random.Random, tokenizer: Any, words: list[str], n_examples: int) -> tuple[list[int], list[int]]:
    """``n_examples`` conversations packed into one token sequence, with the assistant mask."""
    ids: list[int] = []
    mask: list[int] = []
    for _ in range(n_examples):
        x, m = encode(tokenizer, *conversation(rng, words))
        ids += x
        mask += m
    return ids, mask


def pretrain(model_dir: str | Path, out_dir: str | Path, cfg: BaseConfig, log=print) -> dict[str, Any]:
    """Train ``model_dir``'s model on form filling and save it (with its tokenizer) to ``out_dir``.

    Returns a summary: final loss and exact-match copy accuracy on fresh examples.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    words = list(NAME_WORDS)
    rng = random.Random(f"toyworld-base:{cfg.seed}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    pad = tokenizer.pad_token_id
    started = time.time()
    history: list[dict[str, float]] = []
    model.train()
    for step in range(1, cfg.steps + 1):
        batch = [sample_sequence(rng, tokenizer, words, cfg.examples_per_sequence) for _ in range(cfg.batch_size)]
        length = max(len(x) for x, _ in batch)
        ids = torch.full((cfg.batch_size, length), pad, dtype=torch.long)
        mask = torch.zeros((cfg.batch_size, length))
        attn = torch.zeros((cfg.batch_size, length), dtype=torch.long)
        for i, (x, m) in enumerate(batch):
            ids[i, : len(x)] = torch.tensor(x)
            mask[i, : len(m)] = torch.tensor(m, dtype=torch.float)
            attn[i, : len(x)] = 1
        # the vocabulary projection dominates a tiny model's cost: apply it only where there is a target
        hidden = model.model(input_ids=ids, attention_mask=attn).last_hidden_state[:, :-1]
        where = mask[:, 1:].bool()
        logits = model.lm_head(hidden[where])
        loss = torch.nn.functional.cross_entropy(logits, ids[:, 1:][where])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % cfg.log_every == 0 or step == cfg.steps:
            history.append({"step": step, "loss": loss.item(), "seconds": time.time() - started})
            log(f"base step {step}/{cfg.steps} loss {loss.item():.3f} ({time.time() - started:.0f}s)")
    accuracy = copy_accuracy(model, tokenizer, words, random.Random(f"toyworld-base-eval:{cfg.seed}"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    summary = {"steps": cfg.steps, "final_loss": history[-1]["loss"] if history else None, "copy_exact_match": accuracy,
               "seconds": time.time() - started, "history": history}
    (out / "toyworld_base.json").write_text(json.dumps(summary, indent=1))
    return summary


def copy_accuracy(model: Any, tokenizer: Any, words: list[str], rng: random.Random, n: int = 64) -> float:
    """Share of fresh conversations whose tool call the model writes exactly (greedy, after the user turn)."""
    import torch

    model.eval()
    hits = 0
    end = tokenizer.convert_tokens_to_ids(_END)
    with torch.no_grad():
        for _ in range(n):
            messages, tools = conversation(rng, words)
            prompt = tokenizer.apply_chat_template(messages[:2], tools=tools, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
            full = tokenizer.apply_chat_template(messages[:3], tools=tools, tokenize=False)
            target = full[full.rindex(_ASSISTANT) + len(_ASSISTANT) : full.rindex(_END) + len(_END)]
            want = tokenizer.encode(target, add_special_tokens=False)
            out = model.generate(torch.tensor([prompt]), max_new_tokens=len(want) + 2, do_sample=False, eos_token_id=end, pad_token_id=tokenizer.pad_token_id)
            hits += out[0][len(prompt) :].tolist() == want
    model.train()
    return hits / n


def main(argv: list[str] | None = None) -> int:
    d = BaseConfig()
    p = argparse.ArgumentParser(prog="python -m verl_toolmaster.toyworld.base", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="the tiny model to start from (python -m verl_toolmaster.tiny --out DIR)")
    p.add_argument("--out", type=Path, required=True, help="where to save the base model (HF format, with tokenizer)")
    p.add_argument("--steps", type=int, default=d.steps, help="optimizer steps (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="sequences per step (default %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed (default %(default)s)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads (default %(default)s)")
    args = p.parse_args(argv)
    if not (args.model / "config.json").is_file():
        print(f"error: {args.model} holds no model (config.json missing); build one with python -m verl_toolmaster.tiny --out DIR", file=sys.stderr)
        return 2
    if args.steps < 1 or args.batch_size < 1 or not args.lr > 0:
        print("error: --steps and --batch-size must be >= 1 and --lr > 0", file=sys.stderr)
        return 2
    cfg = BaseConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads)
    summary = pretrain(args.model, args.out, cfg, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
