"""The local gateway with the Findings' candidates applied (dev/bench_candidates.py): bench only.

`make bench` serves this next to the real gateway, under the same settings, to measure what the
recommendations would change before anyone changes Planter.
"""

from __future__ import annotations

from dev import bench_candidates

bench_candidates.apply()

from dev.gateway import gateway  # noqa: E402

__all__ = ["gateway"]
