"""Convert recordings into LeRobot episodes and datasets: read, align, extract, encode, stage, merge.

:func:`write_dataset` is the library's entry point: recordings into a local dataset directory.
Below it, :func:`convert_recording` stages one recording as one episode (one pass when it can
vouch for it, else two), :func:`convert_skills` one episode per skill mark, and
:func:`stage_recording` either; :func:`load_staged` reads a stage back. ``roboflow_pipeline``
runs :func:`stage_recording` in parallel processes and publishes the staged episodes (writer
lock, stores).
"""

from roboflow_dataset.convert._recording import RecordingPlan, convert_recording
from roboflow_dataset.convert._skills import convert_skills, load_staged
from roboflow_dataset.convert._write import stage_recording, write_dataset

__all__ = [
    "RecordingPlan",
    "convert_recording",
    "convert_skills",
    "load_staged",
    "stage_recording",
    "write_dataset",
]
