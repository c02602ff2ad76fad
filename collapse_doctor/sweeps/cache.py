"""On-disk cache of probe results, keyed by everything that can change them.

The key hashes the resolved config after the preset (which holds seed, steps and thread count in its
`probe:` section), the preset name, the data source and its content, the tool version, the package's
source and the torch version (experiments/identity.py); the key is stored in the entry and checked on
load. A sweep that is interrupted
resumes where it stopped, and a rerun is instant. Entries are written atomically (temporary file, then
rename), so a killed worker never leaves half an entry.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from collapse_doctor.errors import CollapseDoctorError
from collapse_doctor.experiments.identity import default_cache_dir


class ProbeCache:
    def __init__(self, directory: Path | None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CollapseDoctorError(
                f"{self.directory}: cannot create the cache directory: {exc.strerror or exc}"
            ) from None

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The entry, or None when there is none. An entry that is not what put() writes (truncated, edited,
        another version's) is named in a warning, set aside as KEY.json.bad, and its probe runs again."""
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._set_aside(path, f"unreadable: {exc.strerror or exc}")
            return None
        try:
            entry = json.loads(text)
        except json.JSONDecodeError:
            self._set_aside(path, "not valid JSON")
            return None
        problem = entry_problem(entry) or (
            None if entry["key"] == key else f"it holds the probe {entry['key']}, not {key} (copied or renamed)"
        )
        if problem:
            self._set_aside(path, problem)
            return None
        return entry

    def _set_aside(self, path: Path, why: str) -> None:
        import sys

        try:
            os.replace(path, path.with_suffix(".json.bad"))
            where = f"set aside as {path.with_suffix('.json.bad').name}"
        except OSError:
            where = "left in place"
        print(f"warning: cache entry {path}: {why}; {where}, the probe runs again", file=sys.stderr)

    def put(self, key: str, entry: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entry, handle)
        os.replace(tmp, self.path(key))


ENTRY_FIELDS: dict[str, tuple[type, ...]] = {
    "label": (str,),
    "seed": (int,),
    "final": (dict,),
    "reasons": (list,),
    "seconds": (int, float),
    "key": (str,),
    "metrics": (str,),
    "series": (list,),
    "events": (list,),
}


def entry_problem(entry: object) -> str | None:
    """What is wrong with a cache entry's shape, or None."""
    if not isinstance(entry, dict):
        return f"expected a JSON object, got {type(entry).__name__}"
    for name, types in ENTRY_FIELDS.items():
        if name not in entry:
            return f"no field {name!r}"
        if not isinstance(entry[name], types) or isinstance(entry[name], bool):
            return f"field {name!r} is {type(entry[name]).__name__}, expected {' or '.join(t.__name__ for t in types)}"
    if "onset_step" not in entry or not (entry["onset_step"] is None or isinstance(entry["onset_step"], int)):
        return "field 'onset_step' missing or not an integer"
    if not all(isinstance(r, dict) and "step" in r for r in entry["series"]):
        return "a series row is not an object with a step"
    return None
