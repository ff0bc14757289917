"""Documents for the text tests: fortunes where the system has them, else seeded synthetic text."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FORTUNES = Path("/usr/share/games/fortunes")


def fortunes(min_chars: int = 40, max_chars: int = 400) -> list[str]:
    """Distinct fortunes of ``min_chars``..``max_chars`` characters, in a fixed order ([] if absent)."""
    seen: dict[str, None] = {}
    for file in sorted(FORTUNES.glob("*")) if FORTUNES.is_dir() else []:
        if file.suffix or not file.is_file():  # .dat indexes, .u8 copies
            continue
        for doc in file.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            doc = doc.strip()
            if min_chars <= len(doc) <= max_chars:
                seen.setdefault(doc, None)
    return list(seen)


def synthetic(n: int, seed: int = 0) -> list[str]:
    """``n`` sentences of made-up words: each document is its own random draw."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, size=rng.integers(2, 8))) for _ in range(400)]
    return [" ".join(rng.choice(words, size=rng.integers(25, 45))).capitalize() + "." for _ in range(n)]


def documents(n: int, seed: int = 0, *, chars: int | None = None) -> list[str]:
    """``n`` distinct documents, shuffled by ``seed``: fortunes if there are enough, else synthetic.

    ``chars``: every document cut to exactly that many characters (longer ones only), so that
    length does not drive length-normalised scores such as zlib's.
    """
    docs = fortunes() if chars is None else list(dict.fromkeys(d[:chars] for d in fortunes(chars, 10**6)))
    if len(docs) < n:
        return [d if chars is None else d[:chars] for d in synthetic(n, seed)]
    order = np.random.default_rng(seed).permutation(len(docs))[:n]
    return [docs[i] for i in order]
