"""The one interface every executor implements; local.py and ray.py import it, nothing imports back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from collapse_doctor.sweeps.jobs import ProbeJob


class Executor(Protocol):
    """Runs probes somewhere and yields (index, summary JSON) as each finishes; the caller caches them."""

    name: str

    def run(self, tasks: list[tuple[int, ProbeJob, str]], metrics_dir: str) -> Iterator[tuple[int, dict]]: ...

    def close(self) -> None:
        """Release what the executor kept between runs (the local one's worker processes)."""
        ...
