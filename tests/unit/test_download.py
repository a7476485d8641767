"""Downloads: atomic and checked, and one sentence when offline (the command:
tests/e2e/test_download_cli.py)."""

import urllib.error

import pytest

from parrot_lm.core.errors import DataError
from parrot_lm.data import download


def test_download_file_is_atomic_and_checked(tmp_path):
    src = tmp_path / "model.bin"
    src.write_bytes(b"fasttext model bytes")
    dest = tmp_path / "out" / "lid.176.ftz"
    sha = download.download_file(src.as_uri(), dest)
    assert dest.read_bytes() == b"fasttext model bytes" and len(sha) == 64
    with pytest.raises(DataError, match="expected"):
        download.download_file(src.as_uri(), tmp_path / "other.ftz", sha256="0" * 64)
    assert not (tmp_path / "other.ftz").exists() and not list(tmp_path.glob(".*tmp*"))


def test_offline_download_is_one_sentence(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="Could not download"):
        download.download_file(download.LID_URL, tmp_path / "lid.176.ftz")
    assert not (tmp_path / "lid.176.ftz").exists() and not list(tmp_path.glob(".*tmp*"))
