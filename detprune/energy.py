"""Energy and CO2 of each phase, estimated with codecarbon's offline tracker.

Only :class:`codecarbon.OfflineEmissionsTracker` is used: the online tracker
probes network addresses. These are software estimates, not wall-meter
readings: CPU power comes from RAPL when the kernel exposes it, otherwise from
the CPU's TDP scaled by its load (or a generic TDP when the model is unknown);
GPU power from NVML; RAM from a fixed power per GB. Every record says which
was used. kWh does not depend on the grid; CO2 = kWh x the country's carbon
intensity (codecarbon's table), or the world average when no country is given.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from .errors import ParameterError

COUNTRY_ENV = "DETPRUNE_COUNTRY"


@dataclass(frozen=True)
class PhaseEnergy:
    """Time and energy of one phase.

    ``energy_kwh`` and ``co2_kg`` are None when no estimate could be made
    (codecarbon missing or failing); ``method`` then says why.
    """

    phase: str
    seconds: float
    energy_kwh: float | None
    co2_kg: float | None
    cpu_kwh: float | None = None
    gpu_kwh: float | None = None
    ram_kwh: float | None = None
    country: str | None = None
    method: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EnergyLog:
    """Collects :class:`PhaseEnergy` records; ``with log.phase("embed"): ...``.

    Parameters
    ----------
    country : str, optional
        ISO 3166 alpha-3 code (``"ESP"``); default ``$DETPRUNE_COUNTRY`` or none
        (world-average carbon intensity).
    enabled : bool
        False: time only, no tracker.
    verbose : bool
        Show codecarbon's own log output.
    """

    country: str | None = None
    enabled: bool = True
    verbose: bool = False
    phases: list[PhaseEnergy] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.country is None:
            self.country = os.environ.get(COUNTRY_ENV) or None
        if self.country is not None:
            self.country = check_country(self.country)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Measure the block as phase ``name`` (recorded even if it raises)."""
        tracker, method = (None, "disabled: time only") if not self.enabled else _start(self)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - t0
            self.phases.append(_stop(name, seconds, tracker, method, self.country))

    def totals(self) -> PhaseEnergy:
        """Sum over phases (energy None if any phase has none)."""
        def total(attr: str) -> float | None:
            vals = [getattr(p, attr) for p in self.phases]
            return None if not vals or any(v is None for v in vals) else float(sum(vals))

        methods = sorted({p.method for p in self.phases})
        return PhaseEnergy(
            "total", float(sum(p.seconds for p in self.phases)), total("energy_kwh"), total("co2_kg"),
            total("cpu_kwh"), total("gpu_kwh"), total("ram_kwh"), self.country, "; ".join(methods),
        )

    def to_dict(self) -> dict:
        return {
            "phases": {p.phase: p.to_dict() for p in self.phases},
            "total": self.totals().to_dict(),
            "estimated_with": (
                "codecarbon OfflineEmissionsTracker (software estimate, not a wall meter)"
                if self.enabled else "not measured (time only)"
            ),
        }


@lru_cache(maxsize=1)
def _countries() -> dict[str, str]:
    try:
        import codecarbon
    except ImportError:
        return {}
    path = Path(codecarbon.__file__).parent / "data" / "private_infra" / "global_energy_mix.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v.get("country_name", k) for k, v in data.items()}


def check_country(code: str) -> str:
    """Return the upper-cased ISO alpha-3 code, or raise :class:`ParameterError`."""
    c = str(code).strip().upper()
    known = _countries()
    if len(c) != 3 or not c.isalpha() or (known and c not in known):
        raise ParameterError(
            f"The 'country' parameter of detprune must be an ISO 3166 alpha-3 code known to "
            f"codecarbon (e.g. 'ESP', 'USA', 'FRA'). Got {code!r} instead."
        )
    return c


def _start(log: EnergyLog):
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        return None, "unavailable: codecarbon is not installed (time only)"
    logger = logging.getLogger("codecarbon")
    quiet = not log.verbose
    saved = logger.disabled
    logger.disabled = quiet
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # save_to_file, renamed in 3.x
            tracker = OfflineEmissionsTracker(
                country_iso_code=log.country,
                save_to_file=False,
                log_level="error" if quiet else "info",
                allow_multiple_runs=True,
                measure_power_secs=5,
            )
        tracker.start()
    except Exception as exc:  # the tracker must never break the real work
        logger.disabled = saved
        return None, f"unavailable: codecarbon failed to start ({type(exc).__name__}: {exc})"
    return tracker, _describe(tracker)


def _describe(tracker) -> str:
    parts = []
    for hw in getattr(tracker, "_hardware", []):
        kind = type(hw).__name__
        if kind == "CPU":
            mode = getattr(hw, "_mode", "?")
            if mode == "intel_rapl":
                parts.append("CPU: RAPL counters")
            elif getattr(hw, "_is_generic_tdp", False):
                parts.append(f"CPU: generic TDP x load ({mode})")
            else:
                parts.append(f"CPU: TDP of {getattr(hw, '_model', 'CPU')} x load ({mode})")
        elif kind == "GPU":
            parts.append("GPU: NVML")
        elif kind == "RAM":
            parts.append("RAM: fixed W per GB")
        else:
            parts.append(kind)
    return "codecarbon offline: " + (", ".join(parts) or "default estimates")


def _stop(name: str, seconds: float, tracker, method: str, country: str | None) -> PhaseEnergy:
    if tracker is None:
        return PhaseEnergy(name, seconds, None, None, country=country, method=method)
    logger = logging.getLogger("codecarbon")
    try:
        co2 = tracker.stop()
        d = tracker.final_emissions_data
        return PhaseEnergy(
            name, seconds,
            float(d.energy_consumed), float(co2) if co2 is not None else None,
            float(d.cpu_energy), float(d.gpu_energy), float(d.ram_energy),
            country, method,
        )
    except Exception as exc:
        return PhaseEnergy(name, seconds, None, None, country=country,
                           method=f"unavailable: codecarbon failed ({type(exc).__name__}: {exc})")
    finally:
        logger.disabled = False
