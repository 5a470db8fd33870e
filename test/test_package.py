"""The ament_python package: manifest, entry points and installed data resolve."""

from pathlib import Path
import xml.etree.ElementTree as ElementTree

from head_capture.resources import share_path

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_with_runtime_dependencies():
    root = ElementTree.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'head_capture'
    depends = {e.text for e in root.iter('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'geometry_msgs', 'nav_msgs', 'visualization_msgs',
            'std_msgs', 'std_srvs', 'diagnostic_msgs', 'cv_bridge', 'python3-numpy',
            'python3-opencv'} <= depends
    assert root.find('export/build_type').text == 'ament_python'


def test_every_run_dependency_has_a_rosdep_key_and_none_an_end_of_life_alias():
    import yaml

    depends = {e.text for e in ElementTree.parse(ROOT / 'package.xml').getroot().iter(
        'exec_depend')}
    assert {'rviz2', 'builtin_interfaces', 'rcl_interfaces', 'ament_index_python',
            'python3-torch', 'python3-open3d-pip', 'python3-av-pip',
            'python3-foxglove-sdk-pip'} <= depends
    # rosdistro's aliases due for removal (python3-pytorch-pip: migrate_eol_2025_04_30), and
    # python3-open3d, which has no package on kilted's Ubuntu (noble).
    assert not depends & {'python3-pytorch-pip', 'python3-av', 'python3-open3d'}
    # The keys rosdistro lacks are ours, each installing a package requirements.txt pins.
    ours = yaml.safe_load((ROOT / 'rosdep' / 'head_capture.yaml').read_text())
    pinned = {line.split('==')[0] for line in (ROOT / 'requirements.txt').read_text().split()
              if '==' in line}
    for key, rule in ours.items():
        assert key in depends
        assert set(rule['ubuntu']['pip']['packages']) <= pinned, key


def test_ament_resource_marker_exists():
    assert (ROOT / 'resource' / 'head_capture').is_file()


def test_shipped_config_is_found():
    assert share_path('config', 'head_capture.yaml').is_file()


def test_console_script_is_declared():
    assert "'head-capture = head_capture.cli:main'" in (ROOT / 'setup.py').read_text()


def test_the_camera_and_keyframe_nodes_start_without_torch():
    import subprocess
    import sys

    # torch takes about a second and 200 MB to import: only the nodes that run models need it.
    for module in ('head_capture.nodes.camera_source', 'head_capture.nodes.keyframe_selector'):
        result = subprocess.run([sys.executable, '-c', f'import sys, {module}; '
                                 'print("torch" in sys.modules)'],
                                capture_output=True, text=True, timeout=120)
        assert result.stdout.strip() == 'False', (module, result.stderr)


def test_colcon_builds_the_package_and_its_installed_node_serves(tmp_path, ros_context):
    import os
    import shutil
    import signal
    import subprocess
    import sys

    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_srvs.srv import Trigger

    # PyPI's colcon-core and colcon-ros, as `make setup` installs them beside the interpreter.
    colcon = shutil.which('colcon', path=str(Path(sys.executable).parent))
    assert colcon, 'colcon is not installed: make setup installs colcon-core and colcon-ros'
    build = subprocess.run(
        [colcon, '--log-base', str(tmp_path / 'log'), 'build', '--paths', str(ROOT),
         '--build-base', str(tmp_path / 'build'), '--install-base', str(tmp_path / 'install')],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    install = tmp_path / 'install'
    assert (install / 'head_capture' / 'share' / 'head_capture' / 'package.xml').is_file()
    assert (install / 'head_capture' / 'share' / 'ament_index' / 'resource_index' / 'packages'
            / 'head_capture').is_file()

    # As a user runs it from a fresh shell: source install/setup.sh, start the executable.
    sourced = f'. {install}/setup.sh && '
    shell = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'AMENT_PREFIX_PATH')}
    where = subprocess.run(['sh', '-c', sourced + f'{sys.executable} -c "import head_capture; '
                            'print(head_capture.__file__)"'],
                           cwd=tmp_path, env=shell, capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(install)), where.stdout + where.stderr
    node = subprocess.Popen(
        ['sh', '-c', sourced + f'exec {install}/head_capture/lib/head_capture/avatar_trainer '
         f'--ros-args -p session_dir:={tmp_path / "session"}'],
        cwd=tmp_path, env=shell, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    user = Node('colcon_user', context=ros_context)
    try:
        cancel = user.create_client(Trigger, '/head_capture/cancel_training')
        assert cancel.wait_for_service(timeout_sec=60.0), 'the installed node never served'
        future = cancel.call_async(Trigger.Request())
        executor = SingleThreadedExecutor(context=ros_context)
        executor.add_node(user)
        executor.spin_until_future_complete(future, timeout_sec=10.0)
        assert future.done() and not future.result().success  # nothing to cancel: it answers
    finally:
        user.destroy_node()
        node.send_signal(signal.SIGINT)
        output = node.communicate(timeout=30)[0]
    assert node.returncode == 0, output
