"""The batching engine: batched greedy output equals batch-1 ``generate``, rows leave as soon as they stop or are
cancelled, per-request sampling and seeds, log-probs against a forward pass, weight changes between steps."""

from __future__ import annotations

import asyncio
import random

import pytest
import torch

from verl_toolmaster.generation.batcher import BatchGenerator, Sampling


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32, attn_implementation="sdpa").eval()


def random_prompts(vocab: int, n: int, lo: int, hi: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(vocab) for _ in range(rng.randint(lo, hi))] for _ in range(n)]


def batch1_greedy(model, prompt: list[int], max_new_tokens: int, stop_ids: list[int]) -> list[int]:
    """Plain ``model.generate`` on one prompt, cut after the first stop token."""
    x = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=stop_ids or None, pad_token_id=0, temperature=None, top_p=None, top_k=None)
    new = out[0, len(prompt):].tolist()
    for i, tok in enumerate(new):
        if tok in stop_ids:
            return new[: i + 1]
    return new


def forward_logprobs(model, prompt: list[int], reply: list[int], temperature: float) -> torch.Tensor:
    with torch.no_grad():
        logits = model(torch.tensor([prompt + reply])).logits[0, len(prompt) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(reply)[:, None])[:, 0]


def gather(engine: BatchGenerator, jobs: list[tuple[list[int], int, list[int], Sampling]]):
    async def main():
        return await asyncio.gather(*[engine.generate(p, max_new_tokens=n, stop_ids=s, sampling=smp) for p, n, s, smp in jobs])

    return asyncio.run(main())


def test_batched_greedy_equals_batch1_generate(model):
    prompts = random_prompts(model.config.vocab_size, 12, 3, 80)
    stop = [7]  # a real token: some rows stop on it, others run to their own budget
    budgets = [24 - 7 * (i % 3) for i in range(len(prompts))]
    engine = BatchGenerator(model, max_num_seqs=8)
    outs = gather(engine, [(p, n, stop, Sampling()) for p, n in zip(prompts, budgets)])
    assert engine.stats["max_rows"] == 8  # they really ran together (8 rows, then the 4 waiting ones joined)
    for p, n, out in zip(prompts, budgets, outs):
        ref = batch1_greedy(model, p, n, stop)
        assert out.token_ids == ref
        assert out.stopped == (ref[-1] in stop) and (out.stopped or len(ref) == n)


def test_a_row_that_stops_early_leaves_at_once(model):
    prompts = random_prompts(model.config.vocab_size, 4, 10, 40, seed=1)
    engine = BatchGenerator(model, max_num_seqs=4)
    finished_at: dict[int, int] = {}

    async def one(i: int, n: int, stop: list[int]):
        out = await engine.generate(prompts[i], max_new_tokens=n, stop_ids=stop, sampling=Sampling())
        finished_at[i] = engine.stats["steps"]
        return out

    every = list(range(model.config.vocab_size))

    async def main():
        return await asyncio.gather(one(0, 40, []), one(1, 3, []), one(2, 40, every), one(3, 40, []))

    outs = asyncio.run(main())
    assert len(outs[2].token_ids) == 1 and outs[2].stopped  # any token stops it: answered after its prefill
    assert len(outs[1].token_ids) == 3 and not outs[1].stopped
    # not held until the 40-token rows end (one step of slack: the next step may already run in its thread
    # before the answered coroutine resumes)
    assert finished_at[2] <= 2 and finished_at[1] <= 4
    assert finished_at[0] >= 39 and finished_at[3] >= 39
    assert outs[0].token_ids == batch1_greedy(model, prompts[0], 40, [])


def test_cancelling_a_request_frees_its_slot(model):
    prompts = random_prompts(model.config.vocab_size, 2, 10, 30, seed=2)
    engine = BatchGenerator(model, max_num_seqs=1)  # one slot: the second request waits for it

    async def main():
        long = asyncio.create_task(engine.generate(prompts[0], max_new_tokens=4000, stop_ids=[], sampling=Sampling()))
        short = asyncio.create_task(engine.generate(prompts[1], max_new_tokens=5, stop_ids=[], sampling=Sampling()))
        while engine.stats["steps"] < 3:
            await asyncio.sleep(0.01)
        assert not short.done()
        long.cancel()  # the trajectory ended
        out = await asyncio.wait_for(short, timeout=60)
        with pytest.raises(asyncio.CancelledError):
            await long
        return out

    out = asyncio.run(main())
    assert out.token_ids == batch1_greedy(model, prompts[1], 5, [])
    assert engine.stats["cancelled"] == 1 and engine.stats["steps"] < 100
    assert not engine._batch.reqs and not engine._waiting


def test_sampled_logprobs_match_a_forward_pass_and_seeds_reproduce(model):
    prompts = random_prompts(model.config.vocab_size, 6, 5, 50, seed=3)
    settings = [Sampling(temperature=0.7, seed=1), Sampling(temperature=1.0, top_p=0.9, seed=2),
                Sampling(temperature=1.3, top_k=20, seed=3), Sampling(temperature=0.0),
                Sampling(temperature=0.9, top_k=50, top_p=0.8, seed=5), Sampling(temperature=1.0, repetition_penalty=1.3, seed=6)]
    engine = BatchGenerator(model, max_num_seqs=6)
    jobs = [(p, 16, [], s) for p, s in zip(prompts, settings)]
    first, again = gather(engine, jobs), gather(engine, jobs)
    for p, s, out in zip(prompts, settings, first):
        ref = forward_logprobs(model, p, out.token_ids, s.temperature if s.temperature > 0 else 1.0)
        assert torch.allclose(torch.tensor(out.log_probs), ref, atol=1e-4)
    assert [o.token_ids for o in first] == [o.token_ids for o in again]  # per-request seeds, whatever the batch
    assert first[3].token_ids == batch1_greedy(model, prompts[3], 16, [])  # a greedy row among sampled ones
    other = gather(engine, [(prompts[0], 16, [], Sampling(temperature=0.7, seed=99))])[0]
    assert other.token_ids != first[0].token_ids


def test_top_k_one_is_greedy_and_top_p_keeps_only_the_nucleus(model):
    prompt = random_prompts(model.config.vocab_size, 1, 20, 20, seed=4)[0]
    engine = BatchGenerator(model)
    topk1 = gather(engine, [(prompt, 12, [], Sampling(temperature=1.0, top_k=1, seed=0))])[0]
    assert topk1.token_ids == batch1_greedy(model, prompt, 12, [])
    tiny_p = gather(engine, [(prompt, 12, [], Sampling(temperature=5.0, top_p=1e-6, seed=0))])[0]
    assert tiny_p.token_ids == topk1.token_ids  # the nucleus of a tiny top_p is the argmax alone


def test_weights_changed_between_steps_change_the_next_generation(model):
    prompts = random_prompts(model.config.vocab_size, 3, 10, 30, seed=5)
    engine = BatchGenerator(model, max_num_seqs=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    greedy_before = batch1_greedy(model, prompts[2], 8, [])
    try:
        async def main():
            running = [asyncio.create_task(engine.generate(p, max_new_tokens=60, stop_ids=[], sampling=Sampling())) for p in prompts[:2]]
            while engine.stats["steps"] < 3:
                await asyncio.sleep(0.01)
            with engine.exclusive() as m:  # what HFGenerateServer.load_weights does, with the batch running
                m.load_state_dict({k: v + 0.05 * torch.randn_like(v) for k, v in before.items()})
            after = await engine.generate(prompts[2], max_new_tokens=8, stop_ids=[], sampling=Sampling())
            await asyncio.gather(*running)
            return after

        after = asyncio.run(main())
        assert after.token_ids == batch1_greedy(model, prompts[2], 8, [])  # the new weights, not the old ones
        assert after.token_ids != greedy_before
    finally:
        model.load_state_dict(before)


def test_the_next_turn_reuses_the_finished_turns_kv(model):
    vocab = model.config.vocab_size
    first, obs = random_prompts(vocab, 2, 30, 40, seed=6)
    engine = BatchGenerator(model, max_num_seqs=4, prefix_cache_tokens=4096)
    turn1 = gather(engine, [(first, 12, [], Sampling())])[0]
    second = first + turn1.token_ids + obs  # what the agent loop sends next: the reply, then the observation
    sampled = Sampling(temperature=0.8, seed=3)
    turn2, other = gather(engine, [(second, 10, [], Sampling()), (second, 10, [], sampled)])
    # the first: turn 1's prompt + reply but its last token (which never ran); the second (a GRPO sibling) finds
    # the first one's whole prompt, stored at its prefill, all but the last token
    assert engine.stats["reused_tokens"] == (len(first) + len(turn1.token_ids) - 1) + (len(second) - 1)
    assert turn2.token_ids == batch1_greedy(model, second, 10, [])
    assert torch.allclose(torch.tensor(other.log_probs), forward_logprobs(model, second, other.token_ids, 0.8), atol=1e-4)
    with engine.exclusive(changes_weights=True):
        pass
    reused = engine.stats["reused_tokens"]
    gather(engine, [(second, 4, [], Sampling())])
    assert engine.stats["reused_tokens"] == reused  # weights changed: the old KV is gone


def test_prefix_cache_keeps_the_longest_sequences_within_budget():
    from verl_toolmaster.generation.prefix_cache import PrefixCache

    def kv(n: int):
        return [(torch.full((1, 1, n, 2), float(n)), torch.zeros(1, 1, n, 2))]

    cache = PrefixCache(max_tokens=10)
    cache.store([1, 2, 3], kv(3))
    cache.store([1, 2, 3, 4, 5], kv(5))  # extends the first: the first is dropped
    assert len(cache) == 1 and cache.tokens == 5
    assert cache.lookup([1, 2, 3, 4, 5])[0] == 4  # the last prompt token must still run
    assert cache.lookup([1, 2, 9])[0] == 2 and cache.lookup([7, 8])[0] == 0
    cache.store([6, 7, 8, 9], kv(4))
    assert cache.lookup([1, 2, 3, 4, 5, 6])[1][0][0][0, 0, 0, 0] == 5.0  # a hit: [1..5] is now the most recent
    cache.store([5, 5, 5], kv(3))  # 12 tokens > 10: the least recently used ([6..9]) goes
    assert cache.tokens == 8 and cache.lookup([6, 7, 8, 9, 1])[0] == 0 and cache.lookup([1, 2, 3, 4, 5, 6])[0] == 5
    cache.store(list(range(11)), kv(11))  # larger than the whole budget: not kept
    assert cache.tokens == 8


@pytest.mark.slow
def test_smollm2_batched_greedy_equals_batch1_generate(smollm2_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_model_dir
    tok = AutoTokenizer.from_pretrained(str(path))
    smol = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, attn_implementation="sdpa").eval()
    stop = [tok.convert_tokens_to_ids("<|im_end|>")]
    questions = ["What is 2+3?", "Name a colour.", "Write a haiku about tools.", "Which tool finds the weather in Paris?",
                 "Say hello in French.", "Count to five."]
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
               for q in questions]
    engine = BatchGenerator(smol, max_num_seqs=8)
    outs = gather(engine, [(list(p), 24, stop, Sampling()) for p in prompts])
    assert engine.stats["max_rows"] == len(prompts)
    for p, out in zip(prompts, outs):
        assert out.token_ids == batch1_greedy(smol, list(p), 24, stop)
