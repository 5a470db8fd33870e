"""
Synthetic head identities from ``anny``, the parametric human built on MakeHuman's CC0 assets.

Every identity shares one mesh topology (4,312 vertices: head, neck and eyes), so a landmark
is a vertex id and its true 3D position on any identity is that vertex. Vertices come in the
head frame of DESIGN.md: metres, x out of the face, y to the subject's left, z up, origin at
the centre of the head's bounding box, computed per identity so every head is centred alike.
"""

from functools import cached_property
import warnings

import numpy as np
import torch

# The six phenotype sliders of anny, each in [0, 1] (0.5: the average adult).
PHENOTYPES = ('gender', 'age', 'muscle', 'weight', 'height', 'proportions')
# anny's axes are x: the subject's left, y: up, z: out of the face. Rows: head x, y, z.
ANNY_TO_HEAD = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
# Parts of anny's face segmentation that form the outside of the head (the rest: eye and
# mouth cavities, the back of the eyeballs).
OUTER_PARTS = ('head', 'eye_front.L', 'eye_front.R')
EYE_PARTS = ('eye_front.L', 'eye_front.R')


class HeadModel:
    """The anny head model: identities in, head-frame meshes out."""

    def __init__(self):
        import anny
        from anny.face_segmentation import get_face_segmentation_mask
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            # The first build on a machine takes about a minute; anny caches it afterwards.
            self._model = anny.create_head_model(eyes=True, tongue=False,
                                                 triangulate_faces=True)
        self.faces = self._model.faces.numpy().astype(np.int64)
        self.face_parts = {part: get_face_segmentation_mask(self._model, [part]).numpy()
                           for part in ('head', 'mouth_cavity', *EYE_PARTS)}
        self.texture_coordinates = self._model.texture_coordinates.numpy()
        self.face_uv_indices = self._model.face_texture_coordinate_indices.numpy()
        outer_faces = np.any([self.face_parts[p] for p in OUTER_PARTS], axis=0)
        self.outer_vertices = np.unique(self.faces[outer_faces])
        self.eye_vertices_by_side = {p[-1]: np.unique(self.faces[self.face_parts[p]])
                                     for p in EYE_PARTS}
        self.eye_vertices = np.concatenate(list(self.eye_vertices_by_side.values()))
        self.mouth_vertices = np.unique(self.faces[self.face_parts['mouth_cavity']])

    @property
    def vertex_count(self):
        """Return the number of mesh vertices (the same for every identity)."""
        return int(self._model.faces.max()) + 1

    def raw_vertices(self, phenotypes):
        """Return (N, V, 3) vertices of (N, 6) phenotypes in anny's own axes and origin."""
        phenotypes = np.atleast_2d(np.asarray(phenotypes, np.float32))
        in_range = np.all((phenotypes >= 0) & (phenotypes <= 1))
        if phenotypes.shape[1] != len(PHENOTYPES) or not in_range:
            raise ValueError(f'phenotypes must be (N, {len(PHENOTYPES)}) values in [0, 1] '
                             f'({", ".join(PHENOTYPES)})')
        count = len(phenotypes)
        pose = torch.eye(4)[None, None].expand(count, self._model.bone_count, 4, 4).clone()
        kwargs = {name: torch.from_numpy(phenotypes[:, i]) for i, name in enumerate(PHENOTYPES)}
        with torch.no_grad():
            return self._model(pose_parameters=pose, phenotype_kwargs=kwargs)['vertices'].numpy()

    def centres(self, raw):
        """Return (N, 3) head-frame origins: the centres of each head's outer bounding box."""
        outer = raw[:, self.outer_vertices] @ ANNY_TO_HEAD.T
        return 0.5 * (outer.min(axis=1) + outer.max(axis=1))

    def vertices(self, phenotypes):
        """Return (N, V, 3) float32 head-frame vertices of N identities' (N, 6) phenotypes."""
        raw = self.raw_vertices(phenotypes)
        return (raw @ ANNY_TO_HEAD.T - self.centres(raw)[:, None]).astype(np.float32)

    @cached_property
    def mean_vertices(self):
        """Return the (V, 3) head-frame vertices of the average identity."""
        return self.vertices(np.full((1, len(PHENOTYPES)), 0.5))[0]


def sample_phenotypes(rng, count):
    """Draw ``count`` adult identities: all phenotypes uniform, age from young to old adult."""
    phenotypes = rng.uniform(0.0, 1.0, (count, len(PHENOTYPES)))
    phenotypes[:, PHENOTYPES.index('age')] = rng.uniform(0.45, 1.0, count)
    return phenotypes.astype(np.float32)
