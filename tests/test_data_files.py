"""Finding, downloading and verifying data files (miaudit.data.files), on files made here."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from miaudit.data import RemoteFile, fetch_dataset, files, load_dataset, verify_dataset
from miaudit.data.files import DataFile, locate, locate_all
from miaudit.data.shokri_archives import LOCATION_FILE
from miaudit.errors import ChecksumError, DataMissingError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


PAYLOAD = b"hello data\n"
FILE = DataFile("blob.bin", "https://example.invalid/blob.bin", sha(PAYLOAD), folder="blobs")


def test_found_in_named_subfolder_or_top_level(tmp_path):
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "blob.bin").write_bytes(PAYLOAD)
    assert locate(FILE, tmp_path, dataset="blobset") == tmp_path / "blobs" / "blob.bin"
    (tmp_path / "blobs" / "blob.bin").unlink()
    (tmp_path / "blob.bin").write_bytes(PAYLOAD)
    assert locate(FILE, tmp_path, dataset="blobset") == tmp_path / "blob.bin"


def test_plain_remote_file_uses_dataset_name_as_folder(tmp_path):
    plain = RemoteFile("blob.bin", None, sha(PAYLOAD))
    (tmp_path / "blobset").mkdir()
    (tmp_path / "blobset" / "blob.bin").write_bytes(PAYLOAD)
    assert locate(plain, tmp_path, dataset="blobset") == tmp_path / "blobset" / "blob.bin"


def test_checksum_mismatch_names_file_and_says_what_to_do(tmp_path):
    (tmp_path / "blob.bin").write_bytes(b"tampered")
    with pytest.raises(ChecksumError) as err:
        locate(FILE, tmp_path, dataset="blobset")
    msg = str(err.value)
    assert str(tmp_path / "blob.bin") in msg and "delete it" in msg and FILE.sha256 in msg
    assert "\n" not in msg


def test_location30_with_wrong_archive_fails_checksum(tmp_path):
    (tmp_path / "location30").mkdir()
    (tmp_path / "location30" / "dataset_location.tgz").write_bytes(tgz({"bangkok": b'"1",0,1\n'}))
    with pytest.raises(ChecksumError, match="dataset_location.tgz"):
        load_dataset("location30", tmp_path)


def test_missing_file_offline_gives_one_line(tmp_path):
    with pytest.raises(DataMissingError) as err:
        load_dataset("location30", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("location30 needs dataset_location.tgz: place it in ")
    assert str(tmp_path / "location30") in msg
    assert LOCATION_FILE.url in msg and "network disabled in tests" in msg


def test_download_false_never_downloads(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(files, "download_file", lambda url, dest: calls.append(url))
    with pytest.raises(DataMissingError, match="allow downloads"):
        fetch_dataset("location30", tmp_path, download=False)
    assert calls == []


def test_file_without_url_says_so(tmp_path):
    with pytest.raises(DataMissingError, match="no public download address"):
        locate(RemoteFile("local-only.bin", None, None), tmp_path, dataset="x")


def test_download_is_verified_and_moved_into_place(tmp_path, monkeypatch):
    def fake_download(url: str, dest: Path) -> None:
        assert url == FILE.url and dest.parent == tmp_path / "blobs" and dest.name != FILE.name
        dest.write_bytes(PAYLOAD)

    monkeypatch.setattr(files, "download_file", fake_download)
    path = locate(FILE, tmp_path, dataset="blobset")
    assert path == tmp_path / "blobs" / "blob.bin" and path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in path.parent.iterdir()) == ["blob.bin"]  # no temporary left behind


def test_corrupt_download_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "download_file", lambda url, dest: dest.write_bytes(b"garbage"))
    with pytest.raises(ChecksumError, match="download"):
        locate(FILE, tmp_path, dataset="blobset")
    assert not (tmp_path / "blobs").exists() or list((tmp_path / "blobs").iterdir()) == []


def test_failed_downloads_are_gathered_in_one_message(tmp_path):
    other = DataFile("other.bin", "https://example.invalid/other.bin", None, folder="blobs")
    with pytest.raises(DataMissingError) as err:
        locate_all([FILE, other], tmp_path, dataset="blobset")
    msg = str(err.value)
    assert "blob.bin and other.bin" in msg and "place them in" in msg and "\n" not in msg


def test_alternative_form_is_used_and_checked(tmp_path):
    alt_payload = b"same data, other form"
    f = DataFile(
        "a.tar.gz",
        "https://example.invalid/a.tar.gz",
        sha(PAYLOAD),
        folder="s",
        alternatives=(RemoteFile("a.folder", None, None), RemoteFile("a.jpeg.tgz", None, sha(alt_payload))),
    )
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "a.jpeg.tgz").write_bytes(alt_payload)
    assert locate(f, tmp_path, dataset="s").name == "a.jpeg.tgz"
    (tmp_path / "s" / "a.jpeg.tgz").write_bytes(b"wrong")
    with pytest.raises(ChecksumError):
        locate(f, tmp_path, dataset="s")
    (tmp_path / "s" / "a.folder").mkdir()  # earlier alternatives win
    assert locate(f, tmp_path, dataset="s").name == "a.folder"


def test_checksums_are_cached_until_the_file_changes(tmp_path, monkeypatch):
    (tmp_path / "blob.bin").write_bytes(PAYLOAD)
    hashed = []
    real = files.sha256_file
    monkeypatch.setattr(files, "sha256_file", lambda p: hashed.append(p) or real(p))
    locate(FILE, tmp_path, dataset="blobset")
    locate(FILE, tmp_path, dataset="blobset")
    assert len(hashed) == 1
    (tmp_path / "blob.bin").write_bytes(b"different length!")
    with pytest.raises(ChecksumError):
        locate(FILE, tmp_path, dataset="blobset")
    assert len(hashed) == 2


def test_verify_dataset_reports_each_file(tmp_path):
    reports = verify_dataset("location30", tmp_path)
    assert [(r.name, r.status, r.ok) for r in reports] == [("dataset_location.tgz", "missing", False)]
    (tmp_path / "dataset_location.tgz").write_bytes(b"not it")
    (report,) = verify_dataset("location30", tmp_path)
    assert report.status == "mismatch" and report.actual == sha(b"not it") and "MISMATCH" in str(report)
    (tmp_path / "dataset_purchase.tgz").write_bytes(b"anything")
    (report,) = verify_dataset("purchase100", tmp_path)
    assert report.status == "unverified" and report.ok
    assert verify_dataset("digits", tmp_path) == []


def test_folder_forms_count_only_in_the_data_sets_subfolder(tmp_path):
    f = DataFile("a.tar.gz", None, None, folder="s", alternatives=(RemoteFile("train", None, None),))
    (tmp_path / "train").mkdir()  # some other data set's folder at the top level
    with pytest.raises(DataMissingError):
        locate(f, tmp_path, dataset="s")
    (tmp_path / "s" / "train").mkdir(parents=True)
    assert locate(f, tmp_path, dataset="s") == tmp_path / "s" / "train"
