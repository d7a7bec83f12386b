"""The decode step's quick byte check (`_maybe_unstorable`) lets most records skip the walk over every
value; it may flag a record that is fine, but it must never miss one that is not."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from result_aggregator_service.service_layer.decoding import _maybe_unstorable


def _has_out_of_int32(node: Any) -> bool:
    if isinstance(node, dict):
        return any(_has_out_of_int32(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_out_of_int32(item) for item in node)
    return type(node) is int and not -(2**31) <= node < 2**31


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text() | st.integers(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(document=json_values, indent=st.sampled_from([None, 0, 2, "\t"]), compact=st.booleans())
def test_the_quick_byte_check_never_misses_an_integer_beyond_int32(
    document: Any, indent: int | str | None, compact: bool
) -> None:
    raw = json.dumps({"data": document}, indent=indent, separators=(",", ":") if compact else None).encode()
    if _has_out_of_int32(document):
        assert _maybe_unstorable(raw)
