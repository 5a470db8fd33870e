"""
Pinhole camera intrinsics with Brown-Conrady distortion (k1, k2, p1, p2, k3).

The five terms are in OpenCV's order, which is also ROS's plumb_bob ``D``, so they go to
OpenCV as they are. Four may be given (k3 = 0), as transforms.json files usually hold.

Pixel coordinates follow OpenCV: the centre of the top-left pixel is (0, 0), so the image
centre is ((W - 1) / 2, (H - 1) / 2). Files in the nerfstudio/COLMAP convention put that pixel
centre at (0.5, 0.5); ``session.py`` converts at the file boundary.
"""

from dataclasses import dataclass, replace
import math

import numpy as np

# A phone's main camera (about 26 mm equivalent) sees about 69 degrees across its long side.
# Used when a stream carries no CameraInfo and the user gives no field of view.
DEFAULT_FOV_DEG = 69.0
# Horizontal fields of view a camera can have, in degrees (both ends excluded).
FOV_RANGE_DEG = (1.0, 179.0)
# The distortion terms held, in OpenCV's (and plumb_bob's) order.
DISTORTION_TERMS = ('k1', 'k2', 'p1', 'p2', 'k3')
NO_DISTORTION = (0.0,) * len(DISTORTION_TERMS)


def check_fov(fov_deg):
    """Refuse a horizontal field of view no camera has (degrees)."""
    low, high = FOV_RANGE_DEG
    if not low < fov_deg < high:
        raise ValueError(f'field of view must be in ({low:g}, {high:g}) degrees, got {fov_deg}')


def image_intrinsics(image, known=None, fov_deg=None):
    """
    Return the camera of ``image``: ``known`` resized to it, else one spanning ``fov_deg``.

    Streams and folders are often scaled from the size a camera was calibrated at; a camera
    nobody described is taken to see ``fov_deg`` (by default a phone's) across its long side.
    """
    height, width = image.shape[:2]
    if known is None:
        return Intrinsics.from_fov(width, height, DEFAULT_FOV_DEG if fov_deg is None else fov_deg)
    if (known.width, known.height) == (width, height):
        return known
    return known.resized(width, height)


@dataclass(frozen=True)
class Intrinsics:
    """Focal lengths and principal point in pixels, image size, and lens distortion."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion: tuple = NO_DISTORTION

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'image size must be positive, got {self.width}x{self.height}')
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f'focal lengths must be positive, got fx={self.fx} fy={self.fy}')
        values = (self.fx, self.fy, self.cx, self.cy, *self.distortion)
        if len(self.distortion) not in (4, 5) or not all(math.isfinite(v) for v in values):
            raise ValueError('intrinsics need finite fx, fy, cx, cy and four or five distortion '
                             'terms (k1 k2 p1 p2 [k3])')
        # Four terms are five with k3 = 0: one camera compares equal however it was given.
        object.__setattr__(self, 'distortion',
                           tuple(float(d) for d in (*self.distortion, 0.0)[:5]))

    @classmethod
    def from_fov(cls, width, height, fov_deg=DEFAULT_FOV_DEG):
        """Return square-pixel intrinsics whose long image side spans ``fov_deg``."""
        check_fov(fov_deg)
        focal = 0.5 * max(width, height) / math.tan(0.5 * math.radians(fov_deg))
        return cls(focal, focal, 0.5 * (width - 1), 0.5 * (height - 1), int(width), int(height))

    @classmethod
    def from_matrix(cls, matrix, width, height, distortion=NO_DISTORTION):
        """Build from a 3x3 camera matrix (as in CameraInfo.k or OpenCV)."""
        k = np.asarray(matrix, dtype=float).reshape(3, 3)
        return cls(k[0, 0], k[1, 1], k[0, 2], k[1, 2], int(width), int(height),
                   tuple(distortion))

    @classmethod
    def from_camera_info(cls, width, height, k, d=(), distortion_model='plumb_bob'):
        """
        Build from the fields of a sensor_msgs/CameraInfo; None for an uncalibrated camera.

        A CameraInfo whose K is all zeros says the camera is not calibrated, so the caller
        falls back to a field of view. plumb_bob's five terms (k1 k2 p1 p2 k3) are modelled;
        rational_polynomial's k4 k5 k6 must be zero (rectify upstream otherwise), and fisheye
        models are refused.
        """
        k = np.asarray(k, dtype=float).reshape(-1)
        if k.size != 9:
            raise ValueError(f'CameraInfo K must have 9 entries, got {k.size}')
        if not np.any(k):
            return None
        d = [float(v) for v in d]
        if d and distortion_model not in ('plumb_bob', 'rational_polynomial'):
            raise ValueError(f'distortion model {distortion_model!r} is not supported '
                             '(plumb_bob, or rational_polynomial with k4 k5 k6 = 0)')
        terms = len(DISTORTION_TERMS)
        if any(abs(v) > 1e-9 for v in d[terms:]):
            raise ValueError(f'distortion terms beyond k1 k2 p1 p2 k3 are not supported, got '
                             f'{d[terms:]}: rectify the images upstream (e.g. image_proc)')
        return cls.from_matrix(k, width, height, tuple((d + [0.0] * terms)[:terms]))

    @property
    def matrix(self):
        """Return the 3x3 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def has_distortion(self):
        """Say whether any distortion term is non-zero."""
        return any(d != 0.0 for d in self.distortion)

    @property
    def fov_x_deg(self):
        """Return the horizontal field of view in degrees."""
        return math.degrees(2.0 * math.atan(0.5 * self.width / self.fx))

    def rays(self, u, v):
        """Return camera-frame directions (depth 1) through pixels (u, v), pinhole model."""
        u = np.asarray(u)
        return np.stack([(u - self.cx) / self.fx, (np.asarray(v) - self.cy) / self.fy,
                         np.ones_like(u)], -1)

    def without_distortion(self):
        """Return the same pinhole camera with the distortion terms cleared."""
        return replace(self, distortion=NO_DISTORTION)

    def cropped(self, x0, y0, width, height):
        """Return the intrinsics of the window of size width x height at (x0, y0)."""
        return replace(self, cx=self.cx - x0, cy=self.cy - y0, width=int(width),
                       height=int(height))

    def resized(self, width, height):
        """Return the intrinsics after scaling the image to width x height."""
        sx, sy = width / self.width, height / self.height
        # Pixel centres sit at half-integers, so the principal point scales about -0.5.
        return replace(self, fx=self.fx * sx, fy=self.fy * sy,
                       cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5,
                       width=int(width), height=int(height))
