"""cpu/workers.py: the trainer's training workers start with glibc malloc settings; other worker groups do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import ray

from verl.single_controller.base import Worker
from verl.single_controller.ray.base import RayClassWithInitArgs, create_colocated_worker_cls
from verl_toolmaster.cpu import workers


class _EnvWorker(Worker):
    pass


def _colocated() -> RayClassWithInitArgs:
    return create_colocated_worker_cls(class_dict={"actor": RayClassWithInitArgs(cls=ray.remote(_EnvWorker))})


def test_training_worker_env_defaults_driver_values_and_off_switch():
    assert workers.training_worker_env({}) == workers.MALLOC_SETTINGS
    assert workers.training_worker_env({})["MALLOC_ARENA_MAX"] == "1"
    mine = workers.training_worker_env({"MALLOC_ARENA_MAX": "4"})
    assert "MALLOC_ARENA_MAX" not in mine and mine["MALLOC_TOP_PAD_"] == str(256 << 20)
    for off in ("0", "off", "False"):
        assert workers.training_worker_env({workers.OFF_ENV: off}) == {}
    assert workers.training_worker_env({workers.OFF_ENV: "1"}) == workers.MALLOC_SETTINGS


def test_worker_class_name_sees_verls_colocated_class():
    assert workers.worker_class_name(_colocated()) == workers.TRAINING_WORKER_CLASS
    assert workers.worker_class_name(RayClassWithInitArgs(cls=ray.remote(_EnvWorker))) == "_EnvWorker"


def test_wrapper_adds_settings_only_for_training_workers(monkeypatch):
    monkeypatch.delenv(workers.OFF_ENV, raising=False)
    for key in workers.MALLOC_SETTINGS:
        monkeypatch.delenv(key, raising=False)
    seen: list[dict] = []

    def original(self, resource_pool=None, ray_cls_with_init=None, *args, **kwargs):
        seen.append(kwargs)

    init = workers.make_worker_group_init(original)
    assert workers.make_worker_group_init(init) is init  # a second hook does not wrap twice
    init(None, None, ray_cls_with_init=_colocated(), worker_env={"MALLOC_TOP_PAD_": "0", "X": "1"})
    assert seen[-1]["worker_env"] == {**workers.MALLOC_SETTINGS, "MALLOC_TOP_PAD_": "0", "X": "1"}
    init(None, None, _colocated())  # positional
    assert seen[-1]["worker_env"] == workers.MALLOC_SETTINGS
    init(None, None, RayClassWithInitArgs(cls=ray.remote(_EnvWorker)), name_prefix="rollout_colocate_0")
    assert "worker_env" not in seen[-1]
    init(None, None)  # detached handles: no class to start
    assert "worker_env" not in seen[-1]


@pytest.mark.slow
def test_settings_reach_the_training_worker_process_and_no_other():
    """Through Ray and verl's RayWorkerGroup: the colocated training worker's process starts with the settings, a
    worker group of another class does not get them."""
    code = """
        import json, os, ray
        from verl.single_controller.base import Worker
        from verl.single_controller.base.decorator import Dispatch, register
        from verl.single_controller.ray.base import (RayClassWithInitArgs, RayResourcePool, RayWorkerGroup,
                                                     create_colocated_worker_cls)

        class EnvWorker(Worker):
            @register(dispatch_mode=Dispatch.ONE_TO_ALL)
            def env(self):
                return {k: os.environ.get(k) for k in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "RANK")}

        ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
        pool = RayResourcePool([1], use_gpu=True, max_colocate_count=1)
        cls = create_colocated_worker_cls(class_dict={"actor": RayClassWithInitArgs(cls=ray.remote(EnvWorker))})
        train = RayWorkerGroup(resource_pool=pool, ray_cls_with_init=cls, device_name="cpu").spawn(prefix_set={"actor"})
        print("train", json.dumps(train["actor"].env()[0]))
        other = RayWorkerGroup(resource_pool=RayResourcePool([1], use_gpu=True, max_colocate_count=1),
                               ray_cls_with_init=RayClassWithInitArgs(cls=ray.remote(EnvWorker)), device_name="cpu")
        print("other", json.dumps(other.env()[0]))
        ray.shutdown()
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != workers.OFF_ENV}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          env={**env, "VERL_PLATFORM": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("train ", "other ")))
    train, other = json.loads(lines["train"]), json.loads(lines["other"])
    assert train == {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 30), "RANK": "0"}
    assert other == {"MALLOC_ARENA_MAX": None, "MALLOC_MMAP_THRESHOLD_": None, "RANK": "0"}
