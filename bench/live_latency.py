"""
Live latency of the capture graph: a 1280x720 30 frames/s stream in, live poses out.

The synthetic phone capture is streamed in real time (looped) by camera_source into
keyframe_selector, pose_estimator and coverage_guide, all in this one process as
``head-capture up`` runs them (the trainer is left out: it runs in its own process anyway).
Measured: the live pose rate, latency from an image's stamp to its pose's arrival (p50/p95),
frames the selector and the estimator dropped or skipped, this process's CPU use, and its
resident memory over time (it must level off: no queue may grow).

    python bench/live_latency.py --capture CAPTURE --seconds 600
"""

import argparse
from pathlib import Path
import resource
import tempfile
import threading
import time

from common import save
from geometry_msgs.msg import PoseStamped
from head_capture.graph import graph
from head_capture.nodes.up import build_nodes, close_nodes
import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node


def rss_mib():
    """Return this process's resident memory in MiB."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024.0
    return float('nan')


class PoseTimer(Node):
    """Records how late each live pose arrives after its image's stamp."""

    def __init__(self):
        super().__init__('latency_probe')
        self.latencies_ms, self.lock = [], threading.Lock()
        self.create_subscription(PoseStamped, '/head_capture/camera_pose', self.on_pose, 50)

    def on_pose(self, message):
        now = self.get_clock().now().nanoseconds
        stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
        with self.lock:
            self.latencies_ms.append((now - stamp) / 1e6)


def main():
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--capture', type=Path, required=True,
                        help='folder of `head-capture synth capture` (capture.mp4, 1280x720)')
    parser.add_argument('--seconds', type=float, default=600.0)
    parser.add_argument('--live-rate', type=float, default=15.0, help='live poses asked per s')
    parser.add_argument('--out', type=Path, default=Path('bench/results/live_latency.json'))
    args = parser.parse_args()
    rclpy.init()
    with tempfile.TemporaryDirectory() as session:
        nodes = graph(settings={'source': str(args.capture / 'capture.mp4'),
                                'session_dir': session},
                      overrides={'camera_source': {'intrinsics_file': str(
                                     args.capture / 'ground_truth.json'), 'loop': True,
                                     'publish_compressed': False},
                                 'pose_estimator': {'live_rate_hz': args.live_rate},
                                 'coverage_guide': {'auto_train': False}})
        nodes = [(spec, params) for spec, params in nodes if spec.name != 'avatar_trainer']
        probe = PoseTimer()
        built = build_nodes(nodes)
        executor = MultiThreadedExecutor(num_threads=4)
        for node in [probe, *built]:
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        source, selector, estimator = built[0], built[1], built[2]
        started, cpu_start = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
        memory = []
        while time.monotonic() - started < args.seconds:
            time.sleep(10.0)
            memory.append((round(time.monotonic() - started, 1), round(rss_mib(), 1)))
            with probe.lock:
                recent = probe.latencies_ms[-100:]
            print(f'{memory[-1][0]:6.0f} s: {len(probe.latencies_ms)} poses, p50 '
                  f'{np.median(recent) if recent else float("nan"):.0f} ms, '
                  f'{memory[-1][1]:.0f} MiB', flush=True)
        wall = time.monotonic() - started
        cpu_end = resource.getrusage(resource.RUSAGE_SELF)
        published, seen = source.health.handled, selector.health.handled
        estimates = estimator.health.handled
        executor.shutdown()
        spinner.join(timeout=10.0)
        close_nodes(built)
        probe.destroy_node()
    rclpy.try_shutdown()
    latencies = np.array(probe.latencies_ms[10:])  # the first poses include start-up
    cpu = (cpu_end.ru_utime + cpu_end.ru_stime - cpu_start.ru_utime - cpu_start.ru_stime)
    rss = [m for _, m in memory]
    half = len(rss) // 2
    result = {
        'benchmark': 'live latency, 1280x720 at 30 frames/s, one process',
        'seconds': round(wall, 1), 'live_rate_asked_hz': args.live_rate,
        'live_pose_rate_hz': round(len(probe.latencies_ms) / wall, 2),
        'latency_ms': {'p50': round(float(np.percentile(latencies, 50)), 1),
                       'p95': round(float(np.percentile(latencies, 95)), 1),
                       'max': round(float(latencies.max()), 1)},
        'frames_published': published, 'frames_scored_by_selector': seen,
        'selector_dropped_share': round(1.0 - seen / max(published, 1), 4),
        'frames_through_the_detector': estimates,
        'cpu_cores_used': round(cpu / wall, 2),
        'rss_mib': {'start': rss[0], 'end': rss[-1],
                    'growth_second_half': round(rss[-1] - rss[half], 1) if half else None},
        'memory_timeline': memory,
        'target': 'live pose >= 15 Hz, p95 < 150 ms, memory bounded',
    }
    print({k: v for k, v in result.items() if k != 'memory_timeline'})
    save(args.out, result)


if __name__ == '__main__':
    main()
