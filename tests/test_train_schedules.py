"""Dynamic data-reduction schedules: parsing, per-epoch fractions, per-epoch image sets."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from detprune.errors import ParameterError
from detprune.train.schedules import (
    DEFAULT_CUT_START,
    Schedule,
    epoch_size,
    fractions,
    images_for_epoch,
    parse_schedule,
)


@pytest.mark.parametrize(
    ("spec", "epochs", "expected"),
    [
        (None, 3, [1.0, 1.0, 1.0]),
        ("step:0.5@0.5", 4, [0.5, 0.5, 1.0, 1.0]),
        ("step:0.3@1", 3, [0.3, 0.3, 0.3]),
        ("step:0.2@0.5", 5, [0.2, 0.2, 0.2, 1.0, 1.0]),  # 2.5 epochs round half up -> 3
        ("step:0.2@0.1", 4, [0.2, 1.0, 1.0, 1.0]),  # at least one reduced epoch
        ("step:0.5@0.5", 1, [0.5]),
        ("increment:0.25", 4, [0.25, 0.5, 0.75, 1.0]),
        ("increment:0.5", 1, [0.5]),
        ("increment:1", 3, [1.0, 1.0, 1.0]),
        ("cut:2:0.5", 4, [0.5, 1.0, 0.5, 1.0]),
        ("cut:2:0.5", 5, [0.5, 0.75, 1.0, 0.5, 1.0]),  # first segment one epoch longer
        ("cut:1:0.25", 4, [0.25, 0.5, 0.75, 1.0]),  # = increment:0.25
        ("cut:3:0.4", 3, [0.4, 0.4, 0.4]),
        ("cut:2", 4, [DEFAULT_CUT_START, 1.0, DEFAULT_CUT_START, 1.0]),
        ("  STEP:0.5@0.5 ", 2, [0.5, 1.0]),
    ],
)
def test_fractions_hand_cases(spec, epochs, expected):
    assert fractions(spec, epochs) == pytest.approx(expected)


def test_parse_round_trip():
    s = parse_schedule("step:.25@0.5")
    assert s == Schedule("step", 0.25, portion=0.5)
    assert str(s) == "step:0.25@0.5"
    assert str(parse_schedule("cut:3")) == f"cut:3:{DEFAULT_CUT_START:g}"
    assert parse_schedule(s) is s
    assert fractions(s, 2) == fractions("step:0.25@0.5", 2)


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        ("step:0@0.5", "'step:F@P' with F a float in (0, 1]"),
        ("step:1.5@0.5", "'step:F@P' with F a float in (0, 1]"),
        ("step:0.5@0", "'step:F@P'"),
        ("step:0.5@2", "'step:F@P'"),
        ("step:0.5", "'step:F@P'"),
        ("step:0.5@10e", "'step:F@P'"),
        ("increment:0", "'increment:F' with F a float in (0, 1]"),
        ("increment:-0.2", "'increment:F'"),
        ("increment:nan", "'increment:F'"),
        ("cut:0", "'cut:K' or 'cut:K:F' with K an int >= 1"),
        ("cut:2:0", "'cut:K' or 'cut:K:F'"),
        ("cut:2.5", "'cut:K' or 'cut:K:F'"),
        ("drop:0.5", "one of 'step:F@P'"),
        ("", "one of 'step:F@P'"),
    ],
)
def test_bad_schedules_use_the_one_error_format(spec, expect):
    with pytest.raises(ParameterError) as info:
        parse_schedule(spec)
    msg = str(info.value)
    assert msg.startswith("The 'schedule' parameter of train must be ")
    assert expect in msg
    assert msg.endswith(f"Got {spec!r} instead.")


def test_non_string_schedule_and_bad_epochs():
    with pytest.raises(ParameterError, match=r"^The 'schedule' parameter of train must be one of"):
        parse_schedule(0.5)
    with pytest.raises(ParameterError) as info:
        fractions("increment:0.5", 0)
    assert str(info.value) == "The 'epochs' parameter of train must be an int >= 1. Got 0 instead."
    with pytest.raises(ParameterError, match=r"must be an int >= 1\. Got True instead"):
        fractions(None, True)
    with pytest.raises(ParameterError, match=r"'cut:K\[:F\]' with K <= epochs \(2\). Got 'cut:3:0.5'"):
        fractions("cut:3:0.5", 2)


@pytest.mark.parametrize(
    ("n", "f", "k"),
    [(10, 0.5, 5), (10, 0.25, 3), (10, 0.24, 2), (10, 0.01, 1), (10, 1.0, 10), (3, 0.5, 2), (0, 0.5, 0),
     (7, 1 / 7, 1)],
)
def test_epoch_size_rounds_half_up_and_keeps_one(n, f, k):
    assert epoch_size(n, f) == k


def test_random_subsets_are_seeded_by_seed_plus_epoch():
    a = images_for_epoch(100, 0.3, 2, seed=5)
    assert a.dtype == np.int64 and a.size == 30 and np.unique(a).size == 30
    assert np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 100
    assert np.array_equal(a, images_for_epoch(100, 0.3, 2, seed=5))
    assert np.array_equal(a, images_for_epoch(100, 0.3, 3, seed=4))  # seed + epoch, as the paper
    assert not np.array_equal(a, images_for_epoch(100, 0.3, 3, seed=5))
    expected = np.sort(np.random.default_rng(7).choice(100, 30, replace=False))
    assert np.array_equal(a, expected)
    assert np.array_equal(images_for_epoch(9, 1.0, 4, seed=1), np.arange(9))


def test_ordered_subsets_are_prefixes_of_the_pick_order():
    order = [4, 2, 0, 1, 3]
    assert images_for_epoch(5, 0.4, 0, order=order).tolist() == [4, 2]
    assert images_for_epoch(5, 0.6, 9, order=order, seed=3).tolist() == [4, 2, 0]
    assert images_for_epoch(5, 1.0, 0, order=order).tolist() == order
    # growing fractions keep the images already used
    sizes = [images_for_epoch(5, f, e, order=order) for e, f in enumerate(fractions("increment:0.2", 5))]
    for small, big in itertools.pairwise(sizes):
        assert set(small) <= set(big)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n": 5, "fraction": 0.0, "epoch": 0}, "fraction"),
        ({"n": 5, "fraction": 1.5, "epoch": 0}, "fraction"),
        ({"n": 5, "fraction": "0.5", "epoch": 0}, "fraction"),
        ({"n": -1, "fraction": 0.5, "epoch": 0}, "n"),
        ({"n": 5, "fraction": 0.5, "epoch": -1}, "epoch"),
        ({"n": 3, "fraction": 0.5, "epoch": 0, "order": [0, 1]}, "order"),
        ({"n": 3, "fraction": 0.5, "epoch": 0, "order": [0, 1, 1]}, "order"),
        ({"n": 3, "fraction": 0.5, "epoch": 0, "order": [0, 1, 3]}, "order"),
    ],
)
def test_images_for_epoch_rejects_bad_input(kwargs, name):
    n, f, e = kwargs.pop("n"), kwargs.pop("fraction"), kwargs.pop("epoch")
    with pytest.raises(ParameterError, match=rf"^The '{name}' parameter of images_for_epoch must be"):
        images_for_epoch(n, f, e, **kwargs)


def test_importing_the_train_package_stays_light():
    code = (
        "import sys, detprune, detprune.train, detprune.train.schedules, detprune.train.compare\n"
        "from detprune.train import fractions, compare_runs\n"
        "heavy = [m for m in ('torch', 'ultralytics', 'codecarbon') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
