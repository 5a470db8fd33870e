"""
``head-capture up``: the whole graph in one process, for rclpy installed from pip.

Every node of ``graph.graph`` is built with its parameters as overrides and spun by one
multithreaded executor (the detector and the trainer's follower never hold up the others).
"""

import threading
import time

from head_capture.nodes.support import StartupError
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.parameter import Parameter


def _parameter(name, value):
    """Return a Parameter; a list mixing ints and floats (YAML's 0 vs 0.0) becomes floats."""
    if isinstance(value, (list, tuple)) and any(isinstance(v, float) for v in value):
        value = [float(v) for v in value]
    return Parameter(name, value=value)


def build_nodes(nodes, context=None):
    """Instantiate the nodes of a graph; StartupError names the node that cannot start."""
    built = []
    try:
        for spec, parameters in nodes:
            cls = spec.load()
            try:
                built.append(cls(parameter_overrides=[_parameter(k, v)
                                                      for k, v in parameters.items()],
                                 context=context))
            except StartupError as exc:
                raise StartupError(f'{spec.name}: {exc}') from exc
            unknown = sorted(k for k in parameters if not built[-1].has_parameter(k))
            if unknown:  # rclpy ignores them; a typo in a params file must not pass silently
                raise StartupError(f'{spec.name}: unknown parameter(s) {unknown}')
    except BaseException:
        close_nodes(built)
        raise
    return built


def close_nodes(nodes):
    """Stop the nodes' background work and destroy them, last started first."""
    for node in reversed(nodes):
        node.close()
        node.destroy_node()


def run_graph(nodes, until=None, timeout_s=None, report=print):
    """
    Spin the graph until ``until(built_nodes)`` is true, ``timeout_s`` passes or Ctrl-C.

    Returns 0, or 2 when a node cannot start (its reason is reported).
    """
    rclpy.init()
    try:
        try:
            built = build_nodes(nodes)
        except StartupError as exc:
            report(f'cannot start: {exc}')
            return 2
        executor = MultiThreadedExecutor(num_threads=4)
        for node in built:
            executor.add_node(node)
        spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
        spinner.start()
        started = time.monotonic()
        try:
            while spinner.is_alive():
                if until is not None and until(built):
                    break
                if timeout_s is not None and time.monotonic() - started > timeout_s:
                    report(f'stopping after {timeout_s:g} s')
                    break
                time.sleep(0.2)
        finally:
            executor.shutdown()
            spinner.join(timeout=10.0)  # a thread still in rcl at exit aborts the process
            close_nodes(built)
        return 0
    finally:
        rclpy.try_shutdown()


def _spin(executor):
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
