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
