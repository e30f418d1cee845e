"""Roboflow executor: bounded, back-pressured stages and progress reporting."""

from roboflow_executor._prefetch import Prefetcher, prefetch
from roboflow_executor._progress import Progress

__all__ = ["Prefetcher", "Progress", "prefetch"]
