"""
One node of ``head-capture up`` in a process of its own.

Run as ``python -m head_capture.nodes.child MODULE --ros-args ...``. ``up`` stops its children
with SIGINT, as Ctrl-C would. A child that is still importing its module (torch and onnxruntime
take seconds) then ends quietly, with nothing to close, instead of printing a KeyboardInterrupt
traceback; once imported, the node's own ``main`` handles it.
"""

import importlib
import sys


def main():
    """Import the node's module, then run its ``main`` with the ROS arguments."""
    module = sys.argv[1]
    sys.argv = sys.argv[1:]  # as ``python -m MODULE --ros-args ...`` would have them
    try:
        node_main = importlib.import_module(module).main
    except KeyboardInterrupt:
        return 0
    return node_main()


if __name__ == '__main__':
    raise SystemExit(main())
