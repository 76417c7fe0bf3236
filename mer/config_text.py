"""The config's text in and out: YAML files with `extends:` chains, the names of the configs shipped in `mer/conf`,
`key=value` overrides (parsed, and written by the one writer `as_override`) and one-line OmegaConf errors.

`mer.config` merges these into the typed `Config`; this module knows nothing of its fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mer.errors import ConfigError

CONF_DIR = Path(__file__).parent / "conf"

# Mapping-valued keys that a later layer replaces whole instead of merging key by key.
REPLACE_WHOLE = ("train.pretrain.unfreeze", "train.finetune.unfreeze")


def _merge(base: DictConfig, layer: DictConfig) -> DictConfig:
    """OmegaConf merge, except that REPLACE_WHOLE mappings (schedules) in `layer` replace the base's."""
    base = base.copy()
    for key in REPLACE_WHOLE:
        if OmegaConf.select(layer, key, default=None) is not None:
            OmegaConf.update(base, key, {}, merge=False)
    return OmegaConf.merge(base, layer)


def error_line(exc: OmegaConfBaseException) -> str:
    """First line of an OmegaConf error, which already names the full key."""
    msg = str(exc).strip().splitlines()[0]
    key = getattr(exc, "full_key", None)
    return f"{key}: {msg}" if key and key not in msg else msg


def resolve_config_path(name: str | Path) -> Path:
    """A path to a YAML file, or the name of one shipped in `mer/conf` (`demo`, `paper`, `ablation/resnet18`)."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (CONF_DIR / f"{name}.yaml", CONF_DIR / str(name)):
        if candidate.is_file():
            return candidate
    shipped = sorted(str(p.relative_to(CONF_DIR).with_suffix("")) for p in CONF_DIR.rglob("*.yaml"))
    raise ConfigError(f"config file not found: {name} (give a YAML path or one of: {', '.join(shipped)})")


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """Read a YAML file, first merging the file named by its `extends:` key (relative to it)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular 'extends' chain")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    parent = data.pop("extends", None)
    base = OmegaConf.create()
    if parent:
        parent_path = (path.parent / parent) if not Path(parent).is_absolute() else Path(parent)
        if not parent_path.is_file():
            parent_path = resolve_config_path(parent)
        base = _read_yaml(parent_path, (*seen, path))
    return _merge(base, OmegaConf.create(data))


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form key=value (e.g. train.finetune.lr=0.003)")
    key, value = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{item}' has an empty key")
    return key, yaml.safe_load(value) if value.strip() else None


def format_value(value: Any) -> str:
    """`value` as the YAML text that `load_config` reads back as exactly `value`: true/false/null, floats always
    with a dot (1.0e-05, not 1e-05), a string bare when YAML keeps it that string (else JSON-quoted: `2024`, `on`,
    `a: b`, paths with spaces), lists and mappings in YAML flow style ({0: head})."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return text
    if isinstance(value, str):
        try:
            plain = yaml.safe_load(value) == value and value.strip() == value
        except yaml.YAMLError:
            plain = False
        return value if plain else json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple, dict)):
        flow = list(value) if isinstance(value, tuple) else value
        return yaml.safe_dump(flow, default_flow_style=True, width=10**6).strip()
    return str(value)


def as_override(key: str, value: Any) -> str:
    """`key=value` that `load_config` reads back as exactly `value`: the one writer of config overrides (command-line
    flags, sweep trials, sweep files' override mappings, method runs)."""
    return f"{key}={format_value(value)}"


def _suggest(merged: DictConfig, key: str) -> str:
    parent, _, _ = key.rpartition(".")
    node = OmegaConf.select(merged, parent) if parent else merged
    if isinstance(node, DictConfig):
        return f" (keys under '{parent or '<top>'}': {', '.join(str(k) for k in node)})"
    return ""
