"""The sound bed of a scene: pad chords, an arpeggio and a bass pulse, as PCM.

Key, mode and tempo come from the :class:`~reelforge.media.render.scene.Scene`;
:func:`write_wav` stores the samples for ffmpeg to encode beside the frames.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path
from typing import Final

import numpy as np

from reelforge.media.render.arrays import FloatArray
from reelforge.media.render.scene import Scene

__all__ = ["AUDIO_SAMPLE_RATE", "synthesize_soundtrack", "write_wav"]

AUDIO_SAMPLE_RATE: Final = 48_000

_MAJOR: Final = (0, 2, 4, 5, 7, 9, 11)
_MINOR: Final = (0, 2, 3, 5, 7, 8, 10)


def _scale_tone(scale: tuple[int, ...], degree: int) -> int:
    return scale[degree % 7] + 12 * (degree // 7)


def synthesize_soundtrack(
    scene: Scene, duration_seconds: float, sample_rate: int = AUDIO_SAMPLE_RATE
) -> FloatArray:
    """A stereo (samples, 2) float32 sound bed: pad chords, an arpeggio and a bass pulse.

    Key, mode and tempo come from the scene; it fades in and out and is never silent.
    """
    samples = max(1, round(duration_seconds * sample_rate))
    t = np.arange(samples, dtype=np.float64) / sample_rate
    rng = np.random.default_rng(scene.variation ^ 0x5EED)
    scale = _MINOR if scene.minor else _MAJOR
    beat = 60.0 / scene.tempo_bpm
    chord_seconds = 8 * beat
    progression = (0, 5, 2, 6) if scene.minor else (0, 5, 3, 4)
    chord_tones = np.array(
        [[_scale_tone(scale, degree + 2 * k) for k in range(3)] for degree in progression],
        dtype=np.float64,
    )

    chord_at = (t // chord_seconds).astype(np.intp) % len(progression)
    frequencies = scene.root_hz * 2.0 ** (chord_tones[chord_at] / 12.0)  # (samples, 3)
    phases = 2 * np.pi * np.cumsum(frequencies, axis=0) / sample_rate
    swell = 0.75 + 0.25 * np.sin(2 * np.pi * t / (2 * chord_seconds))
    pad_left = (np.sin(phases) + 0.3 * np.sin(2 * phases)).sum(axis=1) * swell
    # A slightly detuned right channel widens the pad.
    pad_right = (np.sin(phases * 1.003) + 0.3 * np.sin(2.006 * phases)).sum(axis=1) * swell

    left = 0.12 * pad_left
    right = 0.12 * pad_right
    step_seconds = beat / 2 if scene.tempo_bpm >= 96 else beat
    decay = 5.0 + scene.tempo_bpm / 30.0
    note_samples = round(min(0.7, 4 * step_seconds) * sample_rate)
    for step in range(math.ceil(duration_seconds / step_seconds)):
        start = round(step * step_seconds * sample_rate)
        if start >= samples:
            break
        length = min(samples - start, note_samples)
        local = np.arange(length, dtype=np.float64) / sample_rate
        chord = chord_tones[int(chord_at[start])]
        tone = chord[int(rng.integers(3))] + 12 * int(rng.integers(1, 3))
        frequency = scene.root_hz * 2.0 ** (tone / 12.0)
        envelope = np.exp(-local * decay) * (1.0 - np.exp(-local * 300.0))
        note = np.sin(2 * np.pi * frequency * local) + 0.25 * np.sin(4 * np.pi * frequency * local)
        note *= envelope * 0.22
        pan = 0.5 + (0.3 if step % 2 else -0.3)
        left[start : start + length] += note * (1.0 - pan)
        right[start : start + length] += note * pan
        if step_seconds == beat or step % 2 == 0:
            bass_frequency = scene.root_hz / 2 * 2.0 ** (chord[0] / 12.0)
            bass = np.sin(2 * np.pi * bass_frequency * local) * np.exp(-local * 7.0)
            bass *= (1.0 - np.exp(-local * 200.0)) * 0.25
            left[start : start + length] += bass
            right[start : start + length] += bass

    mix = np.stack([left, right], axis=1)
    fade = min(0.3, duration_seconds / 4)
    fade_samples = max(1, round(fade * sample_rate))
    ramp = np.linspace(0.0, 1.0, fade_samples + 2)[1:-1] if fade_samples < samples else None
    if ramp is not None:
        mix[: len(ramp)] *= ramp[:, None]
        mix[-len(ramp) :] *= ramp[::-1, None]
    peak = float(np.abs(mix).max())
    if peak > 0:
        mix *= 0.5 / peak
    return mix.astype(np.float32)


def write_wav(path: Path, sound: FloatArray, sample_rate: int) -> None:
    pcm = (np.clip(sound, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(sound.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.tobytes())
