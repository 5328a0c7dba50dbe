"""Opus multistream decoding for the end-to-end tests, through the system's libopus (ctypes).

The Moonlight client library hands its audio renderer Opus packets and the multistream layout
(channels, streams, coupled streams, mapping) it learnt from the host; a real client decodes
them with libopus exactly like this before playing them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

import numpy as np

# The longest Opus frame: 120 ms at 48 kHz.
MAX_FRAME_SAMPLES = 5760


@dataclass(frozen=True)
class OpusConfig:
    """OPUS_MULTISTREAM_CONFIGURATION, as the library's audio init callback gives it."""

    sample_rate: int
    channels: int
    streams: int
    coupled_streams: int
    samples_per_frame: int
    mapping: tuple[int, ...]


_lib = None


def _libopus():
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("opus") or "libopus.so.0"
        lib = ctypes.CDLL(name)
        lib.opus_multistream_decoder_create.restype = ctypes.c_void_p
        lib.opus_multistream_decoder_create.argtypes = [
            ctypes.c_int32, ctypes.c_int, ctypes.c_int, ctypes.c_int,
            ctypes.POINTER(ctypes.c_ubyte), ctypes.POINTER(ctypes.c_int)]
        lib.opus_multistream_decode.restype = ctypes.c_int
        lib.opus_multistream_decode.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
            ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int]
        lib.opus_multistream_decoder_destroy.restype = None
        lib.opus_multistream_decoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_strerror.restype = ctypes.c_char_p
        lib.opus_strerror.argtypes = [ctypes.c_int]
        _lib = lib
    return _lib


class OpusError(RuntimeError):
    pass


class MultistreamDecoder:
    """A libopus multistream decoder for one stream's layout."""

    def __init__(self, config: OpusConfig) -> None:
        lib = _libopus()
        self.config = config
        mapping = (ctypes.c_ubyte * config.channels)(*config.mapping[:config.channels])
        err = ctypes.c_int(0)
        self._st = lib.opus_multistream_decoder_create(
            config.sample_rate, config.channels, config.streams, config.coupled_streams,
            mapping, ctypes.byref(err))
        if err.value != 0 or not self._st:
            raise OpusError(f"opus_multistream_decoder_create({config}): "
                            f"{lib.opus_strerror(err.value).decode()}")
        self._pcm = (ctypes.c_int16 * (MAX_FRAME_SAMPLES * config.channels))()

    def decode(self, packet: bytes | None) -> np.ndarray:
        """One packet to (samples, channels) int16; None conceals a lost packet."""
        lib = _libopus()
        c = self.config
        if packet is None:
            n = lib.opus_multistream_decode(self._st, None, 0, self._pcm, c.samples_per_frame, 0)
        else:
            n = lib.opus_multistream_decode(self._st, packet, len(packet), self._pcm,
                                            MAX_FRAME_SAMPLES, 0)
        if n < 0:
            raise OpusError(f"opus_multistream_decode: {lib.opus_strerror(n).decode()}")
        out = np.frombuffer(self._pcm, dtype=np.int16, count=n * c.channels)
        return out.reshape(n, c.channels).copy()

    def close(self) -> None:
        if self._st:
            _libopus().opus_multistream_decoder_destroy(self._st)
            self._st = None

    def __del__(self) -> None:
        self.close()


def decode_all(config: OpusConfig, packets: list[bytes | None]) -> np.ndarray:
    """Decode packets in order into one (samples, channels) float array in [-1, 1)."""
    dec = MultistreamDecoder(config)
    try:
        parts = [dec.decode(p) for p in packets]
    finally:
        dec.close()
    if not parts:
        return np.zeros((0, config.channels))
    return np.concatenate(parts).astype(np.float64) / 32768.0


def peak_hz(x: np.ndarray, rate: int = 48000) -> float:
    """The frequency of the strongest spectral peak of a mono signal (Hann window, parabolic
    interpolation between bins)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spec[0] = 0
    k = float(np.argmax(spec))
    i = int(k)
    if 0 < i < len(spec) - 1:
        a, b, c = spec[i - 1], spec[i], spec[i + 1]
        if a - 2 * b + c != 0:
            k += 0.5 * (a - c) / (a - 2 * b + c)
    return k * rate / len(x)


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS (-180 for digital silence)."""
    return 20 * np.log10(max(float(np.sqrt(np.mean(np.square(x)))), 1e-9))


def tone_db(x: np.ndarray, hz: float, rate: int = 48000) -> float:
    """RMS level in dBFS of the `hz` component of a mono signal (one DFT bin, Hann window)."""
    n = np.arange(len(x))
    w = np.hanning(len(x))
    z = np.sum(x * w * np.exp(-2j * np.pi * hz * n / rate)) / np.sum(w)
    return 20 * np.log10(max(abs(z) * 2 / np.sqrt(2), 1e-9))
