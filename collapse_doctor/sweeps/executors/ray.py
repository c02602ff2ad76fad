"""Probes as Ray tasks: each asks for its resources (one GPU with --device cuda, else the probe's CPU
threads), is retried once when it fails or loses its worker, and then comes back as a FAILED probe
rather than hanging the sweep. Ctrl-C cancels the tasks not yet finished. Results go to the same
on-disk cache as local ones (the driver writes them), so a sweep can start on a laptop and finish on
a cluster. Ray is an optional extra: pip install 'collapse-doctor[ray]'.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from collapse_doctor.errors import CollapseDoctorError
from collapse_doctor.sweeps.jobs import ProbeJob, execute, failed_entry, worker_identity

INSTALL_HINT = "--executor ray needs Ray: pip install 'collapse-doctor[ray]'"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise CollapseDoctorError(INSTALL_HINT) from None
    return ray


def _ray_identity() -> dict:
    import ray

    context = ray.get_runtime_context()
    return {**worker_identity("ray"), "node_id": context.get_node_id(), "worker_id": context.get_worker_id()}


def _run_probe_task(job: ProbeJob, key: str, metrics_dir: str) -> dict:
    return execute(job, key, metrics_dir, worker=_ray_identity())


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, device: str = "cpu", cpus_per_probe: float = 1.0, retries: int = 1):
        self.ray = _import_ray()
        self.address, self.device, self.cpus, self.retries = address, device, cpus_per_probe, retries

    def close(self) -> None:
        """Nothing to release: the cluster's workers are Ray's (Ray shuts down with this process)."""

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> None:
        if self.ray.is_initialized():
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if self.address and self.address not in ("auto", "local") and not self.address.startswith("ray://"):
            _reachable(self.address)  # ray.init waits without end on an address where nothing listens
        try:
            self.ray.init(address=self.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise CollapseDoctorError(
                f"--ray-address {self.address or 'auto'}: cannot connect to Ray: {str(exc).splitlines()[0]}"
            ) from None

    def run(self, tasks: list[tuple[int, ProbeJob, str]], metrics_dir: str) -> Iterator[tuple[int, dict]]:
        if not tasks:
            return
        if any(job.seed_batch is not None for _, job, _ in tasks):
            raise CollapseDoctorError(
                "--seed-batch runs on the local executor only; drop --executor ray or --seed-batch"
            )
        self._connect()
        ray = self.ray
        gpus = 1 if self.device == "cuda" else 0
        remote = ray.remote(
            num_cpus=0 if gpus else self.cpus, num_gpus=gpus, max_retries=self.retries, retry_exceptions=True
        )(_run_probe_task)
        refs = {remote.remote(job, key, metrics_dir): (i, job, key) for i, job, key in tasks}
        pending = list(refs)
        try:
            while pending:
                # A timeout, so Ctrl-C is seen within a second instead of when the next probe ends.
                done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                if not done:
                    continue
                i, job, key = refs[done[0]]
                try:
                    entry = ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    cause = getattr(exc, "cause", None) or exc
                    text = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
                    entry = failed_entry(
                        job,
                        key,
                        f"failed after {self.retries} retry: {type(cause).__name__}: {text}",
                        {"executor": "ray"},
                    )
                yield i, entry
        except BaseException:
            for ref in pending:  # Ctrl-C (or any error): nothing keeps running on the cluster
                ray.cancel(ref, force=True)
            raise


CONNECT_TIMEOUT_S = 5.0


def _reachable(address: str) -> None:
    """Refuse, within CONNECT_TIMEOUT_S, a host:port where no Ray head listens."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise CollapseDoctorError(f"--ray-address {address}: expected HOST:PORT (or auto, or ray://HOST:PORT)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise CollapseDoctorError(
            f"--ray-address {address}: nothing answers there within {CONNECT_TIMEOUT_S:g} s ({exc.strerror or exc})"
        ) from None
