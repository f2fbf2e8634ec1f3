"""Hostile tools: each is stopped with a clear error observation, and the pool keeps serving afterwards.

Uses a private pool with short limits (``tight_pool``: 3 s wall clock, 0.5 s CPU, 512 MB, 4 MB files, 100k printed chars).
"""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import uuid

import pytest

from verl_toolmaster.envs.python_env import PythonEnv


def env_for(pool, body: str) -> PythonEnv:
    src = "def evil():\n" + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
    ok = "def ok(x):\n    return {'echo': x}\n"
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}} for n in ("evil", "ok")]
    return PythonEnv({"kind": "python", "tools": tools, "code": {"evil": src, "ok": ok}}, pool=pool)


async def run_hostile(pool, body: str):
    env = env_for(pool, body)
    obs = await env.call("evil", {})
    after = await env.call("ok", {"x": 7})
    assert after.ok and after.text == '{"echo": 7}', f"pool not serving after a hostile call: {after}"
    return obs


async def test_infinite_loop_hits_the_cpu_limit(tight_pool):
    obs = await run_hostile(tight_pool, "while True:\n    pass")
    assert not obs.ok and obs.error_kind == "resource" and "CPU time limit" in obs.text, obs
    assert obs.latency_s < 3.0  # CPU budget 0.5 s, wall clock 3 s


async def test_memory_bomb_hits_the_memory_limit(tight_pool):
    # bytes(n) is calloc'd (untouched zero pages), so the bomb reaches 512 MB of address space with almost no CPU;
    # bytearray(n) memsets every page and on a loaded machine met the 0.5 s CPU limit first.
    obs = await run_hostile(tight_pool, "blocks = []\nwhile True:\n    blocks.append(bytes(10**7))")
    assert obs.error_kind == "resource" and "memory limit of 512 MB" in obs.text, obs


async def test_fork_bomb_cannot_create_processes(tight_pool):
    obs = await run_hostile(tight_pool, "import os\nwhile True:\n    os.fork()")
    assert obs.error_kind == "exception" and "Operation not permitted" in obs.text and "no subprocesses" in obs.text, obs
    obs = await run_hostile(tight_pool, "import subprocess\nreturn subprocess.run(['/bin/echo', 'hi'], capture_output=True).stdout")
    assert obs.error_kind == "exception" and "PermissionError" in obs.text, obs


async def test_threads_still_work_but_a_leftover_thread_retires_the_worker(tight_pool):
    obs = await run_hostile(tight_pool, "import threading\nout = []\nt = threading.Thread(target=lambda: out.append(1))\nt.start(); t.join()\nreturn out")
    assert obs.ok and obs.text == "[1]", obs
    before = tight_pool.stats["worker_retirements"]
    obs = await run_hostile(tight_pool, "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\nreturn 'left one running'")
    assert obs.ok and tight_pool.stats["worker_retirements"] == before + 1


async def test_network_socket_is_refused_by_the_kernel(tight_pool):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        obs = await run_hostile(tight_pool, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'leak')")
        assert obs.error_kind == "exception" and "Permission denied" in obs.text and "no network" in obs.text, obs
        # below Python: the raw syscall fails too (seccomp), so ctypes cannot get around it
        obs = await run_hostile(tight_pool, "import ctypes\nreturn ctypes.CDLL(None).socket(2, 1, 0)")
        assert obs.ok and obs.text == "-1", obs
        with pytest.raises(socket.timeout):
            server.accept()  # nothing ever connected
    finally:
        server.close()


async def test_writes_outside_the_temp_dir_are_refused(tight_pool, tmp_path):
    target = f"/tmp/toolmaster-escape-{uuid.uuid4().hex}"
    obs = await run_hostile(tight_pool, f"open({target!r}, 'w').write('x')")
    assert obs.error_kind == "exception" and "Permission denied" in obs.text, obs
    assert not os.path.exists(target)
    obs = await run_hostile(tight_pool, "import os\nopen('../../escape.txt', 'w').write('x')")
    assert obs.error_kind == "exception", obs
    # inside its own working directory a tool may write, and the next call starts from an empty one
    obs = await run_hostile(tight_pool, "import os\nopen('scratch.txt', 'w').write('data')\nreturn sorted(os.listdir('.'))")
    assert obs.ok and obs.text == '["scratch.txt"]'
    obs = await run_hostile(tight_pool, "import os\nreturn sorted(os.listdir('.'))")
    assert obs.ok and obs.text == "[]"
    secret = tmp_path / "secret.txt"
    secret.write_text("trainer secret")
    obs = await run_hostile(tight_pool, f"return open({str(secret)!r}).read()")
    assert obs.error_kind == "exception" and "trainer secret" not in obs.text, obs


async def test_os_exit_kills_only_the_worker(tight_pool):
    replaced = tight_pool.stats["worker_replacements"]
    obs = await run_hostile(tight_pool, "import os\nos._exit(3)")
    assert obs.error_kind == "resource" and "died" in obs.text and "exit status 3" in obs.text, obs
    assert tight_pool.stats["worker_replacements"] == replaced + 1


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_workers_killed_from_outside_are_replaced(tight_pool):
    import asyncio
    import signal

    tight_pool.wait_ready()
    pids = tight_pool.worker_pids()
    for pid in pids:  # idle workers die: the next calls are resent to fresh ones
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        while _alive(pid):
            await asyncio.sleep(0.01)
    env = env_for(tight_pool, "return 'fine'")
    assert [(await env.call("evil", {})).text for _ in range(4)] == ["fine"] * 4
    busy = env_for(tight_pool, "import time\ntime.sleep(2)\nreturn 'late'")
    task = asyncio.ensure_future(busy.call("evil", {}))
    await asyncio.sleep(0.5)
    pids = tight_pool.worker_pids()
    for pid in pids:  # ... and a worker killed mid-call fails that call only
        os.kill(pid, signal.SIGKILL)
    obs = await task
    assert obs.error_kind == "resource" and "killed by SIGKILL" in obs.text, obs
    for pid in pids:
        while _alive(pid):
            await asyncio.sleep(0.01)
    assert (await env.call("ok", {"x": 1})).ok


async def test_segfault_is_contained(tight_pool):
    obs = await run_hostile(tight_pool, "import ctypes\nctypes.string_at(0)")
    assert obs.error_kind == "resource" and "SIGSEGV" in obs.text, obs


async def test_printing_gigabytes_hits_the_output_cap(tight_pool):
    obs = await run_hostile(tight_pool, "while True:\n    print('x' * 10**6)")
    assert obs.error_kind == "resource" and "printed more than 100000 characters" in obs.text, obs
    obs = await run_hostile(tight_pool, "print('y' * (2 * 10**9))")
    assert obs.error_kind == "resource" and "memory limit" in obs.text, obs
    obs = await run_hostile(tight_pool, "open('big.bin', 'wb').write(b'z' * (8 << 20))")
    assert obs.error_kind == "resource" and "file size limit" in obs.text, obs


async def test_huge_results_are_truncated_visibly(tight_pool):
    obs = await run_hostile(tight_pool, "return 'r' * 200000")
    assert obs.ok and len(obs.text) < 70000 and obs.text.endswith("[truncated: 134464 more characters]")


async def test_sleeping_past_the_timeout(tight_pool):
    obs = await run_hostile(tight_pool, "import time\ntime.sleep(60)")
    assert obs.error_kind == "timeout" and "within 3.0 s" in obs.text and 2.9 < obs.latency_s < 4.5, obs


async def test_hang_that_blocks_signals_is_killed_by_the_pool(tight_pool):
    body = "import signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGXCPU})\ntime.sleep(60)"
    obs = await run_hostile(tight_pool, body)
    assert obs.error_kind == "timeout" and "replaced" in obs.text and 3.9 < obs.latency_s < 6.5, obs  # 3 s + 1 s grace


async def test_cannot_signal_the_trainer(tight_pool):
    obs = await run_hostile(tight_pool, f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)")
    assert obs.error_kind == "exception" and "not permitted" in obs.text, obs


async def test_tampering_with_builtins_retires_the_worker(tight_pool):
    before = tight_pool.stats["worker_retirements"]
    obs = await run_hostile(tight_pool, "import builtins\nbuiltins.len = lambda x: 0\nreturn 'patched'")
    assert obs.ok and tight_pool.stats["worker_retirements"] == before + 1
    obs = await run_hostile(tight_pool, "return len('abc')")
    assert obs.text == "3"


def test_isolation_report_says_what_is_enforced(tight_pool):
    iso = tight_pool.isolation
    assert set(iso) >= {"network", "filesystem", "seccomp", "user", "rlimits"}
    print(iso)


async def test_fallback_without_landlock_and_seccomp_still_refuses():
    """Kernels without Landlock/seccomp get the (weaker, reported as such) audit-hook guard."""
    from verl_toolmaster.envs.sandbox_pool import SandboxConfig, SandboxPool

    pool = SandboxPool(SandboxConfig(workers=1, landlock=False, seccomp=False, network_namespace=False))
    try:
        iso = pool.wait_ready()
        assert "weak" in iso["filesystem"] and "weak" in iso["seccomp"]
        target = f"/tmp/toolmaster-escape-{uuid.uuid4().hex}"
        for body, event in (
            ("import socket\nsocket.socket()", "socket.__new__"),
            ("import os\nos.fork()", "os.fork"),
            ("import subprocess\nsubprocess.run(['true'])", "subprocess.Popen"),
            (f"open({target!r}, 'w')", "outside the working directory"),
        ):
            obs = await run_hostile(pool, body)
            assert obs.error_kind == "exception" and event in obs.text, obs
        assert not os.path.exists(target)
    finally:
        pool.close()
