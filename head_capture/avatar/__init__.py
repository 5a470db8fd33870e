"""The avatar: radiance fields trained on the keyframes, with the cameras refined (BARF)."""


class TrainingError(RuntimeError):
    """Training cannot go on (diverged again and again, or a checkpoint is unusable)."""
