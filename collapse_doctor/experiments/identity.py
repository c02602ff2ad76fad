"""What identifies a probe, and where its files go: the key hashes the resolved config after the preset
(seed, steps and thread count included), the preset, the data, the device, the tool version and the
cache format, so two probes with equal keys give equal numbers. The probe names its metrics file by
it, warm starts their phase-1 checkpoint, and the sweep cache its entries."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from collapse_doctor import __version__
from collapse_doctor.config import Config, config_to_dict


def user_cache_dir() -> Path:
    """~/.cache/collapse-doctor, or under $XDG_CACHE_HOME when set."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "collapse-doctor"


def default_cache_dir() -> Path:
    return user_cache_dir() / "cache"


CACHE_FORMAT = 2  # 2: entries carry measures, precursors and the warm start; older entries re-run


def probe_key(
    config: Config,
    preset: str,
    data: str,
    solutions: str | None,
    device: str,
    base: Config | None = None,
    seed_batch: tuple[int, ...] | None = None,
) -> str:
    payload = {
        "config": config_to_dict(config),
        "preset": preset,
        "data": str(data),
        "solutions": str(solutions) if solutions else None,
        "device": device,
        "version": __version__,
        "format": CACHE_FORMAT,
    }
    if base is not None:
        payload["warm_start_base"] = config_to_dict(base)
    if seed_batch is not None:  # a seed batch's rows depend on every seed in it (train/seed_batch.py)
        payload["seed_batch"] = list(seed_batch)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]
