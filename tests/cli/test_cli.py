"""The command line as a user meets it: installed entry point, exit codes, one-line errors, JSON shape.

The version, the help and the memory refusal run the interpreter as a user does (`python -m
collapse_doctor`); the rest run `cli.main` in this process (tests/inprocess.py), what the installed entry
point runs, without paying torch's import again for each case."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from inprocess import run_cli

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "collapse_doctor", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def here(capsys):
    """The command in this process: a result with the exit code, stdout and stderr, like run()'s."""

    def run_here(*args):
        code, out, err = run_cli(list(args), capsys)
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return run_here


def test_version_and_help_list_the_exit_codes():
    from collapse_doctor import __version__

    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"collapse-doctor {__version__}"
    help_text = run("--help").stdout
    assert "inspect" in help_text and "Exit codes" in help_text and "INCONCLUSIVE" in help_text


def test_inspect_json_of_the_embedded_default(tmp_path, here):
    path = tmp_path / "report.json"
    result = here("inspect", "--json", str(path))
    assert result.returncode == 0, result.stderr
    report = json.loads(path.read_text())
    assert report["parameters"]["total"] == 18_734_332
    assert report["parameters"]["hyper_lora"] == 5_000_448
    assert report["schedule"] == {
        "hyper_lora": 0,
        "solver_context": 0,
        "cross_attention": 0,
        "hpm": 3,
        "loo": 3,
        "equivariance": 3,
    }
    unused = {u["key"]: u for u in report["unused_keys"]}
    assert unused["logging.log_every"]["known"] is False
    assert unused["model.num_predicates"]["known"] is True
    assert "training.checkpoint_use_reentrant" in report["defaulted_keys"]
    assert report["context_injector"] == "CrossAttentionInjector" and report["context_path"] == "spatial"


def test_inspect_old_config_and_overrides(here):
    result = here(
        "inspect", str(ROOT / "fixtures" / "seed_old_2a50f2d.yaml"), "--set", "model.hidden_dim=64", "--json", "-"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["overrides"] == ["model.hidden_dim=64"]
    assert report["context_path"] == "vector" and report["parameters"]["hyper_lora"] == 0
    assert report["schedule"]["hyper_lora"] is None and report["schedule"]["loo"] is None
    table = here("inspect", str(ROOT / "fixtures" / "seed_old_2a50f2d.yaml")).stdout
    assert "Parameters per module" in table and "12,244,971" in table


@pytest.mark.parametrize(
    "content, expected",
    [
        ("model:\n  hidden_dim: [\n", "malformed YAML at line"),
        ("model:\n  hidden_dim: 'wide'\n", "model.hidden_dim: expected int, got 'wide'"),
        ("model:\n  hidden_dim: 100\n", "model.hidden_dim: must be divisible by 8"),
        ("training:\n  meta_learning_start_epoch: -3\n", "training.meta_learning_start_epoch: must be >= 0"),
        ("training:\n  loss_mode: softmax\n", "training.loss_mode: expected one of"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path, here, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = here("inspect", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2_without_traceback(tmp_path, here):
    for args in (
        ["inspect", "--bogus"],
        ["inspect", str(tmp_path / "missing.yaml")],
        ["inspect", "--set", "novalue"],
        ["inspect", "--strict", str(ROOT / "fixtures" / "seed_new_main.yaml")],
    ):
        result = here(*args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr, args


def test_a_config_beyond_the_machines_memory_is_refused_before_allocating():
    import subprocess
    import sys

    for command in (
        ["inspect", "--set", "model.hidden_dim=100000"],
        ["probe", "--set", "model.hidden_dim=100000", "--steps", "1"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "collapse_doctor", *command], capture_output=True, text=True, timeout=300
        )
        assert "Traceback" not in result.stderr, command
        if command[0] == "inspect":
            assert result.returncode == 0  # counted on the meta device, nothing allocated
        else:
            assert result.returncode == 2 and "GiB" in result.stderr and "more than this machine's" in result.stderr
