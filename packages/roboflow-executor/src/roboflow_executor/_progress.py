"""Progress of long work: frames done, rate and ETA, drawn on a terminal or silent."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"


class Progress:
    """A thread-safe frame counter that draws a one-line bar on a terminal.

    Nothing is drawn when ``stream`` is not a terminal (logs and CI stay clean) unless
    ``force`` is set.

    Args:
        total: Expected number of frames, if known (for the ETA).
        label: Shown before the bar.
        stream: Where to draw (default stderr).
        force: Draw even when ``stream`` is not a terminal.
        interval: Seconds between redraws.
    """

    def __init__(
        self,
        total: int | None = None,
        *,
        label: str = "",
        stream: TextIO | None = None,
        force: bool = False,
        interval: float = 0.2,
    ) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = force or self._stream.isatty()
        self._interval = interval
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._lock = threading.Lock()

    @property
    def elapsed(self) -> float:
        """Seconds since the progress started."""
        return time.monotonic() - self._started

    def add_total(self, frames: int) -> None:
        """Grow the expected total (when work is discovered as it goes)."""
        with self._lock:
            self.total = (self.total or 0) + frames

    def advance(self, frames: int = 1) -> None:
        """Count ``frames`` more frames done and redraw at most every ``interval`` seconds."""
        with self._lock:
            self.done += frames
            now = time.monotonic()
            if self._enabled and now - self._last_draw >= self._interval:
                self._last_draw = now
                self._draw()

    def render(self) -> str:
        """The progress line: count, bar, rate and ETA."""
        elapsed = self.elapsed
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [self.label] if self.label else []
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * 24)
            parts.append(f"[{'#' * filled}{'.' * (24 - filled)}] {self.done}/{self.total} frames")
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            parts.append(f"{rate:,.0f} fps ETA {_fmt_duration(eta)}")
        else:
            parts.append(f"{self.done} frames {rate:,.0f} fps")
        return " ".join(parts)

    def _draw(self) -> None:
        self._stream.write("\r\x1b[2K" + self.render())
        self._stream.flush()

    def finish(self) -> None:
        """Draw the last state and end the line."""
        with self._lock:
            if self._enabled:
                self._draw()
                self._stream.write("\n")
                self._stream.flush()
