"""The history bisect walks: the config at every first-parent commit (read from git objects only),
and the segments of consecutive commits whose resolved configs are equal (they would run the same
probes). A commit whose config is missing or invalid is untestable, as `git bisect skip`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from collapse_doctor.config.diff import KeyChange, diff_raw, parse_raw
from collapse_doctor.errors import CollapseDoctorError
from collapse_doctor.sweeps.gitrepo import CommitInfo, first_parent_range, info, read_file


@dataclass
class CommitConfig:
    info: CommitInfo
    status: str  # ok / missing / invalid
    problem: str | None = None
    text: str | None = None
    identity: str | None = None  # equal identities run the same probes

    def to_json(self) -> dict:
        return {**self.info.to_json(), "status": self.status, "problem": self.problem, "identity": self.identity}


@dataclass
class Segment:
    """Consecutive commits that would run the same probes."""

    commits: list[CommitConfig]
    index: int

    @property
    def first(self) -> CommitConfig:
        return self.commits[0]

    @property
    def last(self) -> CommitConfig:
        return self.commits[-1]

    @property
    def testable(self) -> bool:
        return self.first.status == "ok"

    @property
    def identity(self) -> str | None:
        return self.first.identity


def segments_of(commits: list[CommitConfig]) -> list[Segment]:
    def group(commit: CommitConfig) -> tuple:  # untestable commits group by their reason
        return commit.status, commit.identity, commit.problem

    segments: list[Segment] = []
    for commit in commits:
        if segments and group(segments[-1].first) == group(commit):
            segments[-1].commits.append(commit)
        else:
            segments.append(Segment([commit], len(segments)))
    return segments


def read_history(
    repo, good, bad, config_path: str | None, identity_of: Callable[[str, str], str] | None
) -> list[CommitConfig]:
    """The config at every first-parent commit from GOOD to BAD, oldest first. With `identity_of`
    (probe mode) each config is resolved: equal identities share probes, and a missing or invalid
    config makes its commit untestable. Without it (--cmd) the user's command judges every commit, so
    each commit is its own identity and the config is read only to show what changed."""
    by_text: dict[str, tuple[str, str | None, str | None]] = {}
    out = []
    for commit in [good, *first_parent_range(repo, good, bad)]:
        meta = info(commit)
        text = read_file(commit, config_path) if config_path is not None else None
        if identity_of is None:
            out.append(CommitConfig(meta, "ok", text=text, identity=commit.hexsha))
        elif text is None:
            out.append(CommitConfig(meta, "missing", f"no file {config_path}"))
        else:
            if text not in by_text:
                try:
                    by_text[text] = ("ok", None, identity_of(text, f"{meta.short}:{config_path}"))
                except CollapseDoctorError as exc:
                    by_text[text] = ("invalid", exc.problems[0], None)
            status, problem, identity = by_text[text]
            out.append(CommitConfig(meta, status, problem, text, identity))
    return out


def key_changes(before: CommitConfig, after: CommitConfig) -> list[KeyChange]:
    if before.text is None or after.text is None:
        return []
    try:
        return diff_raw(parse_raw(before.text, before.info.short), parse_raw(after.text, after.info.short))
    except CollapseDoctorError:
        return []
