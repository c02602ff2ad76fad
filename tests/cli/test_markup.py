"""Text a user controls is printed as text, never read as markup (issue 24, item 1): commit subjects,
YAML keys and values, paths, --cmd output. The consoles parse no markup at all (cli/app.py), so a `[/x]`
that once raised MarkupError, or a `[skip ci]` that vanished, comes out as typed, through every command's
rendering. In-process through cli.main, as the installed entry point runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fixtures"))
from git_history import build  # noqa: E402
from inprocess import run_cli as run_inprocess  # noqa: E402

SUBJECT = "load class weights from [/data/weights.pt] [skip ci] [bold]x[/bold]"
CONFIG = "runs/[exp1]/config.yaml"


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code, out, err = run_inprocess(args, capsys)
    assert "Traceback" not in err and "MarkupError" not in err, err
    return code, out, err


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    old = (ROOT / "fixtures" / "seed_old_2a50f2d.yaml").read_text()
    path = tmp_path_factory.mktemp("markup") / "[repo]"
    build(
        path,
        [
            ("[bold]start[/bold]", {CONFIG: old}),
            (SUBJECT, {CONFIG: old.replace("model:\n", "model:\n  '[/x]': 1\n", 1), "bad.txt": "bad\n"}),
        ],
    )
    return path


def test_inspect_prints_keys_and_paths_with_brackets_as_typed(repo, capsys):
    code, out, _ = run_cli(["inspect", str(repo / CONFIG)], capsys)
    assert code == 0 and CONFIG in out.replace("\n", "")  # the rule wraps; the path is whole


def test_diff_prints_a_bracketed_key_as_typed(repo, capsys):
    code, out, _ = run_cli(["diff", "HEAD~1", "HEAD", "--config", CONFIG, "--repo", str(repo)], capsys)
    assert code == 0 and "model.[/x]" in out


def test_bisect_cmd_prints_subjects_and_command_output_as_typed(repo, capsys, tmp_path):
    command = 'if [ -f bad.txt ]; then echo "[/oops] [red]"; exit 1; fi'
    args = ["bisect", "--from", "HEAD~1", "--repo", str(repo), "--config", CONFIG, "--cmd", command]
    code, out, _ = run_cli([*args, "--json", str(tmp_path / "b.json")], capsys)
    assert code == 0 and SUBJECT in out and "[bold]start[/bold]" in out  # the good endpoint's subject, as typed
    assert json.loads((tmp_path / "b.json").read_text())["judgements"][-1]["output_tail"].startswith("[/oops] [red]")
    code, out, _ = run_cli([*args, "--scan"], capsys)
    assert code == 0 and SUBJECT in out


def test_scan_prints_a_bracketed_path_as_typed(tmp_path, capsys):
    log = tmp_path / "logs" / "[run1]" / "m.jsonl"
    log.parent.mkdir(parents=True)
    rows = [{"step": i, "fg_acc": 0.3, "bg_acc": 0.9, "pred_bg_share": 0.6, "target_bg_share": 0.6} for i in range(40)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = run_cli(["scan", str(log)], capsys)
    assert code == 0 and "[run1]" in out


def test_a_probe_of_a_config_under_a_bracketed_path_names_it_as_typed(repo, capsys, tmp_path):
    code, out, _ = run_cli(["probe", str(repo / CONFIG), "--steps", "2", "--out", str(tmp_path / "[metrics]")], capsys)
    assert code in (0, 1, 3) and "[exp1]" in out and "[metrics]" in out
