"""Where a sweep's probes run: `local` (this machine, worker processes) or `ray` (a cluster; the
optional extra, imported only when asked for). Both implement `base.Executor`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from collapse_doctor.errors import CollapseDoctorError
from collapse_doctor.sweeps.executors.base import Executor
from collapse_doctor.sweeps.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "make_executor", "sweep_executor"]


def make_executor(
    name: str = "local", *, jobs: int = 1, ray_address: str | None = None, device: str = "cpu"
) -> Executor:
    if name == "local":
        return LocalExecutor(jobs)
    if name == "ray":
        from collapse_doctor.sweeps.executors.ray import RayExecutor

        return RayExecutor(address=ray_address, device=device)
    raise CollapseDoctorError(f"--executor {name!r}: expected local or ray")


@contextmanager
def sweep_executor(executor: Executor | None, jobs: int) -> Iterator[Executor]:
    """The caller's executor (the caller closes it), or a local one that lives as long as this sweep, so
    that every round of probes runs in the same worker processes."""
    if executor is not None:
        yield executor
        return
    with LocalExecutor(jobs) as local:
        yield local
