"""Where a sweep's probes run: `local` (this machine, worker processes) or `ray` (a cluster; the
optional extra, imported only when asked for). Both implement `base.Executor`."""

from __future__ import annotations

from collapse_doctor.errors import CollapseDoctorError
from collapse_doctor.sweeps.executors.base import Executor
from collapse_doctor.sweeps.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "make_executor"]


def make_executor(
    name: str = "local", *, jobs: int = 1, ray_address: str | None = None, device: str = "cpu"
) -> Executor:
    if name == "local":
        return LocalExecutor(jobs)
    if name == "ray":
        from collapse_doctor.sweeps.executors.ray import RayExecutor

        return RayExecutor(address=ray_address, device=device)
    raise CollapseDoctorError(f"--executor {name!r}: expected local or ray")
