"""
What a person has round the head model: closed shoulders, collars and hoods, hair that hangs.

The bust is anny's body cut flat at the head model's neck, which leaves a hole round the neck
4 to 20 cm wide: from above and behind a camera looks into the torso, a shape no person has,
and the detector trained on it put real heads seen from behind on the coat below them. Here a
shoulder line closes the hole, sloping from the neck (bare, or in a collar or a hood's bunched
fabric) down to where the bust was cut, and long hair falls from the back of the head over
it as a curtain or a ponytail. All of it is extra meshes with vertex colours beside the head
model: the head model stays the one source of landmarks, and what these meshes cover is
hidden by the depth test like anything else.
"""

from dataclasses import dataclass

from head_capture.synth.bust import cloth_colours
import numpy as np

COLLARS = ('none', 'collar', 'hood')
HANGING = ('none', 'curtain', 'ponytail')
ANGLES = 96
SLOPE_ROWS = 8


@dataclass(frozen=True)
class Dressing:
    """How one subject's figure is closed and dressed round the head."""

    closed: bool
    collar: str
    neck_gap_m: float  # bare skin between the neck and the top's edge, at the front
    hanging: str
    hang_m: float  # how far hanging hair reaches below the neck cut
    hang_half_width_deg: float
    seed: int


def sample_dressing(rng, hair_style):
    """Draw how a subject is closed and dressed: most closed, long hair mostly hanging."""
    closed = rng.random() < 0.75
    collar = COLLARS[rng.choice(3, p=[0.6, 0.25, 0.15])] if closed else 'none'
    hanging_odds = {'long': [0.15, 0.55, 0.3], 'medium': [0.55, 0.25, 0.2]}
    hanging = HANGING[rng.choice(3, p=hanging_odds.get(hair_style, [1.0, 0.0, 0.0]))]
    longest = 0.25 if hair_style == 'long' else 0.08
    return Dressing(bool(closed), collar, float(rng.uniform(0.005, 0.05)), hanging,
                    float(rng.uniform(0.0, longest)), float(rng.uniform(60.0, 110.0)),
                    int(rng.integers(2 ** 31)))


def grid_faces(rows, columns, wrap):
    """Return triangles of a (rows, columns) vertex grid, row-major; ``wrap`` closes columns."""
    row, column = np.meshgrid(np.arange(rows - 1), np.arange(columns - (0 if wrap else 1)),
                              indexing='ij')
    a = row * columns + column
    b = row * columns + (column + 1) % columns
    c, d = a + columns, b + columns
    return np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                           np.stack([b, d, c], -1).reshape(-1, 3)])


def _around(points, centre, angles):
    """Interpolate radius and height of ``points`` (a ring round ``centre``) at ``angles``."""
    offset = points[:, :2] - centre
    azimuth = np.arctan2(offset[:, 1], offset[:, 0])
    radius = np.linalg.norm(offset, axis=1)
    # The innermost point in each 10° sector: the hole's edge, not the shoulders beyond it.
    sector = ((azimuth + np.pi) / (2 * np.pi) * 36).astype(int) % 36
    keep = np.array([np.flatnonzero(sector == s)[np.argmin(radius[sector == s])]
                     for s in np.unique(sector)])
    order = np.argsort(azimuth[keep])
    keep = keep[order]
    return (np.interp(angles, azimuth[keep], radius[keep], period=2 * np.pi),
            np.interp(angles, azimuth[keep], points[keep, 2], period=2 * np.pi))


def shoulder_line(neck_ring, bust_edge, dressing):
    """
    Return (vertices, faces, neck centre, neck radius at each angle) of the closing slope.

    Rows run from the neck (inside it when bare, round it in a collar, wide and high at the
    back in a hood) out to just under the bust's cut edge, so no crack opens between them.
    """
    centre = neck_ring[:, :2].mean(0)
    angles = np.linspace(-np.pi, np.pi, ANGLES, endpoint=False)
    neck_radius, neck_height = _around(neck_ring, centre, angles)
    edge_radius, edge_height = _around(bust_edge, centre, angles)
    edge_radius = np.maximum(edge_radius, neck_radius + 0.01)
    back = np.clip(-np.cos(angles), 0.0, 1.0)
    rise = np.full(ANGLES, 0.012)
    inner = neck_radius - 0.003
    if dressing.collar == 'collar':
        rise, inner = rise + 0.03, neck_radius + 0.006
    elif dressing.collar == 'hood':
        rise, inner = rise + 0.02 + 0.05 * back, neck_radius + 0.008 + 0.035 * back
    s = np.linspace(0.0, 1.0, SLOPE_ROWS)[:, None]
    radius = inner + (edge_radius + 0.012 - inner) * s ** 0.8
    # A shoulder's top is rounded: up from the straight line in the middle of the slope.
    height = (neck_height + rise) * (1 - s) + (edge_height - 0.006) * s
    height = height + 0.012 * np.sin(np.pi * s) * np.abs(np.sin(angles))
    if dressing.collar != 'none':  # the collar's wall stands straight before the slope
        radius[1], height[1] = inner, neck_height - 0.004
    vertices = np.stack([centre[0] + radius * np.cos(angles),
                         centre[1] + radius * np.sin(angles), height], -1).reshape(-1, 3)
    return vertices.astype(np.float32), grid_faces(SLOPE_ROWS, ANGLES, True), centre, \
        neck_radius


def figure_colours(vertices, garment, skin, neck_centre, neck_radius, dressing):
    """
    Colour closed-figure vertices: bare skin near the neck, cloth beyond the top's edge.

    The top's edge follows the neck all round (a hole cut at a height would bare the
    shoulders' tops): ``neck_gap_m`` of skin at the front, less at the sides and back.
    """
    offset = vertices[:, :2] - neck_centre
    azimuth = np.arctan2(offset[:, 1], offset[:, 0])
    angles = np.linspace(-np.pi, np.pi, len(neck_radius), endpoint=False)
    beyond = np.linalg.norm(offset, axis=1) - np.interp(azimuth, angles, neck_radius,
                                                        period=2 * np.pi)
    gap = 0.006 + dressing.neck_gap_m * np.clip(np.cos(azimuth), 0.0, 1.0) ** 2
    if dressing.collar != 'none':
        gap = np.full_like(gap, -0.01)
    bare = np.clip((gap - beyond) / 0.01 + 0.5, 0.0, 1.0)[:, None]
    colours = bare * np.asarray(skin, np.float32) + (1 - bare) * cloth_colours(vertices,
                                                                               garment)
    return np.clip(colours, 0, 255).astype(np.uint8)


def _envelope(points, angles, heights):
    """
    Return the (heights, angles) largest radius from the z axis among ``points``.

    ``angles`` and ``heights`` are evenly spaced, angles rising (past pi if need be),
    heights falling.
    """
    azimuth = np.arctan2(points[:, 1], points[:, 0])
    turn = (azimuth - angles[0]) % (2 * np.pi)
    column = np.round(turn / (angles[1] - angles[0])).astype(int)
    row = np.round((heights[0] - points[:, 2]) / (heights[0] - heights[1])).astype(int)
    inside = (column >= 0) & (column < len(angles)) & (row >= 0) & (row < len(heights))
    envelope = np.zeros((len(heights), len(angles)))
    np.maximum.at(envelope, (row[inside], column[inside]),
                  np.linalg.norm(points[inside, :2], axis=1))
    # Hair falls straight from the widest point above and lies on what is wider below.
    return np.maximum.accumulate(envelope, axis=0)


def hanging_hair(body_points, eye_height, neck_height, hair_colour, dressing):
    """
    Return (vertices, faces, colours) of hair hanging from the back of the head, or None.

    ``body_points`` are everything the hair must lie on (head with its hair volume, bust,
    shoulder line), head frame, whose z axis runs through the head's centre.
    """
    if dressing.hanging == 'none':
        return None
    rng = np.random.default_rng(dressing.seed)
    top, bottom = eye_height + 0.05, neck_height - dressing.hang_m
    heights = np.arange(top, bottom - 0.01, -0.01)
    if dressing.hanging == 'curtain':
        half = np.radians(dressing.hang_half_width_deg)
        angles = np.pi + np.linspace(-half, half, 72)
        envelope = _envelope(body_points, angles, heights)
        radius = envelope + 0.004 + rng.uniform(0.0, 0.004, envelope.shape)
        # Shorter at the sides than down the back, and ending where it meets a shoulder
        # (the envelope stepping out): it lies there rather than standing out like a wing.
        side = np.abs(np.linspace(-1.0, 1.0, len(angles)))
        reach = bottom + (neck_height + 0.02 - bottom) * side ** 2
        head_width = envelope[heights >= neck_height].max(0)
        on_shoulder = np.maximum.accumulate(envelope > head_width + 0.015, axis=0)
        hangs = (heights[:, None] >= reach[None, :]) & ~on_shoulder
        last = np.maximum(hangs.sum(0) - 1, 0)  # rows below the end repeat the last one
        rows = np.minimum(np.arange(len(heights))[:, None], last[None, :])
        radius = np.take_along_axis(radius, rows, 0)
        z = heights[rows]
        vertices = np.stack([radius * np.cos(angles), radius * np.sin(angles), z], -1)
        strands = _smooth(rng.uniform(0.75, 1.15, len(angles)))[None, :]
        wrap = False
    else:
        angle = np.pi + rng.uniform(-0.1, 0.1)
        start = eye_height + rng.uniform(-0.01, 0.05)
        heights = np.arange(start, bottom - 0.01, -0.01)
        envelope = _envelope(body_points, np.array([angle - 0.05, angle, angle + 0.05]),
                             heights)[:, 1]
        along = np.linspace(0.0, 1.0, len(heights))[:, None]
        # Gathered at the band, then full, then thinning to the tips.
        thickness = rng.uniform(0.018, 0.03) * np.where(along < 0.08, 0.5, 1.0 - 0.6 * along)
        ring = np.linspace(0.0, 2 * np.pi, 12, endpoint=False)[None, :]
        axis = envelope[:, None] + thickness - 0.004
        radial = axis + thickness * np.cos(ring)
        sideways = thickness * np.sin(ring)
        vertices = np.stack([radial * np.cos(angle) - sideways * np.sin(angle),
                             radial * np.sin(angle) + sideways * np.cos(angle),
                             np.broadcast_to(heights[:, None], radial.shape)], -1)
        strands = _smooth(rng.uniform(0.75, 1.15, ring.shape[1]))[None, :]
        wrap = True
    rows, columns = vertices.shape[:2]
    shade = strands * rng.uniform(0.9, 1.1, (rows, 1)) * np.linspace(1.0, 0.85, rows)[:, None]
    colours = np.clip(np.asarray(hair_colour)[None, None] * shade[..., None], 0, 255)
    return (vertices.reshape(-1, 3).astype(np.float32), grid_faces(rows, columns, wrap),
            colours.reshape(-1, 3).astype(np.uint8))


def _smooth(values):
    """Average each value with its neighbours: strands blend into locks, not a barcode."""
    return (np.roll(values, 1) + 2 * values + np.roll(values, -1)) / 4
