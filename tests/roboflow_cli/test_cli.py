import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from roboflow_cli.main import cli

SAMPLES = Path(__file__).parents[2].parent / "shared" / "samples"
EXAMPLE_CONFIG = Path(__file__).parents[2] / "examples" / "sample.toml"


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("inspect", "convert", "sample"):
        assert command in result.output


def test_sample_inspect_convert_round_trip(tmp_path: Path) -> None:
    runner = CliRunner()
    rec = tmp_path / "s.bag"
    assert (
        runner.invoke(
            cli, ["sample", str(rec), "--duration", "1", "--width", "64", "--height", "48"]
        ).exit_code
        == 0
    )
    inspected = runner.invoke(cli, ["inspect", str(rec), "--json"])
    assert inspected.exit_code == 0, inspected.output
    info = json.loads(inspected.output)
    assert info["format"] == "ros1"
    counts = {t["topic"]: t["count"] for t in info["topics"]}
    assert counts == {"/cam_high/image_raw": 30, "/joint_states": 100, "/action": 100}
    out = tmp_path / "ds"
    result = runner.invoke(
        cli, ["convert", str(rec), "-c", str(EXAMPLE_CONFIG), "-o", str(out), "--progress"]
    )
    assert result.exit_code == 0, result.output
    assert "episodes  1 converted" in result.output
    assert "frames/s" in result.output
    assert "frames" in result.stderr and "ETA" in result.stderr  # the forced progress bar
    assert (out / "meta" / "info.json").is_file()


def test_sample_with_a_depth_camera_converts_with_the_depth_example(tmp_path: Path) -> None:
    runner = CliRunner()
    rec = tmp_path / "d.mcap"
    args = ["sample", str(rec), "--duration", "0.5", "--width", "64", "--height", "48", "--depth", "16UC1"]
    assert runner.invoke(cli, args).exit_code == 0
    config = EXAMPLE_CONFIG.with_name("sample-depth.toml")
    result = runner.invoke(cli, ["convert", str(rec), "-c", str(config), "-o", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    feature = json.loads((tmp_path / "ds/meta/info.json").read_text())["features"][
        "observation.images.cam_high.depth"
    ]
    assert (feature["shape"], feature["info"]["is_depth_map"], feature["info"]["depth_unit"]) == (
        [48, 64, 1],
        True,
        "mm",
    )


def test_config_errors_exit_non_zero_with_the_key_path(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[dataset]\nname = "x"\nfps = 30\ncolour = "red"\n[[mappings]]\ntopic = "/a"\nfeature = "b"\n'
    )
    rec = tmp_path / "s.mcap"
    CliRunner().invoke(cli, ["sample", str(rec), "--duration", "0.5", "--width", "64", "--height", "48"])
    result = CliRunner().invoke(cli, ["convert", str(rec), "-c", str(config), "-o", str(tmp_path / "ds")])
    assert result.exit_code == 1
    assert "dataset.colour" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_skip_lists_failures_and_exits_non_zero(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "a.mcap"
    runner.invoke(cli, ["sample", str(good), "--duration", "1", "--width", "64", "--height", "48"])
    bad = tmp_path / "b.mcap"
    bad.write_bytes(good.read_bytes()[:5000])
    result = runner.invoke(
        cli,
        [
            "convert",
            str(tmp_path / "*.mcap"),
            "-c",
            str(EXAMPLE_CONFIG),
            "-o",
            str(tmp_path / "ds"),
            "--on-error",
            "skip",
        ],
    )
    assert result.exit_code == 1
    assert "episodes  1 converted" in result.output
    assert "b.mcap" in result.output and "CorruptRecordingError" in result.output


def test_inspect_reports_exact_counts_of_a_third_party_bag() -> None:
    bag = SAMPLES / "rosbag.js" / "example-lz4.bag"
    if not bag.exists():
        pytest.skip("shared/samples is not next to the repo")
    result = CliRunner().invoke(cli, ["inspect", str(bag), "--json"])
    info = json.loads(result.output)
    assert sum(t["count"] for t in info["topics"]) == 8647
    assert {t["topic"]: t["count"] for t in info["topics"]}["/turtle1/pose"] == 1344


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "notes.mcap"
    junk.write_text("hello")
    result = CliRunner().invoke(cli, ["inspect", str(junk)])
    assert result.exit_code == 1
    assert "notes.mcap" in result.stderr and "Traceback" not in result.stderr


def test_convert_and_inspect_refuse_credentials_in_a_url(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[dataset]\nname = "x"\nfps = 30\n[[mappings]]\ntopic = "/a"\nfeature = "s"\n')
    url = "s3://bucket/runs/a.mcap?region=eu-west-1&secret_access_key=NEVER-SHOWN-1234"
    for args in (["convert", url, "-c", str(config), "-o", str(tmp_path / "ds")], ["inspect", url]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert "credentials are not accepted in a URL" in result.output
        assert "NEVER-SHOWN-1234" not in result.output
    assert not (tmp_path / "ds").exists()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_the_cli_keeps_numpy_from_starting_blas_threads() -> None:
    """OpenBLAS would start a spinning thread per CPU when numpy is imported; an explicit setting wins."""

    code = (
        "import roboflow_cli, os, numpy; "
        "print(len(os.listdir('/proc/self/task')), os.environ['OPENBLAS_NUM_THREADS'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]  # the main thread alone
    env["OPENBLAS_NUM_THREADS"] = "3"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[1] == "3"


CONVERT_WATCHING_IMPORTS = """
import json, sys
from roboflow_cli.main import cli
from roboflow_media import VideoEncoder

at_first_frame = []
encode = VideoEncoder.encode

def watched(self, frame):
    if not at_first_frame:
        at_first_frame.append(sorted(sys.modules))
    encode(self, frame)

VideoEncoder.encode = watched
cli(sys.argv[1:], prog_name="roboflow", standalone_mode=False)
print(json.dumps({"first_frame": at_first_frame[0], "end": sorted(sys.modules)}))
"""


def _loaded(modules: list[str], *names: str) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names)]


def test_a_local_mcap_conversion_imports_only_what_it_uses(tmp_path: Path) -> None:
    """`roboflow convert` of a local ROS2 MCAP bag (a raw and a JPEG camera, joints, actions), in a
    process of its own: no format reader but MCAP's, no OpenTelemetry while telemetry is off, no
    worker processes for one job, no rosbags (its types are read natively); pyarrow and the spool
    not before the first frame is encoded, nor mcap's own reader and the chunk codecs an
    uncompressed file does not need (each would cost ~3-40 ms of start-up)."""

    from roboflow_dataset.synth import ACTION_TOPIC, JOINT_TOPIC, camera_topic, write_recording

    bag = tmp_path / "bag"
    write_recording(bag, "ros2-mcap", duration_s=0.5, cameras=("high", "wrist"), compressed=("wrist",))
    config = tmp_path / "c.toml"
    config.write_text(
        '[dataset]\nname = "t"\nfps = 30\ntask = "t"\n'
        + "".join(
            f'[[mappings]]\ntopic = "{camera_topic(cam, cam == "wrist")}"\n'
            f'feature = "observation.images.{cam}"\nmapping_type = "image"\n'
            for cam in ("high", "wrist")
        )
        + f'[[mappings]]\ntopic = "{JOINT_TOPIC}"\nfeature = "observation.state"\n'
        f'[[mappings]]\ntopic = "{ACTION_TOPIC}"\nfeature = "action"\nmapping_type = "action"\n'
        '[video]\ncodec = "libx264"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    args = ["convert", str(bag), "-c", str(config), "-o", str(tmp_path / "ds"), "--no-progress"]
    run = subprocess.run(
        [sys.executable, "-c", CONVERT_WATCHING_IMPORTS, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "ds/meta/info.json").is_file()
    modules = json.loads(run.stdout.splitlines()[-1])
    first, end = modules["first_frame"], modules["end"]
    assert _loaded(first, "roboflow_dataset.sources._mcap", "av"), "the watch saw a frame of this conversion"
    never = ("opentelemetry", "sqlite3", "rosbags", "multiprocessing")
    assert _loaded(end, *never, "roboflow_dataset.sources._rrd") == []
    assert _loaded(first, "pyarrow", "roboflow_storage._spool", "mcap", "lz4", "zstandard") == []
    assert _loaded(end, "pyarrow"), "the parquet files are written with pyarrow, after the first frame"
