"""Reading a user's repository without touching it: revisions, first-parent history and files at a
commit come straight from git objects (GitPython). Nothing here checks out, stages, stashes or moves a
ref; it works on a clone whose working tree holds only part of the files.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from collapse_doctor.errors import GitError


@dataclass(frozen=True)
class CommitInfo:
    hexsha: str
    short: str
    date: str  # ISO 8601, UTC
    author: str
    subject: str

    def to_json(self) -> dict:
        return vars(self)


def open_repo(path: str | Path = "."):
    import git

    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(f"{path}: not a git repository (use --repo PATH)") from None


def resolve(repo, rev: str):
    """The commit a revision names (hash, branch, tag, HEAD~2 ...)."""
    import git

    try:
        return repo.commit(rev)
    except (git.BadName, git.BadObject, ValueError, git.GitCommandError):
        hint = f"; {SHALLOW_HINT}" if is_shallow(repo) else ""
        raise GitError(f"{rev}: not a revision of {repo.working_tree_dir or repo.git_dir}{hint}") from None


SHALLOW_HINT = "this clone is shallow (older commits are missing): `git fetch --unshallow` deepens it"


def is_shallow(repo) -> bool:
    """A shallow clone records its cut-off commits in .git/shallow."""
    return Path(repo.git_dir, "shallow").is_file()


def history_notes(repo, bad, config_path: str | None) -> list[str]:
    """What the user should know before trusting an answer about this history, read without writing
    anything (no `git status`, which may rewrite the index): a shallow clone, and uncommitted edits to
    the config when the bad revision is the checked-out commit (bisect reads committed files only)."""
    notes = [SHALLOW_HINT] if is_shallow(repo) else []
    if config_path is None or repo.working_tree_dir is None or repo.head.is_valid() is False:
        return notes
    if repo.head.commit.hexsha != bad.hexsha:
        return notes
    on_disk = Path(repo.working_tree_dir, config_path)
    if not on_disk.is_file():
        return notes  # not checked out (a --no-checkout clone in CI), or deleted: nothing on disk to test
    committed = read_file(bad, config_path)
    text = on_disk.read_text(encoding="utf-8", errors="replace")
    if committed is None or text.replace("\r\n", "\n") != committed.replace("\r\n", "\n"):
        state = "is not committed" if committed is None else "has uncommitted edits"
        notes.append(
            f"{config_path} {state}: bisect reads each commit's committed file, so the edits are not tested; "
            f"commit them, or probe the file itself (collapse-doctor probe {config_path})"
        )
    return notes


def info(commit) -> CommitInfo:
    when = datetime.fromtimestamp(commit.committed_date, tz=timezone.utc).isoformat()
    return CommitInfo(
        commit.hexsha, commit.hexsha[:7], when, f"{commit.author.name} <{commit.author.email}>", commit.summary
    )


def first_parent_range(repo, good, bad) -> list:
    """Commits after `good` up to and including `bad`, oldest first, along first parents."""
    if good.hexsha == bad.hexsha:
        raise GitError(f"{good.hexsha[:7]}: the good and bad revisions are the same commit")
    if not repo.is_ancestor(good, bad):
        raise GitError(f"{good.hexsha[:7]} is not an ancestor of {bad.hexsha[:7]}: --from must be older than --to")
    hashes = repo.git.rev_list("--first-parent", "--reverse", f"{good.hexsha}..{bad.hexsha}").split()
    return [repo.commit(h) for h in hashes]


def read_file(commit, path: str) -> str | None:
    """The file's text at this commit, or None when it does not exist there."""
    try:
        blob = commit.tree / path
    except KeyError:
        return None
    if blob.type != "blob":
        return None
    return blob.data_stream.read().decode("utf-8", errors="replace")


@dataclass(frozen=True)
class RevisionConfig:
    """A config file as committed at one revision."""

    commit: object  # git.Commit
    path: str  # inside the repository
    text: str

    @property
    def label(self) -> str:
        """How messages and tables name it: abc1234:configs/rlan.yaml."""
        return f"{self.commit.hexsha[:7]}:{self.path}"


def config_at(repo, rev: str, path: str | None) -> RevisionConfig:
    """The config at a revision: the path given, else [tool.collapse-doctor] config as committed there;
    one line naming the revision and path when the file is not in it."""
    commit = resolve(repo, rev)
    path = choose_config_path(repo, commit, path)
    text = read_file(commit, path)
    if text is None:
        raise GitError(f"{rev} ({commit.hexsha[:7]}): no file {path}")
    return RevisionConfig(commit, path, text)


def yaml_files(commit) -> list[str]:
    return sorted(
        item.path for item in commit.tree.traverse() if item.type == "blob" and item.path.endswith((".yaml", ".yml"))
    )


def config_path_from_pyproject(repo, commit) -> str | None:
    """`[tool.collapse-doctor] config = "..."` from pyproject.toml as committed at `commit`."""
    text = read_file(commit, "pyproject.toml")
    if text is None:
        return None
    try:
        table = tomllib.loads(text).get("tool", {}).get("collapse-doctor", {})
    except tomllib.TOMLDecodeError:
        return None
    value = table.get("config")
    return value if isinstance(value, str) else None


def choose_config_path(repo, commit, given: str | None) -> str:
    path = given or config_path_from_pyproject(repo, commit)
    if path is None:
        candidates = yaml_files(commit)
        listed = ", ".join(candidates[:12]) + (" ..." if len(candidates) > 12 else "") if candidates else "none"
        raise GitError(
            "no config path: pass --config PATH or set [tool.collapse-doctor] config in pyproject.toml; YAML files "
            f"at {commit.hexsha[:7]}: {listed}"
        )
    return repo_relative(repo, path)


def repo_relative(repo, path: str) -> str:
    """A config path as git objects name it: relative to the repository root, '/'-separated, without
    './' (a path given relative to the current directory, or absolute, inside the working tree)."""
    import os
    from pathlib import Path, PurePosixPath

    root = repo.working_tree_dir
    candidate = Path(path)
    if root is not None and (candidate.is_absolute() or path.startswith(("./", "../"))):
        full = candidate if candidate.is_absolute() else Path(os.getcwd()) / candidate
        try:
            return Path(os.path.normpath(full)).relative_to(Path(os.path.realpath(root))).as_posix()
        except ValueError:
            try:
                return Path(os.path.normpath(full)).relative_to(Path(root)).as_posix()
            except ValueError:
                raise GitError(f"--config {path}: not inside the repository {root}") from None
    return str(PurePosixPath(os.path.normpath(path))) if path not in ("", ".") else path
