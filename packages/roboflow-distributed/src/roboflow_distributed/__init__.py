"""Roboflow distributed mode: coordination store, batches, workers, reaper and finalizer."""
