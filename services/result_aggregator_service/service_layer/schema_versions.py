"""Versioned payloads: the schema versions each topic's envelopes may state, and the upcasters between them.

The envelope's `schema_version` chooses the model its bytes are validated with; the validated payload is
then upcast, one version at a time, to the topic's **current** version, the only one the handlers and
rules know. So a record is checked against the contract its producer wrote to, and the rest of the
service sees one shape per topic.

The spellcheck result is the first topic with two versions. Its current version is 2
(`SpellcheckResultV1Schema2`: `corrections_made` renamed `correction_count`, `language` added); version 1
(`SpellcheckResultV1`, the contract every producer sends today) is upcast to it. Making the newest
version the current one means a new producer's field is read as it is named on the wire and version 1
becomes a fixed, tested translation that never changes again; the rules are written against the model
producers are moving to, not against the oldest one. Upcasting after validation (model to model) keeps
version 1 validated by its own unchanged contract, and costs one object copy, no second parse.

A version the registry does not know (a producer ahead of this service, or nonsense) raises
`UnsupportedSchemaVersion`: the record is parked as `unsupported_version`, to be replayed once a
release knows it.

Adding a version N+1 of a topic: put its payload model in common_core/events.py; in `SCHEMA_VERSIONS`
give version N an upcaster to N+1 (a pure function of the validated model; fields a producer of N
never sent get a stated default) and add N+1 without one; switch the handler and rules to the new
model; test that N and N+1 of the same event fold to the same state (tests/unit/test_schema_versions.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from common_core import events, topics
from common_core.envelope import EventEnvelope
from common_core.registry import PAYLOAD_TYPE_BY_TOPIC, envelope_adapter

Upcaster = Callable[[Any], BaseModel]
ModelT = TypeVar("ModelT", bound=BaseModel)


class UnsupportedSchemaVersion(Exception):
    def __init__(self, topic: str, version: int, known: list[int]) -> None:
        super().__init__(f"schema_version {version} of {topic} is not supported (known: {known})")


@dataclass(frozen=True)
class SchemaVersion:
    """How an envelope of one version is validated, and how its payload becomes the next version's."""

    envelope: type[EventEnvelope[Any]]  # EventEnvelope[the version's payload model]
    adapter: TypeAdapter[EventEnvelope[Any]]  # its validator
    upcast: Upcaster | None = None  # None: the topic's current version


def _contract(topic: str, upcast: Upcaster | None = None) -> SchemaVersion:
    """Version 1 of a topic: common_core's own validator of its contract."""
    payload = PAYLOAD_TYPE_BY_TOPIC[topic]
    return SchemaVersion(EventEnvelope[payload], envelope_adapter(topic), upcast)  # type: ignore[valid-type]


def _later(payload: type[BaseModel], upcast: Upcaster | None = None) -> SchemaVersion:
    envelope = EventEnvelope[payload]  # type: ignore[valid-type]
    return SchemaVersion(envelope, TypeAdapter(envelope), upcast)


def spellcheck_1_to_2(result: events.SpellcheckResultV1) -> events.SpellcheckResultV1Schema2:
    """Version 1 said nothing of the language: `und`, BCP 47's "undetermined"."""
    fields = dict(result.__dict__)
    fields["correction_count"] = fields.pop("corrections_made")  # the model's field order: dumps keep it
    fields["language"] = "und"
    return _assembled(events.SpellcheckResultV1Schema2, fields)


SCHEMA_VERSIONS: Final[dict[str, dict[int, SchemaVersion]]] = {
    topic: {1: _contract(topic)} for topic in PAYLOAD_TYPE_BY_TOPIC
} | {
    topics.SPELLCHECK_RESULTS_TOPIC: {
        1: _contract(topics.SPELLCHECK_RESULTS_TOPIC, spellcheck_1_to_2),
        2: _later(events.SpellcheckResultV1Schema2),
    },
}

_VERSION_KEY = b'"schema_version"'
_VERSION_VALUE = re.compile(rb"\s*:\s*(\d{1,18})(?![\d.eE])")


def validate_stated_version(topic: str, raw: bytes) -> EventEnvelope[Any]:
    """The envelope validated with the model of the version it states (not upcast yet). Raises KeyError
    (a topic we do not consume), pydantic.ValidationError or UnsupportedSchemaVersion."""
    versions = SCHEMA_VERSIONS[topic]
    guess = _version_in_bytes(raw)
    if (schema := versions.get(guess)) is not None:  # nearly always: one find in the bytes, one lookup
        try:
            envelope = schema.adapter.validate_json(raw)
        except ValidationError:
            if _parsed_version(raw) in (guess, None):
                raise
        else:
            if envelope.schema_version == guess:
                return envelope
    # the guess was wrong (the key sat in a nested object) or names no version we know: parse to be sure
    version = _parsed_version(raw)
    if version is None:  # no JSON object, or no integer version: validated as version 1 it says what is wrong
        envelope = versions[1].adapter.validate_json(raw)
        if envelope.schema_version == 1:
            return envelope
        version = envelope.schema_version
    if version not in versions:
        raise UnsupportedSchemaVersion(topic, version, sorted(versions))
    return versions[version].adapter.validate_json(raw)


def upcast(topic: str, envelope: EventEnvelope[Any]) -> EventEnvelope[Any]:
    """The envelope with its payload in the topic's current version."""
    versions = SCHEMA_VERSIONS[topic]
    version, data = envelope.schema_version, envelope.data
    while (step := versions[version].upcast) is not None:
        data, version = step(data), version + 1
    if version == envelope.schema_version:
        return envelope  # the current version already: nothing to copy
    return _assembled(versions[version].envelope, {**envelope.__dict__, "data": data, "schema_version": version})


def _assembled(model: type[ModelT], fields: dict[str, Any]) -> ModelT:
    """`model` from every one of its fields, values validated already (as the older version, same types):
    what `model_construct` does, without its per-field loop over defaults, about four times its cost on
    the hot path. tests/unit/test_schema_versions.py checks the result equals the validated model."""
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", fields)
    object.__setattr__(instance, "__pydantic_fields_set__", set(fields))
    object.__setattr__(instance, "__pydantic_extra__", None)  # extra="ignore": none kept
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


def _version_in_bytes(raw: bytes) -> int:
    """The schema_version the bytes seem to state, without parsing them: the first `"schema_version"`
    key's integer, or 1 (the default) when there is no such key. Only a guess: the caller checks it."""
    at = raw.find(_VERSION_KEY)
    if at < 0:
        return 1
    match = _VERSION_VALUE.match(raw, at + len(_VERSION_KEY))
    return int(match[1]) if match else 1


def _parsed_version(raw: bytes) -> int | None:
    """The envelope's schema_version from a full parse; None when the bytes are no JSON object or the
    version no integer (validation then says why)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    version = document.get("schema_version", 1) if isinstance(document, dict) else None
    return version if type(version) is int else None
