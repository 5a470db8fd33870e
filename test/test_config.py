"""Config loading: the shipped parameters file, overrides, and clear errors."""

from head_capture.capture.keyframes import KeyframeConfig
from head_capture.config_files import ConfigError
from head_capture.node_graph import load_node_config
import pytest


def test_shipped_parameters_build_the_keyframe_config():
    config = load_node_config(KeyframeConfig, 'keyframe_selector')
    assert config == KeyframeConfig()


def test_plain_yaml_section_with_override(tmp_path):
    path = tmp_path / 'params.yaml'
    path.write_text('keyframe_selector:\n  sharpness_ratio: 0.5\n  reference_window_s: 1\n')
    config = load_node_config(KeyframeConfig, 'keyframe_selector', path, {'max_keyframes': 9})
    assert (config.sharpness_ratio, config.reference_window_s) == (0.5, 1.0)
    assert config.max_keyframes == 9


def test_offline_commands_read_a_wildcard_section_as_the_graph_does(tmp_path):
    path = tmp_path / 'params.yaml'
    path.write_text('/**:\n  ros__parameters:\n    min_interval_s: 0.5\n'
                    '/keyframe_selector:\n  ros__parameters:\n    sharpness_ratio: 0.6\n')
    config = load_node_config(KeyframeConfig, 'keyframe_selector', path)
    assert (config.min_interval_s, config.sharpness_ratio) == (0.5, 0.6)


@pytest.mark.parametrize('text, message', [
    ('keyframe_selector:\n  sharpnes_ratio: 0.5\n', 'unknown key'),
    ('keyframe_selector:\n  max_keyframes: ten\n', 'must be int'),
    ('keyframe_selector:\n  sharpness_ratio: 2.0\n', 'sharpness_ratio must be in'),
    ('keyframe_selector: [1, 2\n', 'not valid YAML'),
])
def test_bad_config_names_the_problem(tmp_path, text, message):
    path = tmp_path / 'params.yaml'
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_node_config(KeyframeConfig, 'keyframe_selector', path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match='not found'):
        load_node_config(KeyframeConfig, 'keyframe_selector', tmp_path / 'nope.yaml')
