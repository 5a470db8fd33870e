"""The node graph description, its launch files, every node starting from the shipped config."""

import importlib.util
from pathlib import Path

from head_capture.config_files import ConfigError, DEFAULT_PARAMS_FILE, node_section
from head_capture.node_graph import graph, NODES, transport_environment, write_parameters_file
from head_capture.nodes.up import build_nodes, close_nodes
from head_capture.resources import share_path
from head_capture.video_writer import write_video
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_graph_shares_capture_settings_and_keeps_file_parameters(tmp_path):
    nodes = {spec.name: params for spec, params in graph(settings={
        'session_dir': str(tmp_path), 'image_topic': '/phone/image', 'compressed': True})}
    assert 'camera_source' not in nodes  # no source: images come from a ROS topic
    assert nodes['keyframe_selector']['image_topic'] == '/phone/image'
    assert nodes['pose_estimator']['compressed'] is True
    assert nodes['avatar_trainer']['session_dir'] == str(tmp_path)
    assert 'image_topic' not in nodes['coverage_guide']
    shipped = node_section(share_path('config', DEFAULT_PARAMS_FILE), 'pose_estimator')
    assert nodes['pose_estimator']['solver'] == shipped['solver']
    with_source = [spec.name for spec, _ in graph(settings={'source': 'x.mp4'})]
    assert with_source == [spec.name for spec in NODES]


def test_a_file_source_waits_for_the_graphs_camera_readers():
    from head_capture.node_graph import not_subscribed

    def waits_for(**kwargs):
        nodes = {spec.name: params for spec, params in graph(**kwargs)}
        return nodes['camera_source']['wait_for_subscribers']

    assert waits_for(settings={'source': 'x.mp4'}) == 'keyframe_selector pose_estimator'
    assert waits_for(settings={'source': 'x.mp4'}, overrides={
        'camera_source': {'wait_for_subscribers': ''}}) == ''  # the user's choice stands
    wanted = ['keyframe_selector', 'pose_estimator']
    raw, info = '/camera/image_raw', '/camera/camera_info'

    def missing(subscribers, matched):
        return not_subscribed(wanted, subscribers, matched)

    assert missing({raw: [], info: []}, {raw: 0, info: 0}) == wanted
    # Seen in the ROS graph is not enough: the publisher must have matched it too.
    assert missing({raw: ['keyframe_selector'], info: []}, {raw: 0}) == wanted
    assert missing({raw: ['keyframe_selector', 'pose_estimator'], info: []}, {raw: 1}) == wanted
    assert missing({raw: ['keyframe_selector', 'rviz2'], info: ['pose_estimator']},
                   {raw: 2, info: 1}) == []
    assert missing({raw: ['keyframe_selector'], info: ['rviz2']},
                   {raw: 1, info: 1}) == ['pose_estimator']


def test_graph_refuses_unknown_settings_and_nodes():
    with pytest.raises(ValueError, match='unknown capture settings'):
        graph(settings={'sesion_dir': 'x'})
    with pytest.raises(ValueError, match='no node'):
        graph(overrides={'pose_estimater': {}})


def test_every_node_starts_from_the_shipped_parameters(tmp_path, ros_context):
    video = tmp_path / 'tiny.mp4'
    write_video(video, (np.full((48, 64, 3), 90 + k, np.uint8) for k in range(3)), 10)
    nodes = graph(settings={'source': str(video), 'session_dir': str(tmp_path / 'session')},
                  overrides={'camera_source': {'speed': 0.0}})
    built = build_nodes(nodes, context=ros_context)
    try:
        assert [n.get_name() for n in built] == [spec.name for spec in NODES]
        for node, (_, parameters) in zip(built, nodes):
            for name, value in parameters.items():
                got = node.get_parameter(name).value
                assert (list(got) if isinstance(got, (list, tuple)) or hasattr(got, 'tolist')
                        else got) == value, (node.get_name(), name)
    finally:
        close_nodes(built)


def test_a_misspelt_or_invalid_parameter_stops_the_graph_with_its_name(tmp_path):
    base = {'session_dir': str(tmp_path)}
    with pytest.raises(ConfigError,
                       match=r"coverage_guide: unknown parameter\(s\) \['azimuth_bin'\]"):
        graph(settings=base, overrides={'coverage_guide': {'azimuth_bin': 8}})
    with pytest.raises(ConfigError, match='keyframe_selector.*sharpness_ratio'):
        graph(settings=base, overrides={'keyframe_selector': {'sharpness_ratio': 3.0}})
    with pytest.raises(ConfigError, match=r'pose_estimator.*field of view .* got 0\.0'):
        graph(settings=base, overrides={'pose_estimator': {'fov_deg': 0.0}})
    # The avatar's config is checked before the capture, not when training starts after it.
    with pytest.raises(ConfigError, match=r"avatar_trainer.*unknown key\(s\) \['stage1_step'\]"):
        graph(settings=base, overrides={'avatar_trainer': {'overrides': 'stage1_step=5'}})
    with pytest.raises(ConfigError, match="avatar_trainer.*unknown avatar config 'nope'"):
        graph(settings=base, overrides={'avatar_trainer': {'config': 'nope'}})


def test_the_parameters_file_is_what_ros_reads(tmp_path, ros_context):
    from rclpy.node import Node

    nodes = graph(settings={'session_dir': str(tmp_path)},
                  overrides={'coverage_guide': {'elevation_edges_deg': [-30, 0, 25.5, 55]}})
    path = write_parameters_file(nodes, tmp_path / 'graph_parameters.yaml')
    for spec, parameters in nodes:
        node = Node(spec.name, context=ros_context, cli_args=['--ros-args', '--params-file',
                                                              str(path)],
                    automatically_declare_parameters_from_overrides=True)
        try:
            for name, value in parameters.items():
                got = node.get_parameter(name).value
                got = list(got) if isinstance(got, (list, tuple)) or hasattr(
                    got, 'tolist') else got
                assert got == value, (spec.name, name)
        finally:
            node.destroy_node()
    assert node_section(path, 'coverage_guide')['elevation_edges_deg'] == [
        -30.0, 0.0, 25.5, 55.0]


def test_launch_files_describe_the_graph():
    pytest.importorskip('launch_ros', reason='launch_ros comes with a ROS 2 install, not pip')
    for name in ('full', 'capture'):
        path = ROOT / 'launch' / f'{name}.launch.py'
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
        arguments = {a.name for a in description.get_launch_arguments()}
        assert {'params_file', 'image_topic', 'session_dir', 'use_rviz'} <= arguments


def test_node_processes_get_image_sized_shared_memory_unless_the_user_chose():
    import xml.etree.ElementTree as ElementTree

    added = transport_environment({})
    profile = Path(added['FASTDDS_DEFAULT_PROFILES_FILE'])
    namespace = {'dds': 'http://www.eprosima.com'}
    root = ElementTree.parse(profile).getroot()
    sizes = [int(e.text) for e in root.iterfind('.//dds:segment_size', namespace)]
    assert sizes and min(sizes) >= 16 * 1280 * 720 * 3  # room for several 1280x720 frames
    assert transport_environment({'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'}) == {}
    assert transport_environment({'FASTDDS_DEFAULT_PROFILES_FILE': '/mine.xml'}) == {}


def test_a_params_file_s_wildcard_and_namespaced_sections_are_applied(tmp_path, ros_context):
    from rclpy.node import Node

    path = tmp_path / 'params.yaml'
    path.write_text('/**:\n  ros__parameters:\n    min_interval_s: 0.9\n    frame_id: base\n'
                    '/cap/pose_estimator:\n  ros__parameters:\n    live_rate_hz: 5.0\n'
                    'cap/coverage_guide:\n  ros__parameters:\n    target_share: 0.6\n'
                    'coverage_guide:\n  ros__parameters:\n    target_share: 0.7\n')
    base = {'session_dir': str(tmp_path)}
    root = {spec.name: params for spec, params in graph(path, base)}
    assert root['keyframe_selector']['min_interval_s'] == 0.9  # /** reaches the nodes that
    assert 'min_interval_s' not in root['pose_estimator']  # declare it, and only them
    assert root['coverage_guide']['frame_id'] == root['avatar_trainer']['frame_id'] == 'base'
    assert root['coverage_guide']['target_share'] == 0.7
    assert 'live_rate_hz' not in root['pose_estimator']  # another namespace's section
    nodes = graph(path, base, namespace='cap')
    cap = {spec.name: params for spec, params in nodes}
    assert cap['pose_estimator']['live_rate_hz'] == 5.0
    assert cap['coverage_guide']['target_share'] == 0.6  # its own section wins over /**
    assert cap['keyframe_selector']['min_interval_s'] == 0.9
    # What `up --namespace cap` writes is what ROS gives the nodes under /cap.
    written = write_parameters_file(nodes, tmp_path / 'graph.yaml', '/cap')
    node = Node('pose_estimator', namespace='/cap', context=ros_context,
                cli_args=['--ros-args', '--params-file', str(written)],
                automatically_declare_parameters_from_overrides=True)
    try:
        assert node.get_parameter('live_rate_hz').value == 5.0
    finally:
        node.destroy_node()
    path.write_text('/**:\n  ros__parameters:\n    min_intervall_s: 0.9\n')
    with pytest.raises(ConfigError, match=r"/\*\* sets \['min_intervall_s'\]"):
        graph(path, base)
    with pytest.raises(ValueError, match='namespace'):
        graph(None, base, namespace='9lives')
