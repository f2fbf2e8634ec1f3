"""The messages docs/troubleshooting.md quotes are the messages the code produces.

Messages of this package are produced and compared whole; messages of verl, Ray's raylet, transformers, Hydra and
TransferQueue are checked against the static parts of the installed source (f-string pieces), so a reworded
message in an upgrade shows up here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import recipe_checks as rc

DOC = (rc.REPO / "docs" / "troubleshooting.md").read_text()
FLAT_DOC = re.sub(r"\s+", " ", DOC)
SITE = Path(pytest.importorskip("verl").__file__).resolve().parents[1]

# (text quoted in the doc, installed file, static pieces of the message in that file)
SOURCE_CASES = [
    ("ValueError: vllm version None not supported and SGLang also not Found. Currently supported vllm versions are 0.18.0+",
     "verl/third_party/vllm/__init__.py", ["not supported and SGLang also not Found. Currently supported ", "vllm versions are 0.18.0+"]),
    ("ValueError: Unknown rollout mode: hfcpu. Available: ['vllm', 'sglang', 'trtllm']",
     "verl/workers/rollout/replica.py", ['"Unknown rollout mode: {name}. Available: {list(cls._registry.keys())}"',
                                         'RolloutReplicaRegistry.register("vllm"', 'RolloutReplicaRegistry.register("sglang"',
                                         'RolloutReplicaRegistry.register("trtllm"']),
    ("AssertionError: Agent loop toolmaster_agent not registered, registered agent loops: ...",
     "verl/experimental/agent_loop/agent_loop.py", ['"Agent loop {agent_name} not registered, registered agent loops: '
                                                    '{_agent_loop_registry.keys()}"']),
    ("ValueError: Unknown reward manager: toolmaster",
     "verl/experimental/reward_loop/reward_manager/registry.py", ['ValueError(f"Unknown reward manager: {name}")']),
    ("ImportError: FlashAttention2 has been toggled on, but it cannot be used due to the following error: the package "
     "for FlashAttention2 doesn't seem to be installed.",
     "transformers/modeling_utils.py", ['"FlashAttention{flash_attn_version} has been toggled on, but it cannot be used due to '
                                        'the following error:"', "{preface} the package for FlashAttention{flash_attn_version} "
                                        "doesn't seem to be installed."]),
    ("Prompt of N tokens exceeds rollout.prompt_length=M; left-truncating.",
     "verl/experimental/agent_loop/agent_loop.py", ['"Prompt of %d tokens exceeds rollout.prompt_length=%d; left-truncating."',
                                                    "return prompt_ids[-prompt_length:]"]),
    ("ValueError: Prompt length (N) leaves no room to generate within the model's maximum context length (M); need at "
     "least 1 token of headroom.",
     "verl/workers/rollout/vllm_rollout/vllm_async_server.py",
     ['"Prompt length ({len(prompt_ids)}) leaves no room to generate within the "',
      "\"model's maximum context length ({self.config.max_model_len}); need at least \"", '"1 token of headroom."']),
    ("ValueError: sequence_length=N is larger than self.max_length=M",
     "verl/utils/dataset/multiturn_sft_dataset.py", ['ValueError(f"{sequence_length=} is larger than {self.max_length=}")']),
    ("ValueError: Total available GPUs N is less than total desired GPUs M",
     "verl/single_controller/ray/base.py", ['"Total available GPUs {total_available_gpus} is less than total desired GPUs '
                                           '{total_required_gpus}"']),
    ("its controller reserves one CPU", "transfer_queue/controller.py", ["@ray.remote(num_cpus=1)"]),
    ("storage actors one more, in a placement group that waits", "transfer_queue/utils/common.py",
     ['bundle = {"CPU": num_cpus_per_actor}', "ray.get(placement_group.ready())"]),
    ("num_data_storage_units` (default 8)", "verl/trainer/config/transfer_queue/transfer_queue.yaml",
     ["num_data_storage_units: 8"]),
    ("Could not override 'K'. To append to your config use +K=V", "hydra/_internal/config_loader_impl.py",
     ["Could not override '{override.key_or_group}'.", "To append to your config use +{override.input_line}"]),
    ("Could not append to config. An item is already at 'K'.", "hydra/_internal/config_loader_impl.py",
     ["Could not append to config. An item is already at '{override.key_or_group}'."]),
]

OURS = rc.REPO / "verl_toolmaster"
# (text quoted in the doc, our file, static pieces)
OUR_SOURCE_CASES = [
    ("Error: the call to 'X' timed out after 100 s.", "agent_loop.py", ['f"Error: the call to {call.name!r} timed out after {self.cfg.tool_timeout_s:g} s."']),
    ("Error: tool 'X' did not finish within 5.0 s (wall-clock limit).", "envs/sandbox_worker.py",
     ["f\"Error: tool {fn!r} did not finish within {limits['timeout_s']} s (wall-clock limit).\""]),
    ("Error: tool 'X' exceeded the CPU time limit of 5.0 s.", "envs/sandbox_worker.py",
     ["f\"Error: tool {fn!r} exceeded the CPU time limit of {limits['cpu_s']} s.\""]),
    ("Error: tool 'X' exceeded the memory limit of 1024 MB.", "envs/sandbox_worker.py",
     ["f\"Error: tool {fn!r} exceeded the memory limit of {limits['memory_mb']} MB.\""]),
    ("Error: the tool server URL is unavailable (circuit open after 5 consecutive failed calls; next probe in N s).",
     "envs/http_env.py", ['f"Error: the tool server {cfg.url} is unavailable (circuit open after {cfg.breaker_failures} '
                          'consecutive failed calls; next probe in {left:.1f} s)."']),
    ("Error: the tool server request failed after 3 attempts: ...", "envs/http_env.py",
     ["f\"Error: the tool server request failed after {attempts} attempt{'s' * (attempts != 1)}: {last}.\""]),
    ("ImportError: environment kind 'bfcl' needs bfcl-eval (No module named 'bfcl_eval'); install it with: pip install "
     "--no-deps bfcl-eval==2026.3.23 mpmath==1.3.0", "envs/bfcl_env.py",
     ['f"environment kind \'bfcl\' needs bfcl-eval ({e}); install it with: {INSTALL_HINT}"',
      'INSTALL_HINT = "pip install --no-deps bfcl-eval==2026.3.23 mpmath==1.3.0"']),
    ("bfcl-eval is not importable (...); install it with: ...", "reward/scorers/bfcl.py",
     ['f"bfcl-eval is not importable ({exc}); {_INSTALL_HINT}"']),
    ("bfcl-eval is not installed: pip install --no-deps bfcl-eval, or pass --input FOLDER", "data/bfcl.py",
     ['"bfcl-eval is not installed: pip install --no-deps bfcl-eval, or pass --input FOLDER"']),
]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("quoted,path,pieces", SOURCE_CASES, ids=[c[1] + ":" + c[0][:40] for c in SOURCE_CASES])
def test_quoted_library_message_matches_the_installed_source(quoted, path, pieces):
    assert _flat(quoted) in FLAT_DOC, f"the doc no longer quotes {quoted!r}"
    source = (SITE / path).read_text()
    for piece in pieces:
        assert piece in source, f"{path} no longer contains {piece!r}"


@pytest.mark.parametrize("quoted,path,pieces", OUR_SOURCE_CASES, ids=[c[1] + ":" + c[0][:40] for c in OUR_SOURCE_CASES])
def test_quoted_message_of_ours_matches_our_source(quoted, path, pieces):
    assert _flat(quoted) in FLAT_DOC, f"the doc no longer quotes {quoted!r}"
    source = (OURS / path).read_text()
    for piece in pieces:
        assert piece in source, f"{path} no longer contains {piece!r}"


def test_raylet_memory_message_is_in_the_installed_ray():
    quoted = "N worker(s) were killed due to the node running low on memory."
    assert quoted in FLAT_DOC
    raylet = (SITE / "ray" / "core" / "src" / "ray" / "raylet" / "raylet").read_bytes()
    assert b"%d worker(s) were killed due to the node running low on memory." in raylet


def test_version_mismatch_line_is_what_the_plugin_prints():
    """The plugin's guard, run for a pretend verl 0.8.0 in a fresh interpreter, prints the quoted line and exits 2."""
    code = ("from unittest import mock\nfrom verl_toolmaster import compat\n"
            "with mock.patch.object(compat, 'installed_verl_version', return_value='0.8.0'):\n"
            "    import verl_toolmaster.plugin\n")
    env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.replace("verl 0.8.0 is installed", "verl X is installed") in DOC


def test_unknown_key_messages_are_what_our_configs_raise():
    from verl_toolmaster.agent_config import load_config
    from verl_toolmaster.reward.config import ToolMasterRewardConfig

    with pytest.raises(ValueError) as loop_err:
        load_config({"custom": {"toolmaster": {"X": 1}}})
    with pytest.raises(ValueError) as reward_err:
        ToolMasterRewardConfig.from_kwargs({"X": 1})
    for err in (loop_err, reward_err):
        text = str(err.value)
        assert text[: text.index("[", text.index("['X']") + 1)] + "[...]" in FLAT_DOC, text


def test_the_registration_check_command_prints_true_true():
    """The doc's one-liner that tells whether our plugin loaded answers True True here (and False False without it)."""
    cmd = re.search(r'python -c "(import verl; from verl\.experimental[^"]+)"', DOC).group(1)
    env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    ok = subprocess.run([sys.executable, "-c", cmd], capture_output=True, text=True, timeout=300, env=env)
    off = subprocess.run([sys.executable, "-c", cmd], capture_output=True, text=True, timeout=300,
                         env={**env, "VERL_USE_EXTERNAL_PLUGINS": "none"})
    assert ok.stdout.strip().splitlines()[-1] == "True True", ok.stderr[-2000:]
    assert off.stdout.strip().splitlines()[-1] == "False False", off.stderr[-2000:]


def test_backend_overrides_in_the_doc_configure_the_worker_process():
    """The doc's +...custom.toolmaster.{sandbox,bfcl,http} overrides, read as an agent-loop worker reads its config,
    set this process's sandbox pool, BFCL limit and HTTP deadline."""
    overrides = re.findall(r"\+actor_rollout_ref\.rollout\.(custom\.toolmaster\.\S+=\S+)", DOC)
    assert len(overrides) == 5, overrides
    code = ("import sys\nfrom omegaconf import OmegaConf\nfrom verl_toolmaster.agent_loop import _cached_config\n"
            "from verl_toolmaster.envs import bfcl_env, http_env, sandbox_pool\n"
            "rollout = OmegaConf.merge(OmegaConf.create({'multi_turn': {'format': 'hermes'}}), OmegaConf.from_dotlist(sys.argv[1:]))\n"
            "_cached_config(OmegaConf.create({}), rollout, None)\npool = sandbox_pool.get_pool()\n"
            "print(pool.size, pool.config.limits.timeout_s, pool.config.limits.memory_mb, bfcl_env.bfcl_runtime().timeout_s, "
            "http_env.get_client().config.deadline_s)")
    proc = subprocess.run([sys.executable, "-c", code, *overrides], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "4 10 2048 20 60"
