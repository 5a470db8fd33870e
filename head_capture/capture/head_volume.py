"""
The head's volume in the head frame, and the pixels of a posed camera that can see it.

The detector's mask follows the person, not the head: it keeps what it takes for neck,
shoulders and, now and then, a piece of the room, differently from view to view. A field
trained on such masks spreads what the views disagree on round the head as haze. A fixed
volume round the template (an ellipsoid through its farthest landmark, plus a margin for hair
and the template's misfit) cuts every keyframe's mask the same way in 3D: a pixel whose ray
misses it cannot show the head, whatever the mask says. The session stores the volume
(``META_KEY``) and the avatar's fields hold no density outside it: what one view's cut mask
still shows of the collar cannot float round the head as haze.

The ellipsoid's bottom holds the body too: chest and shoulders below the neck's base, and
shoulders rising beside the neck up to the head. The detector calls them background from
above and head from the side. Background whose ray crosses the volume below the neck's base
is not taken for the room: the mask marks it unsure. What views still disagree on beside the
neck makes haze there, so the avatar's turntable and mesh end at the neck (``Neck``).
"""

from dataclasses import dataclass
from typing import Optional

from head_capture.geometry import camera_center
import numpy as np

# Hair and the real head's misfit to the average template (m) beyond the landmarks' extent.
HEAD_MARGIN_M = 0.05
# The neck's misfit to the template's neck landmarks (m), round them and below them.
NECK_MARGIN_M = 0.01
# Where a session's transforms.json keeps the volume its masks were cut to.
META_KEY = 'head_volume'


def _through_farthest(points, margin):
    """Return (centre, semi_axes): the points' box proportions through the farthest, + margin."""
    low, high = points.min(0), points.max(0)
    centre, half = (low + high) / 2, np.maximum((high - low) / 2, 1e-6)
    reach = np.linalg.norm((points - centre) / half, axis=1).max()
    return centre, half * reach + margin


def _centre_and_axes(entry, count, name):
    """Return an entry's centre and semi-axes, ``count`` values each; ValueError if not."""
    try:
        centre = np.asarray(entry['centre'], np.float64)
        axes = np.asarray(entry['semi_axes'], np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f'{name} must hold centre and semi_axes, got {entry!r}') from exc
    if centre.shape != (count,) or axes.shape != (count,) or not (
            np.isfinite(centre).all() and np.isfinite(axes).all() and (axes > 0).all()):
        raise ValueError(f'{name} needs {count} finite centre values and {count} positive '
                         f'semi-axes, got {entry!r}')
    return centre, axes


@dataclass(frozen=True)
class Neck:
    """
    The neck as an upright elliptic column in the head frame (metres).

    Below ``top`` (the head's lowest point) the body lies outside the column; below ``base``
    (the neck's lowest point) it fills it too. Keyframe masks leave background below the base
    unsure (``HeadVolume.crossing``); the avatar's outputs leave out the whole body's part.
    """

    centre: tuple  # (x, y)
    semi_axes: tuple  # (x, y)
    top: float
    base: float

    @classmethod
    def around(cls, neck, head, margin=NECK_MARGIN_M):
        """Return the column round the ``neck`` points, below the other ``head`` points."""
        neck = np.asarray(neck, np.float64)
        centre, semi_axes = _through_farthest(neck[:, :2], margin)
        return cls(tuple(centre.tolist()), tuple(semi_axes.tolist()),
                   float(np.min(np.asarray(head)[:, 2]) - margin),
                   float(neck[:, 2].min() - margin))

    def holds_body(self, points):
        """Return where ``points`` (..., 3), numpy or torch, lie in the body's part."""
        (cx, cy), (ax, ay) = self.centre, self.semi_axes
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        outside = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 > 1.0
        return (z < self.top) & (outside | (z < self.base))

    def as_meta(self):
        """Return the neck as a transforms.json entry (millimetre precision)."""
        return {'centre': np.round(self.centre, 4).tolist(),
                'semi_axes': np.round(self.semi_axes, 4).tolist(),
                'top': round(self.top, 4), 'base': round(self.base, 4)}

    @classmethod
    def from_meta(cls, entry):
        """Return the neck a transforms.json entry describes; ValueError if it is not one."""
        centre, axes = _centre_and_axes(entry, 2, f'{META_KEY} neck')
        try:
            top, base = float(entry['top']), float(entry['base'])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f'{META_KEY} neck must hold top and base, got {entry!r}') from exc
        if not (np.isfinite([top, base]).all() and base <= top):
            raise ValueError(f'{META_KEY} neck needs a finite base no higher than its top, got '
                             f'{entry!r}')
        return cls(tuple(centre.tolist()), tuple(axes.tolist()), top, base)


def _outline_window(dot, camera, pad=2):
    """
    Return (rows, columns) slices of the frame holding every pixel whose ray meets the volume.

    ``dot``: the pairwise dot products of ``crossing``'s ex, ey, ez, o. The line through
    pixel p = (x, y, 1)'s ray meets the unit sphere when p' M p >= 0, M = g g' - c A (A the
    ex, ey, ez block, g their products with o, c = o.o - 1): a conic, bounded when M's 2x2
    block is negative definite, and then its x range is where the quadratic in y has a real
    root (and likewise y). ``pad`` pixels absorb rounding at the outline. The whole frame
    when the conic is unbounded (the camera inside the volume or beside it); None when it
    is empty.
    """
    whole = (slice(0, camera.height), slice(0, camera.width))
    c = dot[3, 3] - 1.0
    if c <= 0:
        return whole
    g = dot[:3, 3]
    m = np.outer(g, g) - c * dot[:3, :3]
    definite = m[0, 0] * m[1, 1] - m[0, 1] ** 2
    if m[0, 0] >= 0 or definite <= 0:
        return whole
    spans = []
    for i, j, focal, centre, size in ((0, 1, camera.fx, camera.cx, camera.width),
                                      (1, 0, camera.fy, camera.cy, camera.height)):
        # Where max over the other coordinate of p' M p is >= 0: -definite t² + 2 h t + k >= 0.
        h = m[0, 1] * m[j, 2] - m[j, j] * m[i, 2]
        k = m[j, 2] ** 2 - m[j, j] * m[2, 2]
        spread = h * h + definite * k
        if spread < 0:
            return None
        low, high = (h - np.sqrt(spread)) / definite, (h + np.sqrt(spread)) / definite
        first = max(int(np.floor(centre + focal * low)) - pad, 0)
        last = min(int(np.ceil(centre + focal * high)) + pad + 1, size)
        if first >= last:
            return None
        spans.append(slice(first, last))
    return spans[1], spans[0]


@dataclass(frozen=True)
class HeadVolume:
    """An axis-aligned ellipsoid in the head frame (metres), and the neck in it."""

    centre: np.ndarray
    semi_axes: np.ndarray
    # None for a volume stored before sessions kept the neck.
    neck: Optional[Neck] = None

    @classmethod
    def around(cls, points, margin=HEAD_MARGIN_M, neck=None):
        """Return the ellipsoid with the points' box proportions through the farthest point."""
        return cls(*_through_farthest(np.asarray(points, np.float64), margin), neck)

    @classmethod
    def of_template(cls, template):
        """Return the volume round a ``HeadTemplate``, its neck round the neck's landmarks."""
        on_neck = template.region_mask('neck')
        return cls.around(template.positions,
                          neck=Neck.around(template.positions[on_neck],
                                           template.positions[~on_neck]))

    @classmethod
    def from_meta(cls, entry):
        """Return the volume a transforms.json entry describes; ValueError if it is not one."""
        centre, axes = _centre_and_axes(entry, 3, META_KEY)
        neck = entry.get('neck')
        return cls(centre, axes, None if neck is None else Neck.from_meta(neck))

    def as_meta(self):
        """Return the volume as a transforms.json entry (millimetre precision)."""
        entry = {'centre': np.round(self.centre, 4).tolist(),
                 'semi_axes': np.round(self.semi_axes, 4).tolist()}
        if self.neck is not None:
            entry['neck'] = self.neck.as_meta()
        return entry

    def seen(self, camera, rotation, translation):
        """Return a (height, width) bool image: pixels whose ray crosses the volume."""
        return self.crossing(camera, rotation, translation)[0]

    def crossing(self, camera, rotation, translation):
        """
        Return two (height, width) bool images: rays crossing the volume, and below the neck.

        The first holds the pixels whose ray crosses the volume, the second those whose ray
        crosses it below the neck's base, where the body is (none without a neck).
        ``rotation``, ``translation``: world-to-camera (OpenCV axes), as the PnP pose gives.
        Only the pixels inside the volume's outline are worked out (a keyframe's head fills a
        small part of a 1280x720 frame, and the whole frame cost 22 ms of it on 2 cores).
        """
        rotation = np.asarray(rotation, np.float64)
        # In the frame where the ellipsoid is the unit sphere, pixel (u, v)'s ray is
        # o + s (x ex + y ey + ez) with x, y its normalised image coordinates: it meets the
        # sphere for some s > 0 when a s² + 2 b s + c = 0 has a positive root.
        position = camera_center(rotation, translation)
        origin = (position - self.centre) / self.semi_axes
        ex, ey, ez = rotation / self.semi_axes
        vectors = np.stack([ex, ey, ez, origin])
        dot = vectors @ vectors.T  # every pairwise dot product, once
        seen = np.zeros((camera.height, camera.width), bool)
        body = np.zeros_like(seen)
        window = _outline_window(dot, camera)
        if window is None:
            return seen, body
        rows, columns = window
        x = ((np.arange(camera.width)[columns] - camera.cx) / camera.fx).astype(np.float32)
        y = ((np.arange(camera.height)[rows] - camera.cy) / camera.fy).astype(np.float32)
        x, y, dot = x[None, :], y[:, None], dot.astype(np.float32)
        a = (x * x * dot[0, 0] + (y * y * dot[1, 1] + dot[2, 2])
             + 2 * (x * y * dot[0, 1] + (x * dot[0, 2] + y * dot[1, 2])))
        b = x * dot[0, 3] + (y * dot[1, 3] + dot[2, 3])
        discriminant = b * b - a * (dot[3, 3] - 1.0)
        root = np.sqrt(np.maximum(discriminant, 0.0))
        seen[rows, columns] = crosses = (discriminant >= 0) & (root > b)
        if self.neck is None:
            return seen, body
        # In the head frame the ray is position + s (x r0 + y r1 + r2), s unchanged: its
        # height is linear in s, lowest at one end of its stretch inside the volume (s >= 0).
        rise = (x * rotation[0, 2] + (y * rotation[1, 2] + rotation[2, 2])).astype(np.float32)
        lowest = np.minimum(np.maximum(-b - root, 0.0) * rise, (root - b) * rise) / a
        body[rows, columns] = crosses & (position[2] + lowest < self.neck.base)
        return seen, body

    def square_window(self, camera, rotations, translations):
        """
        Return (x0, y0, side): the frame's square round every pixel that can show the head.

        Training views are cut to it, so the head fills them whatever the phone's aspect: the
        union over the cameras of ``seen`` pixels, squared about its centre and kept inside
        the frame (never wider than its short side). None when no camera sees the volume.
        """
        rows, columns = np.zeros(camera.height, bool), np.zeros(camera.width, bool)
        for rotation, translation in zip(rotations, translations):
            seen = self.seen(camera, rotation, translation)
            rows |= seen.any(1)
            columns |= seen.any(0)
        if not rows.any():
            return None
        (top, bottom), (left, right) = (np.flatnonzero(a)[[0, -1]] for a in (rows, columns))
        side = int(min(max(bottom - top, right - left) + 1, camera.width, camera.height))
        x0 = int(np.clip((left + right + 1 - side) // 2, 0, camera.width - side))
        y0 = int(np.clip((top + bottom + 1 - side) // 2, 0, camera.height - side))
        return x0, y0, side


def keep_in_session(session, volume):
    """
    Store ``volume`` in a session written before sessions kept theirs; True if it was missing.

    Without the entry the session's avatar trains unbounded; with another one already there,
    that one stays (its masks were cut to it).
    """
    if META_KEY in session.transforms.meta:
        return False
    session.transforms.meta[META_KEY] = volume.as_meta()
    session.save()
    return True
