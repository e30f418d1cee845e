"""The forward MCAP read's Schema and Channel records, read without mcap's record classes, against
mcap's own readers: the same fields from every record, and an error from the same damaged ones."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
from mcap.data_stream import ReadDataStream, RecordBuilder
from mcap.opcode import Opcode
from mcap.records import Channel, Schema

from roboflow_dataset.sources import _mcap_chunks
from roboflow_dataset.sources._mcap import _read_channel, _read_schema


def _body(record: Schema | Channel) -> bytes:
    builder = RecordBuilder()
    record.write(builder)
    return bytes(builder.end())[9:]  # after the opcode and the record length


SCHEMAS = [
    Schema(id=1, name="sensor_msgs/msg/JointState", encoding="ros2msg", data=b"float64[] position\n"),
    Schema(id=65535, name="", encoding="", data=b""),
    Schema(id=7, name="ünïcode/Type", encoding="protobuf", data=bytes(range(256))),
]
CHANNELS = [
    Channel(id=0, schema_id=1, topic="/joint_states", message_encoding="cdr", metadata={}),
    Channel(
        id=3, schema_id=0, topic="", message_encoding="json", metadata={"offered_qos_profiles": "- depth: 1"}
    ),
    Channel(
        id=9, schema_id=7, topic="/ü", message_encoding="protobuf", metadata={"a": "", "": "b", "k": "v" * 40}
    ),
]


def _outcome(read: Any, body: bytes) -> Any:
    try:
        record = read(body)
    except Exception as err:
        return err
    fields = (
        ("id", "schema_id", "topic", "message_encoding")
        if hasattr(record, "topic")
        else ("id", "name", "encoding", "data")
    )
    return tuple(getattr(record, f) for f in fields)


def _theirs(kind: type[Schema] | type[Channel]) -> Any:
    return lambda body: kind.read(ReadDataStream(io.BytesIO(body)))


def _variants(body: bytes, rng: random.Random) -> list[bytes]:
    out = [body[:n] for n in range(len(body) + 1)] + [body + b"\x00" * 5]
    for _ in range(80):
        raw = bytearray(body)
        pos = rng.randrange(len(raw))
        raw[pos] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, raw[pos] ^ 0x40))
        out.append(bytes(raw))
    return out


@pytest.mark.parametrize(
    ("ours", "kind", "records"), [(_read_schema, Schema, SCHEMAS), (_read_channel, Channel, CHANNELS)]
)
def test_records_read_as_mcap_reads_them(ours: Any, kind: Any, records: list[Any]) -> None:
    rng = random.Random(5)
    failed = 0
    for record in records:
        for body in _variants(_body(record), rng):
            mine, expected = _outcome(lambda b: ours(memoryview(b)), body), _outcome(_theirs(kind), body)
            assert isinstance(mine, Exception) == isinstance(expected, Exception), (body, mine, expected)
            if not isinstance(expected, Exception):
                assert mine == expected, body
            failed += isinstance(expected, Exception)
    assert failed > 20  # damaged records were among them


def test_opcodes_are_the_specification_s() -> None:
    for name in ("FOOTER", "SCHEMA", "CHANNEL", "MESSAGE", "CHUNK"):
        assert getattr(_mcap_chunks, name) == Opcode[name].value
