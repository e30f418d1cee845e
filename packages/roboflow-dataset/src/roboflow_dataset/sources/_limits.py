"""Bounds on what a recording can make a reader do: a damaged or hostile file ends in a clear error.

Recordings are untrusted. Every length a file declares is checked before anything is read or
allocated for it (:data:`MAX_RECORD_BYTES` for one record, chunk or uncompressed chunk), chunks
are decompressed incrementally and never past the size they declare (:func:`decompress`: a
2 GiB bz2 bomb stops after its declared size plus one byte), and log times must fit the signed
64-bit nanoseconds every later stage computes with (:func:`check_log_time`). Each refusal is a
:class:`CorruptRecordingError` naming the file, the offset and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast, overload

from roboflow_core.errors import CorruptRecordingError, RecordingLimitError
from roboflow_dataset.sources._model import Payload

__all__ = [
    "MAX_LOG_TIME_NS",
    "MAX_RECORD_BYTES",
    "check_log_time",
    "check_size",
    "decompress",
    "decompress_prefix",
]

MAX_RECORD_BYTES = 256 << 20
"""Largest record, chunk (compressed or not) or message a recording may hold (a 4K rgb8 image is
25 MB; a larger one is damage or an attack)."""
MAX_LOG_TIME_NS = (1 << 63) - 1
"""Largest log time: int64 nanoseconds (year 2262)."""
_ZSTD_INPUT = 1 << 10  # input fed at a time to a zstd stream of unknown end (<= 128 MiB out each)


def check_size(size: int, what: str, *, path: Path | str, offset: int) -> None:
    """Refuse a declared size beyond :data:`MAX_RECORD_BYTES` before anything is allocated for it."""
    if size > MAX_RECORD_BYTES:
        raise RecordingLimitError(
            f"{what} at offset {offset} declares {size} bytes, more than the "
            f"{MAX_RECORD_BYTES >> 20} MiB a record may hold (a damaged or hostile file)",
            path=str(path),
        )


def check_log_time(log_time: int, *, path: Path | str, topic: str, offset: int | None = None) -> int:
    """``log_time``, refused when it does not fit int64 nanoseconds."""
    if not 0 <= log_time <= MAX_LOG_TIME_NS:
        where = f" at offset {offset}" if offset is not None else ""
        raise RecordingLimitError(
            f"message{where} has log time {log_time} ns, outside 0..2^63-1 (a damaged or hostile file)",
            path=str(path),
            topic=topic,
        )
    return log_time


def _one_shot(compression: str, data: Payload, limit: int) -> bytes | None:
    """At most ``limit`` bytes of a ``bz2`` or ``lz4`` (frame) chunk, ``None`` for another
    compression (the codecs are imported here: an uncompressed recording needs none of them)."""
    if compression == "bz2":
        import bz2

        return bz2.BZ2Decompressor().decompress(data, max_length=limit)
    if compression == "lz4":
        import lz4.frame

        return cast(bytes, lz4.frame.LZ4FrameDecompressor().decompress(data, max_length=limit))
    return None


def _zstd(data: Payload, limit: int) -> memoryview:
    """At most ``limit`` bytes of ``data`` decompressed straight into one buffer (pages of it that
    nothing is written to are never touched: a bomb stops at ``limit``)."""
    import zstandard

    out = memoryview(bytearray(limit))
    got = 0
    with zstandard.ZstdDecompressor().stream_reader(data) as reader:
        while got < limit and (count := reader.readinto(out[got:])):
            got += count
    return out[:got].toreadonly()


@overload
def decompress(compression: str, data: bytes, size: int, *, path: Path | str, offset: int) -> bytes: ...
@overload
def decompress(compression: str, data: Payload, size: int, *, path: Path | str, offset: int) -> Payload: ...
def decompress(compression: str, data: Payload, size: int, *, path: Path | str, offset: int) -> Payload:
    """Decompress one chunk, producing at most ``size + 1`` bytes whatever the data claims
    (uncompressed data is returned as is, a view stays a view).

    Args:
        compression: ``""``/``"none"``, ``"bz2"``, ``"lz4"`` (frame) or ``"zstd"``.
        data: The compressed bytes.
        size: The uncompressed size the chunk declares.
        path: The file, for errors.
        offset: The chunk's offset, for errors.

    Raises:
        CorruptRecordingError: The declared size is too large, the data is not what the
            compression says, or it expands to another size than declared.
    """
    check_size(size, f"{compression or 'uncompressed'} chunk", path=path, offset=offset)
    out = data if compression in ("", "none") else _decompressed(compression, data, size + 1, path, offset)
    if len(out) != size:
        got = f"more than {size}" if len(out) > size else str(len(out))
        error = RecordingLimitError if len(out) > size else CorruptRecordingError
        raise error(
            f"the {compression or 'uncompressed'} chunk at offset {offset} holds {got} bytes, "
            f"its header says {size} (a damaged chunk, or a decompression bomb)",
            path=str(path),
        )
    return out


def _decompressed(compression: str, data: Payload, limit: int, path: Path | str, offset: int) -> Payload:
    """At most ``limit`` bytes of a compressed chunk (the codecs are imported where used: an
    uncompressed recording needs none of them, ~3 ms of start-up)."""
    import zstandard

    try:
        if (whole := _one_shot(compression, data, limit)) is not None:
            return whole
        if compression == "zstd":
            return _zstd(data, limit)
    except (OSError, EOFError, RuntimeError, ValueError, zstandard.ZstdError) as err:
        raise CorruptRecordingError(
            f"cannot decompress the {compression} chunk at offset {offset}: {type(err).__name__}: {err}",
            path=str(path),
        ) from err
    raise CorruptRecordingError(
        f"chunk at offset {offset} uses compression {compression!r}, which is not supported "
        "(none, bz2, lz4, zstd)",
        path=str(path),
    )


@overload
def decompress_prefix(compression: str, data: bytes, size: int) -> bytes: ...
@overload
def decompress_prefix(compression: str, data: Payload, size: int) -> Payload: ...
def decompress_prefix(compression: str, data: Payload, size: int) -> Payload:
    """What decompresses of the start of a chunk cut short (salvage), at most ``size`` bytes (and
    :data:`MAX_RECORD_BYTES`); empty when nothing does.

    Args:
        compression: ``""``/``"none"``, ``"bz2"``, ``"lz4"`` or ``"zstd"``.
        data: The part of the compressed bytes that was written.
        size: The uncompressed size the chunk declares.
    """
    limit = min(size, MAX_RECORD_BYTES)
    if compression in ("", "none"):
        return data[:limit]
    import zstandard

    parts: list[bytes] = []
    try:
        if (whole := _one_shot(compression, data, limit)) is not None:
            return whole
        if compression == "zstd":
            stream = zstandard.ZstdDecompressor().decompressobj()
            got = 0
            for start in range(0, len(data), _ZSTD_INPUT):
                parts.append(stream.decompress(data[start : start + _ZSTD_INPUT]))
                got += len(parts[-1])
                if got >= limit:
                    break
            return b"".join(parts)[:limit]
    except (OSError, EOFError, RuntimeError, ValueError, zstandard.ZstdError):
        return b"".join(parts)[:limit]
    return b""
