"""Box statistics and strata on hand-built cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detprune.dataset import ImageRecord, assign_strata, box_statistics


def rec(classes, boxes, w=100, h=100):
    return ImageRecord(Path("/x.jpg"), None, w, h, np.array(classes), np.array(boxes, dtype=float).reshape(-1, 4))


def test_box_statistics_buckets_in_pixels():
    records = [
        # 20x20 px small, 50x50 medium, 100x100 large (in a 1000x1000 image: x10)
        rec([0, 1, 1], [[0.5, 0.5, 0.02, 0.02], [0.5, 0.5, 0.05, 0.05], [0.5, 0.5, 0.1, 0.2]], 1000, 1000),
        rec([], []),
        rec([2], [[0.5, 0.5, 0.5, 0.25]], 64, 64),  # 32x16 px = 512 -> small
    ]
    bs = box_statistics(records, 3)
    assert bs.class_counts.tolist() == [[1, 2, 0], [0, 0, 0], [0, 0, 1]]
    assert bs.size_counts.tolist() == [[1, 1, 1], [0, 0, 0], [1, 0, 0]]
    assert bs.box_counts.tolist() == [3, 0, 1]
    assert bs.log_aspect_mean[2] == pytest.approx(np.log(2))
    f = bs.features()
    assert f.shape == (3, 3 + 5)
    assert f[0, :3].tolist() == pytest.approx([1 / 3, 2 / 3, 0])
    assert f[1].tolist() == [0] * 8


def presence(rows, c=4):
    p = np.zeros((len(rows), c), bool)
    for i, r in enumerate(rows):
        p[i, list(r)] = True
    return p


def test_strata_are_class_sets_with_background():
    rows = [{0}] * 3 + [{1}] * 3 + [{0, 1}] * 3 + [set()] * 2
    st = assign_strata(presence(rows), "abcd", min_size=1)
    assert st.names == ("a", "b", "a+b", "background")
    assert st.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]


def test_tiny_multi_class_stratum_merges_dropping_most_common_class():
    # class 0 is the most common; {0, 3} is tiny -> joins {3}
    rows = [{0}] * 10 + [{3}] * 10 + [{0, 3}] * 2 + [{0, 1}] * 10
    st = assign_strata(presence(rows), "abcd", min_size=5)
    sizes = st.sizes()
    assert sizes == {"a": 10, "d": 12, "a+b": 10}
    assert st.labels[20] == st.labels[10]


def test_tiny_single_class_joins_largest_superset_and_background_stays():
    rows = [{2}] * 2 + [{1, 2}] * 6 + [{0, 2}] * 9 + [set()]
    st = assign_strata(presence(rows), "abcd", min_size=5)
    assert st.sizes() == {"a+c": 11, "b+c": 6, "background": 1}


def test_strata_merge_chain_and_determinism():
    rng = np.random.default_rng(0)
    p = rng.random((300, 6)) < np.array([0.6, 0.3, 0.1, 0.05, 0.02, 0.3])
    a = assign_strata(p, "abcdef", min_size=8)
    b = assign_strata(p.copy(), "abcdef", min_size=8)
    assert a.names == b.names and np.array_equal(a.labels, b.labels)
    sizes = np.bincount(a.labels)
    multi = [i for i, k in enumerate(a.keys) if len(k) > 1]
    assert all(sizes[i] >= 8 for i in multi)
    assert sizes.sum() == 300


def test_merging_never_cycles():
    # {ring} is tiny and joins {circle, ring}, which is tiny too and would drop circle
    # and fall back into {ring}: this must terminate with one stratum for both.
    rows = [{3}] * 2 + [{0, 3}] * 3 + [{0}] * 20 + [{0, 1}] * 20
    st = assign_strata(presence(rows), "abcd", min_size=10)
    assert st.labels[0] == st.labels[2]
    assert sum(st.sizes().values()) == len(rows)


def test_merging_terminates_on_random_presence():
    rng = np.random.default_rng(1)
    for trial in range(30):
        p = rng.random((int(rng.integers(5, 80)), 5)) < rng.random(5)
        st = assign_strata(p, "abcde", min_size=int(rng.integers(2, 30)))
        assert len(st.labels) == len(p), trial
