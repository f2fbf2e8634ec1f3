"""The hostile-tool suite without root: (1) as a freshly created unprivileged user, (2) as root with every
capability dropped (``setpriv``). CI runs as root, so both set the situation up themselves.

Each case must end in a clear error observation (kind and text), with the pool serving a normal call afterwards;
the worker's isolation report must say which protections it runs without (e.g. no network namespace).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from verl_toolmaster.envs import sandbox_pool
from verl_toolmaster.envs.sandbox_pool import SandboxConfig, SandboxLimits, SandboxPool

REPO = Path(__file__).resolve().parents[2]
USER = "toolmaster-sbx"
SYSTEM_PYTHON = "/usr/bin/python3"  # the sandbox worker is stdlib only; the venv's interpreter may sit in /root (0700)

# (name, tool body, expected error_kind, text the observation must contain)
CASES = [
    ("infinite_loop", "while True:\n    pass", "resource", "CPU time limit"),
    ("memory_bomb", "blocks = []\nwhile True:\n    blocks.append(bytes(10**7))", "resource", "memory limit"),
    ("fork_bomb", "import os\nwhile True:\n    os.fork()", "exception", "not permitted"),
    ("subprocess", "import subprocess\nreturn subprocess.run(['/bin/echo', 'hi'], capture_output=True).stdout", "exception", "PermissionError"),
    ("socket", "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 9))", "exception", "Permission denied"),
    ("write_outside", "open(OUTSIDE, 'w').write('pwned')", "exception", "Error"),
    ("read_other_users_file", "return open(SECRET).read()", "exception", "Error"),
    ("os_exit", "import os\nos._exit(3)", "resource", "exit status 3"),
    ("segfault", "import ctypes\nctypes.string_at(0)", "resource", "SIGSEGV"),
    ("huge_output", "while True:\n    print('x' * 10**6)", "resource", "printed more than"),
    ("sleep", "import time\ntime.sleep(60)", "timeout", "within 3.0 s"),
]
LIMITS = SandboxLimits(timeout_s=3.0, cpu_s=0.5, memory_mb=512, file_size_mb=4, max_print_chars=100_000)


def run_cases(pool: SandboxPool, outside: str, secret: str) -> dict:
    """Every case through ``pool`` (plus a normal call after each); returns a JSON-able report."""
    ok_src = "def ok(x):\n    return {'echo': x}\n"
    results = {}
    for name, body, _, _ in CASES:
        src = f"OUTSIDE = {outside!r}\nSECRET = {secret!r}\ndef evil():\n" + textwrap.indent(body + "\n", "    ")
        res = pool.call_sync("evil", src, {})
        after = pool.call_sync("ok", ok_src, {"x": 7})
        results[name] = {**res, "after_ok": bool(after["ok"] and after["text"] == '{"echo": 7}')}
    return {"uid": os.getuid(), "isolation": pool.isolation, "results": results,
            "outside_exists": os.path.exists(outside)}


def check(report: dict) -> None:
    for name, _, kind, text in CASES:
        res = report["results"][name]
        assert not res["ok"] and res["error_kind"] == kind and text in res["text"], (name, res)
        assert res["after_ok"], f"{name}: the pool did not serve a normal call afterwards"
    assert not report["outside_exists"], "a tool wrote outside its working directory"


def _secret_and_outside(tmp_path: Path) -> tuple[str, str]:
    secret = tmp_path / "root_only" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("root's secret")
    secret.chmod(0o600)
    outside = Path("/tmp") / f"toolmaster-outside-{uuid.uuid4().hex}"
    return str(secret), str(outside)


@pytest.fixture
def unprivileged_user():
    if os.geteuid() != 0:
        pytest.skip("creating a user needs root (CI runs as root)")
    if not os.access(SYSTEM_PYTHON, os.X_OK) or shutil.which("useradd") is None:
        pytest.fail(f"{SYSTEM_PYTHON} and useradd are needed to run the sandbox as an unprivileged user")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
    return pwd.getpwnam(USER)


def test_hostile_tools_contained_as_an_unprivileged_user(unprivileged_user, tmp_path):
    """Forked after every import (the venv may be unreadable by the user), then setuid to a fresh user."""
    secret, outside = _secret_and_outside(tmp_path)
    shared = Path("/tmp") / f"toolmaster-unpriv-{uuid.uuid4().hex}"  # readable by the user wherever the repo lives
    shared.mkdir(mode=0o755)
    try:
        script = shared / "sandbox_worker.py"
        shutil.copy(sandbox_pool.WORKER_SCRIPT, script)
        temp_root = shared / "tmp"
        temp_root.mkdir()
        os.chown(temp_root, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop to the user, run the suite, write the report, exit without pytest's teardown
            code = 1
            try:
                os.close(rfd)
                os.setgroups([])
                os.setgid(unprivileged_user.pw_gid)
                os.setuid(unprivileged_user.pw_uid)
                sandbox_pool.WORKER_SCRIPT = script
                pool = SandboxPool(SandboxConfig(workers=1, limits=LIMITS, grace_s=1.0, python=SYSTEM_PYTHON, temp_root=str(temp_root)))
                try:
                    pool.wait_ready()
                    report = run_cases(pool, outside, secret)
                finally:
                    pool.close()
                os.write(wfd, json.dumps(report).encode())
                code = 0
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                os.write(wfd, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
            finally:
                os._exit(code)
        os.close(wfd)
        chunks = []
        while chunk := os.read(rfd, 1 << 16):
            chunks.append(chunk)
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
        report = json.loads(b"".join(chunks) or b'{"error": "no report"}')
        assert "error" not in report, report
        assert os.WEXITSTATUS(status) == 0
        assert report["uid"] == unprivileged_user.pw_uid
        assert "uid %d" % unprivileged_user.pw_uid in report["isolation"]["user"], report["isolation"]
        check(report)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        Path(outside).unlink(missing_ok=True)


def test_hostile_tools_contained_nonroot_with_every_capability_dropped(tmp_path):
    """uid 0 without any capability (setpriv): no network namespace can be made, the other layers hold."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed for the no-capability run")
    secret, outside = _secret_and_outside(tmp_path)
    code = (
        "import json, sys\n"
        "sys.path.insert(0, %r)\n"
        "import test_sandbox_unprivileged_on_cpu as t\n"
        "from verl_toolmaster.envs.sandbox_pool import SandboxConfig, SandboxPool\n"
        "pool = SandboxPool(SandboxConfig(workers=1, limits=t.LIMITS, grace_s=1.0))\n"
        "import logging; logging.basicConfig()\n"
        "pool.wait_ready()\n"
        "try:\n    print(json.dumps(t.run_cases(pool, %r, %r)))\nfinally:\n    pool.close()\n"
    ) % (str(Path(__file__).parent), outside, secret)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [setpriv, "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", sys.executable, "-c", code]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        check(report)
        iso = report["isolation"]
        assert iso["network"].startswith("unavailable"), iso  # said plainly: no namespace without CAP_SYS_ADMIN
        assert proc.stderr.count("the tool sandbox runs without: network: unavailable") == 1, proc.stderr[-2000:]
        assert "landlock ABI" in iso["filesystem"] and iso["seccomp"].startswith("x86_64 filter"), iso
    finally:
        Path(outside).unlink(missing_ok=True)
