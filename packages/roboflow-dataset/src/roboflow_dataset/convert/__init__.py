"""Convert recordings into LeRobot episodes: read, align, extract, encode, stage.

:func:`convert_recording` stages one recording as one episode (one pass when it can vouch for
it, else two), :func:`convert_skills` one episode per skill mark; :func:`load_staged` reads a
stage back. ``roboflow_pipeline`` runs these in parallel and publishes the staged episodes.
"""

from roboflow_dataset.convert._recording import RecordingPlan, convert_recording
from roboflow_dataset.convert._skills import convert_skills, load_staged

__all__ = ["RecordingPlan", "convert_recording", "convert_skills", "load_staged"]
