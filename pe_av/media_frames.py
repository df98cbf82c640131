"""Which frames of a video to keep: the one home of the frame-sampling rules (files and arrays alike).

- ``num_frames=N``: ``N`` evenly spaced frames, first and last included (:func:`sample_frame_indices`,
  the reference's rule, as the ``-16-frame`` checkpoints were trained).
- ``fps=R``: one frame every ``1/R`` seconds of video time from the first frame: frame
  ``floor(k · video_fps / R)`` for ``k = 0, 1, …`` while that time is inside the video; needs the
  video's frame rate (read from the file; for arrays give it as ``video_fps``).
- ``max_frames=M``: at most ``M`` frames. When the rule above (or every frame, without one) would
  give more, ``M`` evenly spaced frames of the whole video are taken instead, so a long video is
  still covered from start to end.

``num_frames`` and ``fps`` cannot be combined. :class:`FrameSampling` holds the three settings;
:meth:`FrameSampling.indices` applies them to a video of ``total`` frames (``None``: keep every frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["FrameSampling", "frame_times", "sample_frame_indices"]


def sample_frame_indices(total_frames: int, num_frames: int) -> list[int]:
    """``num_frames`` evenly spaced indices into ``total_frames`` frames, first and last included
    (the reference's rule; repeats frames when the video is shorter than ``num_frames``)."""
    if isinstance(total_frames, bool) or not isinstance(total_frames, int) or total_frames < 1:
        raise ValueError(f"total_frames must be a positive int, got {total_frames!r}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    if num_frames == 1:
        return [0]
    return [int(i * (total_frames - 1) / (num_frames - 1)) for i in range(num_frames)]


def _positive_rate(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of frames per second, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FrameSampling:
    """Frame sampling settings (see the module docstring); the constructor checks them."""

    num_frames: int | None = None
    fps: float | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.num_frames is not None:
            sample_frame_indices(1, self.num_frames)  # validates it
        object.__setattr__(self, "fps", _positive_rate("fps", self.fps))
        if self.max_frames is not None and (isinstance(self.max_frames, bool) or not isinstance(self.max_frames, int)
                                            or self.max_frames < 1):
            raise ValueError(f"max_frames must be a positive int, got {self.max_frames!r}")
        if self.num_frames is not None and self.fps is not None:
            raise ValueError(f"give num_frames or fps, not both (got num_frames={self.num_frames}, fps={self.fps})")

    @property
    def samples(self) -> bool:
        """Whether any frame may be left out."""
        return self.num_frames is not None or self.fps is not None or self.max_frames is not None

    def indices(self, total: int, video_fps: float | None = None) -> list[int] | None:
        """Indices of the frames to keep out of ``total``, in order, or ``None`` for every frame."""
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise ValueError(f"total must be a positive int, got {total!r}")
        if self.num_frames is not None:
            count = self.num_frames if self.max_frames is None else min(self.num_frames, self.max_frames)
            return sample_frame_indices(total, count)
        if self.fps is not None:
            rate = _positive_rate("video_fps", video_fps)
            if rate is None:
                raise ValueError("fps= sampling needs the video's frame rate: give a file (its rate is read from "
                                 "it) or video_fps= for frame arrays")
            step = rate / self.fps  # frames per sample
            picked = [min(total - 1, int(k * step + 1e-9)) for k in range(max(1, math.ceil(total / step - 1e-9)))]
            if self.max_frames is not None and len(picked) > self.max_frames:
                return sample_frame_indices(total, self.max_frames)
            return picked
        if self.max_frames is not None and total > self.max_frames:
            return sample_frame_indices(total, self.max_frames)
        return None


def frame_times(indices: list[int], video_fps: float) -> list[float]:
    """Presentation times in seconds of frame ``indices`` at ``video_fps`` frames per second."""
    return [i / video_fps for i in indices]
