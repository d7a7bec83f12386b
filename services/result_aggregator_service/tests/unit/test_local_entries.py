"""The local layer's bookkeeping (pure): a copy read before an announcement of its key is never kept,
copies expire and are bounded, and a forgotten announcement still refuses older fills."""

from __future__ import annotations

from result_aggregator_service.adapters.local_response_cache import LocalEntries


def test_a_copy_is_served_until_it_expires() -> None:
    entries = LocalEntries(max_entries=10, ttl_seconds=5)
    assert entries.put("b", b"v", entries.sequence, now=100.0)
    assert entries.get("b", now=104.9) == b"v"
    assert entries.get("b", now=105.0) is None


def test_an_announcement_drops_the_copy_and_refuses_fills_read_before_it() -> None:
    entries = LocalEntries(max_entries=10, ttl_seconds=5)
    read_at = entries.sequence
    entries.put("b", b"old", read_at, now=0.0)
    entries.announce(["b"])
    assert entries.get("b", now=0.0) is None
    assert not entries.put("b", b"old", read_at, now=0.0)
    assert entries.put("b", b"new", entries.sequence, now=0.0)
    assert entries.put("other", b"o", read_at, now=0.0)  # another key's announcement does not matter


def test_the_oldest_copies_go_beyond_the_bound() -> None:
    entries = LocalEntries(max_entries=2, ttl_seconds=5)
    for key in ("a", "b", "c"):
        entries.put(key, key.encode(), entries.sequence, now=0.0)
    assert [entries.get(k, now=0.0) for k in ("a", "b", "c")] == [None, b"b", b"c"]


def test_forgotten_announcements_still_refuse_fills_read_before_them() -> None:
    entries = LocalEntries(max_entries=1, ttl_seconds=5)
    read_at = entries.sequence
    entries.announce(["a", "b", "c", "d", "e"])  # more than 4 x max_entries: "a" is forgotten
    assert not entries.put("a", b"stale", read_at, now=0.0)
    assert entries.put("a", b"fresh", entries.sequence, now=0.0)


def test_drop_all_forgets_every_copy_and_refuses_older_fills() -> None:
    entries = LocalEntries(max_entries=10, ttl_seconds=5)
    read_at = entries.sequence
    entries.put("a", b"x", read_at, now=0.0)
    entries.drop_all()
    assert entries.get("a", now=0.0) is None
    assert not entries.put("a", b"x", read_at, now=0.0)
