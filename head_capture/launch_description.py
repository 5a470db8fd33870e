"""
The graph of ``node_graph`` as a ROS 2 launch description (needs ``launch`` and ``launch_ros``).

Both launch files call ``describe``; the launch arguments are the capture settings of
``node_graph.CAPTURE_SETTINGS`` plus ``params_file``, ``namespace`` and ``use_rviz``.
"""

from head_capture.config_files import DEFAULT_PARAMS_FILE
from head_capture.node_graph import check_namespace, graph, ros_parameters, transport_environment
from head_capture.resources import share_path
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGUMENTS = {
    'params_file': ('', 'ROS parameters file (default: the package config/head_capture.yaml)'),
    'namespace': ('', 'run the nodes under this namespace (topics /NS/head_capture/...)'),
    'source': ('', 'video, image folder, MCAP bag or URL to stream in; empty: a ROS topic'),
    'image_topic': ('camera/image_raw', 'raw image topic (JPEG on IMAGE_TOPIC/compressed); '
                    'relative: under the namespace'),
    'compressed': ('false', 'subscribe to the compressed (JPEG) images'),
    'camera_info_topic': ('camera/camera_info', 'CameraInfo of the images'),
    'session_dir': ('head_capture_session', 'directory the capture and the avatar go to'),
    'config': ('cpu_preview', 'avatar config: paper, fast, cpu_preview or a YAML path'),
    'use_rviz': ('true', 'start rviz2 with rviz/head_capture.rviz'),
}


def _nodes(context, with_trainer):
    def value(name):
        return LaunchConfiguration(name).perform(context)

    settings = {name: value(name) for name in ARGUMENTS
                if name not in ('params_file', 'namespace', 'use_rviz')}
    settings['compressed'] = settings['compressed'].lower() in ('1', 'true', 'yes')
    settings['source'] = settings['source'] or None
    if not with_trainer:
        settings.pop('config')
    params_file = value('params_file') or share_path('config', DEFAULT_PARAMS_FILE)
    namespace = check_namespace(value('namespace'))
    actions = [Node(package='head_capture', executable=spec.executable, name=spec.name,
                    namespace=namespace or None, parameters=[ros_parameters(parameters)],
                    output='screen', emulate_tty=True, additional_env=transport_environment())
               for spec, parameters in graph(params_file, settings, namespace=namespace)
               if with_trainer or spec.name != 'avatar_trainer']
    if value('use_rviz').lower() in ('1', 'true', 'yes'):
        actions.append(Node(package='rviz2', executable='rviz2', name='rviz2',
                            arguments=['-d', str(share_path('rviz', 'head_capture.rviz'))]))
    return actions


def describe(with_trainer=True):
    """Return the launch description of the capture graph, with or without the trainer."""
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_nodes, args=[with_trainer])])
