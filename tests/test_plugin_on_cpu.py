"""verl swallows plugin import errors, so prove in fresh interpreters that `import verl` registers our pieces."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def fresh(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_USE_EXTERNAL_PLUGINS")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full,
                          timeout=180)


REGISTRATIONS = """
    import sys
    import verl
    print("plugin", "verl_toolmaster.plugin" in sys.modules)
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
    print("agent", _agent_loop_registry.get("toolmaster_agent", {}).get("_target_"))
    from verl.experimental.reward_loop.reward_manager.registry import get_reward_manager_cls
    try:
        print("reward", get_reward_manager_cls("toolmaster").__name__)
    except Exception as e:
        print("reward", "missing", e)
"""


def test_import_verl_registers_agent_loop_and_reward_manager():
    proc = fresh(REGISTRATIONS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.splitlines()
    assert "plugin True" in out
    assert "agent verl_toolmaster.agent_loop.ToolMasterAgentLoop" in out
    assert "reward ToolMasterRewardManager" in out


def test_registrations_absent_when_plugins_disabled():
    proc = fresh(REGISTRATIONS, VERL_USE_EXTERNAL_PLUGINS="none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "plugin False" in proc.stdout and "agent None" in proc.stdout and "reward missing" in proc.stdout


def test_plugin_does_not_import_heavy_modules():
    # Registration is deferred: importing verl must not pull in our agent loop, envs or reward code.
    proc = fresh("""
        import sys, verl
        heavy = [m for m in sys.modules if m.startswith("verl_toolmaster.") and m.split(".")[1] in
                 ("agent_loop", "envs", "reward", "data", "protocol", "cpu")]
        print(sorted(heavy))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "['verl_toolmaster.cpu']"  # only the tiny package that decides whether to activate
