"""The sandbox pool's temp dirs: a pool whose process was killed leaves them, the next pool removes them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from verl_toolmaster.envs.sandbox_pool import DIR_PREFIX, SandboxConfig, SandboxPool, process_tag, remove_stale_dirs


def test_process_tag_names_live_processes_only():
    tag = process_tag(os.getpid())
    assert tag is not None and tag.startswith(f"{os.getpid()}.") and tag == process_tag(os.getpid())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    assert process_tag(int(dead.stdout)) is None


def test_dirs_of_a_killed_pool_are_removed_by_the_next_pool(tmp_path):
    code = f"""
        import os, signal
        from verl_toolmaster.envs.sandbox_pool import SandboxConfig, SandboxPool
        pool = SandboxPool(SandboxConfig(workers=2, temp_root={str(tmp_path)!r}))
        pool.wait_ready()
        assert pool.call_sync("f", "def f():\\n    return 1\\n", {{}})["ok"]
        print(sorted(os.listdir({str(tmp_path)!r})), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # as Ray ends an actor: no close, no atexit
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    left = sorted(os.listdir(tmp_path))
    assert len(left) == 2 and all(name.startswith(DIR_PREFIX) for name in left), (left, proc.stdout)

    untagged = tmp_path / f"{DIR_PREFIX}abc123"  # an older pool's name: its owner cannot be known, so it stays
    live = tmp_path / f"{DIR_PREFIX}{process_tag(os.getpid())}-x"  # a live pool's dir stays
    other = tmp_path / "unrelated"
    for d in (untagged, live, other):
        d.mkdir()
    pool = SandboxPool(SandboxConfig(workers=1, temp_root=str(tmp_path)))
    try:
        pool.wait_ready()
        now = set(os.listdir(tmp_path))
        assert not now & set(left), now
        assert {untagged.name, live.name, other.name} <= now
        own = now - {untagged.name, live.name, other.name}
        assert len(own) == 1 and next(iter(own)).startswith(f"{DIR_PREFIX}{process_tag(os.getpid())}-")
    finally:
        pool.close()
    assert sorted(os.listdir(tmp_path)) == sorted([untagged.name, live.name, other.name])
    assert remove_stale_dirs(str(tmp_path)) == 0  # nothing stale left
