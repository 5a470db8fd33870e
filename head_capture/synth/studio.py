"""
The shared rig of every synthetic writer: subjects (identity + appearance) and their views.

A ``Subject`` is one synthetic person ready to render: its mesh with hair volume, its
texture and its true 3D landmarks. ``HeadStudio`` holds what is costly to set up once (the
anny model, the UV atlas, the landmark template, the GL renderer) and turns a subject and a
camera into a ``View``: RGB, mask, depth, and every landmark's pixel and visibility.
"""

from dataclasses import dataclass

from head_capture.landmarks.template import HeadTemplate
from head_capture.synth.appearance import (Appearance, hair_displacement, paint_texture,
                                           sample_appearance, UvAtlas)
from head_capture.synth.bust import BustModel, garment_colours, sample_garment
from head_capture.synth.figure import (figure_colours, hanging_hair, sample_dressing,
                                       shoulder_line)
from head_capture.synth.heads import HeadModel, sample_phenotypes
from head_capture.synth.render import HeadRenderer, project_landmarks
import numpy as np
import trimesh


@dataclass(frozen=True)
class Subject:
    """One synthetic person: render mesh vertices, texture and true landmarks (head frame)."""

    vertices: np.ndarray
    texture: np.ndarray
    landmarks: np.ndarray
    phenotypes: np.ndarray
    appearance: Appearance
    extras: tuple  # more meshes round the head: (vertices, faces, vertex colours) each


@dataclass(frozen=True)
class View:
    """A rendered subject: RGB uint8, alpha, depth (m), landmark pixels and visibility."""

    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray
    landmarks: np.ndarray
    visible: np.ndarray


class HeadStudio:
    """Subjects and views at one image size."""

    def __init__(self, width, height, atlas_size=512, figure=False):
        self.model = HeadModel()
        self.bust = BustModel(self.model)
        self.atlas = UvAtlas(self.model, atlas_size)
        self.template = HeadTemplate.load()
        self.renderer = HeadRenderer(width, height)
        self._eye_height = float(np.mean([e[2] for e in self.atlas.eyes.values()]))
        # Closed shoulders, collars, hoods and hanging hair (``figure``) are new to the
        # landmark set; sequences and the capture keep the open bust they were measured on.
        self.figure = figure

    def subjects(self, rng, count):
        """Draw ``count`` subjects: identities in one batch, then an appearance each."""
        phenotypes = sample_phenotypes(rng, count)
        made = []
        for vertices, bust, phenotype in zip(self.model.vertices(phenotypes),
                                             self.bust.vertices(phenotypes), phenotypes):
            appearance = sample_appearance(rng)
            normals = trimesh.Trimesh(vertices, self.model.faces, process=False).vertex_normals
            dressed = hair_displacement(vertices, normals, appearance, self._eye_height)
            # The top comes from its own stream, so the head's draws stay as they were.
            garment = sample_garment(np.random.default_rng([appearance.seed, 1]))
            extras = self._figure(dressed, bust, garment, appearance)
            made.append(Subject(dressed[self.atlas.render_vertex_ids],
                                paint_texture(self.atlas, appearance),
                                vertices[self.template.vertex_ids], phenotype, appearance,
                                extras))
        return made

    def _figure(self, head, bust, garment, appearance):
        """Return the meshes round one head: the bust, and with ``figure`` what closes it."""
        neck_height = float(head[:, 2].min())
        if not self.figure:
            return ((bust, self.bust.faces,
                     garment_colours(bust, garment, appearance.skin, neck_height)),)
        dressing = sample_dressing(np.random.default_rng([appearance.seed, 5]),
                                   appearance.hair_style)
        if not dressing.closed:
            meshes = [(bust, self.bust.faces,
                       garment_colours(bust, garment, appearance.skin, neck_height))]
        else:
            line, faces, centre, neck_radius = shoulder_line(
                head[self.bust.neck_rim], bust[self.bust.top_rim], dressing)
            meshes = [(part, part_faces, figure_colours(part, garment, appearance.skin,
                                                        centre, neck_radius, dressing))
                      for part, part_faces in ((bust, self.bust.faces), (line, faces))]
        points = np.concatenate([head, *(mesh[0] for mesh in meshes)])
        hair = hanging_hair(points, self._eye_height, neck_height, appearance.hair, dressing)
        return tuple(meshes + ([hair] if hair is not None else []))

    def view(self, subject, camera, rotation, translation, lighting):
        """Render ``subject`` from an OpenCV camera and locate its landmarks."""
        out = self.renderer.render(subject.vertices, self.atlas.render_faces, camera, rotation,
                                   translation, texture=subject.texture, uv=self.atlas.render_uv,
                                   lighting=lighting,
                                   extras=subject.extras)
        uv, visible = project_landmarks(subject.landmarks, camera, rotation, translation,
                                        out.depth)
        return View(out.rgb, out.alpha, out.depth, uv.astype(np.float32), visible)
