import pickle

import pytest

import roboflow_core
from roboflow_core import errors

ALL_ERRORS = [getattr(errors, name) for name in errors.__all__]


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_every_error_is_a_roboflow_error_and_survives_pickle(cls: type[errors.RoboflowError]) -> None:
    err = cls("payload shorter than declared", path="a.bag", topic="/cam", log_time_ns=5)
    assert isinstance(err, errors.RoboflowError)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == str(err)
    assert back.context == {"path": "a.bag", "topic": "/cam", "log_time_ns": 5}


def test_message_names_context_and_reason() -> None:
    err = errors.DecodeError("data too short", path="x.mcap", topic="/cam", key=None)
    assert str(err) == "path=x.mcap, topic=/cam: data too short"
    assert err.topic == "/cam"
    with pytest.raises(AttributeError):
        _ = err.key


def test_public_api_is_sorted_and_complete() -> None:
    assert roboflow_core.__all__ == sorted(roboflow_core.__all__)
    for name in roboflow_core.__all__:
        assert hasattr(roboflow_core, name)


def test_errors_say_whether_retrying_can_help() -> None:
    assert errors.CoordinationError("down").transient and errors.StorageError("503").transient
    for cls in (errors.CorruptRecordingError, errors.ConfigError, errors.PipelineError, errors.DecodeError):
        assert not cls("bad").transient
    refused = errors.StorageError("access denied", transient=False, url="s3://b/k")
    back = pickle.loads(pickle.dumps(refused))
    assert not back.transient and back.context == {"url": "s3://b/k"}
    assert roboflow_core.is_transient(RuntimeError("a bug")) and not roboflow_core.is_transient(back)
