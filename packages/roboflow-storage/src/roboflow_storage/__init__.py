"""Roboflow storage: where recordings are read from and datasets written to."""

from roboflow_storage._inputs import RECORDING_SUFFIXES, local_path, resolve_inputs

__all__ = ["RECORDING_SUFFIXES", "local_path", "resolve_inputs"]
