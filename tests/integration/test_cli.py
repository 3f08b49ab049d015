"""The `reelforge` command: generate in-process, validate, and bad input as one line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelforge.cli import app
from reelforge.media.probe import MediaInfo, probe, top_level_atoms

runner = CliRunner()


def _probe(path: Path) -> MediaInfo:
    return asyncio.run(probe(path))


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFORGE_DATA_DIR", str(tmp_path / "data"))


def _generate(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["generate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_generate_writes_every_format_and_prints_paths_and_a_probe_summary(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _generate(
        "a red ball bouncing",
        "--duration",
        "1",
        "--size",
        "320x180",
        "--fps",
        "12",
        "--seed",
        "7",
        "--format",
        "mp4,webm",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    assert "generating" in stderr and "processing" in stderr  # the progress bars
    files = {p.suffix: p for p in out.iterdir()}
    assert {".mp4", ".webm", ".jpg"} <= set(files)
    for path in out.iterdir():
        assert str(path) in stdout.replace("\n", "")
    assert "h264 320x180 @ 12 fps" in stdout
    mp4 = _probe(files[".mp4"])
    assert mp4.video is not None and mp4.audio is not None
    assert (mp4.video.width, mp4.video.height, mp4.video.fps) == (320, 180, 12)
    atoms = top_level_atoms(files[".mp4"])
    assert atoms.index("moov") < atoms.index("mdat")
    webm = _probe(files[".webm"])
    assert webm.video is not None and webm.audio is not None
    assert (webm.video.codec, webm.audio.codec) == ("vp9", "opus")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["", "--duration", "1"], "invalid_prompt"),
        (["   \t ", "--duration", "1"], "invalid_prompt"),
        (["x" * 32_001], "invalid_prompt"),
        (["red\x01ball"], "invalid_prompt"),
        (["a red ball", "--size", "321x180"], "invalid_size"),
        (["a red ball", "--size", "1922x1080"], "invalid_size"),
        (["a red ball", "--size", "62x64"], "invalid_size"),
        (["a red ball", "--size", "wide"], "invalid_size"),
        (["a red ball", "--duration", "0"], "invalid_duration"),
        (["a red ball", "--duration", "-2"], "invalid_duration"),
        (["a red ball", "--duration", "61"], "invalid_duration"),
        (["a red ball", "--fps", "0"], "invalid_fps"),
        (["a red ball", "--fps", "61"], "invalid_fps"),
        (["a red ball", "--format", "mp4,gif"], "invalid_format"),
    ],
)
def test_bad_generate_input_is_one_line_and_exit_2(args: list[str], code: str) -> None:
    exit_code, stdout, stderr = _generate(*args)
    assert exit_code == 2
    assert f"[{code}]" in stderr
    assert "Traceback" not in stderr + stdout
    assert stderr.strip().count("\n") == 0


def test_unwritable_output_dir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    exit_code, _, stderr = _generate(
        "a red ball", "--duration", "0.5", "--size", "64x64", "--out", str(blocker / "out")
    )
    assert exit_code == 2
    assert "[output_not_writable]" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_validate_reports_a_readable_file_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, stderr = _generate(
        "blue waves", "--duration", "1", "--size", "160x90", "--out", str(out)
    )
    assert code == 0, stderr
    mp4 = next(out.glob("*.mp4"))
    table = runner.invoke(app, ["validate", str(mp4)])
    assert table.exit_code == 0
    for word in ("container", "duration", "h264 160x90", "aac"):
        assert word in table.stdout
    as_json = runner.invoke(app, ["validate", str(mp4), "--json"])
    assert as_json.exit_code == 0
    report = json.loads(as_json.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["probe"]["video"]["width"] == 160


def test_validate_of_a_file_that_is_not_a_video_exits_2(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    result = runner.invoke(app, ["validate", str(text)])
    assert result.exit_code == 2
    assert "[unreadable_media]" in result.stderr and "Traceback" not in result.stderr
    as_json = runner.invoke(app, ["validate", str(text), "--json"])
    assert as_json.exit_code == 2
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["problems"][0]["code"] == "unreadable_media"
    missing = runner.invoke(app, ["validate", str(tmp_path / "nope.mp4")])
    assert missing.exit_code == 2


def test_the_installed_command_never_prints_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reelforge", "generate", "a red ball", "--fps", "99"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error [invalid_fps]")
    assert "Traceback" not in result.stderr
