"""``BackgroundEncoder``: one encoder in its own thread behind a bounded queue.

Several cameras then encode in parallel: PyAV and the ffmpeg pipe release the GIL while they work.
The worker is woken once per few frames, not once per frame: every wake-up of a thread is a chance
for the scheduler to preempt the producer (often while it holds the GIL), and with the encoders'
threads keeping every core busy, each such preemption costs the producer a scheduling slice.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn

from numpy.typing import NDArray

from roboflow_core import telemetry
from roboflow_core.errors import MediaError, RoboflowError
from roboflow_media._base import EncodedVideo, VideoEncoder

__all__ = ["BackgroundEncoder"]


class BackgroundEncoder:
    """Feeds an encoder from a worker thread.

    ``encode`` blocks while ``queue_size`` frames are waiting (back-pressure). An error raised in
    the worker is raised again by the next ``encode`` or by ``close``; after it, the worker drops
    the frames still queued and the encoder has removed its partial file. The worker also flushes
    and closes the encoder, so several cameras finish in parallel: :meth:`finish` each, then
    :meth:`close` each.

    Args:
        encoder: An open encoder, owned by this object from now on.
        queue_size: Frames that may wait before ``encode`` blocks.
        batch: The worker wakes when this many frames wait (or at the end); for the first frame
            it wakes at once, so that encoding starts as soon as there is a frame.
        prepare: Run by the worker on each queued frame; what it returns is encoded (per-frame
            work that changes the frame, such as quantizing depth, off the producer's thread).
            Its errors surface like the encoder's.
        observe: Run by the worker on each frame as it was queued, right after it was encoded
            (per-frame work that only reads the frame, such as statistics: encoding has just
            read every pixel, so they are still in the CPU's caches, where a strided read
            before encoding would wait on memory). Its errors surface like the encoder's.
        on_closed: Run by the worker on the closed video (e.g. to check it, while other cameras
            still flush). If it raises, the file is removed and the error surfaces from ``close``.
    """

    def __init__(
        self,
        encoder: VideoEncoder,
        queue_size: int = 8,
        batch: int = 4,
        prepare: Callable[[NDArray[Any]], NDArray[Any]] | None = None,
        observe: Callable[[NDArray[Any]], None] | None = None,
        on_closed: Callable[[EncodedVideo], None] | None = None,
    ) -> None:
        if queue_size < 1:
            raise MediaError(f"queue_size must be >= 1, got {queue_size}")
        self.encoder = encoder
        self._frames: deque[NDArray[Any]] = deque()
        self._queue_size = queue_size
        self._batch = max(1, min(batch, queue_size))
        self._wanted = 1  # the worker's next wake-up: the first frame alone, then batches
        self._prepare = prepare
        self._observe = observe
        self._on_closed = on_closed
        self._changed = threading.Condition()
        self._error: BaseException | None = None
        self._result: EncodedVideo | None = None
        self._aborting = False
        self._ending = False  # no more frames: the worker flushes after the queued ones
        self._stopped = False
        self._thread = threading.Thread(
            target=telemetry.in_context(self._run), name=f"encode:{encoder.path.name}", daemon=True
        )
        self._thread.start()

    @property
    def backend(self) -> str:
        """The wrapped encoder's backend."""
        return self.encoder.backend

    def encode(self, frame: NDArray[Any]) -> None:
        """Queue one frame (the array must not be modified afterwards).

        Raises:
            MediaError: An earlier frame failed to encode, or the encoder is closed.
        """
        if self._error is not None:
            self._stop()
            self._raise_error()
        if self._stopped or self._ending:
            raise MediaError("background encoder is already closed", path=str(self.encoder.path))
        with self._changed:
            while len(self._frames) >= self._queue_size and self._error is None:
                self._changed.wait()
            self._frames.append(frame)
            if len(self._frames) >= self._wanted:
                self._changed.notify_all()

    def finish(self) -> None:
        """No more frames: the worker encodes the queued ones, then flushes and closes the encoder,
        while the caller goes on (to finish another camera); :meth:`close` waits for it."""
        with self._changed:
            self._ending = True
            self._changed.notify_all()

    def close(self) -> EncodedVideo:
        """Wait for the queued frames, the encoder's flush and ``on_closed`` (see :meth:`finish`).

        Raises:
            MediaError: A frame failed to encode, or finalising failed.
            RoboflowError: ``on_closed`` raised one (other errors become a MediaError).
        """
        self._stop()
        if self._error is not None:
            self._raise_error()
        result, self._result = self._result, None
        if result is None:
            raise MediaError("background encoder is already closed", path=str(self.encoder.path))
        return result

    def abort(self) -> None:
        """Drop queued frames, stop the worker and remove the partial file."""
        self._aborting = True
        self._stop()
        self.encoder.abort()

    def __enter__(self) -> BackgroundEncoder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None or self._error is not None:
            self.abort()
        elif not self._stopped:
            self.close()

    def _run(self) -> None:
        while frames := self._take():
            for frame in frames:
                if self._error is not None or self._aborting:
                    break  # the rest are dropped
                try:
                    with telemetry.timed("encode"):
                        self.encoder.encode(frame if self._prepare is None else self._prepare(frame))
                    if self._observe is not None:
                        self._observe(frame)
                except BaseException as err:  # surfaced in the caller's thread
                    self._error = err
        if self._error is not None or self._aborting:
            return
        try:
            with telemetry.timed("encode"):
                result = self.encoder.close()
            if self._on_closed is not None:
                self._on_closed(result)
            self._result = result
        except BaseException as err:  # surfaced by close()
            self._error = err
            self.encoder.abort()  # the encoder's own failure has removed the file already

    def _take(self) -> list[NDArray[Any]]:
        """Wait for the frames wanted (fewer at the end); none once ended and drained."""
        with self._changed:
            while len(self._frames) < self._wanted and not self._ending:
                self._changed.wait()
            frames = [self._frames.popleft() for _ in range(min(self._wanted, len(self._frames)))]
            self._wanted = self._batch
            self._changed.notify_all()  # a producer waiting for room
            return frames

    def _stop(self) -> None:
        if not self._stopped:
            self.finish()
            self._stopped = True
            self._thread.join()

    def _raise_error(self) -> NoReturn:
        error = self._error
        if isinstance(error, RoboflowError):  # a MediaError, or prepare's own
            raise error
        raise MediaError(f"encoding failed: {error}", path=str(self.encoder.path)) from error
