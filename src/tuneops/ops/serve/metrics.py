"""``GET /metrics``: requests counted by version, role and outcome, a latency histogram per
version and role, the champion and the switches, in Prometheus' text format (``_Metrics``).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict

from tuneops.ops.serve.models import _Routing

# Prometheus' default latency buckets start at 5 ms; a one-row predict takes well under that.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


# -- metrics --------------------------------------------------------------------------------------
class _Metrics:
    """Counters and a latency histogram in Prometheus' text exposition format (version 0.0.4)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[int | None, str, str], int] = defaultdict(int)
        # By version and role: a shadow's model-only time must not mix with what the same
        # version answered as champion or canary (a whole request each).
        self.buckets: dict[tuple[int, str], list[int]] = defaultdict(
            lambda: [0] * (len(_BUCKETS) + 1)
        )
        self.sums: dict[tuple[int, str], float] = defaultdict(float)
        self.switches = 0
        self._lock = threading.Lock()

    def observe(self, version: int | None, role: str, outcome: str, seconds: float | None) -> None:
        with self._lock:
            self.requests[(version, role, outcome)] += 1
            if version is not None and seconds is not None:
                counts = self.buckets[(version, role)]
                for i, bound in enumerate(_BUCKETS):
                    if seconds <= bound:
                        counts[i] += 1
                        break
                else:
                    counts[-1] += 1
                self.sums[(version, role)] += seconds

    def render(self, routing: _Routing) -> str:
        lines = [
            "# HELP tuneops_requests_total Prediction requests by answering model version, role "
            "and outcome.",
            "# TYPE tuneops_requests_total counter",
        ]
        with self._lock:
            for (version, role, outcome), n in sorted(self.requests.items(), key=str):
                lines.append(
                    f'tuneops_requests_total{{version="{"" if version is None else version}",'
                    f'role="{role}",outcome="{outcome}"}} {n}'
                )
            lines += [
                "# HELP tuneops_request_latency_seconds Server-side latency of answered requests "
                "by version and role (a shadow's: its predict alone).",
                "# TYPE tuneops_request_latency_seconds histogram",
            ]
            for (version, role), counts in sorted(self.buckets.items()):
                labels = f'version="{version}",role="{role}"'
                cumulative = 0
                for bound, n in zip((*_BUCKETS, math.inf), counts, strict=True):
                    cumulative += n
                    le = "+Inf" if bound == math.inf else repr(bound)
                    lines.append(
                        f'tuneops_request_latency_seconds_bucket{{{labels},le="{le}"}} {cumulative}'
                    )
                lines.append(
                    f"tuneops_request_latency_seconds_sum{{{labels}}} "
                    f"{self.sums[(version, role)]:.6f}"
                )
                lines.append(f"tuneops_request_latency_seconds_count{{{labels}}} {cumulative}")
            switches = self.switches
        lines += [
            "# HELP tuneops_champion_version The version answering requests by default.",
            "# TYPE tuneops_champion_version gauge",
            f"tuneops_champion_version {routing.champion.version}",
            "# HELP tuneops_challenger_share Share of requests the challenger answers (canary).",
            "# TYPE tuneops_challenger_share gauge",
            f"tuneops_challenger_share {routing.share if routing.mode == 'canary' else 0.0}",
            "# HELP tuneops_model_switches_total Hot switches of the served models.",
            "# TYPE tuneops_model_switches_total counter",
            f"tuneops_model_switches_total {switches}",
        ]
        return "\n".join(lines) + "\n"
