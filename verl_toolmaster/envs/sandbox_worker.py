"""A warm sandbox worker for untrusted Python tools. Standard library only; run as a script by ``sandbox_pool``.

The worker confines itself once at start-up and then runs one tool call at a time, in-process, for as long
as it stays healthy:

* network: an empty network namespace (unshare) when permitted, and a seccomp filter refusing ``socket()``;
* processes: the seccomp filter refuses fork/vfork/exec and clone without CLONE_THREAD (threads still work),
  plus namespaces, ptrace, io_uring, bpf, mount/reboot and friends; RLIMIT_NPROC for non-root users;
* files: Landlock lets the worker write only inside its private temp dir and read only the interpreter,
  its libraries and system paths; each call runs with a fresh, emptied working directory there;
* privileges: as root, all capabilities are dropped (or the uid becomes nobody when it can still read the
  interpreter); the environment holds no trainer secrets;
* resources: RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0 for the worker, and per call a CPU
  soft limit (SIGXCPU) and a wall-clock alarm (SIGALRM) that interrupt the tool; printed output is capped.

A call that the worker cannot interrupt (C code holding the GIL, signals blocked) is caught by the pool's
own deadline, which kills and replaces the worker. A call that leaves threads running or tampers with
``builtins`` makes the worker retire after answering, and every worker retires after ``max_calls`` calls.
Messages are length-prefixed JSON frames, never pickle: the trainer must not unpickle bytes that
untrusted code could have written.
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import errno
import hashlib
import inspect
import io
import json
import math
import os
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback

DIR_PREFIX = "toolmaster-sandbox-"  # the workers' private temp dirs (the pool tags them with its process, sandbox_pool.py)
NOBODY = 65534
_HDR = struct.Struct(">I")
# Bound once: a tool that monkeypatches json/os/select must not be able to break the worker's framing.
_dumps, _loads, _os_read, _os_write, _select = json.dumps, json.loads, os.read, os.write, select.select
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


# ---------------------------------------------------------------------------------------------- framing
def write_frame(fd: int, obj: dict) -> None:
    data = _dumps(obj, ensure_ascii=False).encode("utf-8")
    buf = memoryview(_HDR.pack(len(data)) + data)
    while buf:
        n = _os_write(fd, buf)
        buf = buf[n:]


def read_exact(fd: int, n: int, deadline: float | None = None) -> bytes | None:
    """``n`` bytes from ``fd``; None on EOF; raises TimeoutError past ``deadline`` (monotonic)."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not _select([fd], [], [], left)[0]:
                raise TimeoutError
        b = _os_read(fd, min(n - got, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def read_frame(fd: int, max_bytes: int, deadline: float | None = None) -> dict | None:
    """One frame; None on EOF. ValueError if the frame is oversized or not a JSON object."""
    hdr = read_exact(fd, _HDR.size, deadline)
    if hdr is None:
        return None
    (n,) = _HDR.unpack(hdr)
    if n > max_bytes:
        raise ValueError(f"frame of {n} bytes exceeds the {max_bytes}-byte cap")
    data = read_exact(fd, n, deadline)
    if data is None:
        return None
    obj = _loads(data.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("frame is not a JSON object")
    return obj


# ------------------------------------------------------------------------------------------- isolation
def _prctl(option: int, arg2: int = 0) -> int:
    return libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 1, 4, 22, 38
CLONE_NEWUSER, CLONE_NEWNET, CLONE_THREAD = 0x10000000, 0x40000000, 0x00010000


def unshare_network() -> str:
    """Move this worker (and so every child) into an empty network namespace; returns how, or why not."""
    if os.geteuid() == 0:
        if libc.unshare(CLONE_NEWNET) == 0:
            return "netns"
        return f"unavailable: unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}"
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return f"unavailable: unshare(CLONE_NEWUSER|CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}"
    # Map our own ids onto themselves so file ownership is unchanged inside the namespace.
    for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"), ("/proc/self/gid_map", f"{gid} {gid} 1")):
        try:
            with open(path, "w") as f:
                f.write(text)
        except OSError:
            pass
    return "userns+netns"


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_LL_CREATE, _LL_ADD_RULE, _LL_RESTRICT = 444, 445, 446  # same numbers on every architecture
_LL_EXECUTE, _LL_WRITE_FILE, _LL_READ_FILE, _LL_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_LL_WRITE_V1 = _LL_WRITE_FILE | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)
_LL_REFER, _LL_TRUNCATE = 1 << 13, 1 << 14
_LL_READ = _LL_EXECUTE | _LL_READ_FILE | _LL_READ_DIR
# Files under /etc a Python tool may legitimately read; the rest of /etc (shadow, keys) stays hidden.
_ETC_FILES = ("/etc/localtime", "/etc/timezone", "/etc/ld.so.cache", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
              "/etc/mime.types", "/etc/hosts", "/etc/resolv.conf", "/etc/os-release", "/etc/ssl", "/etc/pki", "/etc/ca-certificates")


def landlock_abi() -> int:
    abi = libc.syscall(_LL_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return int(abi) if abi > 0 else 0


def readable_roots() -> list[str]:
    """What a tool may read: the interpreter, its libraries, system libraries, /dev, /proc and a few /etc files."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    roots.update(p for p in sys.path if p)
    roots.update(("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/dev", "/proc", "/sys", *_ETC_FILES))
    out = set()
    for r in roots:
        for p in (r, os.path.realpath(r)):
            if os.path.exists(p):
                out.add(p)
    return sorted(out)


def landlock_restrict(abi: int, writable_dir: str, read_roots: list[str] | None) -> None:
    """Forbid writes outside ``writable_dir`` (and reads outside ``read_roots`` when given), TCP bind/connect
    (ABI>=4) and signals/abstract sockets leaving the sandbox (ABI>=6). Raises OSError on failure: a child
    that cannot be confined must not run tools."""
    write = _LL_WRITE_V1 | (_LL_REFER if abi >= 2 else 0) | (_LL_TRUNCATE if abi >= 3 else 0)
    handled = write | (_LL_READ if read_roots is not None else 0)
    attr = _RulesetAttr(handled, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    rfd = libc.syscall(_LL_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if rfd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    file_rights = _LL_EXECUTE | _LL_WRITE_FILE | _LL_READ_FILE | (_LL_TRUNCATE if abi >= 3 else 0)
    rules = [(writable_dir, handled), (os.devnull, (_LL_WRITE_FILE | (_LL_TRUNCATE if abi >= 3 else 0)) | (_LL_READ_FILE if read_roots is not None else 0))]
    rules += [(p, _LL_READ) for p in read_roots or ()]
    try:
        for path, rights in rules:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(path):
                    rights &= file_rights
                rule = _PathBeneath(rights & handled, pfd)
                if libc.syscall(_LL_ADD_RULE, ctypes.c_int(rfd), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule({path}) failed")
            finally:
                os.close(pfd)
        if libc.syscall(_LL_RESTRICT, ctypes.c_int(rfd), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(rfd)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
PR_SET_SECUREBITS = 28
_SECBITS_LOCKED_NOROOT = 0x3F  # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS and their locks


def drop_capabilities() -> None:
    """Root without any capability: no mount/reboot/kill-anyone/raw-IO; uid 0 keeps the root-owned interpreter readable."""
    _prctl(PR_SET_SECUREBITS, _SECBITS_LOCKED_NOROOT)
    hdr, data = _CapHeader(0x20080522, 0), (_CapData * 2)()
    nr = _SYS_CAPSET.get(os.uname().machine)
    if nr is None or libc.syscall(nr, ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def world_readable(path: str) -> bool:
    """True when every directory down to ``path`` can be entered by others and ``path`` itself read."""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(1, len(parts) + 1):
        p = os.sep.join(parts[:i]) or os.sep
        try:
            mode = os.stat(p).st_mode
        except OSError:
            return False
        if not mode & 0o001 or (i == len(parts) and not mode & 0o004):
            return False
    return True


# seccomp-bpf (x86_64 only; elsewhere an audit hook stands in, and the isolation report says so).
_AUDIT_ARCH_X86_64 = 0xC000003E
# -> EPERM: fork vfork execve execveat io_uring_setup/enter/register (io_uring could bypass the socket rule)
# unshare setns ptrace mount umount2 pivot_root chroot bpf userfaultfd perf_event_open keyctl add_key
# request_key process_vm_readv/writev kexec_load kexec_file_load reboot init/finit/delete_module swapon
# swapoff acct settimeofday clock_settime sethostname setdomainname
_X86_64_DENY = (57, 58, 59, 322, 425, 426, 427, 272, 308, 101, 165, 166, 155, 161, 321, 323, 298, 250, 248, 249, 310, 311,
                246, 320, 169, 175, 313, 176, 167, 168, 163, 164, 227, 170, 171)
_X86_64_SOCKET, _X86_64_CLONE, _X86_64_CLONE3 = 41, 56, 435
_RET_ALLOW, _RET_KILL = 0x7FFF0000, 0x80000000


def _ret_errno(e: int) -> int:
    return 0x00050000 | e


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def build_seccomp_program():
    """The BPF filter: socket -> EACCES; the deny list and clone without CLONE_THREAD -> EPERM; clone3 ->
    ENOSYS (libc then creates threads with clone); x32 syscalls -> EPERM; a foreign arch -> kill. None off x86_64."""
    if os.uname().machine != "x86_64":
        return None
    LD, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
    head = [(LD, 0, 0, 4), (JEQ, 1, 0, _AUDIT_ARCH_X86_64), (RET, 0, 0, _RET_KILL), (LD, 0, 0, 0)]
    jumps = [(JGE, 0x40000000, "eperm")] + [(JEQ, nr, "eperm") for nr in _X86_64_DENY]
    jumps += [(JEQ, _X86_64_CLONE3, "enosys"), (JEQ, _X86_64_SOCKET, "eacces"), (JEQ, _X86_64_CLONE, "clone")]
    tail = [
        ("allow", (RET, 0, 0, _RET_ALLOW)),
        ("eperm", (RET, 0, 0, _ret_errno(errno.EPERM))),
        ("enosys", (RET, 0, 0, _ret_errno(errno.ENOSYS))),
        ("eacces", (RET, 0, 0, _ret_errno(errno.EACCES))),
        ("clone", (LD, 0, 0, 16)),  # args[0] = clone flags (low 32 bits)
        (None, (JSET, 0, 1, CLONE_THREAD)),
        (None, (RET, 0, 0, _RET_ALLOW)),
        (None, (RET, 0, 0, _ret_errno(errno.EPERM))),
    ]
    start = len(head) + len(jumps)
    labels = {lab: start + i for i, (lab, _) in enumerate(tail) if lab}
    prog = list(head)
    for i, (op, k, lab) in enumerate(jumps):
        prog.append((op, labels[lab] - (len(head) + i + 1), 0, k))
    prog += [ins for _, ins in tail]
    return (_SockFilter * len(prog))(*[_SockFilter(c, t, f, k) for c, t, f, k in prog])


def seccomp_install(program) -> None:
    fprog = _SockFprog(len(program), ctypes.cast(program, ctypes.POINTER(_SockFilter)))
    if libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(2), ctypes.byref(fprog), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter installation failed")


def _audit_fallback(writable_dir: str, block_writes: bool, block_net_proc: bool) -> None:
    """Python-level guard for kernels without Landlock/seccomp. Weaker (ctypes can bypass it); reported as such."""
    root = os.path.realpath(writable_dir) + os.sep
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    path_events = {"os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.symlink", "os.link", "os.chmod", "os.chown", "os.truncate", "shutil.rmtree"}
    proc_events = {"os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.system", "subprocess.Popen", "os.spawn"}

    def outside(p) -> bool:
        if isinstance(p, int):
            return False
        return not (os.path.realpath(os.fsdecode(p)) + os.sep).startswith(root)

    def hook(event, args):
        if block_net_proc and (event == "socket.__new__" or event in proc_events):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if block_writes:
            if event == "open" and len(args) >= 3:
                path, mode, flags = args[0], args[1], args[2]
                wants = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & write_flags)
                if wants and path is not None and outside(path):
                    raise PermissionError(f"sandbox: writing {path!r} outside the working directory is not allowed")
            elif event in path_events and args and outside(args[0]):
                raise PermissionError(f"sandbox: {event} outside the working directory is not allowed")

    sys.addaudithook(hook)


# ------------------------------------------------------------------------------------------- tool code
def _is_example_usage(stmt: ast.stmt, defined: set[str]) -> bool:
    """Top-level statements that call the source's own functions (or print) are usage examples, not tool code."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return False
    if isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare) and "__name__" in ast.unparse(stmt.test):
        return True
    for node in ast.walk(stmt):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (node.func.id in defined or node.func.id == "print"):
            return True
    return False


def compile_tool(source: str, fn: str):
    tree = ast.parse(source, filename=f"<tool {fn}>")
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    tree.body = [s for s in tree.body if not _is_example_usage(s, defined)]
    return compile(tree, f"<tool {fn}>", "exec")


# ---------------------------------------------------------------------------------------------- a call
class OutputLimit(BaseException):
    """Raised by the captured stdout when a tool prints past the cap (BaseException: `except Exception` can't eat it)."""


class CpuLimit(BaseException):
    """Raised from the SIGXCPU handler when the call's CPU budget is spent."""


class WallClockLimit(BaseException):
    """Raised from the SIGALRM handler when the call's wall-clock budget is spent."""


def _on_xcpu(signum, frame):
    raise CpuLimit


def _on_alarm(signum, frame):
    raise WallClockLimit


class CappedText(io.TextIOBase):
    def __init__(self, cap: int):
        self.cap, self.n, self.parts = cap, 0, []

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self.n += len(s)
        if self.n > self.cap:
            raise OutputLimit
        self.parts.append(s)
        return len(s)

    def getvalue(self) -> str:
        return "".join(self.parts)


def render(value) -> str:
    """Tool return value -> observation text: strings as-is, containers as JSON, other values via str()."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        try:
            return _dumps(value, ensure_ascii=False, default=str)
        except (ValueError, TypeError, RecursionError):
            return repr(value)
    return str(value)


_SANDBOX_HINT = " [sandbox: no network, no subprocesses, files only inside the working directory]"


def _where(exc: BaseException, fn: str) -> str:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == f"<tool {fn}>":
            line = frame.lineno
    return f" (line {line} of tool {fn!r})" if line else ""


def _error(kind: str, text: str) -> dict:
    return {"ok": False, "error_kind": kind, "text": text}


def run_call(req: dict, limits: dict, code_cache: dict, pristine: dict) -> dict:
    """Execute one request (limits already armed by the caller); always returns a result dict.

    ``pristine`` is the builtins namespace as the worker started; if the tool changed it, it is restored
    before any worker code runs again and the result carries ``"tampered": True``.
    """
    fn, source, kwargs = req["fn"], req["code"], req.get("kwargs") or {}
    out = CappedText(limits["max_print_chars"])
    sys.stdout = sys.stderr = out
    tampered = [False]
    res = _run(fn, source, kwargs, limits, code_cache, pristine, out, tampered)
    live = builtins.__dict__
    if tampered[0] or live != pristine:  # also catches changes made while the module body ran
        live.clear()
        live.update(pristine)
        res["tampered"] = True
    return res


def _run(fn, source, kwargs, limits, code_cache, pristine, out, tampered) -> dict:
    try:
        key = hashlib.sha256(source.encode("utf-8")).hexdigest()
        code = code_cache.get(key)
        if code is None:
            try:
                code = compile_tool(source, fn)
            except SyntaxError as e:
                return _error("exception", f"Error: the source of tool {fn!r} does not compile: {e.msg} (line {e.lineno}).")
            if len(code_cache) >= 1024:
                code_cache.pop(next(iter(code_cache)))
            code_cache[key] = code
        ns = {"__name__": "sandboxed_tool", "__builtins__": builtins}
        exec(code, ns)  # fresh namespace per call: tools cannot keep state between calls
        func = ns.get(fn)
        if not callable(func):
            return _error("exception", f"Error: the source of tool {fn!r} defines no function named {fn!r}.")
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            try:
                sig.bind(**kwargs)
            except TypeError as e:
                return _error("schema", f"Error: invalid arguments for {fn!r}: {e}. Parameters: {', '.join(sig.parameters)}.")
        try:
            value = func(**kwargs)
        finally:
            live = builtins.__dict__
            if live != pristine:
                live.clear()
                live.update(pristine)
                tampered[0] = True
        printed = out.getvalue()
        return {"ok": True, "error_kind": None, "text": printed if value is None and printed else render(value)}
    except OutputLimit:
        return _error("resource", f"Error: tool {fn!r} printed more than {limits['max_print_chars']} characters (output limit).")
    except CpuLimit:
        return _error("resource", f"Error: tool {fn!r} exceeded the CPU time limit of {limits['cpu_s']} s.")
    except WallClockLimit:
        return _error("timeout", f"Error: tool {fn!r} did not finish within {limits['timeout_s']} s (wall-clock limit).")
    except MemoryError:
        return _error("resource", f"Error: tool {fn!r} exceeded the memory limit of {limits['memory_mb']} MB.")
    except ImportError as e:
        mod = getattr(e, "name", None) or str(e)
        return _error("import_error", f"Error: tool {fn!r} imports module {mod!r}, which is not installed in the sandbox ({type(e).__name__}: {e}).")
    except OSError as e:
        if e.errno == errno.EFBIG:
            return _error("resource", f"Error: tool {fn!r} wrote more than {limits['file_size_mb']} MB to a file (file size limit).")
        hint = _SANDBOX_HINT if e.errno in (errno.EPERM, errno.EACCES) else ""
        return _error("exception", f"Error: {type(e).__name__}: {e}{_where(e, fn)}{hint}")
    except SystemExit as e:
        return _error("exception", f"Error: tool {fn!r} called exit({e.code!r}) instead of returning a result.")
    except BaseException as e:  # noqa: BLE001 - untrusted code may raise anything; it becomes an observation
        try:
            msg = str(e)
        except BaseException:  # noqa: BLE001
            msg = "<unprintable exception>"
        return _error("exception", f"Error: {type(e).__name__}: {msg}{_where(e, fn)}")


# -------------------------------------------------------------------------------------------- the worker
class Worker:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.limits = cfg["limits"]
        self.code_cache: dict = {}
        self.calls = 0
        self.base = cfg.get("base_dir") or tempfile.mkdtemp(prefix=DIR_PREFIX, dir=cfg.get("temp_root") or None)
        self.work = os.path.join(self.base, "work")
        os.mkdir(self.work, 0o700)
        os.environ.update(HOME=self.work, TMPDIR=self.work, TMP=self.work, TEMP=self.work)
        tempfile.tempdir = self.work
        self.report = self.confine()
        self._builtins = dict(vars(builtins))
        self._stdout = sys.stdout

    def confine(self) -> dict:
        """Confine this process for good. Returns what could be enforced, for the isolation report."""
        cfg, limits = self.cfg, self.limits
        net = unshare_network() if cfg["network_namespace"] else "disabled by config"
        root = os.geteuid() == 0 and net != "userns+netns"
        # uid nobody only works when it can still read the interpreter (not so for e.g. ~root/.pyenv).
        lib_dirs = [os.path.dirname(os.__file__), *[p for p in sys.path if p and os.path.isdir(p)]]
        drop_uid = bool(cfg["drop_privileges"]) and root and all(world_readable(p) for p in lib_dirs)
        drop_caps = bool(cfg["drop_privileges"]) and root and not drop_uid
        if drop_uid:
            for p in (self.base, self.work):
                os.chown(p, NOBODY, NOBODY)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        mem = limits["memory_mb"] << 20
        for res_id, value in (
            (resource.RLIMIT_AS, (mem, mem)),
            (resource.RLIMIT_FSIZE, (limits["file_size_mb"] << 20,) * 2),
            (resource.RLIMIT_NPROC, (limits["max_processes"],) * 2),
            (resource.RLIMIT_NOFILE, (limits["max_open_files"],) * 2),
            (resource.RLIMIT_CORE, (0, 0)),
        ):
            resource.setrlimit(res_id, value)
        _prctl(PR_SET_DUMPABLE, 0)
        if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if drop_caps:
            drop_capabilities()
        abi = landlock_abi() if cfg["landlock"] else 0
        roots = readable_roots() if abi else []
        if abi:
            landlock_restrict(abi, self.base, roots)
        program = build_seccomp_program() if cfg["seccomp"] else None
        if program is not None:
            seccomp_install(program)
        if not abi or program is None:
            _audit_fallback(self.base, block_writes=not abi, block_net_proc=program is None)
        signal.signal(signal.SIGXCPU, _on_xcpu)
        signal.signal(signal.SIGPROF, _on_xcpu)
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes fail with EFBIG instead of killing
        return {
            "network": net,
            "filesystem": f"landlock ABI {abi}: writes only in the worker's temp dir, reads only under {len(roots)} roots (interpreter, libraries, /usr, /dev, /proc)"
            if abi else "audit hook (weak): writes outside the temp dir refused at the Python level",
            "seccomp": "x86_64 filter: no sockets, fork, exec, namespaces, ptrace, io_uring, bpf (threads allowed)"
            if program is not None else "unavailable (audit hook, weak)",
            "user": "nobody (dropped from root)" if drop_uid else "uid 0 without capabilities" if drop_caps else f"uid {os.getuid()}",
            "rlimits": "as, fsize, nofile, core; cpu per call" + ("; nproc (not enforced for uid 0)" if os.geteuid() == 0 else "; nproc"),
            "temp_dir": self.base,
        }

    def call(self, req: dict) -> tuple[dict, str | None]:
        """Run one request under the per-call limits. Returns (result, reason to retire or None)."""
        limits = self.limits
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu_now = used.ru_utime + used.ru_stime
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        # Precise budget: ITIMER_PROF (process CPU time) -> SIGPROF. Backstop the tool cannot disarm by
        # resetting timers: RLIMIT_CPU one whole second later -> SIGXCPU (both raise CpuLimit).
        soft = math.ceil(cpu_now + limits["cpu_s"]) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
        os.chdir(self.work)
        try:
            signal.setitimer(signal.ITIMER_REAL, limits["timeout_s"])
            signal.setitimer(signal.ITIMER_PROF, limits["cpu_s"])
            try:
                res = run_call(req, limits, self.code_cache, self._builtins)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.setitimer(signal.ITIMER_PROF, 0)
        except (WallClockLimit, CpuLimit) as e:  # fired between the tool's return and disarming
            res = _error("timeout" if isinstance(e, WallClockLimit) else "resource", f"Error: tool {req.get('fn')!r} hit its time limit.")
        finally:
            sys.stdout = sys.stderr = self._stdout
        cap = limits["max_result_chars"]
        if len(res["text"]) > cap:
            res["text"] = res["text"][:cap] + f"\n...[truncated: {len(res['text']) - cap} more characters]"
        self.calls += 1
        return res, "a tool modified builtins" if res.pop("tampered", False) else self.retire_reason()

    def retire_reason(self) -> str | None:
        """Clean the working dir; say why this worker must not serve another call, if it must not."""
        try:
            os.chdir(self.base)
            if os.listdir(self.work):
                shutil.rmtree(self.work)
                os.mkdir(self.work, 0o700)
        except OSError as e:
            return f"could not reset the working directory ({e})"
        if len(os.listdir("/proc/self/task")) > 1:
            return "a tool left threads running"
        if self.calls >= self.cfg["max_calls"]:
            return "served its maximum number of calls"
        return None

    def serve(self, rfd: int, wfd: int) -> None:
        write_frame(wfd, {"ready": True, "pid": os.getpid(), "isolation": self.report})
        max_req = self.cfg["max_request_bytes"]
        while True:
            try:
                req = read_frame(rfd, max_req)
            except (ValueError, UnicodeDecodeError):
                break  # the pipe is corrupt: stop, the pool will replace us
            if req is None:
                break
            try:
                res, retire = self.call(req)
            except BaseException as e:  # noqa: BLE001 - a late signal or broken state: answer, then retire
                res, retire = _error("resource", f"Error: the sandbox worker failed during the call ({type(e).__name__})."), "internal error"
            if retire:
                res["retire"] = retire
            write_frame(wfd, res)
            if retire:
                break
        shutil.rmtree(self.base, ignore_errors=True)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    # Move the request/reply pipes off 0/1 so stray writes to stdout can never corrupt a frame.
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2) if cfg.get("quiet_stderr", True) else (0, 1):
        os.dup2(devnull, fd)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # never outlive the trainer
    if os.getppid() != cfg["parent_pid"]:
        sys.exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the trainer, which shuts the pool down
    Worker(cfg).serve(rfd, wfd)


if __name__ == "__main__":
    main()
