"""Config loading: the shipped parameters file, overrides, and clear errors."""

from head_capture.avatar.training_config import chosen_keys, load_avatar_config
from head_capture.capture.keyframes import KeyframeConfig
from head_capture.config_files import ConfigError, parse_overrides
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


def test_avatar_config_takes_dotted_overrides_and_refuses_the_flat_keys(tmp_path):
    overrides = parse_overrides(['stage1.steps=7', 'grid.lr=[0.1, 0.01]'])
    config = load_avatar_config('fast', overrides)
    assert (config.stage1.steps, config.grid.lr) == (7, (0.1, 0.01))
    assert config.stage2 == load_avatar_config('fast').stage2  # the rest of the file holds
    with pytest.raises(ConfigError, match='stage1_steps is stage1.steps'):
        load_avatar_config('fast', parse_overrides(['stage1_steps=7']))
    path = tmp_path / 'mine.yaml'
    path.write_text('field: grid\nstage1:\n  steps: 5\n')
    with pytest.raises(ConfigError, match='field is field.kind'):
        load_avatar_config(path)
    path.write_text('stage1:\n  steps: 5\n  pose_lr: [1.0e-3, 1.0e-5]\n')
    assert load_avatar_config(path).stage1.steps == 5
    chosen = chosen_keys(path, {'scene.radius': 1.0})
    assert chosen == {'stage1.steps', 'stage1.pose_lr', 'scene.radius'}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['stage1.stepz'\]"):
        load_avatar_config('fast', {'stage1.stepz': 1})
