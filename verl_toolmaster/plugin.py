"""Imported by verl (entry point group ``verl.plugins``) on every ``import verl``, in every process.

Registrations are deferred with post-import hooks: each of our pieces is added to a verl registry the moment
that registry's module is imported, so ``import verl`` itself stays as fast as without the add-on
(``python bench/plugin_import.py``).
"""

from __future__ import annotations

import sys

import wrapt

from . import compat


def _version_guard() -> None:
    try:
        compat.check_verl_version()
    except compat.VerlVersionError as e:
        # verl swallows Exceptions raised by plugins; SystemExit gets through, so a mismatch cannot go unnoticed.
        print(f"error: {e} (set VERL_USE_EXTERNAL_PLUGINS=none to use verl without verl-toolmaster)", file=sys.stderr)
        raise SystemExit(2) from None


def _register_agent_loop(_module) -> None:
    from .loop_health import collect_between_batches, freeze_after_init, gate_starts
    from .registration import register_agent_loop

    register_agent_loop()
    # keep the rollout event loop responsive: no full-heap collections, no burst of 512 synchronous starts
    freeze_after_init(compat.AgentLoopWorker)
    collect_between_batches(compat.AgentLoopWorker, "generate_sequences")
    gate_starts(compat.AgentLoopWorker, compat.RUN_TRAJECTORY_METHOD)


def _register_reward_manager(_module) -> None:
    from .reward import register_with_verl

    register_with_verl()


def _install_step_metrics(module) -> None:
    from .registration import install_step_metrics

    install_step_metrics(module)


def install() -> None:
    _version_guard()
    from . import cpu

    if cpu.requested():
        cpu.activate()
    wrapt.register_post_import_hook(_register_agent_loop, compat.MODULES["agent_loop"])
    wrapt.register_post_import_hook(_register_reward_manager, compat.MODULES["reward_registry"])
    wrapt.register_post_import_hook(_install_step_metrics, compat.MODULES["trainer_v1"])
    wrapt.register_post_import_hook(_install_step_metrics, compat.MODULES["trainer_v0"])


install()
