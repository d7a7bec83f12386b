"""What the service's decode step (`service_layer/decoding.py`: the schema version's lookup, the column checks,
the upcast to the current version) adds to decoding a record.

Baseline: the contract alone (common_core's `decode_envelope`; for a schema_version 2 spellcheck result,
its envelope model's own JSON validation), measured in the same run on the same bytes. For each topic's
hand-made sample, `--runs` medians of `--number` decodes each; prints the microseconds per record and the
ratio to the baseline.

    .venv/bin/python bench/decode_cost.py [--number 2000] [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from typing import Any

from common_core import events
from common_core.envelope import EventEnvelope
from common_core.registry import decode_envelope
from result_aggregator_service.service_layer.decoding import decode_event
from result_aggregator_service.tests.contract import sample_envelopes as samples

ESSAYS = [f"essay-{i}" for i in range(5)]
SAMPLES: dict[str, dict[str, Any]] = {
    "registered": samples.batch_registered("batch-1", ESSAYS),
    "slot assigned": samples.slot_assigned("batch-1", ESSAYS[0]),
    "phase outcome": samples.phase_outcome("batch-1", ESSAYS[:4], ESSAYS[4:]),
    "spellcheck result": samples.spellcheck_result("batch-1", ESSAYS[0]),
    "spellcheck result 2": samples.spellcheck_as_schema_2(samples.spellcheck_result("batch-1", ESSAYS[0])),
    "assessment result": samples.assessment_result("batch-1", [samples.essay_result(e) for e in ESSAYS]),
    "pipeline completed": samples.pipeline_completed("batch-1"),
}


# the contract of the samples common_core's decode does not cover (it knows version 1 only)
CONTRACTS: dict[str, Callable[[str, bytes], object]] = {
    "spellcheck result 2": lambda _, raw: EventEnvelope[events.SpellcheckResultV1Schema2].model_validate_json(raw),
}


def _microseconds(decode: Callable[[str, bytes], object], topic: str, raw: bytes, number: int) -> float:
    return timeit.timeit(lambda: decode(topic, raw), number=number) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    print(f"{'sample':<20} {'bytes':>6} {'contract µs':>12} {'+ columns µs':>13} {'ratio':>6}")
    for name, sample in SAMPLES.items():
        topic, raw = sample["event_type"], samples.to_bytes(sample)
        baseline, checked = [], []
        for _ in range(args.runs):  # interleaved, so machine load hits both alike
            baseline.append(_microseconds(CONTRACTS.get(name, decode_envelope), topic, raw, args.number))
            checked.append(_microseconds(decode_event, topic, raw, args.number))
        base, full = statistics.median(baseline), statistics.median(checked)
        print(f"{name:<20} {len(raw):>6} {base:>12.1f} {full:>13.1f} {full / base:>6.2f}")


if __name__ == "__main__":
    main()
