"""
Headless rendering of head meshes: RGB, alpha mask, depth, and landmark visibility.

pyrender through OSMesa (software OpenGL, Debian's libosmesa6) runs on any machine without a
display or GPU at about 55 frames/s for a 256² untextured head on 2 cores; EGL is used instead
when PYOPENGL_PLATFORM=egl is set on a GPU machine.
"""

from dataclasses import dataclass
import os

import numpy as np
from PIL import Image

os.environ.setdefault('PYOPENGL_PLATFORM', 'osmesa')

import pyrender  # noqa: E402  (the GL platform must be chosen before the first import)
import trimesh  # noqa: E402

from head_capture.geometry import w2c_to_c2w_opengl  # noqa: E402,I100


@dataclass(frozen=True)
class Lighting:
    """Ambient RGB and directional lights as (direction towards the light, RGB, intensity)."""

    ambient: np.ndarray
    lights: tuple


HEADLIGHT = None  # the default: soft ambient and one light at the camera


@dataclass(frozen=True)
class Render:
    """One rendered view: RGB uint8, alpha in [0, 1], depth in metres (0: background)."""

    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray


class HeadRenderer:
    """An offscreen renderer of one mesh topology at one image size."""

    def __init__(self, width, height):
        self.width, self.height = int(width), int(height)
        self._renderer = pyrender.OffscreenRenderer(self.width, self.height)
        self._cache = None

    def render(self, vertices, faces, intrinsics, rotation, translation, vertex_colors=None,
               texture=None, uv=None, lighting=HEADLIGHT, extras=()):
        """
        Render the mesh seen by an OpenCV camera ``(R, t)`` with ``intrinsics``.

        Colour comes from ``texture`` (uint8 image) with per-vertex ``uv``, else from
        ``vertex_colors``, else a neutral grey. ``extras`` are more meshes in the same scene,
        as (vertices, faces, vertex colours), such as shoulders under the head.
        """
        if (intrinsics.width, intrinsics.height) != (self.width, self.height):
            raise ValueError(f'camera is {intrinsics.width}x{intrinsics.height}, renderer '
                             f'{self.width}x{self.height}')
        pose = w2c_to_c2w_opengl(rotation, translation)
        if lighting is HEADLIGHT:
            lighting = Lighting(np.full(3, 0.35), ((pose[:3, 2], np.ones(3), 3.0),))
        scene = pyrender.Scene(bg_color=np.zeros(4), ambient_light=lighting.ambient)
        for mesh in self._meshes(vertices, faces, texture, uv, vertex_colors, extras):
            scene.add(mesh)
        # pyrender puts pixel centres at half-integers; ours (OpenCV) are at integers.
        camera = pyrender.IntrinsicsCamera(intrinsics.fx, intrinsics.fy, intrinsics.cx + 0.5,
                                           intrinsics.cy + 0.5, znear=0.01, zfar=100.0)
        scene.add(camera, pose=pose)
        for direction, colour, intensity in lighting.lights:
            scene.add(pyrender.DirectionalLight(color=colour, intensity=intensity),
                      pose=_facing(direction))
        rgb, depth = self._renderer.render(scene)
        # No antialiasing, so coverage is all or nothing and the depth buffer gives the mask.
        return Render(np.ascontiguousarray(rgb), (depth > 0).astype(np.float32), depth)

    def _meshes(self, vertices, faces, texture, uv, vertex_colors, extras):
        """
        Return the scene's meshes, built once for a run of renders of the same arrays.

        Building them (normals, GL buffers, the texture upload) took 30 of a 720p frame's
        105 ms, and a capture renders one subject a thousand times. The arrays are matched by
        identity and held, so a new subject, never an edited array, gets new meshes.
        """
        inputs = (vertices, faces, texture, uv, vertex_colors,
                  *(part for extra in extras for part in extra))
        if self._cache is not None and len(inputs) == len(self._cache[0]) and all(
                new is old for new, old in zip(inputs, self._cache[0])):
            return self._cache[1]
        if texture is not None:
            visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(texture))
            mesh = trimesh.Trimesh(vertices, faces, visual=visual, process=False)
        else:
            mesh = trimesh.Trimesh(vertices, faces, vertex_colors=vertex_colors, process=False)
        meshes = [_two_sided(pyrender.Mesh.from_trimesh(mesh, smooth=True))]
        for extra_vertices, extra_faces, extra_colours in extras:
            # pyrender decodes textures from sRGB but takes vertex colours as linear.
            linear = (255.0 * (np.asarray(extra_colours) / 255.0) ** 2.2).astype(np.uint8)
            extra = trimesh.Trimesh(extra_vertices, extra_faces, vertex_colors=linear,
                                    process=False)
            meshes.append(_two_sided(pyrender.Mesh.from_trimesh(extra, smooth=True)))
        self._cache = (inputs, meshes)
        return meshes

    def close(self):
        """Free the GL context."""
        self._renderer.delete()


def _two_sided(mesh):
    """
    Draw both sides of every face: the bust is an open shell (no neck, cut below the chest).

    One-sided, its inside vanished wherever a camera looked into it (from above, over a
    shoulder), while other views showed the same surface from outside: no 3D scene renders
    like that, and an avatar's field trained on such views smeared it and bent its cameras.
    """
    for primitive in mesh.primitives:
        primitive.material.doubleSided = True
    return mesh


def _facing(direction):
    """Return a pose whose -z axis (where a pyrender light shines) is ``-direction``."""
    z = np.asarray(direction, float) / np.linalg.norm(direction)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
    return pose


def project_landmarks(points, intrinsics, rotation, translation, depth, tolerance=0.004):
    """
    Return pixel positions (N, 2) and visibility (N,) of 3D points in one rendered view.

    A point is visible when it projects inside the image, in front of the camera, and the
    depth buffer there is within ``tolerance`` metres of its own depth (nothing occludes it).
    """
    cam = np.asarray(points) @ np.asarray(rotation).T + translation
    z = cam[:, 2]
    uv = cam[:, :2] / np.maximum(z, 1e-9)[:, None] * [intrinsics.fx, intrinsics.fy]
    uv += [intrinsics.cx, intrinsics.cy]
    pixel = np.round(uv).astype(int)
    inside = ((z > 0) & (pixel[:, 0] >= 0) & (pixel[:, 0] < depth.shape[1])
              & (pixel[:, 1] >= 0) & (pixel[:, 1] < depth.shape[0]))
    buffer = np.zeros(len(points))
    buffer[inside] = depth[pixel[inside, 1], pixel[inside, 0]]
    visible = inside & (buffer > 0) & (np.abs(buffer - z) < tolerance)
    return uv, visible
