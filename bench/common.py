"""Helpers shared by the benchmarks: machine facts and JSON output."""

import json
import os
from pathlib import Path
import platform
import time

import cv2


def machine():
    """Describe the machine a number was measured on."""
    return {'cpu_count': os.cpu_count(), 'cv2_threads': cv2.getNumThreads(),
            'platform': platform.platform(), 'python': platform.python_version(),
            'date': time.strftime('%Y-%m-%d')}


def save(path, result):
    """Write ``result`` (plus the machine description) as JSON and print where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, 'machine': machine()}, indent=2) + '\n')
    print(f'wrote {path}')
