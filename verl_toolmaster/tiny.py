"""Offline tiny Qwen2.5-style model and tokenizer for CPU runs and tests.

``python -m verl_toolmaster.tiny --out DIR [--seed 0]`` writes a byte-level BPE tokenizer whose chat template
renders system/user/assistant turns, ``tools``, assistant ``tool_calls`` and tool messages exactly like
Qwen2.5-Instruct's, plus a randomly initialised ``Qwen2ForCausalLM`` (``model_type: qwen2``, so verl picks its
Qwen token builder). Deterministic given the seed; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]

# Qwen2.5-Instruct's chat template (tool calling included), unchanged.
QWEN25_CHAT_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    "    {%- endif %}\n"
    '    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n'
    'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}\n'
    "    {%- for tool in tools %}\n"
    '        {{- "\\n" }}\n'
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    '    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments '
    'within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": '
    '<args-json-object>}\\n</tool_call><|im_end|>\\n" }}\n'
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    '    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or '
    '(message.role == "assistant" and not message.tool_calls) %}\n'
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    '    {%- elif message.role == "assistant" %}\n'
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    '    {%- elif message.role == "tool" %}\n'
    '        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\n'
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n'
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)


@dataclass
class TinyConfig:
    """Size of the tiny model; the defaults give about 140k parameters."""

    vocab_size: int = 1024  # BPE vocabulary, special tokens included
    hidden_size: int = 64  # model width
    intermediate_size: int = 128  # MLP width
    num_hidden_layers: int = 2  # transformer blocks
    num_attention_heads: int = 4  # query heads
    num_key_value_heads: int = 2  # grouped KV heads
    max_position_embeddings: int = 4096  # longest sequence (prompt + all turns)
    seed: int = 0  # seeds the synthetic tokenizer corpus and the weight init


_WORDS = (
    "the a of to and in is what which who when where how many sum date year name city country river tool "
    "call function argument value result error answer trial execute probe check query search get set list "
    "number string integer boolean object array true false null type description parameters properties "
    "required enum user assistant system please find compute total price file directory message ticket "
    "vehicle flight stock account weather temperature distance time day month first last father mother born "
    "died capital population invalid missing unknown expected returned observation budget"
).split()


def _corpus(rng: random.Random, n_lines: int = 3000) -> list[str]:
    """Synthetic lines covering chat markup, JSON tool calls, protocol tags and plain words."""
    lines = [QWEN25_CHAT_TEMPLATE]
    for _ in range(n_lines):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12)))
        name = "_".join(rng.sample(_WORDS, 2))
        args = {rng.choice(_WORDS): rng.choice([rng.randint(0, 9999), rng.choice(_WORDS), True, None])}
        call = json.dumps({"name": name, "arguments": args})
        tag = rng.choice(["trial", "execute", "answer", "think"])
        lines.append(
            rng.choice(
                [
                    f"<|im_start|>user\n{words}?<|im_end|>\n<|im_start|>assistant\n",
                    f"<{tag}>{words}</{tag}>\n<tool_call>\n{call}\n</tool_call><|im_end|>\n",
                    f"<|im_start|>user\n<tool_response>\n{json.dumps(args)}\n</tool_response><|im_end|>\n",
                    f'{{"type": "function", "function": {{"name": "{name}", "description": "{words}", '
                    f'"parameters": {{"type": "object", "properties": {{}}, "required": []}}}}}}',
                    f"{words.capitalize()}. {rng.randint(0, 10**6)} {rng.random():.3f}",
                ]
            )
        )
    return lines


def build_tokenizer(cfg: TinyConfig):
    """Train the byte-level BPE tokenizer and wrap it as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(random.Random(cfg.seed)), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
        chat_template=QWEN25_CHAT_TEMPLATE,
        model_max_length=cfg.max_position_embeddings,
        clean_up_tokenization_spaces=False,
    )


def build_tiny(out_dir: str | Path, cfg: TinyConfig | None = None) -> Path:
    """Write tokenizer + model + generation config to ``out_dir`` and return it."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    cfg = cfg or TinyConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(cfg)
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model_cfg = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=pad_id,
    )
    torch.manual_seed(cfg.seed)
    model = Qwen2ForCausalLM(model_cfg).to(torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=pad_id)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verl_toolmaster.tiny", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tokenizer corpus and weight init")
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(TinyConfig, name))
    args = parser.parse_args(argv)
    cfg = TinyConfig(
        seed=args.seed,
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_hidden_layers,
    )
    try:
        out = build_tiny(args.out, cfg)
    except Exception as e:  # one clear line for the launch scripts, not a traceback chain
        print(f"error: cannot build the tiny model in {args.out}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    n = sum(1 for _ in out.iterdir())
    print(f"tiny model written to {out} ({n} files, seed {cfg.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
