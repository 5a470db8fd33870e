"""
Configs are dataclasses; this fills them from YAML and rejects what does not fit.

The node parameters file (``config/head_capture.yaml``) is a ROS 2 parameters file, so the
same file configures the launched nodes and the offline CLI: a section is looked up as
``<node>: ros__parameters:`` or, in plain YAML files, as a top-level ``<node>:`` mapping.
"""

import dataclasses
from pathlib import Path
import typing

import yaml

DEFAULT_PARAMS_FILE = 'head_capture.yaml'


class ConfigError(ValueError):
    """A config file or value that cannot be used, naming the file and the key."""


def load_yaml(path):
    """Read a YAML mapping, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'config file not found: {path}')
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path} is not valid YAML: {exc}') from exc
    if not isinstance(data, dict):
        raise ConfigError(f'{path} must hold a mapping at the top level')
    return data


def node_section(path, node):
    """Return the parameters of ``node`` from a ROS 2 parameters file or plain YAML."""
    return parameters_section(load_yaml(path), node, path)


def parameters_section(data, key, path):
    """Return section ``key`` of a loaded parameters file, with or without ros__parameters."""
    section = data.get(key, {})
    if isinstance(section, dict) and 'ros__parameters' in section:
        section = section['ros__parameters']
    if not isinstance(section, dict):
        raise ConfigError(f'{path}: section {key!r} must be a mapping')
    return section


def build(cls, values, where='config'):
    """Construct dataclass ``cls`` from a mapping, checking names and scalar types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f'{where}: unknown key(s) {unknown}; known: {sorted(fields)}')
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(value, hints[name], f'{where}.{name}')
              for name, value in values.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f'{where}: {exc}') from exc


def _coerce(value, kind, where):
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind in (int, str, bool) and type(value) is kind:
        return value
    if kind is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if kind not in (int, float, str, bool):
        return value
    raise ConfigError(f'{where} must be {kind.__name__}, got {value!r}')


def parse_overrides(items):
    """Turn ``KEY=VALUE`` strings (values in YAML) into a dict of config overrides."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep:
            raise ConfigError(f'--set wants KEY=VALUE, got {item!r}')
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides
