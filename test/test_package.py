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
