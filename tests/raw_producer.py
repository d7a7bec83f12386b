"""Publish records whose bytes no well-behaved client would write (a header key that is not UTF-8).

aiokafka's C record builder refuses such a key, so this runs as its own process with the pure-Python
builder, which asks the key to encode itself. Input: one JSON object per line on stdin, bytes as hex:
`{"topic", "partition", "key", "value", "headers": [[key, value], ...]}`; prints each record's offset.

    python -m tests.raw_producer BOOTSTRAP_SERVERS < records.jsonl
"""

from __future__ import annotations

import os

os.environ["AIOKAFKA_NO_EXTENSIONS"] = "1"  # before aiokafka is imported: the pure-Python record builder

import asyncio
import json
import sys

from aiokafka import AIOKafkaProducer


class RawHeaderKey(str):
    """A header key that encodes to exactly the given bytes, valid UTF-8 or not."""

    raw: bytes = b""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def _header_key(raw: bytes) -> str:
    key = RawHeaderKey(raw.decode("latin-1"))
    key.raw = raw
    return key


async def main(bootstrap_servers: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", max_request_size=2_000_000)
    await producer.start()
    try:
        for line in sys.stdin:
            spec = json.loads(line)
            headers = [(_header_key(bytes.fromhex(k)), bytes.fromhex(v)) for k, v in spec.get("headers", [])]
            key = bytes.fromhex(spec["key"]) if spec.get("key") is not None else None
            sent = await producer.send_and_wait(
                spec["topic"], bytes.fromhex(spec["value"]), key=key, headers=headers, partition=spec.get("partition")
            )
            print(sent.offset, flush=True)
    finally:
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
