"""Text documents, corpora and splits (miaudit.text.corpus) and the blind baseline (miaudit.text.blind)."""

from __future__ import annotations

import os

import pytest

from miaudit.errors import ConfigError, InputError
from miaudit.text.blind import NO_SIGNAL, SIGNAL, blind_baseline
from miaudit.text.corpus import (
    FORTUNES_DIR,
    MAX_CHARS,
    MIN_CHARS,
    TEXT_CORPORA,
    clean_corpus,
    load_corpus_with_sources,
    read_documents,
    split_documents,
)

needs_fortunes = pytest.mark.skipif(not FORTUNES_DIR.is_dir(), reason="the Debian package 'fortunes' is not installed (apt-get install fortunes)")


# ----------------------------------------------------------------------------- read_documents


def test_reads_lines_and_jsonl(tmp_path):
    txt = tmp_path / "docs.txt"
    txt.write_text("\ufefffirst document\n\n  \nsecond one\r\nthird, no newline", encoding="utf-8")
    assert read_documents(txt) == ["first document", "second one", "third, no newline"]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"text": "ein Dokument \\u00e9", "id": 1}\n\n{"text": "   "}\n{"text": "two"}\n', encoding="utf-8")
    assert read_documents(jsonl) == ["ein Dokument é", "two"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.txt", b"fine\nnot \xff utf-8\n", "line 2 is not UTF-8"),
        ("bad.jsonl", b'{"text": "ok"}\n{"text": oops}\n', "line 2 is not valid JSON"),
        ("nofield.jsonl", b'{"text": "ok"}\n{"body": "x"}\n', 'line 2 holds a JSON object without a "text" field'),
        ("number.jsonl", b'{"text": 3}\n', 'line 1 holds a "text" that is a JSON number, not a string'),
        ("list.jsonl", b'["text"]\n', "line 1 holds a JSON array, not an object"),
        ("deep.jsonl", b"[" * 100 + b"]" * 100 + b"\n", "nesting depth"),
        ("blank.txt", b"\n  \n\n", "holds no documents"),
        ("empty.jsonl", b"", "holds no documents"),
        ("docs.csv", b"a,b\n", "neither .txt nor .jsonl"),
        ("long.txt", b"x" * ((1 << 20) + 10), "longer than 1 MiB"),
    ],
)
def test_hostile_files_are_one_line_input_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_documents(path)
    assert "\n" not in str(info.value)


def test_huge_absent_and_special_files_are_refused_before_reading(tmp_path):
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:
        f.truncate(300 << 20)  # 300 MiB of holes: no disk used, nothing should be read
    with pytest.raises(InputError, match="above the 256 MiB"):
        read_documents(path)
    with pytest.raises(InputError, match="does not exist"):
        read_documents(tmp_path / "absent.txt")
    with pytest.raises(InputError, match="is a folder"):
        read_documents(tmp_path)
    os.mkfifo(tmp_path / "fifo.txt")  # reading a FIFO would block forever
    with pytest.raises(InputError, match="not a regular file"):
        read_documents(tmp_path / "fifo.txt")


# ----------------------------------------------------------------------------- corpora


def test_clean_corpus_normalises_filters_and_deduplicates():
    corpus = clean_corpus(["a  b\n c" * 5, "short", "a b c" * 5, "x" * (MAX_CHARS + 1)], ["s1", "s2", "s3", "s4"])
    assert corpus.documents == ("a b ca b ca b ca b ca b c",) and corpus.sources == ("s1",)


@needs_fortunes
def test_fortunes_loads_deduplicated_within_the_length_filter():
    docs, sources = load_corpus_with_sources("fortunes")
    assert "fortunes" in TEXT_CORPORA
    assert len(docs) > 10_000 and len(docs) == len(set(docs)) == len(sources)
    assert all(MIN_CHARS <= len(d) <= MAX_CHARS and d == " ".join(d.split()) for d in docs)
    assert {"computers", "science", "startrek"} <= set(sources) and not any(s.endswith((".dat", ".u8")) for s in sources)


def test_missing_fortunes_package_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr("miaudit.text.corpus.FORTUNES_DIR", tmp_path / "none")
    with pytest.raises(ConfigError, match="apt-get install fortunes"):
        load_corpus_with_sources("fortunes")


def test_fortunes_from_data_dir(tmp_path):
    (tmp_path / "fortunes").mkdir()
    (tmp_path / "fortunes" / "tiny").write_text("A first fortune, long enough.\n%\nA second   fortune,\nover two lines.\n%\n")
    (tmp_path / "fortunes" / "tiny.dat").write_bytes(b"\x00\x01")
    docs, sources = load_corpus_with_sources("fortunes", tmp_path)
    assert docs == ["A first fortune, long enough.", "A second fortune, over two lines."] and sources == ["tiny", "tiny"]


# ----------------------------------------------------------------------------- splits

DOCS = [f"document number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(200)]
SOURCES = [f"source{i % 8}" for i in range(200)]
SIZES = {"members": 40, "nonmembers": 30, "pool": 50, "public": 60}


@pytest.mark.parametrize("shift", [None, "source"])
def test_splits_are_disjoint_sized_and_reproducible(shift):
    split = split_documents(DOCS, **SIZES, seed=3, sources=SOURCES, shift=shift)
    parts = [split.members, split.nonmembers, split.pool, split.public]
    assert [len(p) for p in parts] == list(SIZES.values())
    assert len(set().union(*parts)) == sum(SIZES.values())
    assert split == split_documents(DOCS, **SIZES, seed=3, sources=SOURCES, shift=shift)
    assert split.members != split_documents(DOCS, **SIZES, seed=4, sources=SOURCES, shift=shift).members
    if shift is None:
        assert split.how == "iid"
    else:
        source = dict(zip(DOCS, SOURCES))
        assert split.how.startswith("shifted:")
        assert not {source[d] for d in split.members} & {source[d] for d in split.nonmembers}


def test_split_sizes_and_inputs_are_checked():
    with pytest.raises(ConfigError, match="asks for 300 documents .* but there are 200"):
        split_documents(DOCS, members=100, nonmembers=100, pool=100, public=0, seed=0)
    with pytest.raises(ConfigError, match="members=0"):
        split_documents(DOCS, members=0, nonmembers=10, pool=0, public=0, seed=0)
    with pytest.raises(InputError, match="1 documents appear more than once"):
        split_documents(DOCS + DOCS[:1], members=10, nonmembers=10, pool=0, public=0, seed=0)
    with pytest.raises(ConfigError, match="needs one source per document"):
        split_documents(DOCS, members=10, nonmembers=10, pool=0, public=0, seed=0, shift="source")
    with pytest.raises(ConfigError, match="cannot hold"):
        split_documents(DOCS, members=160, nonmembers=40, pool=0, public=0, seed=0, sources=SOURCES, shift="source")
    with pytest.raises(ConfigError, match="unknown shift"):
        split_documents(DOCS, members=10, nonmembers=10, pool=0, public=0, seed=0, shift="date")


# ----------------------------------------------------------------------------- the blind baseline


@needs_fortunes
def test_blind_baseline_sees_a_shifted_split_and_not_an_iid_one():
    docs, sources = load_corpus_with_sources("fortunes")
    sizes = {"members": 300, "nonmembers": 300, "pool": 0, "public": 0}
    iid = split_documents(docs, **sizes, seed=0)
    shifted = split_documents(docs, **sizes, seed=0, sources=sources, shift="source")
    same = blind_baseline(iid.members, iid.nonmembers, permutations=20)
    differ = blind_baseline(shifted.members, shifted.nonmembers, permutations=20)
    print(f"\nblind baseline AUC, 300 per side: iid {same.auc:.3f} (tolerance {same.tolerance:.3f}), {shifted.how}: {differ.auc:.3f}")
    assert abs(same.auc - 0.5) <= same.tolerance and same.verdict == NO_SIGNAL
    assert differ.auc > 0.8 and differ.verdict == SIGNAL
    assert same.scores.shape == (600,) and 0.03 < same.tolerance < 0.15


def test_blind_baseline_checks_its_options():
    with pytest.raises(ConfigError, match="folds >= 2"):
        blind_baseline(["a"] * 5, ["b"] * 5, folds=1)
    with pytest.raises(ConfigError, match="at least 5 members"):
        blind_baseline(["a"] * 3, ["b"] * 5)
