"""The read service's cache rules through the routes, against the in-memory read side."""

from __future__ import annotations

import asyncio

from result_aggregator_service.read_service import BATCH_STATUS_ROUTE, USER_BATCHES_ROUTE
from result_aggregator_service.service_layer.ports import BatchChange
from result_aggregator_service.tests.unit.read_side import AUTH, Api, a_batch, api, put

__all__ = ["api"]  # the fixture

STATUS = "/internal/v1/batches/b1/status"
LIST = "/internal/v1/batches/user/teacher-1"


async def until_missed(api: Api, count: int) -> None:
    """Wait (at most 5 s) until `count` status lookups missed the cache: the requests are all in."""
    for _ in range(5000):
        if api.lookups(BATCH_STATUS_ROUTE, "miss") >= count:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"fewer than {count} misses within 5 s")


async def test_a_cached_status_is_served_without_asking_the_read_model(api: Api) -> None:
    put(api, a_batch("b1"))
    first = await api.client.get(STATUS, headers=AUTH)
    second = await api.client.get(STATUS, headers=AUTH)
    assert api.model.queries == 1 and await first.get_data() == await second.get_data()
    assert api.lookups(BATCH_STATUS_ROUTE, "hit") == 1 and api.lookups(BATCH_STATUS_ROUTE, "miss") == 1


async def test_a_read_after_a_commit_shows_the_committed_state(api: Api) -> None:
    put(api, a_batch("b1"), version=1)
    await api.client.get(STATUS, headers=AUTH)
    await api.client.get(LIST, headers=AUTH)
    change = BatchChange("b1", 2, frozenset({"teacher-1"}))
    await api.cache.batches_changing([change])
    put(api, a_batch("b1", essays=3), version=2)  # the commit
    await api.cache.batches_changed([change])
    status = await api.client.get(STATUS, headers=AUTH)
    page = await (await api.client.get(LIST, headers=AUTH)).get_json()
    assert status.headers["ETag"] == 'W/"b1-2"' and len((await status.get_json())["essays"]) == 3
    assert len(page["batches"][0]["essays"]) == 3


async def test_nothing_read_during_a_commit_is_cached(api: Api) -> None:
    put(api, a_batch("b1"), version=1)
    change = BatchChange("b1", 2, frozenset({"teacher-1"}))
    await api.cache.batches_changing([change])
    for _ in range(2):
        assert (await api.client.get(STATUS, headers=AUTH)).headers["ETag"] == 'W/"b1-1"'
    assert api.model.queries == 2  # each read went to the read model
    put(api, a_batch("b1"), version=2)
    await api.cache.batches_changed([change])
    assert (await api.client.get(STATUS, headers=AUTH)).headers["ETag"] == 'W/"b1-2"'


async def test_concurrent_misses_of_one_key_share_one_query(api: Api) -> None:
    put(api, a_batch("b1"))
    api.model.gate = asyncio.Event()
    requests = [asyncio.create_task(api.client.get(STATUS, headers=AUTH)) for _ in range(5)]
    await until_missed(api, 5)
    api.model.gate.set()
    assert [r.status_code for r in await asyncio.gather(*requests)] == [200] * 5
    assert api.model.queries == 1


async def test_waiters_ask_again_when_the_shared_answer_could_not_be_cached(api: Api) -> None:
    put(api, a_batch("b1"))
    api.model.gate = asyncio.Event()
    requests = [asyncio.create_task(api.client.get(STATUS, headers=AUTH)) for _ in range(3)]
    await until_missed(api, 3)
    await api.cache.batches_changed([BatchChange("b1", 0)])  # an invalidation lands during the query
    api.model.gate.set()
    assert [r.status_code for r in await asyncio.gather(*requests)] == [200] * 3
    assert api.model.queries == 3  # the leader's query, then one each for the two that joined it


async def test_an_unknown_batch_is_cached_as_not_found_until_it_is_registered(api: Api) -> None:
    assert (await api.client.get(STATUS, headers=AUTH)).status_code == 404
    assert (await api.client.get(STATUS, headers=AUTH)).status_code == 404
    assert api.model.queries == 1
    change = BatchChange("b1", 1, frozenset({"teacher-1"}))
    await api.cache.batches_changing([change])
    put(api, a_batch("b1"))
    await api.cache.batches_changed([change])
    assert (await api.client.get(STATUS, headers=AUTH)).status_code == 200


async def test_without_a_cache_the_read_model_answers_and_the_lookup_counts_as_an_error(api: Api) -> None:
    put(api, a_batch("b1"))
    api.cache.state.available = False
    for path in (STATUS, LIST):
        assert (await api.client.get(path, headers=AUTH)).status_code == 200
    assert api.lookups(BATCH_STATUS_ROUTE, "error") == 1 and api.lookups(USER_BATCHES_ROUTE, "error") == 1
