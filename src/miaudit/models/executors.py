"""Where ModelBank training runs: in this process, in a local process pool, or on a Ray cluster.

Reference and shadow models are independent of each other, so training them is embarrassingly
parallel; a full LiRA or RMIA audit of an image model needs 64 to 256 of them (Carlini et al.,
IEEE S&P 2022), more than one machine trains in reasonable time. A :class:`ModelBank` cuts the
models it has to train into blocks (its chunks, at most ``max_models_per_pass`` models each);
an executor trains each block as a :class:`TrainJob` wherever it runs and hands back the
weights, which the bank writes into its content-addressed :class:`ModelCache` in this process.

A block is trained by the same code everywhere (``ModelBank`` with one chunk), with the same
subsets and seeds, so a block trained by a worker gives the same weights as the same block
trained here (tests/test_executors.py checks Ray against local bit for bit).

The contract the bank sees (:class:`TrainJob`, :class:`Executor`, :data:`State`) lives in
:mod:`miaudit.models.jobs`, so that this module imports the bank and the bank never imports it.
Executors are a registry (:data:`EXECUTORS`): ``local`` (default, in this process), ``process``
(``concurrent.futures`` pool of spawned processes on this machine) and ``ray``
(``pip install 'miaudit[ray]'``; a local Ray instance, or a cluster at ``address``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from miaudit.errors import ConfigError, MiauditError
from miaudit.models.bank import ModelBank
from miaudit.models.jobs import Executor, State, TrainJob
from miaudit.registry import Registry

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "ProcessExecutor", "RayExecutor", "State", "TrainJob",
           "executor_from_options", "make_executor", "train_job"]  # fmt: skip

def train_job(job: TrainJob, x: np.ndarray, y: np.ndarray, threads: int | None = None) -> list[State]:
    """Train one block in this process (no cache) on the job's device and return its models'
    weights, in job order (a worker without the device refuses with a ConfigError)."""
    import torch

    from miaudit.models.device import use_device
    from miaudit.models.standardize import inner_module

    if threads is not None:
        torch.set_num_threads(threads)
    bank = ModelBank(job.arch, job.recipe, num_classes=job.num_classes, max_models_per_pass=max(1, len(job.seeds)))
    with use_device(job.device):
        modules = bank.train(x, y, list(job.subsets), list(job.seeds))
    # The network's weights only: the calling bank recomputes standardization statistics itself.
    return [
        {k: v.detach().contiguous().numpy().copy() for k, v in inner_module(m).state_dict().items()} for m in modules
    ]


EXECUTORS: Registry[type[Executor]] = Registry("executor")


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """The ModelBank in this process (the default)."""

    name = "local"
    in_process = True

    def run(self, jobs: Sequence[TrainJob], x: np.ndarray, y: np.ndarray) -> Iterator[tuple[int, list[State]]]:
        for i, job in enumerate(jobs):
            yield i, train_job(job, x, y)


# Data set of a process-pool worker, sent once per worker by the pool's initializer.
_WORKER_DATA: tuple[np.ndarray, np.ndarray] | None = None


def _init_worker(x: np.ndarray, y: np.ndarray, threads: int) -> None:
    global _WORKER_DATA
    import torch

    torch.set_num_threads(threads)
    _WORKER_DATA = (x, y)


def _pool_train(job: TrainJob) -> list[State]:
    assert _WORKER_DATA is not None, "worker started without data"
    return train_job(job, *_WORKER_DATA)


@EXECUTORS.register("process")
class ProcessExecutor(Executor):
    """A pool of ``workers`` spawned processes on this machine, each training whole blocks with
    ``threads`` torch threads (default: the machine's cores shared among the workers)."""

    name = "process"

    def __init__(self, *, workers: int | None = None, threads: int | None = None) -> None:
        cores = os.cpu_count() or 1
        self.workers = _positive("workers", workers if workers is not None else cores)
        self.threads = _positive("threads", threads if threads is not None else max(1, cores // self.workers))

    def run(self, jobs: Sequence[TrainJob], x: np.ndarray, y: np.ndarray) -> Iterator[tuple[int, list[State]]]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: a forked copy of a process that already runs torch threads can deadlock.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(self.workers, max(1, len(jobs))), mp_context=ctx,
            initializer=_init_worker, initargs=(x, y, self.threads),
        ) as pool:  # fmt: skip
            futures = {pool.submit(_pool_train, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                yield futures[future], future.result()

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": self.workers, "threads": self.threads}


def _ray_train(job: TrainJob, x: np.ndarray, y: np.ndarray, threads: int) -> list[State]:
    return train_job(job, x, y, threads)


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Blocks as Ray tasks (``cpus_per_job`` CPUs each) on the cluster at ``address`` (e.g.
    ``ray://head:10001`` or ``auto``), or on a local Ray instance with ``num_cpus`` CPUs when no
    address is given. The data set is put in Ray's object store once; weights come back to this
    process and go into its cache. Every node needs the same miaudit and torch installed."""

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None, cpus_per_job: int = 1) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("the Ray executor needs ray: pip install 'miaudit[ray]'") from None
        self.address = address
        self.cpus_per_job = _positive("cpus_per_job", cpus_per_job)
        if address is not None:
            _probe(address)
        if not ray.is_initialized():
            try:
                if address is None:
                    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
                raise ConfigError(f"could not start or reach {where} ({exc}); check --ray-address") from None

    def run(self, jobs: Sequence[TrainJob], x: np.ndarray, y: np.ndarray) -> Iterator[tuple[int, list[State]]]:
        import ray

        x_ref, y_ref = ray.put(x), ray.put(y)
        task = ray.remote(num_cpus=self.cpus_per_job)(_ray_train)
        pending = {task.remote(job, x_ref, y_ref, self.cpus_per_job): i for i, job in enumerate(jobs)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                try:
                    states = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    if isinstance(exc.cause, MiauditError):  # a user error on a worker: its one line, not Ray's traceback
                        raise exc.cause from None
                    raise
                yield pending.pop(ref), states

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "address": self.address, "cpus_per_job": self.cpus_per_job}


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address nothing listens on (Ray itself retries for minutes)."""
    import socket

    if address == "auto":
        return
    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({exc}); is `ray start --head` running there?") from None


def make_executor(name: str = "local", **options: Any) -> Executor:
    """An executor by registry name; ``options`` with value None are left to its defaults."""
    cls = EXECUTORS.get(name)
    given = {k: v for k, v in options.items() if v is not None}
    try:
        return cls(**given)
    except TypeError:
        raise ConfigError(f"executor {name!r} takes no option(s) {', '.join(sorted(given))}") from None


def _positive(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return value


def executor_from_options(name: str = "local", *, ray_address: str | None = None, workers: int | None = None) -> Executor:
    """The executor the command line / experiment file asks for: ``workers`` is the process
    pool's size, or the CPUs of a local Ray instance; ``ray_address`` belongs to ``ray`` only."""
    EXECUTORS.get(name)  # unknown names fail with the list
    if ray_address is not None and name != "ray":
        raise ConfigError(f"a Ray address applies to the ray executor, not {name!r}; add --executor ray")
    if name == "ray":
        if ray_address is not None and workers is not None:
            raise ConfigError("--workers sizes a local Ray instance; a cluster at --ray-address has its own CPUs")
        return make_executor("ray", address=ray_address, num_cpus=workers)
    if name == "process":
        return make_executor("process", workers=workers)
    if workers is not None:
        raise ConfigError(f"--workers applies to the process and ray executors, not {name!r}")
    return make_executor(name)
