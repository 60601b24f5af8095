"""Read eddy's embedded local log from Python (notebooks, scripts).

The log is plain files, so a notebook can read a topic while `eddy` writes it:

    import eddy_log
    for r in eddy_log.read_topic("eddy-data", "ratings"):
        print(r.partition, r.offset, r.key, r.value)

Values are bytes as written. Confluent-framed Avro values start with b"\\x00"
and a 4-byte schema id; decode them with fastavro and the schema from
`eddy registry serve` (GET /schemas/ids/{id}).

Segment format (see features/platform/src/topic/local/segment.rs): the magic
b"EDDYLOG1", then records of
    u32 body_len | u32 crc32(body) | body
    body = i64 offset | i64 timestamp_ms | i32 key_len (-1 null) | key
         | i32 value_len (-1 null) | value
         | u32 header_count | (u32 name_len | name | i32 value_len | value)*
all little-endian. A record that is still being written (short, or with a
bad checksum at the very end of the file) is not returned yet.
"""

import json
import os
import struct
import zlib
from typing import Iterator, NamedTuple, Optional

MAGIC = b"EDDYLOG1"


class Record(NamedTuple):
    partition: int
    offset: int
    timestamp_ms: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: list


def _nullable(buf: bytes, pos: int):
    (n,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    if n < 0:
        return None, pos
    return buf[pos : pos + n], pos + n


def read_segment(path: str, partition: int = 0) -> Iterator[Record]:
    """Every whole, valid record of one segment file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[: len(MAGIC)] != MAGIC:
        return
    pos = len(MAGIC)
    while pos + 8 <= len(data):
        body_len, crc = struct.unpack_from("<II", data, pos)
        start, end = pos + 8, pos + 8 + body_len
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            return  # the writer is still writing this record
        body = data[start:end]
        offset, timestamp_ms = struct.unpack_from("<qq", body, 0)
        key, p = _nullable(body, 16)
        value, p = _nullable(body, p)
        (count,) = struct.unpack_from("<I", body, p)
        p += 4
        headers = []
        for _ in range(count):
            (name_len,) = struct.unpack_from("<I", body, p)
            name = body[p + 4 : p + 4 + name_len].decode()
            hval, p = _nullable(body, p + 4 + name_len)
            headers.append((name, hval))
        yield Record(partition, offset, timestamp_ms, key, value, headers)
        pos = end


def read_topic(data_dir: str, topic: str) -> Iterator[Record]:
    """Every record of a topic, partition by partition, in offset order."""
    root = os.path.join(data_dir, "topics", topic)
    with open(os.path.join(root, "topic.json")) as f:
        partitions = json.load(f)["partitions"]
    for p in range(partitions):
        pdir = os.path.join(root, str(p))
        for name in sorted(n for n in os.listdir(pdir) if n.endswith(".log")):
            yield from read_segment(os.path.join(pdir, name), p)


if __name__ == "__main__":
    import sys

    data_dir, topic = sys.argv[1], sys.argv[2]
    for r in read_topic(data_dir, topic):
        print(json.dumps({"partition": r.partition, "offset": r.offset, "timestamp": r.timestamp_ms,
                          "key": None if r.key is None else r.key.decode("utf-8", "replace"),
                          "value": None if r.value is None else r.value.decode("utf-8", "replace")}))
