"""The prompt decides the scene: colours, subjects, motion, mood, caption, music."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from reelforge.media.render import (
    AUDIO_SAMPLE_RATE,
    SceneRenderer,
    scene_from_prompt,
    synthesize_soundtrack,
)
from reelforge.media.render.text import FONT_5X7


def hue_of(rgb: tuple[int, int, int]) -> float:
    hue, _, _ = colorsys.rgb_to_hsv(*(channel / 255 for channel in rgb))
    return hue * 360


def hue_distance(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


@pytest.mark.parametrize(
    ("word", "hue"),
    [
        ("red", 0),
        ("orange", 28),
        ("yellow", 53),
        ("golden", 43),
        ("green", 125),
        ("teal", 178),
        ("cyan", 188),
        ("blue", 218),
        ("navy", 228),
        ("purple", 282),
        ("violet", 268),
        ("pink", 335),
        ("magenta", 305),
        ("brown", 26),
    ],
)
def test_named_colour_sets_the_sky_and_subject_hue(word: str, hue: float) -> None:
    scene = scene_from_prompt(f"a {word} ball", seed=1)
    assert scene.colours == (word,)
    assert hue_distance(hue_of(scene.sky_bottom), hue) <= 12
    assert hue_distance(hue_of(scene.subject_colours[0]), hue) <= 12


@pytest.mark.parametrize("word", ["white", "black", "grey", "gray", "silver"])
def test_achromatic_colours_give_a_nearly_grey_sky(word: str) -> None:
    scene = scene_from_prompt(f"a {word} square", seed=1)
    _, saturation, _ = colorsys.rgb_to_hsv(*(c / 255 for c in scene.sky_bottom))
    assert saturation < 0.1
    assert scene.colours == (("grey",) if word == "gray" else (word,))


def test_white_sky_is_lighter_than_black_sky() -> None:
    white = scene_from_prompt("a white ball", seed=1)
    black = scene_from_prompt("a black ball", seed=1)
    assert sum(white.sky_bottom) > sum(black.sky_bottom) + 200


def test_first_named_colour_leads_and_later_colours_go_to_later_subjects() -> None:
    scene = scene_from_prompt("a red ball over blue waves", seed=1)
    assert scene.colours == ("red", "blue")
    assert scene.subjects == ("ball", "waves")
    assert hue_distance(hue_of(scene.sky_bottom), 0) <= 12
    assert hue_distance(hue_of(scene.subject_colours[1]), 218) <= 12


@pytest.mark.parametrize(
    ("prompt", "subject"),
    [
        ("a ball", "ball"),
        ("a circle", "ball"),
        ("a sphere", "ball"),
        ("a square", "square"),
        ("a box", "square"),
        ("a cube", "square"),
        ("stars", "stars"),
        ("waves", "waves"),
        ("the ocean", "waves"),
        ("the sea", "waves"),
        ("rain", "rain"),
        ("a city", "city"),
        ("a skyline", "city"),
    ],
)
def test_subject_words_pick_the_subject(prompt: str, subject: str) -> None:
    assert scene_from_prompt(prompt, seed=1).subjects[0] == subject


@pytest.mark.parametrize(
    ("word", "motion"),
    [
        ("bouncing", "bouncing"),
        ("spinning", "spinning"),
        ("rotating", "spinning"),
        ("drifting", "drifting"),
        ("floating", "drifting"),
        ("zoom", "zoom"),
        ("orbit", "orbit"),
        ("circling", "orbit"),
    ],
)
def test_motion_words_pick_the_motion(word: str, motion: str) -> None:
    assert scene_from_prompt(f"a green cube {word}", seed=1).motion == motion


@pytest.mark.parametrize(
    ("word", "time_of_day"),
    [("night", "night"), ("sunset", "sunset"), ("dawn", "dawn"), ("day", "day")],
)
def test_time_of_day_words_are_recognised(word: str, time_of_day: str) -> None:
    assert scene_from_prompt(f"a ball at {word}", seed=1).time_of_day == time_of_day


def test_night_is_darker_than_day() -> None:
    night = scene_from_prompt("a ball at night", seed=1)
    day = scene_from_prompt("a ball during the day", seed=1)
    assert night.brightness < day.brightness
    assert sum(night.sky_bottom) < sum(day.sky_bottom)


def test_night_adds_stars() -> None:
    assert "stars" in scene_from_prompt("a ball at night", seed=1).subjects


def test_dark_mood_is_darker_than_bright_mood() -> None:
    dark = scene_from_prompt("a dark blue ball", seed=1)
    bright = scene_from_prompt("a bright blue ball", seed=1)
    assert dark.mood == "dark"
    assert bright.mood == "bright"
    assert dark.brightness < bright.brightness


def test_energetic_music_is_faster_than_calm_music() -> None:
    energetic = scene_from_prompt("an energetic red ball", seed=1)
    calm = scene_from_prompt("a calm red ball", seed=1)
    assert energetic.tempo_bpm > calm.tempo_bpm + 40
    assert energetic.speed > calm.speed


def test_bouncing_is_faster_than_drifting() -> None:
    bouncing = scene_from_prompt("a red ball bouncing", seed=1)
    drifting = scene_from_prompt("a red ball drifting", seed=1)
    assert bouncing.tempo_bpm > drifting.tempo_bpm


def test_sad_and_night_scenes_are_minor_and_lower_than_happy_ones() -> None:
    happy = scene_from_prompt("a happy ball", seed=1)
    for prompt in ("a sad ball", "a ball at night"):
        low = scene_from_prompt(prompt, seed=1)
        assert low.minor
        assert low.root_hz < happy.root_hz
    assert not happy.minor


def test_quoted_text_becomes_the_caption() -> None:
    scene = scene_from_prompt('a red ball bouncing, caption "Hello"', seed=1)
    assert scene.caption == "Hello"
    assert scene.colours == ("red",)


def test_curly_quotes_also_make_a_caption() -> None:
    assert scene_from_prompt("waves \u201cGood  morning\u201d", seed=1).caption == "Good morning"


def test_caption_words_do_not_steer_the_scene() -> None:
    scene = scene_from_prompt('a red ball, caption "blue night rain"', seed=1)
    assert scene.colours == ("red",)
    assert scene.time_of_day is None
    assert "rain" not in scene.subjects


def test_no_quotes_means_no_caption() -> None:
    assert scene_from_prompt("a red ball", seed=1).caption is None


def test_number_words_set_the_object_count() -> None:
    assert scene_from_prompt("three red balls", seed=1).object_count == 3
    assert scene_from_prompt("a red ball", seed=1).object_count == 1


def test_same_prompt_and_seed_give_the_same_scene() -> None:
    prompt = 'golden waves at sunset, caption "Hi"'
    assert scene_from_prompt(prompt, seed=42) == scene_from_prompt(prompt, seed=42)


def test_another_seed_varies_the_scene() -> None:
    first = scene_from_prompt("a red ball", seed=1)
    second = scene_from_prompt("a red ball", seed=2)
    assert first.variation != second.variation
    assert first.sky_bottom != second.sky_bottom  # hue jitter
    assert first.subjects == second.subjects  # the prompt still decides what is shown


def test_unknown_words_still_give_a_complete_and_distinct_scene() -> None:
    first = scene_from_prompt("quantum lemonade symposium", seed=1)
    second = scene_from_prompt("a treatise on medieval pottery", seed=1)
    for scene in (first, second):
        assert scene.subjects
        assert scene.motion in ("bouncing", "spinning", "drifting", "zoom", "orbit")
        assert scene.tempo_bpm > 0
    assert (first.sky_bottom, first.root_hz, first.subjects, first.motion) != (
        second.sky_bottom,
        second.root_hz,
        second.subjects,
        second.motion,
    )


def test_every_glyph_of_the_font_is_five_by_seven() -> None:
    for char, rows in FONT_5X7.items():
        cells = rows.split()
        assert len(cells) == 7, char
        assert all(len(row) == 5 and set(row) <= {"#", "."} for row in cells), char


def test_frames_have_the_requested_shape_and_are_deterministic() -> None:
    scene = scene_from_prompt("rain over the city, three balls bouncing on waves", seed=3)
    first = SceneRenderer(scene, 160, 90, fps=24, duration_seconds=1).frame(5)
    again = SceneRenderer(scene, 160, 90, fps=24, duration_seconds=1).frame(5)
    assert first.shape == (90, 160, 3)
    assert first.dtype == np.uint8
    assert np.array_equal(first, again)


def test_frames_move_over_time() -> None:
    renderer = SceneRenderer(scene_from_prompt("a red ball bouncing", seed=3), 160, 90, 24, 2)
    assert not np.array_equal(renderer.frame(0), renderer.frame(12))


def test_caption_is_drawn_in_light_pixels() -> None:
    with_caption = scene_from_prompt('a navy square, caption "HELLO"', seed=3)
    without = scene_from_prompt("a navy square", seed=3)
    light_with = (SceneRenderer(with_caption, 320, 180, 24, 1).frame(0).min(axis=2) > 230).sum()
    light_without = (SceneRenderer(without, 320, 180, 24, 1).frame(0).min(axis=2) > 230).sum()
    assert light_with > light_without + 100


def test_tiny_frames_skip_a_caption_that_cannot_fit() -> None:
    scene = scene_from_prompt('a ball, caption "a very long caption that cannot fit"', seed=1)
    frame = SceneRenderer(scene, 64, 64, 24, 1).frame(0)
    assert frame.shape == (64, 64, 3)


def test_soundtrack_is_stereo_audible_and_fades() -> None:
    sound = synthesize_soundtrack(scene_from_prompt("a red ball", seed=1), 2.0)
    assert sound.shape == (2 * AUDIO_SAMPLE_RATE, 2)
    assert sound.dtype == np.float32
    assert float(np.sqrt(np.mean(sound**2))) > 0.02
    assert float(np.abs(sound[:10]).max()) < 0.01  # fade in
    assert float(np.abs(sound[-10:]).max()) < 0.01  # fade out


def test_even_a_one_frame_soundtrack_is_not_silent() -> None:
    sound = synthesize_soundtrack(scene_from_prompt("a ball", seed=1), 1 / 60)
    assert float(np.abs(sound).max()) > 0.05
