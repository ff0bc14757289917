"""What a causal language model says about one document, token by token (no torch needed).

Text attacks read only these numbers, so they run on statistics computed once, here or elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.errors import InputError


@dataclass(frozen=True)
class TokenStats:
    """Per predicted token of one document (positions 1..n-1 of its n tokens), float64, nats.

    ``logprob``: log p(x_t | x_<t) of the actual token; ``mean`` and ``var``: the mean and the
    variance of log p(v) under the model's own next-token distribution at that position
    (mean = sum_v p(v) log p(v), the negative entropy), which min-k%++ normalises by.
    ``n_tokens``: the document's token count after truncation to the model's context.
    ``token_ids``: the ids of the predicted tokens (int64, aligned with ``logprob``), which
    DC-PDD looks up in a token-frequency table; ``None`` where the statistics came without them.
    """

    logprob: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    n_tokens: int
    token_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        arrays = (self.logprob, self.mean, self.var)
        if any(a.ndim != 1 or a.dtype != np.float64 for a in arrays):
            raise InputError("token statistics must be 1-D float64 arrays; compute them with token_statistics")
        ids = self.token_ids
        if ids is not None and (not isinstance(ids, np.ndarray) or ids.ndim != 1 or ids.dtype != np.int64 or len(ids) != len(self.logprob) or (ids < 0).any()):
            raise InputError("token_ids must be a 1-D int64 array of non-negative ids, one per predicted token (as logprob)")
        if not len(self.logprob) == len(self.mean) == len(self.var) == self.n_tokens - 1:
            raise InputError(
                f"token statistics of a {self.n_tokens}-token document need {self.n_tokens - 1} entries each, "
                f"got {len(self.logprob)}, {len(self.mean)}, {len(self.var)}"
            )
        if self.n_tokens < 2:
            raise InputError("a document needs at least 2 tokens to have a predicted token; drop shorter ones")

    @classmethod
    def of(cls, logprob: object, mean: object, var: object, token_ids: object = None) -> "TokenStats":
        """Statistics from three (four, with ``token_ids``) equal-length sequences (the token
        count is their length + 1)."""
        lp, mu, v = (np.asarray(a, dtype=np.float64) for a in (logprob, mean, var))
        ids = None if token_ids is None else np.asarray(token_ids, dtype=np.int64)
        return cls(lp, mu, v, len(lp) + 1, ids)
