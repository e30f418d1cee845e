from pathlib import Path

import pytest

from roboflow_core import ConfigError, MappingType, load_config, loads_config

EXAMPLES = Path(__file__).parents[2] / "examples"

BASE = """
[dataset]
name = "d"
fps = 30
[[mappings]]
topic = "/cam"
feature = "observation.images.cam"
mapping_type = "image"
[[mappings]]
topic = "/joints"
feature = "observation.state"
"""


def test_example_config_loads() -> None:
    config = load_config(EXAMPLES / "sample.toml")
    assert config.dataset.fps == 30
    assert [m.mapping_type for m in config.mappings] == [
        MappingType.IMAGE,
        MappingType.STATE,
        MappingType.ACTION,
    ]


def test_defaults_match_lerobot_recorder() -> None:
    config = loads_config(BASE)
    assert (config.video.codec, config.video.crf, config.video.gop, config.video.preset) == (
        "libsvtav1",
        30,
        2,
        12,
    )
    assert config.mappings[0].effective_policy == "nearest"
    assert config.mappings[1].effective_policy == "hold"
    assert config.alignment.time_source == "header"
    depth = config.video.depth  # lerobot 0.6.1's DepthEncoderConfig defaults
    assert (depth.codec, depth.lossless, depth.depth_min, depth.depth_max, depth.shift, depth.use_log) == (
        "libx265",
        True,
        0.01,
        10.0,
        3.5,
        True,
    )


def test_depth_table_sets_the_quantizer() -> None:
    config = loads_config(BASE + "[video.depth]\ndepth_max = 6.0\nuse_log = false\ngop = 10\n")
    assert (config.video.depth.depth_max, config.video.depth.use_log, config.video.depth.gop) == (
        6.0,
        False,
        10,
    )


def test_original_spellings_keep_working() -> None:
    legacy = loads_config(
        """
[dataset]
name = "d"
fps = 10
[[mapping]]
topic = "/cam/compressed"
name = "observation.images.cam"
encoding = "jpeg"
[[mapping]]
topic = "/joints"
name = "observation.state"
encoding = "float32"
"""
    )
    assert [m.feature for m in legacy.mappings] == ["observation.images.cam", "observation.state"]
    assert legacy.mappings[0].is_image and not legacy.mappings[1].is_image
    alias = loads_config(BASE.replace('mapping_type = "image"', 'type = "image"'))
    assert alias.mappings[0].is_image


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        (BASE + "bogus = 1\n", "mappings[1].bogus", "unknown key"),
        (BASE.replace("fps = 30", "fps = 0"), "dataset.fps", "positive"),
        (BASE.replace("fps = 30", 'fps = "30"'), "dataset.fps", "Expected `int`"),
        (BASE.replace('topic = "/joints"', 'topic = "/cam"'), "mappings[1].topic", "mapped twice"),
        (BASE + '[video]\nprofile = "fastest"\n', "video.profile", "unknown profile"),
        (BASE.replace('mapping_type = "image"', 'mapping_type = "picture"'), "mappings[0].mapping_type", ""),
        ('[dataset]\nname = "d"\nfps = 30\n', "mappings", "required"),
        (
            BASE + "[video.depth]\ndepth_min = 5.0\ndepth_max = 1.0\n",
            "video.depth.depth_min",
            "below depth_max",
        ),
        (BASE + "[video.depth]\nshift = -1.0\n", "video.depth.shift", "depth_min + shift > 0"),
        (BASE + '[video.depth]\ncodec = "ffv1"\n', "video.depth.lossless", "lossless = false"),
        (BASE + "[video.depth]\nbits = 16\n", "video.depth.bits", "unknown key"),
    ],
)
def test_errors_name_the_key_path(text: str, key: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads_config(text, source="c.toml")
    assert info.value.key == key
    assert needle in str(info.value)
    assert "c.toml" in str(info.value)


def test_profile_only_overrides_defaults() -> None:
    speed = loads_config(BASE + '[video]\nprofile = "speed"\ncodec = "libx264"\n')
    assert (speed.video.preset, speed.video.crf) == ("superfast", 26)
    pinned = loads_config(BASE + '[video]\nprofile = "speed"\ncodec = "libx264"\ncrf = 20\n')
    assert (pinned.video.preset, pinned.video.crf) == ("superfast", 20)


def test_content_hash_is_stable_across_layout() -> None:
    a = loads_config(BASE)
    b = loads_config(BASE.replace("fps = 30", "fps    =   30  # same"))
    c = loads_config(BASE.replace("fps = 30", "fps = 15"))
    assert a.content_hash() == b.content_hash() != c.content_hash()
    assert len(a.content_hash()) == 64


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[dataset\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_camera_key_names_the_video_directory_which_is_the_feature() -> None:
    named = 'mapping_type = "image"\ncamera_key = "observation.images.cam"'
    same = loads_config(BASE.replace('mapping_type = "image"', named))
    assert same.mappings[0].camera_key == same.mappings[0].feature
    # the original's own configs name the camera only
    short = loads_config(BASE.replace('mapping_type = "image"', 'mapping_type = "image"\ncamera_key = "cam"'))
    assert short.mappings[0].camera_key == "cam"
    with pytest.raises(ConfigError) as err:
        loads_config(BASE.replace('mapping_type = "image"', 'mapping_type = "image"\ncamera_key = "left"'))
    assert err.value.context["key"] == "mappings[0].camera_key"
    assert "video directory" in str(err.value) and "observation.images.left" in str(err.value)
    with pytest.raises(ConfigError) as err:
        loads_config(BASE + 'camera_key = "observation.state"\n')
    assert err.value.context["key"] == "mappings[1].camera_key"


def test_env_type_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError) as err:
        loads_config(BASE.replace("fps = 30", 'fps = 30\nenv_type = "table_top"'))
    assert err.value.context["key"] == "dataset.env_type"
    assert "no field" in str(err.value)


def test_streaming_and_flushing_keys_are_honoured_or_refused() -> None:
    stated = loads_config(
        BASE
        + "[flushing]\nincremental_video_encoding = true\n"
        + "[streaming]\nenabled = true\nuse_coordinator = true\nupload_part_size = 16777216\n"
        + "finalize_metadata_in_coordinator = true\n"
    )
    assert stated.streaming.enabled is True and stated.flushing.incremental_video_encoding
    refused = {
        "[flushing]\nincremental_video_encoding = false\n": "flushing.incremental_video_encoding",
        "[streaming]\nenabled = false\n": "streaming.enabled",
        "[streaming]\nuse_coordinator = false\n": "streaming.use_coordinator",
        "[streaming]\nupload_part_size = 33554432\n": "streaming.upload_part_size",
        "[streaming]\nring_buffer_size = 128\n": "streaming.ring_buffer_size",
        "[streaming]\nbuffer_timeout_secs = 5\n": "streaming.buffer_timeout_secs",
        "[streaming]\nfinalize_metadata_in_coordinator = false\n": (
            "streaming.finalize_metadata_in_coordinator"
        ),
    }
    for extra, key in refused.items():
        with pytest.raises(ConfigError) as err:
            loads_config(BASE + extra)
        assert err.value.context["key"] == key, extra
        assert "cannot be honoured" in str(err.value) or "not supported" in str(err.value)


def test_upload_part_size_is_the_storage_part_size() -> None:
    from roboflow_core.config import UPLOAD_PART_SIZE
    from roboflow_storage import Storage

    assert Storage.from_url("memory://parts").part_size == UPLOAD_PART_SIZE
