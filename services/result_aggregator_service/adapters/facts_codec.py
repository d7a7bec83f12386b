"""The stored facts JSON (`batches.facts`, `essays.facts`): a versioned codec.

Stored JSON is a contract with every row already written. Each document carries `facts_version`;
a document of an older version is upcast step by step to the current one before it is validated,
and validation is strict: a field the domain no longer has, or lacks, fails loudly instead of
silently dropping a stored value. Rows written before the codec existed carry no version: they are
version 1, the shape the golden samples in `tests/golden/` pin down.

To change a stored shape: bump FACTS_VERSION, add an upcaster from the previous version to
UPCASTERS, and add a golden sample of the new version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final, TypeVar

import orjson
from pydantic import ConfigDict, TypeAdapter

from result_aggregator_service.domain import model
from result_aggregator_service.domain.model import BatchResult, EssayResult

FACTS_VERSION: Final = 2
Document = dict[str, Any]


def _unchanged(document: Document) -> Document:
    """Version 2 only added facts with defaults (stamps' correlation ids, a phase outcome's processed
    essay ids, CJ jobs): a version-1 row reads as one without them, so it announces nothing already due."""
    return document


# (kind, from_version) -> the document one version later; kind is "batch" or "essay"
UPCASTERS: Final[dict[tuple[str, int], Callable[[Document], Document]]] = {
    ("batch", 1): _unchanged,
    ("essay", 1): _unchanged,
}

T = TypeVar("T")


class StoredFactsError(ValueError):
    """A stored document this code cannot read: a newer version, or a shape no upcaster explains."""


def _forbid_unknown_fields() -> None:
    """Validate the domain's dataclasses strictly: an unknown (e.g. renamed) field is an error."""
    for value in vars(model).values():
        if isinstance(value, type) and dataclasses.is_dataclass(value):
            value.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]


_forbid_unknown_fields()
_batch_facts = TypeAdapter(BatchResult)
_essay_facts = TypeAdapter(EssayResult)


# orjson writes the domain's dataclasses as they are, the same bytes as pydantic's dump_json (a test
# holds them equal) at half its cost: enums by value, UTC as `Z`, enum keys as their values.
_ENCODING: Final = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def encode_batch(batch: BatchResult) -> bytes:
    """The batch's own facts (its essays are stored in their own rows)."""
    facts = {"facts_version": FACTS_VERSION, **vars(batch)}
    del facts["essays"]
    return orjson.dumps(facts, option=_ENCODING)


def encode_essay(essay: EssayResult) -> bytes:
    return orjson.dumps({"facts_version": FACTS_VERSION, **vars(essay)}, option=_ENCODING)


def decode_batch(text: str, essays: dict[str, EssayResult]) -> BatchResult:
    batch = _decode("batch", text, _batch_facts)
    return dataclasses.replace(batch, essays=essays)


def decode_essay(text: str) -> EssayResult:
    return _decode("essay", text, _essay_facts)


def _decode(kind: str, text: str, adapter: TypeAdapter[T]) -> T:
    document: Document = orjson.loads(text)
    version = document.pop("facts_version", 1)
    if not isinstance(version, int) or version > FACTS_VERSION:
        raise StoredFactsError(f"stored {kind} facts of version {version!r}; this code reads up to {FACTS_VERSION}")
    while version < FACTS_VERSION:
        upcast = UPCASTERS.get((kind, version))
        if upcast is None:
            raise StoredFactsError(f"no upcaster for stored {kind} facts of version {version}")
        document, version = upcast(document), version + 1
    return adapter.validate_python(document)
