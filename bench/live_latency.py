"""
Live latency of the capture graph: a 1280x720 30 frames/s stream in, live poses out.

The synthetic phone capture is streamed in real time (looped) by camera_source into
keyframe_selector, pose_estimator and coverage_guide, one process per node as
``head-capture up`` runs them (``--one-process``: all in this process, as ``up
--one-process``); the trainer is left out (it trains in a child process of its own anyway).
Measured: the live pose rate, latency from an image's stamp to its pose's arrival here
(p50/p95), frames published, scored by the selector and through the detector (from
/diagnostics), the live frames the estimator took and the share that got a pose (the two parts
of a rate short of the one asked), the longest gaps between poses' stamps, the graph's CPU use
(each node's too), and its resident memory over time (it must level off: no queue may grow).

    python bench/live_latency.py --capture CAPTURE --seconds 600
"""

import argparse
import os
from pathlib import Path
import tempfile
import threading
import time

from common import save
from geometry_msgs.msg import PoseStamped
from head_capture.node_graph import graph, node_overrides
from head_capture.nodes.up import build_nodes, close_nodes, GraphWatch, NodeProcesses
import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

TICKS = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pids):
    """Return the user + system CPU seconds the processes used so far."""
    total = 0
    for pid in pids:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def rss_mib(pids):
    """Return the processes' resident memory in MiB."""
    total = 0
    for pid in pids:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                total += int(line.split()[1])
    return total / 1024.0


class PoseTimer(Node):
    """Records how late each live pose arrives after its image's stamp."""

    def __init__(self):
        super().__init__('latency_probe')
        self.latencies_ms, self.arrivals, self.lock = [], [], threading.Lock()
        self.stamps_ns = []
        self.create_subscription(PoseStamped, '/head_capture/camera_pose', self.on_pose, 50)

    def on_pose(self, message):
        now = self.get_clock().now().nanoseconds
        stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
        with self.lock:
            self.latencies_ms.append((now - stamp) / 1e6)
            self.arrivals.append(time.monotonic())
            self.stamps_ns.append(stamp)


def handled(watch, node):
    """Return how many inputs ``node`` reported handling on /diagnostics."""
    return int(watch.values(node).get('handled', 0))


def pose_gaps(stamps_ns, count=12):
    """
    Return the longest gaps between consecutive poses' stamps and how often each length occurs.

    The longest as (start s, length s); the lengths to 10 ms (at 15 Hz from a 30 frames/s
    source: mostly 70 ms).
    """
    seconds = np.sort(np.asarray(stamps_ns, np.int64) - min(stamps_ns, default=0)) / 1e9
    gaps = np.diff(seconds)
    longest = [(round(float(seconds[i]), 2), round(float(gaps[i]), 3))
               for i in np.argsort(gaps)[::-1][:count]]
    values, counts = np.unique(np.round(gaps * 100).astype(int) * 10, return_counts=True)
    return longest, {int(v): int(c) for v, c in zip(values, counts)}


def rate_per_minute(timeline):
    """Return the live poses per second in each minute, from (seconds, poses) 10 s apart."""
    marks = [(0.0, 0), *timeline[5::6]]
    return [round((n1 - n0) / (t1 - t0), 2) for (t0, n0), (t1, n1) in zip(marks, marks[1:])]


def main():
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--capture', type=Path, required=True,
                        help='folder of `head-capture synth capture` (capture.mp4, 1280x720)')
    parser.add_argument('--seconds', type=float, default=600.0)
    parser.add_argument('--live-rate', type=float, default=15.0, help='live poses asked per s')
    parser.add_argument('--one-process', action='store_true',
                        help='all nodes in this process instead of one process each')
    parser.add_argument('--set', action='append', default=[], dest='overrides',
                        metavar='NODE.KEY=VALUE', help='override one node parameter (YAML value)')
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    layout = 'one process' if args.one_process else 'one process per node'
    out = args.out or Path('bench/results/live_latency'
                           f'{"_one_process" if args.one_process else ""}.json')
    rclpy.init()
    with tempfile.TemporaryDirectory() as session:
        overrides = {'camera_source': {'intrinsics_file': str(args.capture /
                                                              'ground_truth.json'),
                                       'loop': True, 'publish_compressed': False},
                     'pose_estimator': {'live_rate_hz': args.live_rate},
                     'coverage_guide': {'auto_train': False}}
        for node, values in node_overrides(args.overrides).items():
            overrides.setdefault(node, {}).update(values)
        nodes = graph(settings={'source': str(args.capture / 'capture.mp4'),
                                'session_dir': session}, overrides=overrides)
        nodes = [(spec, params) for spec, params in nodes if spec.name != 'avatar_trainer']
        probe, watch = PoseTimer(), GraphWatch()
        executor = MultiThreadedExecutor(num_threads=4)
        if args.one_process:
            built, processes, pids = build_nodes(nodes), None, [os.getpid()]
        else:
            built = []
            processes = NodeProcesses(nodes, Path(session) / 'graph_parameters.yaml')
            pids = processes.pids
        for node in [probe, watch, *built]:
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        started, cpu_start = time.monotonic(), [cpu_seconds([pid]) for pid in pids]
        memory, poses = [], []
        while time.monotonic() - started < args.seconds:
            time.sleep(10.0)
            memory.append((round(time.monotonic() - started, 1), round(rss_mib(pids), 1)))
            with probe.lock:
                recent = probe.latencies_ms[-100:]
                poses.append(len(probe.latencies_ms))
            print(f'{memory[-1][0]:6.0f} s: {poses[-1]} poses, p50 '
                  f'{np.median(recent) if recent else float("nan"):.0f} ms, '
                  f'{memory[-1][1]:.0f} MiB', flush=True)
        wall = time.monotonic() - started
        by_node = [cpu_seconds([pid]) - start for pid, start in zip(pids, cpu_start)]
        cpu = sum(by_node)
        published, seen = handled(watch, 'camera_source'), handled(watch, 'keyframe_selector')
        # One reading of the estimator's counts, so the frames taken and posed agree.
        estimator = watch.values('pose_estimator')
        estimates, taken, posed = (int(estimator.get(key, 0))
                                   for key in ('handled', 'live_frames', 'live_posed'))
        if processes is not None:
            processes.stop()
        executor.shutdown()
        spinner.join(timeout=10.0)
        close_nodes(built)
        probe.destroy_node()
        watch.destroy_node()
    rclpy.try_shutdown()
    latencies = np.array(probe.latencies_ms[10:])  # the first poses include start-up
    longest_gaps, gap_counts = pose_gaps(probe.stamps_ns)
    rss = [m for _, m in memory]
    timeline = [(t, n) for (t, _), n in zip(memory, poses)]
    half = len(rss) // 2
    result = {
        'benchmark': f'live latency, 1280x720 at 30 frames/s, {layout}',
        'overrides': args.overrides,
        'seconds': round(wall, 1), 'live_rate_asked_hz': args.live_rate,
        'live_pose_rate_hz': round(len(probe.latencies_ms) / wall, 2),
        # From the first pose on: start-up (model loading, discovery) left out.
        'live_pose_rate_after_first_hz': round((len(probe.arrivals) - 1) / (
            probe.arrivals[-1] - probe.arrivals[0]), 2),
        'latency_ms': {'p50': round(float(np.percentile(latencies, 50)), 1),
                       'p95': round(float(np.percentile(latencies, 95)), 1),
                       'max': round(float(latencies.max()), 1)},
        'frames_published': published, 'frames_scored_by_selector': seen,
        # The counts come from /diagnostics a second apart: a share near 0 can read below.
        'selector_dropped_share': round(1.0 - seen / max(published, 1), 4),
        'frames_through_the_detector': estimates,
        # Live frames the estimator took (the rest of the detector's work: keyframes), and how
        # many of them got a pose: a shortfall in the pose rate is one or the other.
        'live_frames_taken_hz': round(taken / wall, 2),
        'live_frames_posed_share': round(posed / max(taken, 1), 4),
        'longest_pose_gaps': longest_gaps, 'pose_stamp_gap_counts_ms': gap_counts,
        'cpu_cores_used': round(cpu / wall, 2),
        'cpu_cores_by_node': ({'all nodes': round(cpu / wall, 2)} if args.one_process else
                              {spec.name: round(seconds / wall, 2)
                               for (spec, _), seconds in zip(nodes, by_node)}),
        'rss_mib': {'start': rss[0], 'end': rss[-1],
                    'growth_second_half': round(rss[-1] - rss[half], 1) if half else None},
        'memory_timeline': memory,
        # Live poses so far, every 10 s: a rate that falls as the session grows shows here.
        'poses_timeline': timeline,
        'live_pose_rate_per_minute': rate_per_minute(timeline),
        'target': 'live pose >= 15 Hz, p95 < 150 ms, memory bounded',
    }
    print({k: v for k, v in result.items() if not k.endswith('_timeline')})
    save(out, result)


if __name__ == '__main__':
    main()
