"""ament's pep257 docstring check; pydocstyle with the same rules without ament."""

from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = [str(ROOT / name) for name in ('head_capture', 'test', 'bench')]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    try:
        from ament_pep257.main import main
    except ImportError:
        ignore = 'D100,D101,D102,D103,D104,D105,D106,D107,D203,D212,D404'
        result = subprocess.run([sys.executable, '-m', 'pydocstyle', f'--add-ignore={ignore}',
                                 *PATHS], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return
    assert main(argv=[p for p in PATHS if Path(p).exists()]) == 0, 'docstring style errors'
