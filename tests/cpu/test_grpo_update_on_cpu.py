"""One GRPO update with rewards that differ within a group, through verl's own GRPO pieces: the group-normalised
advantage (``compute_grpo_outcome_advantage``) and the clipped policy-gradient loss (``get_policy_loss_fn("vanilla")``
with verl's ``ActorConfig``), one optimizer step on a real causal LM. The rewarded responses' log-probabilities must
rise and the others' fall. (The scripted end-to-end GRPO runs give every sample of a group the same reward, so
their advantages are zero and they cannot show this.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch


def _sequence_log_probs(model, prompt_ids, responses):
    """Per-token log-probs of each response after the prompt, padded to the longest; and the response mask."""
    width = max(len(r) for r in responses)
    mask = torch.zeros(len(responses), width)
    rows = []
    for i, r in enumerate(responses):
        logits = model(input_ids=torch.tensor([prompt_ids + r])).logits[0, len(prompt_ids) - 1 : -1].float()
        rows.append(torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(r)[:, None])[:, 0])
        mask[i, : len(r)] = 1
    return torch.stack([torch.nn.functional.pad(lp, (0, width - len(lp))) for lp in rows]), mask


def _grpo_update_moves_log_probs(model_dir: str, lr: float) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_policy_loss_fn
    from verl.workers.config import ActorConfig

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the sum of 3 and 4?"}], add_generation_prompt=True, tokenize=False)
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    texts = ["<answer>7</answer>", "<answer>12</answer>", "The sum is <answer>7</answer>", "I do not know."]
    rewards = [1.0, 0.0, 1.0, 0.0]  # one group of four samples: two solved it
    responses = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]

    model.eval()
    with torch.no_grad():
        old, mask = _sequence_log_probs(model, prompt_ids, responses)
    token_rewards = torch.zeros_like(mask)
    for i, r in enumerate(rewards):
        token_rewards[i, int(mask[i].sum()) - 1] = r  # verl puts the outcome reward on the last response token
    advantages, _ = compute_grpo_outcome_advantage(token_rewards, mask, index=np.array(["g"] * len(texts)))
    assert (advantages[mask.bool()] != 0).all()

    config = ActorConfig(strategy="fsdp", rollout_n=4, ppo_mini_batch_size=4, ppo_micro_batch_size_per_gpu=4, use_dynamic_bsz=False,
                         clip_ratio=0.2, loss_agg_mode="token-mean")
    loss_fn = get_policy_loss_fn("vanilla")
    optim = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    new_lp, _ = _sequence_log_probs(model, prompt_ids, responses)
    loss, _ = loss_fn(old_log_prob=old, log_prob=new_lp, advantages=advantages, response_mask=mask, loss_agg_mode="token-mean", config=config)
    loss.backward()
    optim.step()
    model.eval()
    with torch.no_grad():
        after, _ = _sequence_log_probs(model, prompt_ids, responses)
    return (old * mask).sum(1), (after * mask).sum(1), rewards


def test_grpo_update_raises_rewarded_responses_on_the_tiny_model(tiny_model_dir):
    """The random tiny model shares most of its features between tokens, so the step also lifts a wrong response
    that shares the rewarded ones' ``<answer>`` tokens (measured: +0.05 nats against +0.10 and +0.14 for the
    rewarded and -0.05 for the unrelated one); what must hold there is the order: every rewarded response gains
    more than every other. The strict sign check runs on SmolLM2 (slow)."""
    before, after, rewards = _grpo_update_moves_log_probs(str(tiny_model_dir), lr=0.002)
    delta = (after - before).tolist()
    up = [d for d, r in zip(delta, rewards) if r > 0]
    down = [d for d, r in zip(delta, rewards) if r == 0]
    assert min(up) > max(down) and min(up) > 0 and min(down) < 0, delta


@pytest.mark.slow
def test_grpo_update_raises_rewarded_responses_on_smollm2(smollm2_model_dir):
    before, after, rewards = _grpo_update_moves_log_probs(str(smollm2_model_dir), lr=1e-3)
    delta = (after - before).tolist()
    for d, r in zip(delta, rewards):
        assert (d > 0) == (r > 0), (delta, rewards)  # rewarded up, the others down
