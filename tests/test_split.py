import numpy as np
import pytest

from miaudit.data.split import SplitSizes, evaluation_records, make_split
from miaudit.errors import ConfigError


def test_parts_are_disjoint_and_cover_with_population():
    s = make_split(1000, SplitSizes(0.2, 0.2, 0.3), seed=3)
    parts = s.parts()
    assert s.sizes() == {"target_in": 200, "target_out": 200, "attacker_pool": 300, "population": 300}
    union = np.concatenate(list(parts.values()))
    assert len(np.unique(union)) == len(union) == 1000


def test_counts_and_fractions_mix():
    s = make_split(500, SplitSizes(100, 0.1, 50, population=20), seed=0)
    assert s.sizes() == {"target_in": 100, "target_out": 50, "attacker_pool": 50, "population": 20}


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = (make_split(300, seed=s) for s in (1, 1, 2))
    assert all(np.array_equal(x, y) for x, y in zip(a.parts().values(), b.parts().values()))
    assert not np.array_equal(a.target_in, c.target_in)


@pytest.mark.parametrize(
    "sizes",
    [SplitSizes(600, 600, 0), SplitSizes(0.7, 0.7, 0.0), SplitSizes(-1, 10, 10), SplitSizes(0, 10, 10), SplitSizes(1.5, 0.1, 0.1)],
)
def test_impossible_sizes_raise_config_error(sizes):
    with pytest.raises(ConfigError):
        make_split(1000, sizes, seed=0)


def test_evaluation_records_are_shuffled_and_truth_matches_split():
    s = make_split(400, seed=5)
    idx, truth = evaluation_records(s, seed=5)
    assert set(idx[truth]) == set(s.target_in) and set(idx[~truth]) == set(s.target_out)
    # members must not all come first: order would leak membership
    assert not truth[: len(s.target_in)].all()
