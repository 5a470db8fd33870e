"""
Which views of the head the capture already has, and where the phone should go next.

The view sphere is cut into azimuth sectors on three elevation bands, one per orbit of the
paper's capture (below the face, level with it, above it). Each bin keeps the best quality
(pose confidence x sharpness, 0..1) any keyframe seen from it reached; a bin counts once that
is good enough. Training starts when every orbit is nearly full. Guidance is one short
instruction, said from the point of view of the person holding the phone and facing the head:
"right" is counter-clockwise seen from above (increasing azimuth).
"""

from dataclasses import dataclass
import math
import re

import cv2
from head_capture.geometry import c2w_opengl_to_w2c, camera_center, view_angles
import numpy as np


@dataclass(frozen=True)
class CoverageConfig:
    """The bins, what fills one, when capture is complete, and the distances that suit."""

    azimuth_bins: int = 12
    # Band edges in degrees, low to high: one band per orbit.
    elevation_edges_deg: tuple = (-30.0, 0.0, 25.0, 55.0)
    # A bin is covered once a keyframe from it reaches this quality.
    min_quality: float = 0.3
    # Training starts when every band has this share of its bins covered.
    target_share: float = 0.9
    distance_m: tuple = (0.35, 1.5)

    def __post_init__(self):
        edges = np.asarray(self.elevation_edges_deg, float)
        if self.azimuth_bins < 4 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError('need azimuth_bins >= 4 and increasing elevation_edges_deg')
        if edges[0] < -90 or edges[-1] > 90:
            raise ValueError(f'elevation edges must lie in [-90, 90], got {tuple(edges)}')
        if not 0 < self.min_quality <= 1 or not 0 < self.target_share <= 1:
            raise ValueError('min_quality and target_share must be in (0, 1]')
        if not 0 < self.distance_m[0] < self.distance_m[1]:
            raise ValueError(f'distance_m must be (near, far), got {self.distance_m}')


@dataclass(frozen=True)
class View:
    """Where the camera is, seen from the head: degrees, 0 azimuth in front, and metres."""

    azimuth_deg: float
    elevation_deg: float
    distance_m: float

    @classmethod
    def of_pose(cls, rotation, translation):
        """Return the view of a world-to-camera pose in the head frame."""
        azimuth, elevation = view_angles(rotation, translation)
        distance = float(np.linalg.norm(camera_center(rotation, translation)))
        return cls(float(azimuth), float(elevation), distance)


def _wrap_deg(angle):
    """Return an angle in [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


class Coverage:
    """The azimuth x elevation fill of one capture, its next-best view and its trigger."""

    def __init__(self, config=CoverageConfig()):
        self.config = config
        self.edges = np.asarray(config.elevation_edges_deg, float)
        shape = (len(self.edges) - 1, config.azimuth_bins)
        self.quality = np.zeros(shape)
        self.keyframe = np.full(shape, -1)
        self.triggered = False
        self._heading = 1.0

    @property
    def sector_deg(self):
        """Return the azimuth width of a bin."""
        return 360.0 / self.config.azimuth_bins

    def bin_of(self, view):
        """Return (band, sector) of a view, or None when its elevation is outside the bands."""
        band = int(np.searchsorted(self.edges, view.elevation_deg, side='right')) - 1
        if not 0 <= band < len(self.edges) - 1:
            return None
        sector = int(math.floor(view.azimuth_deg / self.sector_deg + 0.5)) % len(self.quality[0])
        return band, sector

    def centres(self):
        """Return the (azimuth, elevation) of every bin centre in degrees, (bands, sectors, 2)."""
        azimuth = np.arange(self.config.azimuth_bins) * self.sector_deg
        elevation = (self.edges[:-1] + self.edges[1:]) / 2
        return np.stack(np.broadcast_arrays(_wrap_deg(azimuth)[None], elevation[:, None]), -1)

    @property
    def covered(self):
        """Return which bins are covered, (bands, sectors)."""
        return self.quality >= self.config.min_quality

    @property
    def band_shares(self):
        """Return each band's covered share."""
        return self.covered.mean(1)

    @property
    def score(self):
        """Return the covered share of all bins."""
        return float(self.covered.mean())

    @property
    def complete(self):
        """Whether every band reached the target share."""
        return bool(np.all(self.band_shares >= self.config.target_share - 1e-9))

    def add(self, view, quality, keyframe=-1):
        """
        Record a keyframe's view and quality; return True only when this fires the trigger.

        The trigger fires once per capture, on the keyframe that completes the coverage.
        """
        self._follow(view)
        where = self.bin_of(view)
        if where is not None and quality > self.quality[where]:
            self.quality[where] = quality
            self.keyframe[where] = keyframe
        if self.complete and not self.triggered:
            self.triggered = True
            return True
        return False

    def _follow(self, view):
        """Track the walking direction, so guidance does not send the person back and forth."""
        if hasattr(self, '_last_azimuth'):
            step = _wrap_deg(view.azimuth_deg - self._last_azimuth)
            if abs(step) > 1.0:
                self._heading = math.copysign(1.0, step)
        self._last_azimuth = view.azimuth_deg

    def next_target(self, view):
        """
        Return the (band, sector) to go to next from ``view``, None when capture is complete.

        Orbits are walked one at a time: the open bin nearest in azimuth on the current band
        until that band reaches its target, then the nearest band still short of it. Turning
        back against the walking direction counts as a detour of half a sector.
        """
        short = np.flatnonzero(self.band_shares < self.config.target_share - 1e-9)
        if len(short) == 0:
            return None
        here = self.bin_of(view)
        if here is not None:
            band_now = here[0]
        else:  # below or above every band: the nearest one
            band_now = 0 if view.elevation_deg < self.edges[0] else len(self.edges) - 2
        band = int(short[np.argmin(np.abs(short - band_now))])
        sectors = np.flatnonzero(~self.covered[band])
        turn = _wrap_deg(sectors * self.sector_deg - view.azimuth_deg)
        detour = np.abs(turn) + np.where(turn * self._heading < -self.sector_deg / 2,
                                         self.sector_deg / 2, 0.0)
        return band, int(sectors[np.argmin(detour)])

    def summary(self):
        """Return one line: the covered share of all bins and of each band, low to high."""
        shares = ', '.join(f'{share:.0%}' for share in self.band_shares)
        return f'{self.score:.0%} of the view bins covered (bands low to high: {shares})'

    def shortfall(self):
        """Return the bands short of the target, as 'low..high°: share' text ('' if none)."""
        short = np.flatnonzero(self.band_shares < self.config.target_share - 1e-9)
        return ', '.join(f'{self.edges[band]:g}..{self.edges[band + 1]:g}° elevation '
                         f'{self.band_shares[band]:.0%}' for band in short)

    def to_json(self):
        """Plain dict: the fill grid and its layout, for reports and ROS messages."""
        return {'azimuth_bins': self.config.azimuth_bins,
                'elevation_edges_deg': list(self.config.elevation_edges_deg),
                'quality': np.round(self.quality, 4).tolist(), 'score': round(self.score, 4),
                'band_shares': np.round(self.band_shares, 4).tolist(),
                'complete': self.complete}

    def grid(self):
        """
        Return the fill (bands, sectors) in [0, 1] (1 = covered) and its two axis labels.

        The labels carry the layout, so a reader rebuilds the map with ``from_grid`` alone:
        this is the /head_capture/coverage message.
        """
        fill = np.clip(self.quality / self.config.min_quality, 0.0, 1.0)
        edges = ','.join(f'{e:g}' for e in self.edges)
        return fill, (f'elevation_band(edges_deg={edges})',
                      f'azimuth_sector(width_deg={self.sector_deg:g},first_centre_deg=0)')

    @classmethod
    def from_grid(cls, fill, labels):
        """Rebuild a map (to draw) from ``grid``'s fill and labels; ValueError if unreadable."""
        match = re.fullmatch(r'elevation_band\(edges_deg=([-0-9.,e]+)\)', labels[0])
        fill = np.asarray(fill, float)
        if match is None or fill.ndim != 2:
            raise ValueError(f'not a coverage grid: labels {labels}, shape {fill.shape}')
        edges = tuple(float(e) for e in match.group(1).split(','))
        coverage = cls(CoverageConfig(azimuth_bins=fill.shape[1], elevation_edges_deg=edges,
                                      min_quality=1.0))
        if coverage.quality.shape != fill.shape:
            raise ValueError(f'coverage grid {fill.shape} does not match its labels {labels}')
        coverage.quality[:] = fill
        return coverage


def session_coverage(frames, config=CoverageConfig()):
    """
    Return the Coverage of a session's registered frames, and their views in frame order.

    Each frame counts with its pose confidence, as the live guide counts keyframes: the report
    and ``reconstruct`` see the coverage the guide would have shown.
    """
    coverage, views = Coverage(config), []
    for frame in frames:
        if frame.c2w is None:
            continue
        view = View.of_pose(*c2w_opengl_to_w2c(frame.c2w))
        coverage.add(view, float(frame.meta.get('pose_quality', {}).get('confidence', 1.0)))
        views.append(view)
    return coverage, views


PROBLEMS = {
    'blurred': 'hold still: blurred',
    'no_head': 'head not visible: point the phone at the head',
    'no_pose': 'keep the whole head in view',
}


def guidance(coverage, view=None, problem=None):
    """
    Return the one instruction to give now.

    ``view`` is where the phone is (None when unknown), ``problem`` a key of ``PROBLEMS``
    when the latest frame could not be used.
    """
    if coverage.complete:
        return 'coverage complete: hold on, training the avatar'
    if problem is not None:
        return PROBLEMS[problem]
    if view is None:
        return 'point the phone at the head to start'
    near, far = coverage.config.distance_m
    if view.distance_m < near:
        return 'step back: too close'
    if view.distance_m > far:
        return 'come closer'
    target = coverage.next_target(view)
    here = coverage.bin_of(view)
    if here is None:  # above or below all bands
        return 'lower the phone' if view.elevation_deg > coverage.edges[-1] else 'raise the phone'
    if target == here:
        return 'slowly here: this view is still missing'
    if target[0] != here[0]:
        return 'raise the phone' if target[0] > here[0] else 'lower the phone'
    turn = _wrap_deg(coverage.centres()[target][0] - view.azimuth_deg)
    degrees = int(5 * round(abs(turn) / 5))
    return f'move {"right" if turn > 0 else "left"} {degrees}°'


BAND_COLOURS = np.array([[60, 60, 60], [230, 170, 40], [70, 200, 90]], np.uint8)


def coverage_image(coverage, size=256, view=None):
    """
    Draw the coverage ring seen from above: RGB (size, size, 3), the face towards the top.

    One ring per band, the highest innermost; a bin is grey when empty, amber when seen but
    not good enough, green when covered. A white dot marks ``view`` when given.
    """
    half = (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    forward, left = (half - rows) / half, (half - cols) / half  # image up = +x, left = +y
    radius = np.hypot(forward, left)
    bands = len(coverage.edges) - 1
    ring = np.floor((1.0 - radius) / 0.9 * bands).astype(int)
    ring = np.where((radius >= 0.1) & (radius <= 1.0), np.clip(ring, 0, bands - 1), -1)
    azimuth = np.degrees(np.arctan2(left, forward))
    sector = np.floor(azimuth / coverage.sector_deg + 0.5).astype(int) % coverage.quality.shape[1]
    state = np.where(coverage.covered, 2, np.where(coverage.quality > 0, 1, 0))
    image = np.full((size, size, 3), 20, np.uint8)
    inside = ring >= 0
    image[inside] = BAND_COLOURS[state[ring[inside], sector[inside]]]
    # Thin dark lines between bins and rings.
    across = np.abs(((azimuth / coverage.sector_deg + 0.5) % 1.0) - 0.5)
    edge = across > 0.5 - 0.02 / np.maximum(radius, 1e-3)
    for k in range(bands + 1):
        edge |= np.abs(radius - (1.0 - 0.9 * k / bands)) < 1.5 / half
    image[edge & (radius >= 0.1 - 1.5 / half) & (radius <= 1.0 + 1.5 / half)] = 20
    if view is not None:
        where = coverage.bin_of(view)
        band = where[0] if where is not None else (0 if view.elevation_deg < 0 else bands - 1)
        r = 1.0 - 0.9 * (band + 0.5) / bands
        a = math.radians(view.azimuth_deg)
        centre = (int(round(half - r * half * math.sin(a))),
                  int(round(half - r * half * math.cos(a))))
        cv2.circle(image, centre, max(2, size // 40), (255, 255, 255), -1, cv2.LINE_AA)
    return image
