"""Reading configs from a real git history (built by fixtures/git_history.py) without touching the repository."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fixtures"))
import git_history  # noqa: E402


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    dest = tmp_path_factory.mktemp("repo")
    hashes = git_history.build(dest, git_history.seed_history())
    return dest, hashes


def snapshot(repo: Path) -> tuple:
    """Everything a read-only tool must leave as it was: HEAD, refs, index, working files, stash, worktrees."""
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, capture_output=True, text=True).stdout  # noqa: E731
    files = sorted(
        (str(p.relative_to(repo)), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in repo.rglob("*")
        if p.is_file() and ".git" not in p.parts
    )
    index_file = repo / ".git" / "index"  # a --no-checkout clone has none, and must still have none after
    index = hashlib.sha256(index_file.read_bytes()).hexdigest() if index_file.exists() else None
    return (
        run("rev-parse", "HEAD"),
        run("show-ref"),
        run("symbolic-ref", "HEAD"),
        index,
        files,
        run("stash", "list"),
        run("worktree", "list"),
        run("status", "--porcelain"),
    )


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "collapse_doctor", *args], capture_output=True, text=True, cwd=cwd)


def test_diff_reads_both_configs_from_git_objects_and_leaves_the_repo_alone(history):
    repo, hashes = history
    before = snapshot(repo)
    result = cli("diff", hashes[0][:7], "HEAD", "--json", "-", cwd=repo)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    changes = {c["key"]: c for c in data["changes"]}
    assert data["config"] == "configs/rlan_stable.yaml"  # from [tool.collapse-doctor] in pyproject.toml
    assert (
        changes["model.bg_bias"]["old"] == "(absent)"
        and changes["model.bg_bias"]["new"] == -0.5
        and changes["model.bg_bias"]["kind"] == "init value"
    )
    assert changes["model.use_hyperlora"]["kind"] == "module toggle" and changes["training.use_ema"]["new"] is False
    assert set(changes) == {"model.bg_bias", "model.use_hyperlora", "model.hyperlora_init_scale", "training.use_ema"}
    assert snapshot(repo) == before


def test_diff_works_on_a_checkout_that_lacks_the_files(history, tmp_path):
    repo, hashes = history
    clone = tmp_path / "sparse"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(repo), str(clone)], check=True)
    result = cli("diff", hashes[1], hashes[2], "--config", "configs/rlan_stable.yaml", "--json", "-", cwd=clone)
    assert result.returncode == 0, result.stderr
    assert [c["key"] for c in json.loads(result.stdout)["changes"]] == ["model.bg_bias"]
    assert not (clone / "configs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["nosuchrev", "HEAD"], "nosuchrev: not a revision"),
        (["HEAD~5", "HEAD", "--config", "missing.yaml"], "no file missing.yaml"),
    ],
)
def test_bad_revisions_and_paths_are_one_line(history, args, message):
    repo, _ = history
    result = cli("diff", *args, cwd=repo)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_without_a_config_path_the_candidates_are_listed(history):
    from collapse_doctor.errors import GitError
    from collapse_doctor.sweeps.gitrepo import choose_config_path, open_repo, resolve

    repo_path, hashes = history
    repo = open_repo(repo_path)
    with pytest.raises(GitError) as info:
        choose_config_path(repo, resolve(repo, hashes[0]), None)  # before pyproject.toml existed
    assert "configs/rlan_stable.yaml" in str(info.value)


def test_not_a_repository(tmp_path):
    result = cli("diff", "HEAD~1", "HEAD", "--repo", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "not a git repository" in result.stderr


def test_config_paths_given_relative_to_the_cwd_or_absolute_are_normalised(tmp_path, monkeypatch):
    import subprocess as sp

    from collapse_doctor.sweeps.gitrepo import open_repo, repo_relative

    sp.run(["git", "init", "-q", str(tmp_path)], check=True)
    repo = open_repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert repo_relative(repo, "./configs/x.yaml") == "configs/x.yaml"
    assert repo_relative(repo, str(tmp_path / "configs" / "x.yaml")) == "configs/x.yaml"
    assert repo_relative(repo, "configs/x.yaml") == "configs/x.yaml"
    with pytest.raises(Exception, match="not inside the repository"):
        repo_relative(repo, "/etc/x.yaml")


def test_bisect_names_a_shallow_clone_and_uncommitted_config_edits_without_writing(history, tmp_path):
    """Issue 24, item 3: bisect tests committed files only, and a shallow clone lacks the older commits;
    both are said before any probe, and saying them writes nothing (no `git status`)."""
    from collapse_doctor.errors import GitError
    from collapse_doctor.sweeps.gitrepo import SHALLOW_HINT, history_notes, open_repo, resolve

    repo_dir, hashes = history
    path = "configs/rlan_stable.yaml"
    repo = open_repo(repo_dir)
    assert history_notes(repo, repo.head.commit, path) == []
    config = repo_dir / path
    committed = config.read_text()
    before = snapshot(repo_dir)
    try:
        config.write_text(committed + "# tuning in progress\n")
        notes = history_notes(open_repo(repo_dir), open_repo(repo_dir).head.commit, path)
        assert len(notes) == 1 and f"{path} has uncommitted edits" in notes[0]
        assert history_notes(repo, repo.commit(hashes[-2]), path) == []  # --to an older commit: edits irrelevant
    finally:
        config.write_text(committed)
    assert snapshot(repo_dir) == before

    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{repo_dir}", str(shallow)], check=True)
    clone = open_repo(shallow)
    assert history_notes(clone, clone.head.commit, path) == [SHALLOW_HINT]
    with pytest.raises(GitError, match="git fetch --unshallow"):
        resolve(clone, hashes[0])
