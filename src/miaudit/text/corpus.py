"""Text records for language-model audits: a user's documents, built-in corpora and the split.

A document is one string, the unit of membership (one record of the survey's threat model).
:func:`read_documents` reads a user's file within the bounds below; :data:`TEXT_CORPORA` holds
corpora that need no network; :func:`split_documents` cuts documents into the four disjoint
parts of an audit, i.i.d. or, on purpose, shifted by source (to check the blind baseline of
:mod:`miaudit.text.blind`, which must flag such a split).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miaudit.bounded_io import parse_json, regular_file
from miaudit.errors import ConfigError, InputError, MiauditError
from miaudit.limits import MIB, check_at_most
from miaudit.registry import Registry
from miaudit.seeds import check_user_seed, stream_rng

TEXT_FILE_BYTES = 256 * MIB
"""The largest documents file read (its documents are held as Python strings, 1-4 bytes a character)."""
DOCUMENT_BYTES = 1 * MIB
"""The longest line of a documents file: one document, or one JSONL record, in bytes."""
_SUFFIXES = (".txt", ".jsonl")
_HOW = "give a UTF-8 .txt file (one document per line) or a .jsonl file (one JSON object per line with a string field \"text\")"


# ----------------------------------------------------------------------------- a user's documents


def read_documents(path: str | os.PathLike[str], *, max_bytes: int = TEXT_FILE_BYTES) -> list[str]:
    """The documents of a ``.txt`` (one per line) or ``.jsonl`` (field ``text``) file, in order.

    Blank lines (and JSONL records whose text is blank) are skipped; a ``.txt`` line loses only
    its line ending. The file is read a line at a time, each line at most :data:`DOCUMENT_BYTES`,
    the file at most ``max_bytes``, the documents at most the ``records`` limit. Every failure is
    a one-line :class:`InputError` saying what to do; nothing is evaluated or unpickled.
    """
    p = _checked_file(path, max_bytes)
    jsonl = p.suffix.lower() == ".jsonl"
    docs: list[str] = []
    try:
        with p.open("rb") as f:
            for number, raw in enumerate(iter(lambda: f.readline(DOCUMENT_BYTES + 1), b""), 1):
                if len(raw) > DOCUMENT_BYTES:
                    raise InputError(f"{p.name}: line {number} is longer than {DOCUMENT_BYTES >> 20} MiB; split it into shorter documents")
                line = _decode(raw, p.name, number)
                text = _record_text(line, p.name, number) if jsonl and line.strip() else line.rstrip("\r\n")
                if text.strip():
                    docs.append(text)
                    _check_count(len(docs), p.name)
    except OSError as exc:
        raise InputError(f"{p.name} cannot be read ({exc.strerror or exc}); check the file") from None
    if not docs:
        raise InputError(f"{p.name} holds no documents (only blank lines); {_HOW}")
    return docs


def _checked_file(path: str | os.PathLike[str], max_bytes: int) -> Path:
    try:
        p = regular_file(path, "documents file")
    except MiauditError as exc:  # missing, a folder, a FIFO, past file_bytes: one type for every failure
        raise InputError(str(exc)) from None
    if p.suffix.lower() not in _SUFFIXES:
        raise InputError(f"{p.name} is neither .txt nor .jsonl; {_HOW}")
    size = p.stat().st_size
    if size > max_bytes:
        raise InputError(f"{p.name} is {size / MIB:.1f} MiB, above the {max_bytes / MIB:.0f} MiB a documents file may hold; split it or pass max_bytes")
    return p


def _decode(raw: bytes, name: str, number: int) -> str:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: line {number} is not UTF-8 (byte {exc.start + 1} of the line); save the file as UTF-8") from None
    return line.removeprefix("\ufeff") if number == 1 else line


_JSON_TYPES = {list: "array", dict: "object", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _record_text(line: str, name: str, number: int) -> str:
    try:
        record = parse_json(line, f"{name} line {number}")
    except MiauditError as exc:
        raise InputError(f"{exc}; {_HOW}") from None
    if not isinstance(record, dict):
        found = f"a JSON {_JSON_TYPES.get(type(record), 'value')}, not an object"
    elif "text" not in record:
        found = 'a JSON object without a "text" field'
    elif not isinstance(record["text"], str):
        found = f'a "text" that is a JSON {_JSON_TYPES.get(type(record["text"]), "value")}, not a string'
    else:
        return record["text"]
    raise InputError(f"{name}: line {number} holds {found}; {_HOW}")


def _check_count(count: int, name: str) -> None:
    try:
        check_at_most("records", count, f"{name}'s documents")
    except MiauditError as exc:
        raise InputError(str(exc)) from None


# ----------------------------------------------------------------------------- built-in corpora


@dataclass(frozen=True)
class Corpus:
    """Documents and, for each, the source it came from (a file, a category)."""

    documents: tuple[str, ...]
    sources: tuple[str, ...]


TEXT_CORPORA: Registry[Callable[[Path | None], Corpus]] = Registry("text corpus")
"""name -> ``loader(data_dir)``: a :class:`Corpus` read from local files, no network."""

# Documents shorter than 20 characters are a few tokens ("Q: Why? A: Yes."), whose loss says more
# about the tokenizer than about memorisation; longer than 1000 they pass the context of the
# small models trained here (256 tokens) and one of them would weigh like dozens of others.
MIN_CHARS, MAX_CHARS = 20, 1000
FORTUNES_DIR = Path("/usr/share/games/fortunes")


def normalise(text: str) -> str:
    """``text`` with every run of whitespace (line breaks, tabs, indentation) one space."""
    return " ".join(text.split())


def clean_corpus(documents: Sequence[str], sources: Sequence[str]) -> Corpus:
    """Whitespace-normalised, length-filtered (:data:`MIN_CHARS`..:data:`MAX_CHARS`) documents,
    each kept once (its first occurrence and source): a text in two parts of a split would be
    a member and a non-member at once."""
    seen: dict[str, str] = {}
    for doc, source in zip(documents, sources, strict=True):
        text = normalise(doc)
        if MIN_CHARS <= len(text) <= MAX_CHARS and text not in seen:
            seen[text] = source
    return Corpus(tuple(seen), tuple(seen.values()))


@TEXT_CORPORA.register("fortunes")
def fortunes(data_dir: Path | None = None) -> Corpus:
    """The Debian package ``fortunes``: about 15,000 quips, quotations and poems in ~45 files
    (art, computers, science, ...), records separated by lines holding only ``%``; the file
    name is the source. ``<data_dir>/fortunes/`` is read instead when it exists."""
    folder = data_dir / "fortunes" if data_dir is not None and (data_dir / "fortunes").is_dir() else FORTUNES_DIR
    files = sorted(f for f in folder.glob("*") if f.is_file() and not f.is_symlink() and f.suffix not in (".dat", ".u8"))
    if not files:
        raise ConfigError(f"the fortunes corpus needs the Debian package 'fortunes' (no files in {folder}); install it with: apt-get install fortunes")
    documents: list[str] = []
    sources: list[str] = []
    for f in files:
        records = f.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n").split("\n%\n")
        documents += records
        sources += [f.name] * len(records)
    return clean_corpus(documents, sources)


def load_corpus_with_sources(name: str, data_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """The documents of corpus ``name`` and each one's source."""
    corpus = TEXT_CORPORA.get(name)(data_dir)
    return list(corpus.documents), list(corpus.sources)


def load_corpus(name: str, data_dir: Path | None = None) -> list[str]:
    """The documents of corpus ``name`` (deduplicated, normalised, length-filtered)."""
    return load_corpus_with_sources(name, data_dir)[0]


# ----------------------------------------------------------------------------- the split


@dataclass(frozen=True)
class TextSplit:
    """The four disjoint parts of a text audit.

    ``members`` (in the target's training set) and ``nonmembers`` are the evaluated records;
    ``pool`` is the attacker's own text (reference models, calibration); ``public`` is text for
    pre-training and the tokenizer, which neither side's scores may depend on. ``how`` is
    ``"iid"`` or ``"shifted:<description>"``.
    """

    members: tuple[str, ...]
    nonmembers: tuple[str, ...]
    pool: tuple[str, ...]
    public: tuple[str, ...]
    seed: int
    how: str


def split_documents(
    docs: Sequence[str],
    *,
    members: int,
    nonmembers: int,
    pool: int,
    public: int,
    seed: int,
    sources: Sequence[str] | None = None,
    shift: str | None = None,
) -> TextSplit:
    """Draw the parts of a :class:`TextSplit` from distinct ``docs`` (stream ``text/split``).

    By default every part is an i.i.d. sample. ``shift="source"`` (needs ``sources``) puts
    members and non-members in different sources on purpose: the sources, in a seeded order,
    go to the members until they hold enough documents, the next ones to the non-members; pool
    and public text are drawn from every document left. Such a split is how a blind baseline
    is shown to work, never an audit.
    """
    seed = check_user_seed(seed)
    sizes = {"members": members, "nonmembers": nonmembers, "pool": pool, "public": public}
    for name, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < (1 if name in ("members", "nonmembers") else 0):
            raise ConfigError(f"split size {name}={size!r} must be a whole number, at least {1 if name in ('members', 'nonmembers') else 0}")
    asked = sum(sizes.values())
    if asked > len(docs):
        raise ConfigError(f"the split asks for {asked:,} documents ({', '.join(f'{k}={v:,}' for k, v in sizes.items())}) but there are {len(docs):,}; ask for fewer")
    repeated = len(docs) - len(set(docs))
    if repeated:
        raise InputError(f"{repeated:,} documents appear more than once, so a text could be a member and a non-member; deduplicate them (e.g. with clean_corpus)")
    rng = stream_rng(seed, "text/split")
    if shift is None:
        order = rng.permutation(len(docs))
        how = "iid"
    elif shift == "source":
        order, how = _shifted_order(docs, sources, members, nonmembers, rng)
    else:
        raise ConfigError(f"unknown shift {shift!r}; use None (i.i.d.) or 'source'")
    cuts = np.cumsum([members, nonmembers, pool, public])
    parts = np.split(order[: cuts[-1]], cuts[:-1])
    return TextSplit(*(tuple(docs[i] for i in part) for part in parts), seed=seed, how=how)


def _shifted_order(docs: Sequence[str], sources: Sequence[str] | None, members: int, nonmembers: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Indices whose first ``members`` come from some sources and next ``nonmembers`` from others."""
    if sources is None or len(sources) != len(docs):
        raise ConfigError("shift='source' needs one source per document (load_corpus_with_sources gives them)")
    labels = np.asarray(sources, dtype=object)
    names = sorted(set(sources))
    sides: tuple[list[str], list[str]] = ([], [])
    held = [0, 0]
    for name in (names[i] for i in rng.permutation(len(names))):
        side = 0 if held[0] < members else 1
        if side == 1 and held[1] >= nonmembers:
            break
        sides[side].append(name)
        held[side] += int(np.sum(labels == name))
    if held[0] < members or held[1] < nonmembers:
        raise ConfigError(f"the {len(names)} sources cannot hold {members:,} members and {nonmembers:,} non-members in different sources; ask for fewer")
    picked = [rng.permutation(np.flatnonzero(np.isin(labels, side)))[:size] for side, size in zip(sides, (members, nonmembers))]
    rest = np.setdiff1d(np.arange(len(docs)), np.concatenate(picked))
    order = np.concatenate([*picked, rng.permutation(rest)])
    return order, f"shifted:members from {', '.join(sorted(sides[0]))}; non-members from {', '.join(sorted(sides[1]))}"
