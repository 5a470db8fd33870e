"""Locate the package's installed data (config, models, launch, rviz) in any install."""

from pathlib import Path
import sys

PACKAGE = 'head_capture'


def share_path(*parts):
    """
    Return the path of a shipped data file, whichever way the package was installed.

    Looked up, in order: the ament index (colcon or a ROS install), the ``share`` folder of a
    pip install, and the source checkout (an editable install or a plain clone).
    """
    for root in _share_roots():
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f'{"/".join(parts)} is not installed with {PACKAGE} '
                            f'(looked in: {", ".join(str(r) for r in _share_roots())})')


def _share_roots():
    roots = []
    try:
        from ament_index_python.packages import get_package_share_directory
        roots.append(Path(get_package_share_directory(PACKAGE)))
    except (ImportError, LookupError, ValueError, OSError):
        pass
    roots.append(Path(sys.prefix) / 'share' / PACKAGE)
    roots.append(Path(__file__).resolve().parent.parent)
    return roots
