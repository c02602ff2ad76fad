"""Loading a config: YAML (bounded, duplicate keys refused), type and bound checks, overrides, the
cross-field rules, and the embedded defaults. Every problem is one line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from collapse_doctor.config.schema import REFERENCE_ONLY_KEYS, SECTIONS, Config, LoadedConfig, TrainingConfig, UnusedKey
from collapse_doctor.errors import ConfigError, read_user_file

# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------
_MISSING = object()


def _is_config_class(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _not_finite(value: Any) -> bool:
    """inf, -inf, nan, as YAML floats or as the strings --set passes."""
    try:
        return isinstance(value, (int, float, str)) and not isinstance(value, bool) and not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as 5e-4 (PyYAML's YAML 1.1 reads them as strings)
    and refuses a mapping that states a key twice (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = key_node.value
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} appears twice, at lines {seen[key] + 1} and {key_node.start_mark.line + 1}",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


MAX_YAML_NODES = 100_000  # a config has hundreds; YAML aliases can expand a 400-byte file exponentially


class YAMLTooLarge(yaml.YAMLError):
    def __init__(self, nodes: int):
        super().__init__(f"aliases expand to more than {MAX_YAML_NODES:,} nodes ({nodes:,}): refused (an alias bomb?)")
        self.problem, self.problem_mark = str(self), None


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document has once every alias is expanded (each node counted once per reference)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once; PyYAML builds it as a cycle, not an expansion
    if isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded_nodes(v, memo) for v in node.value)
    else:
        total = 1
    memo[id(node)] = total
    return total


def load_yaml(text: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes = _expanded_nodes(node, {})
        if nodes > MAX_YAML_NODES:
            raise YAMLTooLarge(nodes)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_value(tp: Any, value: Any) -> tuple[bool, Any]:
    """Whether `value` fits type `tp`; returns (ok, coerced value). Only int -> float is coerced."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, coerced = _check_value(arg, value)
            if ok:
                return True, coerced
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            return math.isfinite(float(value)), float(value)  # inf and nan are no setting
        return False, value
    if tp is str:
        return isinstance(value, str), value
    raise TypeError(f"unsupported config type {tp}")  # an internal schema error, not user input


def _bounds_problem(meta: Any, value: Any) -> str | None:
    if value is None or isinstance(value, (bool, str)):
        return None
    for name, test, word in (
        ("ge", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("le", lambda v, b: v <= b, "<="),
        ("lt", lambda v, b: v < b, "<"),
    ):
        bound = meta.get(name)
        if bound is not None and not test(value, bound):
            return f"must be {word} {bound:g}, got {value!r}"
    return None


class _Walker:
    """Walks raw YAML against a dataclass schema, collecting problems instead of stopping at the first."""

    def __init__(self, source: str, override_keys: frozenset[str] = frozenset()):
        self.source = source
        self.override_keys = override_keys
        self.problems: list[str] = []
        self.unknown: list[str] = []
        self.unsupported: list[UnusedKey] = []
        self.defaulted: list[str] = []

    def problem(self, dotted: str, message: str) -> None:
        where = f"--set {dotted}" if dotted in self.override_keys else f"{self.source}: {dotted}"
        self.problems.append(f"{where}: {message}")

    def build(self, cls: type, raw: Any, prefix: str) -> Any:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.problem(prefix, f"expected a mapping of keys, got {type(raw).__name__} {raw!r}")
            raw = {}
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, value in raw.items():
            dotted = f"{prefix}.{name}"
            if name not in fields:
                self._unknown(dotted, value)
        for name, f in fields.items():
            dotted = f"{prefix}.{name}"
            tp = hints[name]
            if _is_config_class(tp):
                values[name] = self.build(tp, raw.get(name), dotted)
                continue
            if name not in raw:
                self.defaulted.append(dotted)
                continue
            value = raw[name]
            ok, coerced = _check_value(tp, value)
            if not ok and _not_finite(value):
                self.problem(dotted, f"{value!r} is not finite; expected a finite {type_name(tp)}")
                continue
            if not ok:
                self.problem(dotted, f"expected {type_name(tp)}, got {value!r}")
                continue
            bound = _bounds_problem(f.metadata, coerced)
            if bound:
                self.problem(dotted, bound)
                continue
            values[name] = coerced
            self._note_support(dotted, f, coerced)
        return cls(**values)

    def _note_support(self, dotted: str, f: dataclasses.Field, value: Any) -> None:
        meta = f.metadata
        predicate = meta.get("unsupported_if")
        if predicate is not None and predicate(value):
            self.unsupported.append(UnusedKey(dotted, meta["unsupported_why"], True))

    def _unknown(self, dotted: str, value: Any) -> None:
        if dotted in REFERENCE_ONLY_KEYS:
            self.unsupported.append(UnusedKey(dotted, REFERENCE_ONLY_KEYS[dotted], True))
        elif isinstance(value, dict) and value:
            for k, v in value.items():
                self._unknown(f"{dotted}.{k}", v)
        else:
            self.unknown.append(dotted)


def cross_field_problems(config: Config) -> list[tuple[str, str]]:
    """Rules that involve more than one key: (dotted key, message) pairs."""
    m = config.model
    out: list[tuple[str, str]] = []
    d = m.hidden_dim
    if d % 8:
        out.append(("model.hidden_dim", f"must be divisible by 8 (GroupNorm(8) and the 2-D position split), got {d}"))
    if m.use_cross_attention_context and d % m.dsc_num_heads:
        out.append(
            (
                "model.hidden_dim",
                f"{d} is not divisible by model.dsc_num_heads={m.dsc_num_heads} (CrossAttentionInjector heads)",
            )
        )
    if m.use_solver_context and d % m.solver_context_heads:
        out.append(("model.hidden_dim", f"{d} is not divisible by model.solver_context_heads={m.solver_context_heads}"))
    if m.context_path == "vector" and m.spatial_modules:
        out.append(
            (
                "model.context_path",
                f"'vector' cannot feed model.{m.spatial_modules[0]}, which reads spatial support features",
            )
        )
    needs_context = [
        k for k in ("use_cross_attention_context", "use_solver_context", "use_hyperlora", "use_hpm") if getattr(m, k)
    ]
    if needs_context and not m.use_context_encoder:
        out.append(
            (f"model.{needs_context[0]}", "needs model.use_context_encoder: true (it reads the support features)")
        )
    if m.use_hpm:
        n_banks = len(m.hpm_static_banks) + len(m.hpm_dynamic_banks)
        if n_banks == 0:
            out.append(("model.use_hpm", "every hpm_use_*_bank key is false: HPM would have no bank"))
        elif m.hpm_top_k > n_banks:
            out.append(("model.hpm_top_k", f"{m.hpm_top_k} is more than the {n_banks} enabled banks"))
        if m.hpm_levels_per_bank > m.hpm_primitives_per_bank:
            out.append(
                (
                    "model.hpm_levels_per_bank",
                    f"{m.hpm_levels_per_bank} levels need at least as many primitives, got "
                    f"hpm_primitives_per_bank={m.hpm_primitives_per_bank}",
                )
            )
        if m.hpm_use_cross_attention and d % 4:
            out.append(("model.hidden_dim", f"{d} is not divisible by the 4 heads of HPM's aggregator"))
    if m.spatial_downsample > m.max_grid_size:
        out.append(
            (
                "model.spatial_downsample",
                f"target size {m.spatial_downsample} exceeds model.max_grid_size={m.max_grid_size}",
            )
        )
    if m.hyperlora_rank > d:
        out.append(("model.hyperlora_rank", f"rank {m.hyperlora_rank} exceeds hidden_dim {d}"))
    if not config.data.ignore_padding_in_loss and m.num_classes <= 10:
        out.append(
            (
                "data.ignore_padding_in_loss",
                "false makes padding (colour 10) a target class, which needs model.num_classes >= 11, got "
                f"{m.num_classes}",
            )
        )
    if config.data.max_grid_size is not None and config.data.max_grid_size > m.max_grid_size:
        out.append(
            (
                "data.max_grid_size",
                f"{config.data.max_grid_size} does not fit the model canvas model.max_grid_size={m.max_grid_size}",
            )
        )
    return out


def _apply_override(raw: dict, override: str, problems: list[str]) -> None:
    dotted, sep, text = override.partition("=")
    dotted = dotted.strip()
    if not sep or not dotted:
        problems.append(f"--set {override!r}: expected KEY=VALUE, e.g. model.hidden_dim=64")
        return
    try:
        value = load_yaml(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            problems.append(f"--set {override!r}: {part} is not a section")
            return
        node = child
    node[parts[-1]] = value


def parse_config(
    raw: Any, *, source: str = "<default>", overrides: tuple[str, ...] | list[str] = (), strict: bool = False
) -> LoadedConfig:
    """Resolve raw YAML data (a mapping) into a `LoadedConfig`.

    Args:
        raw: the parsed YAML document.
        source: the file name used in messages.
        overrides: KEY=VALUE strings applied on top of the document (values are parsed as YAML).
        strict: refuse unknown keys instead of listing them.

    Raises:
        ConfigError: with one line per problem (type, bound, cross-field rule, strict unknown key).
    """
    problems: list[str] = []
    if raw is None:
        raw = {}
    raw_keys = list(raw) if isinstance(raw, dict) else [raw]
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping with model:/training:/data:/device: sections, got {type(raw).__name__}"
        )
    raw = _deep_copy(raw)
    declared_batch = _declared_batch(raw)
    empty_sections = tuple(str(k) for k, v in raw.items() if v is None or v == {})  # `model:` with nothing under it
    known = {dotted for dotted, _, _ in iter_fields()} | set(REFERENCE_ONLY_KEYS)
    for override in overrides:
        dotted = override.partition("=")[0].strip()
        if override.partition("=")[1] and dotted and dotted not in known:
            import difflib

            sections = {k.rsplit(".", 1)[0] for k in known} | {k.split(".", 1)[0] for k in known}
            if dotted in sections:
                problems.append(
                    f"--set {dotted}: {dotted} is a section; set one of its keys, e.g. --set {dotted}.KEY=VALUE"
                )
                continue

            close = difflib.get_close_matches(dotted, sorted(known), n=1, cutoff=0.75)
            problems.append(
                f"--set {dotted}: unknown key"
                + (
                    f"; did you mean {close[0]}?"
                    if close
                    else " (collapse-doctor inspect lists the keys; docs/config.md)"
                )
            )
            continue
        _apply_override(raw, override, problems)
    walker = _Walker(source, frozenset(o.partition("=")[0].strip() for o in overrides))
    sections = {}
    for name, cls in SECTIONS.items():
        sections[name] = walker.build(cls, raw.get(name), name)
    for name, value in raw.items():
        if name not in SECTIONS:
            walker._unknown(str(name), value)
    problems = walker.problems + problems
    config = Config(**sections)
    if not problems:
        problems += [f"{source}: {k}: {msg}" for k, msg in cross_field_problems(config)]
    if not config.model.use_dsc and config.model.use_msre:
        walker.unsupported.append(
            UnusedKey("model.use_msre", "MSRE needs DSC centroids; with model.use_dsc false it is not built", True)
        )
    if strict and walker.unknown:
        problems += [f"{source}: {k}: unknown key (--strict)" for k in walker.unknown]
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(
        config=config,
        source=source,
        overrides=tuple(overrides),
        unknown_keys=tuple(walker.unknown),
        unsupported_keys=tuple(walker.unsupported),
        defaulted_keys=tuple(walker.defaulted),
        declared_batch=declared_batch,
        document_empty=not raw_keys,
        empty_sections=empty_sections,
    )


def _declared_batch(raw: dict) -> int | None:
    """batch_size x grad_accumulation_steps as the document states them (schema defaults where absent)."""
    training = raw.get("training") if isinstance(raw.get("training"), dict) else {}
    defaults = TrainingConfig()
    batch, accumulation = (
        training.get("batch_size", defaults.batch_size),
        training.get("grad_accumulation_steps", defaults.grad_accumulation_steps),
    )
    if (
        isinstance(batch, bool)
        or isinstance(accumulation, bool)
        or not isinstance(batch, int)
        or not isinstance(accumulation, int)
    ):
        return None
    return batch * accumulation if batch > 0 and accumulation > 0 else None


def _deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_deep_copy(v) for v in raw]
    return raw


def load_config(
    path: str | Path | None = None, overrides: tuple[str, ...] | list[str] = (), *, strict: bool = False
) -> LoadedConfig:
    """Load a YAML config file (or the embedded default, the seed's NEW configuration, when `path` is None).

    Raises:
        ConfigError: the file is missing, is not YAML, or holds bad keys; every line names file and key.
    """
    if path is None:
        path = default_config_path()
    path = Path(path)
    text = read_user_file(path, "config", ConfigError)
    return parse_config_text(text, source=str(path), overrides=overrides, strict=strict)


def parse_config_text(
    text: str, *, source: str, overrides: tuple[str, ...] | list[str] = (), strict: bool = False
) -> LoadedConfig:
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{source}: malformed YAML{where}: {reason}") from None
    return parse_config(raw, source=source, overrides=overrides, strict=strict)


EMBEDDED_CONFIGS = {"new": "seed_new_main.yaml", "old": "seed_old_2a50f2d.yaml"}


def default_config_path(name: str = "new") -> Path:
    """The embedded configs: the seed's NEW (collapsing main) and OLD (2a50f2d) configurations."""
    return Path(__file__).resolve().parents[1] / "configs" / EMBEDDED_CONFIGS[name]


def config_to_dict(config: Any) -> dict:
    """A resolved config as plain nested dicts (for printing, JSON and result files)."""
    return dataclasses.asdict(config)


def iter_fields(cls: type = Config, prefix: str = "") -> typing.Iterator[tuple[str, dataclasses.Field, Any]]:
    """Every leaf key of the schema as (dotted key, field, type)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        tp = hints[f.name]
        if _is_config_class(tp):
            yield from iter_fields(tp, dotted + ".")
        else:
            yield dotted, f, tp
