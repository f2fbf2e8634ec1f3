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

from .chat_templates import chatml_tool_template

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
QWEN25_CHAT_TEMPLATE = chatml_tool_template()


@dataclass
class TinyConfig:
    """Size of the tiny model; the defaults give about 360k parameters."""

    vocab_size: int = 4096  # BPE vocabulary, special tokens included
    hidden_size: int = 64  # model width
    intermediate_size: int = 128  # MLP width
    num_hidden_layers: int = 2  # transformer blocks
    num_attention_heads: int = 4  # query heads
    num_key_value_heads: int = 2  # grouped KV heads
    max_position_embeddings: int = 8192  # longest sequence (prompt + all turns)
    seed: int = 0  # seeds the synthetic tokenizer corpus and the weight init


# Frequent words of public tool-use benchmark text (ToolHop, StableToolBench, API-Bank): with them in the corpus
# the tiny BPE encodes verbose tool schemas about twice as compactly, so ToolHop prompts fit in 4k tokens.
_WORDS = """
the name user tool response type str and parameters description call for you password your string format
api can with field think output username needed one last return date appointment get dialogue default are
provide obs data queries token multiple use include int ndescription nparameters error parameter each
required history list time records tools calls previous please dictionary not relationship solve whether
turn decide reasoning new code year first based this must account number object defaults query what need
given result content only usage optional full should information names including empty answer category
help getusertoken json system search ignore false that current handling context extract relevant other
least from available any parts specify method its verification level containing following chat sure case
structured individual digit both while stock capable make email input times helpful our true
simultaneously exists analyze final across leave goal multi assistant leveraging tasks responses nin
source filter handle steps recall respond appropriately generate maintaining consistency plaintext
thoughts important notes always outline possibly invoke fields refer feedback noted conversation above
file jsonl example none bool health symptom enum invalid boolean like database status elif family all
which specified position count doctor array location letter info length template param detailed title
characters results properties strings want pass end integer period patient delimiter about value def start
letters advanced fatigue meeting historical retrieve sensitive custom book foo valid forgotpassword types
members suffixes delete relationships sports march else modifyregistration father specific com have let
deleteaccount forgot genealogical range validate john used emergencyknowledge items isinstance would
character child found price language check naming person movie match who designed options film team
question inputs related nprint nresult publication extraction adaptations author valueerror details cast
member middle western their whitespace reset sources toolhop raise blood okay querystock titles sum
formats len convention compound ascii adaptation smith yes day metadata publisher float was band channel
page text will expected item director genre agenda returns month supports such familial reverse
registration pressure recordhealthdata johnson change figure birth join separator suffix eastern special
may kick heart rate concatenation extended russell been sibling split various enhanced whose extractor
strict when includes diseases reminder research parent warn second slug quotes great alright querybalance
genealogy comprehensive requested consider decimal add extracted set latin part international spouse
searches sign has thank cancelregistration tell shortness breath modifypassword license biographical
bytedance prefix non more leading best success authenticate lower numeral adele calculator successfully
additional separate numbers concatenated finder involve next conference bar again old simulate dict logic
being queried possible provided founding out how also identifier chlo agnew literary link artist span
treatment april openbankaccount mother biography total digits provides country score direction saint
different role trim chiang geographical url formula plants modify condition symptomsearch addagenda
newpassword death place process offers knowledge simulated ren cyr capitalize retrieves dick here lax yang
apis some golf queryhealthdata chronic appointmentregistration char datasets institution message down
delimiters common prefixes before media fetch players know live tournid modifies reschedule then
registeruser querying retriever applicable dataset complex extracting just narrow cultural single years
emily alphabet baron ampthill age amurri analysis xingmi game schedule see now emergency johndoe
addreminder sent brienne mode space languages databases find warning binary hexadecimal negative supported
manage specifies cases there per theclique give predictions points drivers rugbyapi rugby marks celsius
fahrenheit learning open syndrome bank balance dates public retrieval try except print figures handles
city between origin sensitivity alexandra alphabets conversion hsiao order work books punctuation reversed
tour record morpheus player endpoint spellout medications rest alarm nflx apache domain functions exact
calendar gold hop repo https huggingface revision fda sub task additionally college errors conventions
sets concatenator membership support append providing resolution exclude codes classics moby image league
gmhikaru nonetype division got october adding xml reliability calculate processed right bin two
customization during minitems scientific notation refine films transformation apply lowercase contact king
index these lookup standard husband peter comics summary preserve section quote playerid ids basic free
nba house climate recorded cancels lee course scene asthma aid airways inflammation pneumonia body
infection amazon anything sends twice calling after variants unknown access news vassar education left
convert them positions variations known using upper individuals max daughter arabic tree ignored york
susan sarandon precision herman
""".split()


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
