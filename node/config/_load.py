"""Loading the config: defaults < config.yaml < SHADOWVAULT_* environment < flags.

Environment: every key is ``SHADOWVAULT_`` + its path in upper case with ``__`` between
the parts: ``SHADOWVAULT_API__LISTEN``, ``SHADOWVAULT_LOGGING__LEVEL``, and list items by
index, ``SHADOWVAULT_BACKUPS__0__CRON``. A list value is comma-separated
(``/ip4/0.0.0.0/tcp/4001,/ip6/::/tcp/4001``) or a YAML flow list; a section or a list of
sections is YAML or JSON (``SHADOWVAULT_PEERS='[{"id": "12D3KooW..."}]'``). Other
variables without ``__`` (``SHADOWVAULT_HOME``, ``SHADOWVAULT_PASSWORD``, ...) set up the
process, not the config, and are ignored here,
except that one spelled like a config key with a single ``_`` is an error (it would
otherwise be silently ignored).

Flags: a mapping of dotted key paths (``"p2p.listen"``, ``"peers.0.name"``) to values, as
the CLI parsed them.

Every problem is reported, not only the first, each as ``<source>: <key path>: expected
..., found ...``, where the source is the file's name, the environment variable or
``command line``. Unknown keys are errors with a did-you-mean. An empty key in the file
(``backups:`` with nothing under it) keeps its default.
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ._errors import ConfigError
from ._model import NodeConfig

ENV_PREFIX = "SHADOWVAULT_"
ENV_SEPARATOR = "__"
DEFAULT_SOURCE = "default"
FLAG_SOURCE = "command line"

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedConfig:
    """The effective config and where each value came from.

    ``sources`` maps each dotted key path that was set (``"p2p.listen"``, ``"peers.0"``)
    to its source: the file's label, ``SHADOWVAULT_...`` or ``command line``; anything
    not in it is a default (see ``source_of``).
    """

    config: NodeConfig
    sources: Mapping[KeyPath, str]

    def source_of(self, path: KeyPath) -> str:
        """Where the value at ``path`` came from: the longest set prefix, else default."""
        for end in range(len(path), 0, -1):
            found = self.sources.get(path[:end])
            if found is not None:
                return found
        return DEFAULT_SOURCE

    def flat(self, *, masked: bool = True) -> list[tuple[str, Any, str]]:
        """Every leaf as ``(dotted path, value, source)``; secrets masked unless asked."""
        data = self.config.model_dump(mode="json")
        if not masked:
            token = self.config.metrics.token
            data["metrics"]["token"] = None if token is None else token.get_secret_value()
        return [
            (format_path(path), value, self.source_of(path)) for path, value in _leaves(data, ())
        ]


def format_path(path: KeyPath) -> str:
    """``("p2p", "listen", 1)`` -> ``p2p.listen[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def env_name(path: KeyPath) -> str:
    """The environment variable that sets ``path``: ``SHADOWVAULT_API__LISTEN``."""
    return ENV_PREFIX + ENV_SEPARATOR.join(str(part).upper() for part in path)


def load_config(
    path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    required: bool = False,
    label: str | None = None,
) -> LoadedConfig:
    """Load and validate the config from ``path``, the environment and flags.

    Args:
        path: the YAML file (a node home's ``config.yaml``); None or a missing file (unless
            ``required``) means defaults only.
        env: the environment (``os.environ``); None reads no environment.
        flags: dotted key path -> value, from the command line; they win over everything.
        required: a missing file is an error (``config validate --file F``).
        label: how messages name the file; default: its file name.

    Raises:
        ConfigError: every problem found, each message naming source, key, expected, found.
    """
    text: str | None = None
    label = label or (path.name if path is not None else "config.yaml")
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if required:
                raise ConfigError([f"{path}: no such file"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: cannot read it: {exc}"]) from None
    return load_config_text(text, label=label, env=env, flags=flags)


def load_config_text(
    text: str | None,
    *,
    label: str = "config.yaml",
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Like ``load_config``, from the file's text (None: no file).

    Raises:
        ConfigError
    """
    messages: list[str] = []
    file_data = _parse_yaml(text, label) if text is not None else {}
    _drop_nulls(file_data)
    token = file_data.get("metrics", {})
    if isinstance(token, dict) and "token" in token:
        messages.append(
            f"{label}: metrics.token: secrets don't belong in a config file; set "
            f"{env_name(('metrics', 'token'))} (for example from a Docker secret) instead"
        )
        del token["token"]

    data = _merge(NodeConfig().model_dump(mode="python", round_trip=True), file_data)
    origins: dict[KeyPath, str] = {}  # leaves and lists: what `config show` reports
    sections: dict[KeyPath, str] = {}  # also sections, to name the source of an error
    _record(origins, (), file_data, label, sections)

    overrides: list[tuple[KeyPath, Any, str]] = []
    if env is not None:
        overrides += _env_overrides(env, messages)
    for dotted, value in (flags or {}).items():
        parts = tuple(int(p) if p.isdigit() else p for p in dotted.split("."))
        overrides.append((parts, value, FLAG_SOURCE))
    for key_path, value, source in overrides:
        problem = _set_path(data, key_path, value)
        if problem:
            messages.append(f"{source}: {format_path(key_path)}: {problem}")
            continue
        for table in (origins, sections):
            for known in [k for k in table if k[: len(key_path)] == key_path]:
                del table[known]
        _record(origins, key_path, value, source, sections)
        if not isinstance(value, dict):
            origins[key_path] = source

    try:
        config = NodeConfig.model_validate(data)
    except ValidationError as exc:
        spans = {**sections, **origins}
        messages += [_message(err, spans) for err in exc.errors()]
        raise ConfigError(messages) from None
    if messages:
        raise ConfigError(messages)
    return LoadedConfig(config, origins)


# -- YAML ---------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a name, not a list or mapping", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _parse_yaml(text: str, label: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{label}: {where}{exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{label}: not valid YAML: {exc}"]) from None
    if data is None:
        return {}
    if _depth(data) > _MAX_DEPTH:
        raise ConfigError([f"{label}: nested deeper than {_MAX_DEPTH} levels (a recursive alias?)"])
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{label}: expected a mapping of sections (api:, p2p:, ...), found {_found(data)}"]
        )
    return data


_MAX_DEPTH = 16


def _depth(value: Any, level: int = 0) -> int:
    """How deep ``value`` nests, stopping just past the limit (aliases can make cycles)."""
    if level > _MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _drop_nulls(data: dict[str, Any]) -> None:
    for key in list(data):
        if data[key] is None:
            del data[key]
        elif isinstance(data[key], dict):
            _drop_nulls(data[key])


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _record(
    origins: dict[KeyPath, str],
    prefix: KeyPath,
    value: Any,
    source: str,
    sections: dict[KeyPath, str] | None = None,
) -> None:
    """Note ``source`` for every leaf under ``prefix`` (and, in ``sections``, each section)."""
    if isinstance(value, dict):
        if sections is not None and prefix:
            sections[prefix] = source
        for key, inner in value.items():
            _record(origins, (*prefix, key), inner, source, sections)
    else:
        if prefix:
            origins[prefix] = source
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _record(origins, (*prefix, i), item, source, sections)


def _leaves(value: Any, prefix: KeyPath) -> Iterator[tuple[KeyPath, Any]]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _leaves(inner, (*prefix, key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, inner in enumerate(value):
            yield from _leaves(inner, (*prefix, i))
    else:
        yield prefix, value


# -- environment ---------------------------------------------------------------------------


def _env_overrides(env: Mapping[str, str], messages: list[str]) -> list[tuple[KeyPath, Any, str]]:
    sections = list(NodeConfig.model_fields)
    out: list[tuple[KeyPath, Any, str]] = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if ENV_SEPARATOR not in rest and rest.lower() not in sections:
            lowered = rest.lower()
            for section in sections:
                if lowered.startswith(section + "_"):
                    key = lowered[len(section) + 1 :]
                    messages.append(
                        f"{name}: not a config variable; nested keys are separated by "
                        f"'{ENV_SEPARATOR}': did you mean {env_name((section, key))}?"
                    )
                    break
            continue
        key_path = tuple(
            int(part) if part.isdigit() else part.lower() for part in rest.split(ENV_SEPARATOR)
        )
        if any(part == "" for part in key_path):
            messages.append(f"{name}: expected SHADOWVAULT_SECTION__KEY, found an empty part")
            continue
        try:
            value = _env_value(env[name], _annotation_at(key_path))
        except ValueError as exc:
            messages.append(f"{name}: {format_path(key_path)}: {exc}")
            continue
        out.append((key_path, value, name))
    return out


def _env_value(raw: str, annotation: Any) -> Any:
    """Turn one variable's text into what the key at its path takes."""
    target = _unwrap(annotation)
    if _is_model(target) or (_is_list(target) and _is_model(_unwrap(typing.get_args(target)[0]))):
        return _yaml_value(raw, f"expected YAML or JSON, found {_found(raw)}")
    if _is_list(target):
        stripped = raw.strip()
        if stripped.startswith("["):
            return _yaml_value(stripped, f"expected a list like [a, b] or a,b, found {_found(raw)}")
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return raw


def _yaml_value(raw: str, what: str) -> Any:
    try:
        value = yaml.load(raw, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError:
        raise ValueError(what) from None
    if _depth(value) > _MAX_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_DEPTH} levels (a recursive alias?)")
    return value


# -- model introspection -------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list


def _annotation_at(path: KeyPath) -> Any:
    """The type of the key at ``path``, or None when the path names no key."""
    current: Any = NodeConfig
    for part in path:
        current = _unwrap(current)
        if isinstance(part, int):
            if not _is_list(current):
                return None
            current = typing.get_args(current)[0]
        elif _is_model(current) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return None
    return current


def _model_at(path: KeyPath) -> type[BaseModel] | None:
    found = _unwrap(_annotation_at(path))
    return found if _is_model(found) else None


def _set_path(data: dict[str, Any], path: KeyPath, value: Any) -> str | None:
    """Set ``value`` at ``path`` inside ``data``; a problem description, or None."""
    current: Any = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(part, int):
            if not isinstance(current, list):
                return "expected a key name here, found a list index"
            if part > len(current):
                return (
                    f"expected a list index 0..{len(current)} (the list has {len(current)} "
                    f"items), found {part}"
                )
            if part == len(current):
                current.append(value if last else {})
            elif last:
                current[part] = value
            current = current[part]
        else:
            if not isinstance(current, dict):
                return f"expected {format_path(path[:i])} to be a section, found {_found(current)}"
            if last:
                current[part] = value
            else:
                nxt = current.get(part)
                if isinstance(nxt, BaseModel):
                    nxt = nxt.model_dump(mode="python", round_trip=True)
                elif nxt is None:
                    nxt = [] if isinstance(path[i + 1], int) else {}
                elif isinstance(nxt, list):
                    nxt = [
                        v.model_dump(mode="python", round_trip=True)
                        if isinstance(v, BaseModel)
                        else v
                        for v in nxt
                    ]
                current[part] = nxt
                current = nxt
    return None


# -- messages ------------------------------------------------------------------------------

_EXPECTED = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "list_type": "expected a list",
    "model_type": "expected a section (a mapping of keys)",
    "model_attributes_type": "expected a section (a mapping of keys)",
    "dict_type": "expected a mapping",
    "missing": "expected this key (it has no default)",
}


def _found(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _clean_loc(loc: tuple[str | int, ...], keep_last: bool) -> KeyPath:
    """The key path of an error: pydantic adds union and validator tags to ``loc``."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out.append(part)
            continue
        model = _model_at(tuple(out))
        if (model is not None and part in model.model_fields) or (keep_last and i == len(loc) - 1):
            out.append(part)
    return tuple(out)


def _source_for(path: KeyPath, origins: Mapping[KeyPath, str]) -> str:
    """The source to blame for an error at ``path``: the value itself, else the nearest
    enclosing section that was set, else something set inside that section."""
    for end in range(len(path), 0, -1):
        prefix = path[:end]
        if prefix in origins:
            return origins[prefix]
        inside = sorted((k for k in origins if k[:end] == prefix), key=str)
        if inside:
            return origins[inside[0]]
    return DEFAULT_SOURCE


def _message(err: ErrorDetails, origins: Mapping[KeyPath, str]) -> str:
    kind = err["type"]
    path = _clean_loc(err["loc"], keep_last=kind == "extra_forbidden")
    source = _source_for(path, origins)
    where = format_path(path) or "(top level)"
    if kind == "extra_forbidden":
        return f"{source}: {where}: unknown key{_did_you_mean(path, source)}"
    if kind == "invalid_key":
        return f"{source}: {where}: expected a key name, found {_found(err['input'])}"
    if kind == "rule":
        return f"{source}: {where}: {err['msg']}"
    if kind == "expected":
        what = err["msg"]
    elif kind == "literal_error":
        what = f"expected one of {err.get('ctx', {}).get('expected', '')}"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        ctx = err.get("ctx", {})
        bounds = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">"}
        op = bounds.get(kind, "<")
        limit = next(iter(ctx.values()), "")
        what = f"expected a number {op} {limit}"
    elif kind == "too_short":
        what = f"expected at least {err.get('ctx', {}).get('min_length', 1)} item(s)"
    elif kind in _EXPECTED:
        what = _EXPECTED[kind]
    else:
        msg = err["msg"]
        what = "expected " + (msg[0].lower() + msg[1:] if msg else "a valid value")
    if kind == "missing":
        return f"{source}: {where}: {what}"
    return f"{source}: {where}: {what}, found {_found(err['input'])}"


def _did_you_mean(path: KeyPath, source: str) -> str:
    key = path[-1]
    model = _model_at(path[:-1])
    if model is None or not isinstance(key, str):
        return ""
    choices = list(model.model_fields)
    close = difflib.get_close_matches(key.lower(), choices, n=1, cutoff=0.6)
    if not close:
        return f"; valid keys here: {', '.join(choices)}"
    if source.startswith(ENV_PREFIX):
        return f"; did you mean {env_name((*path[:-1], close[0]))}?"
    return f"; did you mean '{close[0]}'?"


def config_keys() -> list[str]:
    """Every key of the model as a dotted path (list items as ``name[]``), for docs/tests."""
    out: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            dotted = f"{prefix}.{name}" if prefix else name
            ann = _unwrap(field.annotation)
            out.append(dotted)
            if _is_model(ann):
                walk(ann, dotted)
            elif _is_list(ann) and _is_model(_unwrap(typing.get_args(ann)[0])):
                walk(_unwrap(typing.get_args(ann)[0]), dotted + "[]")

    walk(NodeConfig, "")
    return out
