"""
The 3D head template: 703 landmarks (the paper's count) chosen among the mesh vertices.

Landmarks must cover the whole head so a camera behind it still sees dozens: dense on the
face, where the detector has the most texture to work with, but also on the ears, the scalp,
the back and sides of the head and the neck. Each region gets a quota and its landmarks are
spread by farthest-point sampling over the average identity's outer surface, starting from a
fixed vertex, so the choice is deterministic. Positions are in the head frame (metres); the
true landmarks of any identity are the same vertex ids on its own mesh.
"""

from dataclasses import dataclass
import json
from pathlib import Path

from head_capture.resources import share_path
import numpy as np

TEMPLATE_FILE = 'head_template.json'
# Landmarks per region; 703 in all, as in the paper.
# The mesh is sparse behind the face (about 140 scalp, 310 back and 115 neck vertices), so
# the quotas there take about half of what exists.
REGION_QUOTAS = {'face': 323, 'ear_left': 35, 'ear_right': 35, 'scalp': 100, 'back': 150,
                 'neck': 60}
LANDMARK_COUNT = sum(REGION_QUOTAS.values())


def mirrored(points):
    """Return head-frame points mirrored across the head's midplane (y = 0: left <-> right)."""
    return np.asarray(points, np.float64) * (1.0, -1.0, 1.0)


@dataclass(frozen=True)
class HeadTemplate:
    """Landmark vertex ids, their regions and their positions on the average head."""

    vertex_ids: np.ndarray
    regions: tuple
    positions: np.ndarray

    def __len__(self):
        return len(self.vertex_ids)

    def region_mask(self, region):
        """Return a boolean mask of the landmarks in ``region``."""
        return np.array([r == region for r in self.regions])

    def save(self, path):
        """Write the template as JSON, one landmark a line (positions in metres, to 10 µm)."""
        header = {'landmark_count': len(self), 'frame': 'head (REP 103: x forward, y left, '
                  'z up), metres, average anny identity', 'region_quotas': REGION_QUOTAS}
        rows = [json.dumps({'vertex': int(v), 'region': r,
                            'position': [round(float(c), 5) for c in p]})
                for v, r, p in zip(self.vertex_ids, self.regions, self.positions)]
        text = json.dumps(header, indent=1)[:-2] + ',\n "landmarks": [\n  '
        Path(path).write_text(text + ',\n  '.join(rows) + '\n ]\n}\n')

    @classmethod
    def load(cls, path=None):
        """Read a template written by ``save``; without ``path``, the shipped one."""
        path = Path(path) if path else share_path('models', TEMPLATE_FILE)
        if not path.is_file():
            raise FileNotFoundError(f'head template not found: {path}')
        entries = json.loads(path.read_text())['landmarks']
        return cls(np.array([e['vertex'] for e in entries]),
                   tuple(e['region'] for e in entries),
                   np.array([e['position'] for e in entries], np.float32))


def head_regions(vertices, outer, eye_vertices):
    """
    Label each outer vertex with a region, from landmarks of the head's own geometry.

    Heights and depths are taken relative to the eyes and the nose tip, so the same rules
    carve a small and a large head alike.
    """
    points = vertices[outer]
    eye_height = vertices[eye_vertices, 2].mean()
    nose_depth = points[:, 0].max()
    chin_height = points[points[:, 0] > 0.7 * nose_depth, 2].min()
    half_width = np.abs(points[:, 1]).max()
    x, y, z = points.T
    labels = np.full(len(points), 'back', dtype=object)
    labels[z >= eye_height] = 'scalp'
    face = (x > 0.27 * nose_depth) & (z < eye_height + 0.06)
    labels[face] = 'face'
    ears = (np.abs(y) > 0.79 * half_width) & (x < 0.18 * nose_depth) & (x > -0.5 * nose_depth)
    ears &= (z > eye_height - 0.075) & (z < eye_height + 0.03)
    labels[ears & (y > 0)] = 'ear_left'
    labels[ears & (y < 0)] = 'ear_right'
    labels[z < chin_height] = 'neck'
    return labels


def farthest_points(points, count, start):
    """Return indices of ``count`` points spread by farthest-point sampling from ``start``."""
    chosen = [start]
    distance = np.linalg.norm(points - points[start], axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return np.array(chosen)


def template_from_model(model):
    """Build the template on a ``HeadModel``'s average identity."""
    return build_template(model.mean_vertices, model.outer_vertices, model.eye_vertices)


def build_template(vertices, outer, eye_vertices):
    """Choose the landmarks on the average head's vertices (head frame)."""
    labels = head_regions(vertices, outer, eye_vertices)
    ids, regions = [], []
    for region, quota in REGION_QUOTAS.items():
        members = outer[labels == region]
        if len(members) < quota:
            raise ValueError(f'region {region} has {len(members)} vertices, needs {quota}')
        # Start at the region's most forward vertex (the nose tip for the face).
        start = int(np.argmax(vertices[members, 0]))
        ids.extend(members[farthest_points(vertices[members], quota, start)])
        regions.extend([region] * quota)
    ids = np.array(ids)
    return HeadTemplate(ids, tuple(regions), vertices[ids].astype(np.float32))
