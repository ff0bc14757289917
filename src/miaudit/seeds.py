"""Named random streams: every seeded draw outside model training comes from here.

A stream is named after what it draws (``"split"``, ``"shadow/halves"``, ...) and derived from the
run's one seed, so two draws never share a stream by accident and a reader can find every source
of randomness in one table. The numbers behind each name are the tags the first versions of
miaudit used inline, kept so that every published figure still reproduces to the digit; new
streams use :func:`miaudit.models.seeding.derive_seed` (a hash of the name).

Model training (initial weights, batch order) has its own hashed streams in
:mod:`miaudit.models.seeding`.
"""

from __future__ import annotations

import numpy as np

from miaudit.errors import ConfigError

# name -> the tag appended to the seed's entropy (np.random.SeedSequence([seed, *extra, tag])).
STREAM_TAGS: dict[str, int] = {
    "split": 0x5EED,  # data/split.py: the four parts of a data set
    "known-members": 0x4B0E,  # members the attacker knows (partial training-set knowledge)
    "evaluation-order": 0xE7A1,  # the order the evaluated records are scored in
    "shadow/halves": 0x5AD0,  # paired complementary halves of the attacker's pool
    "shadow/seeds": 0x5EED5,  # the shadow models' own seeds
    "references/seeds": 0x0EF5,  # online reference models' seeds
    "tuning/stand-in-target": 0xA11A,  # attacks/tuning.py: the stand-in target's scored non-members (was offline RMIA's choice of a)
    "ml-leaks-3/queries": 0x3D1E5,  # ML-Leaks adversary 3's random reference queries
    "study/classes": 0xC1A5,  # which classes the number-of-classes study keeps
    "many-targets/subset": 0x3A7,  # the records and model seeds of the many-target protocol
    "many-targets/order": 0x7E5,  # the order of each target's references
    "auditing/split": 0xB0D5,  # auditing/base.py: the selection and reporting halves of an epsilon bound's scores
    "text/split": 0x7E575,  # text/corpus.py: members, non-members, pool and public text of a corpus
    "text/blind-folds": 0xB11D,  # text/blind.py: the blind baseline's cross-fitting folds
    "text/references": 0x7EF5,  # text/reference_lms.py: reference LMs' halves, IN masks and seeds
}
# Streams laid out tag first (np.random.SeedSequence([tag, *extra])): they depend on no seed.
TAG_FIRST: dict[str, int] = {"study/subsample": 0x57D1}
# name -> offset added to the seed (a distinct seed for a distinct party or model family).
SEED_OFFSETS: dict[str, int] = {
    "attacker": 1,  # the attacker's randomness is not the target's
    "references": 7919,  # online references: other halves and initialisations than the shadows'
    "memguard/defender": 7919,  # MemGuard's defender classifier, times (its seed parameter + 1)
}


SEED_MAX = 2**32 - 1
"""The largest seed a user may give: seeds are numpy ``SeedSequence`` entropy (non-negative)
and stay within 32 bits so that every derived seed (``seed + offset``) is a valid seed too."""


def check_user_seed(seed: object, what: str = "seed") -> int:
    """``seed`` as an int if it lies in [0, :data:`SEED_MAX`]; a one-line ConfigError otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(f"{what} must be a whole number in [0, {SEED_MAX}], got {seed!r}")
    if not 0 <= int(seed) <= SEED_MAX:
        raise ConfigError(f"{what} must lie in [0, {SEED_MAX}] (2**32 - 1), got {seed}")
    return int(seed)


def _known(name: str, table: dict[str, int]) -> int:
    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown random stream {name!r}; known: {', '.join(sorted(table))}") from None


def stream_rng(seed: int, name: str, *extra: int) -> np.random.Generator:
    """The numpy generator of stream ``name`` for ``seed`` (``extra`` ints refine it, e.g. a target index)."""
    if name in TAG_FIRST:
        return np.random.default_rng(np.random.SeedSequence([TAG_FIRST[name], seed, *extra]))
    return np.random.default_rng(np.random.SeedSequence([seed, *extra, _known(name, STREAM_TAGS)]))


def offset_seed(seed: int, name: str, times: int = 1) -> int:
    """``seed`` moved to the party or model family ``name`` (``times`` multiplies the offset)."""
    return int(seed) + _known(name, SEED_OFFSETS) * int(times)
