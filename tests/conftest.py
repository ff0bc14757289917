import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_and_offline(tmp_path, monkeypatch):
    """Every test gets its own cache directory (never ~/.miaudit), and any download fails as
    if offline: tests run on local files only. Tests of the download path patch it again."""
    from miaudit.data import files

    monkeypatch.setenv("MIAUDIT_CACHE_DIR", str(tmp_path / "cache"))

    def offline(url: str, dest: Path) -> None:
        raise OSError("network disabled in tests")

    monkeypatch.setattr(files, "download_file", offline)


@pytest.fixture
def real_data_dir() -> Path:
    """The shared real data sets (CI: ../shared/data via MIAUDIT_DATA_DIR); skip if absent."""
    value = os.environ.get("MIAUDIT_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("MIAUDIT_DATA_DIR is not set to the shared data folder (make test sets it)")
    return Path(value)


# tests/synthetic.py is a helper module shared by test files
import sys as _sys

_sys.path.insert(0, str(Path(__file__).resolve().parent))
