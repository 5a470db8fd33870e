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
    """
    Construct dataclass ``cls`` from a mapping, checking names and scalar types.

    A field whose default is a dataclass (a group of settings) takes a mapping, set over that
    default; errors name its keys dotted (``stage1.steps``).
    """
    kwargs = _arguments(cls, values, where, '')
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f'{where}: {exc}') from exc


def _arguments(cls, values, where, prefix):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f'{where}: unknown key(s) {[prefix + key for key in unknown]}; known: '
                          f'{_known(cls, prefix)}')
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        group, key = fields[name].default, prefix + name
        if not dataclasses.is_dataclass(group):
            kwargs[name] = _coerce(value, hints[name], f'{where}.{key}')
        elif isinstance(value, dict):
            kwargs[name] = dataclasses.replace(
                group, **_arguments(type(group), value, where, key + '.'))
        else:
            raise ConfigError(f'{where}.{key} must be a mapping of {_known(type(group))}, '
                              f'got {value!r}')
    return kwargs


def _known(cls, prefix=''):
    """Return the keys of dataclass ``cls``, those of its groups dotted."""
    return [key for f in dataclasses.fields(cls)
            for key in (_known(type(f.default), f'{prefix}{f.name}.')
                        if dataclasses.is_dataclass(f.default) else [prefix + f.name])]


def flatten(data, prefix=''):
    """Return the leaves of a nested mapping by their dotted keys (``{'stage1.steps': 3}``)."""
    flat = {}
    for key, value in data.items():
        flat.update(flatten(value, f'{prefix}{key}.') if isinstance(value, dict)
                    else {prefix + key: value})
    return flat


def set_dotted(data, values):
    """Return a copy of nested mapping ``data`` with ``values`` set at their dotted keys."""
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    for key, value in values.items():
        group, dot, name = key.partition('.')
        if dot and isinstance(data.setdefault(group, {}), dict):
            data[group][name] = value
        else:
            data[key] = value
    return data


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
    """
    Turn ``KEY=VALUE`` strings (values in YAML) into a dict of config overrides.

    Keys are kept as written: dotted for the avatar config's groups (``stage1.steps``).
    """
    overrides = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep:
            raise ConfigError(f'--set wants KEY=VALUE, got {item!r}')
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides
