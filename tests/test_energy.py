"""Energy records per phase with codecarbon's offline tracker."""

from __future__ import annotations

import pytest

from detprune.energy import EnergyLog, check_country
from detprune.errors import ParameterError


def test_phases_are_measured_and_summed():
    log = EnergyLog(country="esp")
    with log.phase("work"):
        sum(i * i for i in range(200_000))
    with pytest.raises(ValueError), log.phase("fails"):
        raise ValueError("still recorded")
    d = log.to_dict()
    assert list(d["phases"]) == ["work", "fails"]
    work = d["phases"]["work"]
    assert work["seconds"] > 0 and work["country"] == "ESP"
    if work["energy_kwh"] is None:
        pytest.skip(f"codecarbon gave no estimate here: {work['method']}")
    assert work["energy_kwh"] > 0 and work["co2_kg"] > 0
    assert "codecarbon offline" in work["method"]
    total = d["total"]
    assert total["energy_kwh"] == pytest.approx(sum(p["energy_kwh"] for p in d["phases"].values()))


def test_disabled_log_keeps_time_only():
    log = EnergyLog(enabled=False)
    with log.phase("x"):
        pass
    p = log.to_dict()["phases"]["x"]
    assert p["energy_kwh"] is None and p["method"].startswith("disabled")


@pytest.mark.parametrize("bad", ["", "ES", "SPAIN", "ZZZ", "12A"])
def test_bad_country_is_rejected(bad):
    with pytest.raises(ParameterError, match="The 'country' parameter of detprune must be"):
        check_country(bad)
