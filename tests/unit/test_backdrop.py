"""Backgrounds and settings named in the prompt shape the scene behind the subject.

Scene fields first (which words went to the backdrop, which to the subject), then
the pixels of rendered frames: the backdrop's region must look like what was asked.
"""

from __future__ import annotations

import colorsys

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelforge.media.render import SceneRenderer, scene_from_prompt
from reelforge.media.render.drawing import Canvas
from reelforge.media.render.layers import Snowfall
from reelforge.media.render.phrases import find_backdrop

WIDTH, HEIGHT = 320, 180
Frame = npt.NDArray[np.uint8]


def hue_of(rgb: tuple[float, float, float]) -> float:
    hue, _, _ = colorsys.rgb_to_hsv(*(channel / 255 for channel in rgb))
    return hue * 360


def saturation_of(rgb: tuple[float, float, float]) -> float:
    _, saturation, _ = colorsys.rgb_to_hsv(*(channel / 255 for channel in rgb))
    return saturation


def hue_distance(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def render(prompt: str, seed: int = 3, index: int = 12) -> Frame:
    return SceneRenderer(scene_from_prompt(prompt, seed), WIDTH, HEIGHT, 24, 2).frame(index)


def mean_rgb(pixels: Frame) -> tuple[float, float, float]:
    red, green, blue = pixels.reshape(-1, 3).astype(np.float64).mean(axis=0)
    return float(red), float(green), float(blue)


def greenish(frame: Frame) -> npt.NDArray[np.bool_]:
    red, green, blue = (frame[..., channel].astype(np.int16) for channel in range(3))
    return (green > red + 60) & (green > blue + 60)


# -- which words describe the backdrop -----------------------------------------


def test_background_colour_is_told_apart_from_the_subject_colour() -> None:
    scene = scene_from_prompt("a green square on a white background", seed=1)
    assert scene.colours == ("green",)
    assert scene.backdrop_colour == "white"
    assert hue_distance(hue_of(scene.subject_colours[0]), 125) <= 12
    assert min(scene.sky_bottom) > 230


def test_plain_background_is_one_flat_colour() -> None:
    scene = scene_from_prompt("a green square spinning on a plain white background", seed=1)
    assert scene.backdrop == "flat"
    assert scene.sky_top == scene.sky_bottom


def test_solid_means_flat_too() -> None:
    assert scene_from_prompt("a red ball on a solid black floor", seed=1).backdrop == "flat"


def test_a_coloured_background_without_plain_is_softly_shaded() -> None:
    scene = scene_from_prompt("a red ball on a blue background", seed=1)
    assert scene.backdrop == "colour"
    assert scene.sky_top != scene.sky_bottom
    assert hue_distance(hue_of(scene.sky_bottom), 218) <= 12


@pytest.mark.parametrize(
    ("prompt", "colour"),
    [
        ("a red ball with a background of deep blue", "blue"),
        ("a red cube on a white studio background", "white"),
        ("a red ball against a black backdrop", "black"),
        ("a red ball bouncing on the grey floor", "grey"),
    ],
)
def test_colour_words_attached_to_a_background_noun_go_to_the_backdrop(
    prompt: str, colour: str
) -> None:
    scene = scene_from_prompt(prompt, seed=1)
    assert scene.backdrop_colour == colour
    assert scene.colours == ("red",)


def test_dark_said_of_the_background_shades_it_and_not_the_mood() -> None:
    scene = scene_from_prompt("a ball on a dark background", seed=1)
    assert scene.mood == "neutral"
    assert max(scene.sky_bottom) < 120


@pytest.mark.parametrize(
    ("prompt", "setting"),
    [
        ("a red ball against a blue sky", "sky"),
        ("a red ball among the clouds", "sky"),
        ("a yellow ball over the ocean", "ocean"),
        ("a ball by the sea", "ocean"),
        ("a pink box in a forest", "forest"),
        ("a ball in the woods", "forest"),
        ("a ball in the desert", "desert"),
        ("a ball on the sand dunes", "desert"),
        ("a red ball in the snow", "snow"),
        ("a ball on a snowy day", "snow"),
        ("three blue cubes orbiting in space", "space"),
        ("a ball drifting through a nebula", "space"),
    ],
)
def test_setting_words_pick_the_setting(prompt: str, setting: str) -> None:
    assert scene_from_prompt(prompt, seed=1).backdrop == setting


def test_prompts_without_backdrop_words_keep_the_default_gradient() -> None:
    scene = scene_from_prompt("a red ball bouncing at sunset", seed=1)
    assert scene.backdrop == "gradient"
    assert scene.backdrop_colour is None


def test_a_colour_before_a_landscape_tints_its_ground_not_the_subject() -> None:
    scene = scene_from_prompt("a blue ball in a red desert", seed=1)
    assert scene.colours == ("blue",)
    assert hue_distance(hue_of(scene.ground), 0) <= 12


def test_a_colour_before_sky_tints_the_sky() -> None:
    scene = scene_from_prompt("a ball under a pink sky", seed=1)
    assert hue_distance(hue_of(scene.sky_bottom), 335) <= 15


def test_the_ocean_waves_are_sea_coloured_whatever_the_subject_colour() -> None:
    scene = scene_from_prompt("a yellow ball over the ocean", seed=1)
    waves = scene.subject_colours[scene.subjects.index("waves")]
    assert 180 <= hue_of(waves) <= 220
    assert hue_distance(hue_of(scene.subject_colours[0]), 53) <= 12


def test_space_brings_stars_and_keeps_them_white() -> None:
    scene = scene_from_prompt("a red ball in space", seed=1)
    assert "stars" in scene.subjects
    assert saturation_of(scene.subject_colours[scene.subjects.index("stars")]) < 0.15


def test_a_setting_alone_still_has_a_moving_shape() -> None:
    subjects = scene_from_prompt("a quiet forest", seed=1).subjects
    assert {"ball", "square"} & set(subjects)


def test_night_darkens_a_setting() -> None:
    day = scene_from_prompt("a ball in a forest during the day", seed=1)
    night = scene_from_prompt("a ball in a forest at night", seed=1)
    assert sum(night.sky_bottom) < sum(day.sky_bottom) - 150
    assert sum(night.ground) < sum(day.ground)


# -- what the frames show ----------------------------------------------------------


def test_plain_white_background_renders_white_around_a_green_square() -> None:
    frame = render("a green square spinning on a plain white background")
    square = greenish(frame)
    assert square.sum() > 500  # the square is there, and green
    background = frame[~square & (frame.min(axis=2) > 200)]
    assert background.shape[0] > 0.8 * WIDTH * HEIGHT
    assert min(mean_rgb(background)) > 240
    assert mean_rgb(frame[:10].reshape(-1, 3)) == mean_rgb(frame[-10:].reshape(-1, 3))  # flat


def test_sky_is_blue_at_the_top() -> None:
    red, green, blue = mean_rgb(render("a red ball against a blue sky")[: HEIGHT // 8])
    assert blue > red + 60
    assert blue > green


def test_ocean_has_a_horizon_with_water_below() -> None:
    frame = render("a yellow ball over the ocean")
    red, _, blue = mean_rgb(frame[-HEIGHT // 4 :])
    assert blue > red + 60  # sea-blue water
    sky_row = frame[round(HEIGHT * 0.62) - 4].astype(np.int16)
    water_row = frame[round(HEIGHT * 0.62) + 2].astype(np.int16)
    assert np.abs(sky_row - water_row).mean() > 20  # a visible horizon


def test_forest_shows_dark_green_trees_below_a_lighter_sky() -> None:
    frame = render("a pink box in a forest")
    lower = mean_rgb(frame[round(HEIGHT * 0.72) :])
    assert lower[1] > lower[0] and lower[1] > lower[2]
    assert sum(lower) < sum(mean_rgb(frame[: HEIGHT // 8])) - 200


def test_desert_ground_is_sandy() -> None:
    frame = render("a red ball in the desert", index=0)
    ground = mean_rgb(frame[-HEIGHT // 5 :])
    assert 20 <= hue_of(ground) <= 50
    assert saturation_of(ground) > 0.25


def test_snow_is_bright_all_over() -> None:
    frame = render("a red ball in the snow")
    assert float(frame.mean()) > 190


def test_space_is_dark_with_bright_specks() -> None:
    frame = render("three blue cubes orbiting in space")
    assert float(frame.mean()) < 45
    assert int((frame.min(axis=2) > 150).sum()) >= 20  # white stars and dust


SETTING_PROMPTS = [
    "a green square on a plain white background",
    "a red ball against a blue sky",
    "a yellow ball over the ocean",
    "a pink box in a forest",
    "a red ball in the desert",
    "a red ball in the snow",
    "three blue cubes orbiting in space",
]


@pytest.mark.parametrize("prompt", SETTING_PROMPTS)
def test_same_seed_gives_identical_frames(prompt: str) -> None:
    assert np.array_equal(render(prompt, seed=5), render(prompt, seed=5))


@pytest.mark.parametrize("prompt", SETTING_PROMPTS)
def test_another_seed_gives_other_frames(prompt: str) -> None:
    assert not np.array_equal(render(prompt, seed=5), render(prompt, seed=6))


def test_snowflakes_are_white_and_fall_downwards() -> None:
    canvas = Canvas.of_size(WIDTH, HEIGHT)
    snow = Snowfall.place(canvas, np.random.default_rng(1), speed=1.0)
    first, later = (np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(2))
    snow.draw(first, 1.0)
    snow.draw(later, 1.25)
    assert int((first.min(axis=2) > 200).sum()) > 40
    # Rows holding flakes, compared at each downward shift: the best match is below.
    rows_first = (first.min(axis=2) > 200).sum(axis=1).astype(np.int64)
    rows_later = (later.min(axis=2) > 200).sum(axis=1).astype(np.int64)
    overlap = [int((rows_first[: HEIGHT - k] * rows_later[k:]).sum()) for k in range(12)]
    assert int(np.argmax(overlap)) >= 2


BACKDROP_VOCABULARY = [
    *("a", "the", "on", "in", "against", "over", "of", "and", "with", "at"),
    *("background", "backdrop", "wall", "floor", "field", "studio", "grass"),
    *("plain", "solid", "dark", "light", "pale", "deep", "bright"),
    *("white", "black", "red", "blue", "green", "grey", "golden", "pink"),
    *("sky", "clouds", "ocean", "sea", "forest", "desert", "dunes", "snow", "space"),
    *("ball", "square", "stars", "waves", "rain", "city", "night", "sunset", "bouncing"),
]


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.sampled_from(BACKDROP_VOCABULARY), max_size=10),
    width=st.sampled_from([64, 96, 320, 640]),
    height=st.sampled_from([64, 90, 180, 360]),
)
def test_any_mix_of_backdrop_words_renders_frames_of_the_requested_size(
    words: list[str], width: int, height: int
) -> None:
    scene = scene_from_prompt(" ".join(words), seed=1)
    frame = SceneRenderer(scene, width, height, 24, 1).frame(5)
    assert frame.shape == (height, width, 3)


@given(words=st.lists(st.sampled_from(BACKDROP_VOCABULARY), max_size=12))
def test_backdrop_phrases_only_ever_remove_words(words: list[str]) -> None:
    rest = list(find_backdrop(words).rest)
    remaining = iter(words)
    assert all(word in remaining for word in rest)  # rest is words, in order, minus some
