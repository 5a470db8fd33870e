"""
``head-capture up``: the graph from pip, one process per node or all nodes in one.

One process per node is the default: the nodes are Python, and in one process the GIL lets
only one of decoding, sharpness scoring and the detector run at a time (bench/live_latency.py
measured the difference). The one-process graph is spun by a multithreaded executor; tests
and the recorder use it. Both end as ``supervisor`` says: ``--until avatar`` exits 0 only
with an avatar, and SIGTERM stops the graph as SIGINT does.
"""

from functools import partial
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
import traceback

from diagnostic_msgs.msg import DiagnosticArray
from head_capture.node_graph import ros_parameters, transport_environment, write_parameters_file
from head_capture.nodes.support import StartupError
from head_capture.supervisor import (CANNOT_START, FAILED, RunEnd, stop_signals,
                                     wait_for_end)
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import Trigger

# Quiet time after an ended source (and after the detector's last keyframe) before training.
SETTLE_S = 5.0
# How long the detector may fall silent, keyframes still owed, before training goes ahead.
STALL_S = 30.0


def build_nodes(nodes, context=None, namespace=''):
    """Instantiate the nodes of a graph; StartupError names the node that cannot start."""
    built = []
    try:
        for spec, parameters in nodes:
            cls = spec.load()
            try:
                built.append(cls(parameter_overrides=[
                    Parameter(k, value=v) for k, v in ros_parameters(parameters).items()],
                    context=context, namespace=namespace))
            except StartupError as exc:
                raise StartupError(f'{spec.name}: {exc}') from exc
    except BaseException:
        close_nodes(built)
        raise
    return built


def close_nodes(nodes):
    """Stop the nodes' background work and destroy them, last started first."""
    for node in reversed(nodes):
        node.close()
        node.destroy_node()


class GraphWatch(Node):
    """Follows a graph from outside, through /diagnostics: what each node last reported."""

    def __init__(self, context=None, settle_s=None, stall_s=None, namespace=''):
        super().__init__('head_capture_up', context=context, namespace=namespace)
        self._values, self._messages, self._lock = {}, {}, threading.Lock()
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self._train = self.create_client(Trigger, 'head_capture/train')
        self.settle_s = SETTLE_S if settle_s is None else settle_s
        self.stall_s = STALL_S if stall_s is None else stall_s
        self._source_ended, self._request = None, None
        self._posed, self._posed_at = None, 0.0  # the detector's keyframe count, and since
        self.refusal = None

    def _on_diagnostics(self, message):
        with self._lock:
            for status in message.status:
                self._values[status.name] = {v.key: v.value for v in status.values}
                self._messages[status.name] = status.message

    def values(self, node):
        """Return the key/values node ``node`` last reported (empty before its first)."""
        with self._lock:
            return dict(self._values.get(f'head_capture: {node}', {}))

    def message(self, node):
        """Return the one-line summary node ``node`` last reported ('' before its first)."""
        with self._lock:
            return self._messages.get(f'head_capture: {node}', '')

    def trainer_finished(self):
        """Return True once avatar_trainer reported done, failed or cancelled."""
        return self.values('avatar_trainer').get('state') in ('done', 'failed', 'cancelled')

    def avatar_outcome(self):
        """Return 'done' once the avatar was made, else why there is none yet (or None)."""
        state = self.values('avatar_trainer').get('state')
        if state == 'done':
            return 'done'
        if state in ('failed', 'cancelled'):  # the trainer's summary is 'STATE: WHY'
            return self.message('avatar_trainer').removeprefix(f'{state}: ')
        return self.refusal

    def avatar_finished(self):
        """
        Return True once the trainer is done or failed, or refused to train.

        A file that ends before the coverage target is met would leave the trainer waiting
        for good: once the source has ended and the detector has no keyframe waiting and has
        taken none for ``settle_s``, training is requested with what there is (a refusal is
        kept in ``refusal``). A detector not heard from for ``stall_s`` (not started on a
        loaded machine, say) does not hold it up for longer.
        """
        if self.trainer_finished():
            return True
        if self._request is not None:
            if self._request.done() and not self._request.result().success:
                self.refusal = self._request.result().message
            return self.refusal is not None
        if self.values('camera_source').get('finished') != 'True':
            return False
        now = time.monotonic()
        self._source_ended = self._source_ended or now
        detector = self.values('pose_estimator')
        if detector.get('keyframes') != self._posed:  # still working through keyframes
            self._posed, self._posed_at = detector.get('keyframes'), now
        quiet = now - max(self._source_ended, self._posed_at)
        if (quiet > (self.settle_s if detector.get('waiting') == '0' else self.stall_s)
                and self.values('avatar_trainer').get('state') == 'idle'
                and self._train.service_is_ready()):
            self.get_logger().info('the source ended before the coverage target: training on '
                                   'the keyframes there are')
            self._request = self._train.call_async(Trigger.Request())
        return False


class NodeProcesses:
    """Each node of a graph in its own Python process, parameters from one parameters file."""

    def __init__(self, nodes, parameters_file, namespace=''):
        self.names = [spec.name for spec, _ in nodes]
        write_parameters_file(nodes, parameters_file, namespace)
        remap = ['-r', f'__ns:={namespace}'] if namespace else []
        env = {**os.environ, 'PYTHONUNBUFFERED': '1', **transport_environment()}
        self.children = []
        try:
            for spec, _ in nodes:
                self.children.append(subprocess.Popen(
                    [sys.executable, '-m', 'head_capture.nodes.child', spec.module,
                     '--ros-args', *remap, '--params-file', str(parameters_file)], env=env))
        except BaseException:
            self.stop()
            raise

    @property
    def pids(self):
        """Return the children's process ids, in graph order."""
        return [child.pid for child in self.children]

    def exited(self):
        """Return (name, exit code) of the first child that has ended, else None."""
        for name, child in zip(self.names, self.children):
            if child.poll() is not None:
                return name, child.returncode
        return None

    def stop(self, timeout_s=10.0):
        """Ask every child to shut down (SIGINT, as Ctrl-C), then kill those that linger."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            try:
                child.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


class Spinner:
    """A multithreaded executor spinning nodes in a background thread; keeps what ended it."""

    def __init__(self, nodes, num_threads):
        self.executor = MultiThreadedExecutor(num_threads=num_threads)
        for node in nodes:
            self.executor.add_node(node)
        self.failure = None
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception as exc:  # noqa: B902 - a node's callback failed: the graph is broken
            traceback.print_exc()
            self.failure = f'the executor stopped: {type(exc).__name__}: {exc}'

    def alive(self):
        """Return whether it still spins."""
        return self.thread.is_alive()

    def shutdown(self):
        """Stop spinning and wait for the thread (one still in rcl at exit aborts the process)."""
        self.executor.shutdown()
        self.thread.join(timeout=10.0)


def run_graph(nodes, until=None, timeout_s=None, report=print, until_avatar=False,
              namespace=''):
    """
    Spin the graph in this process; return its exit code (``supervisor.RunEnd``).

    It runs until ``until(built_nodes)`` is true, or with ``until_avatar`` until the avatar
    is finished (``GraphWatch.avatar_finished``, as in the per-process graph), ``timeout_s``
    passes, SIGINT or SIGTERM, or the executor fails. A node that cannot start: 2. The nodes
    run under ``namespace`` ('' or '/NS', as ``node_graph.check_namespace`` returns it).
    """
    with stop_signals() as stop:
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        try:
            try:
                built = build_nodes(nodes, namespace=namespace)
            except StartupError as exc:
                report(f'cannot start: {exc}')
                return CANNOT_START
            watch = GraphWatch(namespace=namespace) if until_avatar else None
            spinner = Spinner(built + ([watch] if watch else []), num_threads=4)
            try:
                done = watch.avatar_finished if watch else until and partial(until, built)
                how = wait_for_end(done, spinner.alive, timeout_s, stop, report)
                stopped_by = stop.signal
            finally:
                spinner.shutdown()
                close_nodes(built)
                if watch:
                    watch.destroy_node()
        finally:
            rclpy.try_shutdown()
    return _ended(RunEnd(until_avatar, watch and watch.avatar_outcome(), spinner.failure,
                         stopped_by=stopped_by, timeout_s=timeout_s if how == 'timeout' else None),
                  report)


def run_processes(nodes, parameters_file, until_avatar=False, timeout_s=None, report=print,
                  namespace=''):
    """
    Run each node in its own process; return the exit code (``supervisor.RunEnd``).

    It runs until the avatar is finished (if asked: ``GraphWatch.avatar_finished``),
    ``timeout_s`` passes, SIGINT or SIGTERM, or a node ends; the parameters go to
    ``parameters_file`` first, under their names in ``namespace``. The nodes are stopped in
    every case.
    """
    with stop_signals() as stop:
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        watch = GraphWatch(namespace=namespace)
        spinner = Spinner([watch], num_threads=2)
        processes, how, stopped_by, ended = None, None, None, None
        try:
            processes = NodeProcesses(nodes, Path(parameters_file), namespace)
            how = wait_for_end(watch.avatar_finished if until_avatar else None,
                               lambda: processes.exited() is None, timeout_s, stop, report)
            stopped_by = stop.signal
        finally:
            if processes is not None:  # None: it failed to start, and stopped what it started
                ended = processes.exited() if how == 'ended' else None
                processes.stop()
            spinner.shutdown()
            watch.destroy_node()
            rclpy.try_shutdown()
    broken, code = None, FAILED
    if ended is not None:
        name, status = ended
        broken = f'{name} ended (exit code {status}); the graph was stopped'
        code = CANNOT_START if status == CANNOT_START else FAILED
    return _ended(RunEnd(until_avatar, watch.avatar_outcome(), broken, code, stopped_by,
                         timeout_s if how == 'timeout' else None), report)


def _ended(end, report):
    """Report why the run failed (one line, last); return its exit code."""
    code, reason = end.verdict()
    if reason is not None:
        report(reason)
    return code
