"""
The node graph, described once: which nodes, their parameters, what a capture shares.

``launch/full.launch.py`` (a ROS 2 install) and ``head-capture up`` (pip) both build from it,
so the two ways of running cannot drift apart. Parameters come from the ROS parameters file
(``config/head_capture.yaml`` by default), then from the few settings every capture chooses
(session directory, image topic, source, avatar config), then from explicit overrides.
"""

import dataclasses
from dataclasses import dataclass
import importlib
import os
from pathlib import Path

from head_capture.config_files import (build, ConfigError, DEFAULT_PARAMS_FILE, load_yaml,
                                       node_section, parameters_section, parse_overrides)
from head_capture.node_parameters import check_parameters, NODE_SETTINGS
from head_capture.resources import share_path
import yaml


@dataclass(frozen=True)
class NodeSpec:
    """One node: its name (= its parameters section), entry point and shared settings."""

    name: str
    module: str
    cls: str
    # The capture-wide settings this node takes (a subset of CAPTURE_SETTINGS).
    takes: tuple

    @property
    def executable(self):
        """Return the executable name (setup.py console script, launch ``executable``)."""
        return self.name

    def load(self):
        """Return the node class (imports rclpy)."""
        return getattr(importlib.import_module(self.module), self.cls)


NODES = (
    NodeSpec('camera_source', 'head_capture.nodes.camera_source', 'CameraSource',
             ('source', 'image_topic', 'camera_info_topic')),
    NodeSpec('keyframe_selector', 'head_capture.nodes.keyframe_selector', 'KeyframeSelector',
             ('session_dir', 'image_topic', 'compressed')),
    NodeSpec('pose_estimator', 'head_capture.nodes.pose_estimator', 'PoseEstimator',
             ('session_dir', 'image_topic', 'compressed', 'camera_info_topic', 'model_path')),
    NodeSpec('coverage_guide', 'head_capture.nodes.coverage_guide', 'CoverageGuide', ()),
    NodeSpec('avatar_trainer', 'head_capture.nodes.avatar_trainer', 'AvatarTrainerNode',
             ('session_dir', 'config')),
)
# Optional: the live view in Foxglove for users without rviz.
FOXGLOVE = NodeSpec('foxglove_bridge', 'head_capture.nodes.foxglove_bridge', 'FoxgloveBridge',
                    ())
FASTDDS_PROFILE = 'fastdds_images.xml'
FASTDDS_SETTINGS = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                    'FASTDDS_BUILTIN_TRANSPORTS')
CAPTURE_SETTINGS = ('source', 'session_dir', 'image_topic', 'compressed', 'camera_info_topic',
                    'model_path', 'config')


def node_spec(name):
    """Return the spec of node ``name``."""
    for spec in NODES + (FOXGLOVE,):
        if spec.name == name:
            return spec
    raise ValueError(f'no node {name!r}; nodes: {[s.name for s in NODES]}')


def full_name(name, namespace=''):
    """Return a node's fully qualified name under ``namespace`` ('' or '/': the root)."""
    namespace = namespace.strip('/')
    return f'/{namespace}/{name}' if namespace else f'/{name}'


def check_namespace(namespace):
    """Return ``namespace`` as ROS wants it ('' for the root, else '/a/b'); refuse a bad one."""
    namespace = (namespace or '').strip('/')
    if namespace and not all(part and (part[0].isalpha() or part[0] == '_')
                             and all(c.isalnum() or c == '_' for c in part)
                             for part in namespace.split('/')):
        raise ValueError(f'namespace {namespace!r}: ROS names are letters, digits and _ '
                         'separated by /, not starting with a digit')
    return f'/{namespace}' if namespace else ''


def file_parameters(path, names, namespace=''):
    """
    Return {node: parameters} of ``names`` from a ROS 2 parameters file, as rcl applies it.

    A node takes the ``/**`` section (the keys it declares), then its own section under its
    fully qualified name (``/ns/node``, ``ns/node``; ``node`` at the root), which wins. A
    ``/**`` key no node of the package declares is refused, not ignored: it is a typo.
    """
    data = load_yaml(path)
    normal = {}
    for key in data:
        normal.setdefault('/' + str(key).lstrip('/'), key)
    everyone = dict(parameters_section(data, normal['/**'], path)) if '/**' in normal else {}
    known = {name: {f.name for cls in NODE_SETTINGS[name] for f in dataclasses.fields(cls)}
             for name in NODE_SETTINGS}
    unknown = sorted(set(everyone).difference(*known.values()))
    if unknown:
        raise ConfigError(f'{path}: /** sets {unknown}, which no head_capture node declares')
    result = {}
    for name in names:
        fqn = full_name(name, namespace)
        own = parameters_section(data, normal[fqn], path) if fqn in normal else {}
        result[name] = {**{k: v for k, v in everyone.items() if k in known[name]}, **own}
    return result


def load_node_config(cls, node, path=None, overrides=None):
    """
    Load ``cls`` for ``node`` from ``path`` (the shipped defaults when None).

    The node's own settings (topics, files, rates: ``node_parameters``) share the section and
    are left to the node; any other key that ``cls`` does not know is refused. The file is read
    as rcl reads it for the graph (``/**`` first, then the node's section), so ``--params``
    means the same offline as live.
    """
    path = Path(path) if path is not None else share_path('config', DEFAULT_PARAMS_FILE)
    if node in NODE_SETTINGS:
        node_keys = {f.name for f in dataclasses.fields(NODE_SETTINGS[node][0])}
        section = file_parameters(path, [node])[node]
    else:
        node_keys, section = set(), node_section(path, node)
    values = {k: v for k, v in section.items() if k not in node_keys}
    values.update(overrides or {})
    return build(cls, values, f'{path}:{node}')


def node_overrides(items):
    """Return ``NODE.KEY=VALUE`` strings (YAML values) as {node: {key: value}}."""
    overrides = {}
    for key, value in parse_overrides(items).items():
        node, dot, name = key.partition('.')
        if not dot:
            raise ValueError(f'--set wants NODE.KEY=VALUE, got {key!r}')
        overrides.setdefault(node, {})[name] = value
    return overrides


def graph(params_file=None, settings=None, overrides=None, with_source=None, foxglove=False,
          namespace=''):
    """
    Return [(NodeSpec, parameters)] of the capture graph.

    ``settings`` maps CAPTURE_SETTINGS to values (None or missing: the file's); ``overrides``
    maps node name -> {parameter: value}. camera_source is included when a source is given
    (or ``with_source`` says so): without one the images come from a ROS topic.
    ``foxglove`` adds the Foxglove bridge. camera_source waits for the nodes that read the
    camera to subscribe before it plays a file. Every node's parameters are validated here,
    before anything starts: a misspelt or invalid one raises ConfigError naming node and key.
    ``namespace`` picks the file's sections for nodes started under it (``file_parameters``).
    """
    params_file = params_file or share_path('config', DEFAULT_PARAMS_FILE)
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    unknown = set(settings) - set(CAPTURE_SETTINGS)
    if unknown:
        raise ValueError(f'unknown capture settings {sorted(unknown)}; known: '
                         f'{list(CAPTURE_SETTINGS)}')
    overrides = overrides or {}
    for name in overrides:
        node_spec(name)
    if with_source is None:
        with_source = 'source' in settings
    specs = [spec for spec in NODES + ((FOXGLOVE,) if foxglove else ())
             if with_source or spec.name != 'camera_source']
    from_file = file_parameters(params_file, [spec.name for spec in specs],
                                check_namespace(namespace))
    nodes = []
    for spec in specs:
        parameters = dict(from_file[spec.name])
        if spec.name == 'camera_source' and not parameters.get('wait_for_subscribers'):
            # Empty (the shipped file's value) or unset: this graph's readers.
            parameters['wait_for_subscribers'] = ' '.join(camera_readers(specs))
        parameters.update({k: v for k, v in settings.items() if k in spec.takes})
        parameters.update(overrides.get(spec.name, {}))
        check_parameters(spec.name, parameters)
        nodes.append((spec, parameters))
    return nodes


def camera_readers(specs):
    """Return the names of the nodes among ``specs`` that read the camera (images, info)."""
    return [spec.name for spec in specs if spec.name != 'camera_source'
            and {'image_topic', 'camera_info_topic'} & set(spec.takes)]


def not_subscribed(wanted, subscribers, matched):
    """
    Return the nodes of ``wanted`` a source still waits for, in order.

    ``subscribers`` maps each topic the source publishes to the names of the nodes the ROS
    graph shows subscribed to it, ``matched`` to how many subscriptions its publisher has
    matched. A node counts once it subscribes to one of them and that publisher matched at
    least as many subscriptions as wanted nodes subscribe there: only then does a message
    reach it.
    """
    ready = set()
    for topic, names in subscribers.items():
        ours = set(wanted) & set(names)
        if matched.get(topic, 0) >= len(ours):
            ready |= ours
    return [name for name in wanted if name not in ready]


def transport_environment(environ=None):
    """
    Return the environment the node processes need added: Fast DDS with image-sized SHM.

    Its default 512 KB segment sends 2.7 MB images over UDP in fragments, and under load a
    best-effort reader loses frames (the selector saw a third of them); config/
    fastdds_images.xml keeps the default transports with a 64 MB segment, so tools started
    without it still see every topic. A user's own Fast DDS profile or transports stand.
    """
    environ = os.environ if environ is None else environ
    if any(k in environ for k in FASTDDS_SETTINGS):
        return {}
    return {'FASTDDS_DEFAULT_PROFILES_FILE': str(share_path('config', FASTDDS_PROFILE))}


def ros_parameters(parameters):
    """Return parameters as ROS types (lists mixing ints and floats become float lists)."""
    def convert(value):
        if isinstance(value, (list, tuple)):
            floats = any(isinstance(v, float) for v in value)
            return [float(v) if floats else v for v in value]
        return value

    return {name: convert(value) for name, value in parameters.items()}


def write_parameters_file(nodes, path, namespace=''):
    """Write a graph's parameters as a ROS 2 parameters file (``--params-file``); return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(
        {full_name(spec.name, namespace).lstrip('/'):
         {'ros__parameters': ros_parameters(parameters)} for spec, parameters in nodes},
        sort_keys=False))
    return path
