"""How big a fault run is: SHORT in CI, LONG with `pdm run faults --long` (or RAS_FAULTS_LONG=1)."""

from __future__ import annotations

import os
from dataclasses import dataclass

LONG_VARIABLE = "RAS_FAULTS_LONG"


@dataclass(frozen=True)
class Profile:
    name: str
    rate: float  # events per second the load driver publishes
    events: int  # events of one scenario's load
    kill_events: int  # events of the kill -9 scenario
    min_kills: int  # kill -9 restarts in that scenario, at least
    fault_seconds: float  # how long a slow database or a full Redis lasts
    recovery_bound_seconds: float  # a fault cleared, the worker commits again within this
    catch_up_seconds: float  # after the load, the worker has applied everything within this
    fuzzed_records: int

    @property
    def load_seconds(self) -> float:
        """The bound on a load of `events` (a broker outage slows the producer down)."""
        return self.events / self.rate * 2 + 30


SHORT = Profile(
    "short",
    rate=200,
    events=1_200,
    kill_events=1_600,
    min_kills=2,
    fault_seconds=4,
    recovery_bound_seconds=45,
    catch_up_seconds=90,
    fuzzed_records=60,
)
LONG = Profile(
    "long",
    rate=400,
    events=20_000,
    kill_events=100_000,
    min_kills=20,
    fault_seconds=15,
    recovery_bound_seconds=60,
    catch_up_seconds=600,
    fuzzed_records=400,
)


def active_profile() -> Profile:
    return LONG if os.environ.get(LONG_VARIABLE) == "1" else SHORT
