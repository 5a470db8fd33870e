"""ament's flake8 check (line length 99); plain flake8 with the same rules without ament."""

from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = [str(ROOT / name) for name in ('head_capture', 'test', 'bench', 'launch', 'setup.py')]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    try:
        from ament_flake8.main import main_with_errors
    except ImportError:
        config = ['--max-line-length=99', '--import-order-style=google',
                  '--extend-ignore=B902,C816,D100,D101,D102,D103,D104,D105,D106,D107,D203,'
                  'D212,D404,I202']
        result = subprocess.run([sys.executable, '-m', 'flake8', *config, *PATHS],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return
    rc, errors = main_with_errors(argv=[p for p in PATHS if Path(p).exists()])
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
