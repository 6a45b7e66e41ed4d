"""Where config values come from: TOML tables, `MMRAG_*` variables and dotted overrides, typed and checked.

Generic over the config's section dataclasses (`mmrag.config` passes them in), so this module needs
nothing from the config itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Literal, get_args, get_type_hints

from mmrag.types import MMRAGError


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if "." in key:
            section, name = key.split(".", 1)
            out.setdefault(section, {})[name] = value
        else:
            out[key] = value
    return out


ENV_ALIASES = {"MMRAG_QDRANT_URL": ("store", "url"), "MMRAG_QDRANT_API_KEY": ("store", "api_key")}
"""Environment variables that set a section field under a name of their own."""


def env_name(section: str, name: str) -> str:
    """The variable that sets `[section] name`: `MMRAG_INGEST_CLIP_SECONDS`."""
    return f"MMRAG_{section.upper()}_{name.upper()}"


def from_env(env: dict[str, str], sections: Mapping[str, type]) -> dict[str, Any]:
    """`MMRAG_INDEX`, `MMRAG_STORE_URL`, `MMRAG_QDRANT_URL`, `MMRAG_INGEST_CLIP_SECONDS`, ..."""
    out: dict[str, Any] = {}
    if "MMRAG_INDEX" in env:
        out["index"] = env["MMRAG_INDEX"]
    for var, (section, name) in ENV_ALIASES.items():
        if var in env:
            out.setdefault(section, {})[name] = env[var]
    for section, klass in sections.items():
        for f in fields(klass):
            var = env_name(section, f.name)
            if var in env:
                out.setdefault(section, {})[f.name] = env[var]
    return out


def coerce(value: Any, annotation: Any, name: str, source: str) -> Any:
    """Turn strings from the environment into the field's type; check types from files."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    base = args[0] if args and str(getattr(annotation, "__origin__", "")) != "typing.Literal" else annotation
    if (
        isinstance(value, str)
        and value.lower() in ("none", "null", "")
        and type(None) in get_args(annotation)
    ):
        return None
    try:
        if base is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if base is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if base is float:
            return float(value)
        if getattr(base, "__origin__", None) is Literal or str(type(base)).endswith("_LiteralGenericAlias'>"):
            if value not in get_args(base):
                raise ValueError(f"{value!r} not in {get_args(base)}")
            return value
        return value if value is None else str(value)
    except (TypeError, ValueError) as e:
        raise MMRAGError(f"{source}: bad value for {name}: {value!r} ({e})") from e


def apply(cfg: Any, data: dict[str, Any], source: str, sections: Mapping[str, type]) -> None:
    """Set `cfg`'s fields from `data` (`{"index": ..., "<section>": {name: value}}`), typed and checked."""
    for key, value in data.items():
        if key == "profile":
            continue
        if key == "index":
            cfg.index = str(value)
            continue
        if key not in sections:
            raise MMRAGError(f"{source}: unknown config key {key!r}")
        if not isinstance(value, dict):
            raise MMRAGError(f"{source}: [{key}] must be a table")
        section = getattr(cfg, key)
        hints = get_type_hints(type(section))
        for name, v in value.items():
            if name not in hints:
                raise MMRAGError(f"{source}: unknown config key {key}.{name}")
            setattr(section, name, coerce(v, hints[name], f"{key}.{name}", source))
