"""
Configs are dataclasses; this fills them from YAML and rejects what does not fit.

The node parameters file (``config/head_capture.yaml``) is a ROS 2 parameters file, so the
same file configures the launched nodes and the offline CLI: a section is looked up as
``<node>: ros__parameters:`` or, in plain YAML files, as a top-level ``<node>:`` mapping.
"""

import dataclasses
from pathlib import Path
import typing

from head_capture.resources import share_path
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


def load_node_config(cls, node, path=None, overrides=None):
    """
    Load ``cls`` for ``node`` from ``path`` (the shipped defaults when None).

    The node's own settings (topics, files, rates: ``node_settings``) share the section and
    are left to the node; any other key that ``cls`` does not know is refused. The file is read
    as rcl reads it for the graph (``/**`` first, then the node's section), so ``--params``
    means the same offline as live.
    """
    from head_capture.graph import file_parameters
    from head_capture.node_settings import NODE_SETTINGS

    path = Path(path) if path is not None else share_path('config', DEFAULT_PARAMS_FILE)
    if node in NODE_SETTINGS:
        node_keys = {f.name for f in dataclasses.fields(NODE_SETTINGS[node][0])}
        section = file_parameters(path, [node])[node]
    else:
        node_keys, section = set(), node_section(path, node)
    values = {k: v for k, v in section.items() if k not in node_keys}
    values.update(overrides or {})
    return build(cls, values, f'{path}:{node}')


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
