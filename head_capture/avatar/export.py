"""
What a finished avatar leaves behind besides its checkpoint: a turntable video and a mesh.

The turntable circles the scene's origin (the head's centre) at the training cameras' median
distance and elevation. The mesh fuses rendered depth and colour from cameras all around into
a truncated signed distance volume (open3d) and extracts its surface: an approximate, viewable
shape, not the avatar itself (the radiance field is).
"""

from pathlib import Path

from head_capture.avatar.rays import near_far, pixel_rays
from head_capture.avatar.render import render_rays
from head_capture.geometry import camera_center, look_at_w2c, sphere_point, view_angles
import numpy as np
import torch


def orbit(rotations, translations, count, elevation_deg=None):
    """Return ``count`` world-to-camera poses circling the origin like the given cameras."""
    centres = camera_center(rotations, translations)
    distance = float(np.median(np.linalg.norm(centres, axis=1)))
    if elevation_deg is None:
        elevation_deg = float(np.median(view_angles(rotations, translations)[1]))
    elevation = np.radians(elevation_deg)
    return [look_at_w2c(sphere_point(distance, azimuth, elevation), np.zeros(3))
            for azimuth in np.linspace(0.0, 2 * np.pi, count, endpoint=False)]


def render_view(fields, rotation, translation, intrinsics, config, background, chunk=4096,
                progress=1.0, c2f=(0.0, 0.0)):
    """
    Render colour (H, W, 3), opacity (H, W) and depth (H, W) of one camera, no gradients.

    ``progress`` and ``c2f`` render a field mid-way through its coarse-to-fine schedule.
    """
    device = next(fields.parameters()).device
    rotation = torch.as_tensor(rotation, dtype=torch.float32, device=device)
    translation = torch.as_tensor(translation, dtype=torch.float32, device=device)
    background = torch.as_tensor(background, dtype=torch.float32, device=device)
    height, width = intrinsics.height, intrinsics.width
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                          torch.arange(width, dtype=torch.float32, device=device),
                          indexing='ij')
    u, v = u.reshape(-1), v.reshape(-1)
    parts = []
    with torch.no_grad():
        for start in range(0, len(u), chunk):
            count = len(u[start:start + chunk])
            origins, directions = pixel_rays(intrinsics, rotation.expand(count, 3, 3),
                                             translation.expand(count, 3),
                                             u[start:start + chunk], v[start:start + chunk])
            near, far = near_far(origins, config.scene.radius, config.scene.near, config.scene.far)
            rgb, opacity, depth = render_rays(fields, origins, directions, near, far,
                                              (config.sampling.coarse, config.sampling.fine),
                                              background, progress, c2f)[-1]
            parts.append(torch.cat([rgb, opacity[:, None], depth[:, None]], -1))
    image = torch.cat(parts).reshape(height, width, 5).cpu().numpy()
    return image[..., :3].clip(0, 1), image[..., 3], image[..., 4]


def write_turntable(path, fields, rotations, translations, intrinsics, config, frames=60,
                    fps=20):
    """Render a turn around the scene to an mp4; return the frame count."""
    from head_capture.video_writer import write_video  # PyAV: only for the video

    poses = orbit(rotations, translations, frames)
    images = (render_view(fields, r, t, intrinsics, config, (1.0, 1.0, 1.0))[0]
              for r, t in poses)
    return write_video(Path(path), ((image * 255).round().astype(np.uint8)
                                    for image in images), fps)


def write_mesh(path, fields, rotations, translations, intrinsics, config, views=36,
               resolution=192):
    """
    TSDF-fuse rendered depth and colour from ``views`` cameras around the scene into a mesh.

    Pixels the field leaves mostly transparent carry no depth. Returns the vertex count; a
    field with no surface yet (a very short training) gives no file and 0.
    """
    import open3d as o3d

    voxel = 2.0 * config.scene.radius / resolution
    radius = config.scene.radius
    volume = o3d.pipelines.integration.UniformTSDFVolume(
        length=2.0 * radius, resolution=resolution, sdf_trunc=4 * voxel,
        color_type=o3d.pipelines.integration.TSDFVolumeColorType.RGB8,
        origin=np.full((3, 1), -radius))
    camera = o3d.camera.PinholeCameraIntrinsic(intrinsics.width, intrinsics.height,
                                               intrinsics.fx, intrinsics.fy, intrinsics.cx,
                                               intrinsics.cy)
    rings = [orbit(rotations, translations, views // 3, elevation)
             for elevation in (-20.0, 15.0, 50.0)]
    for rotation, translation in (pose for ring in rings for pose in ring):
        rgb, opacity, depth = render_view(fields, rotation, translation, intrinsics, config,
                                          (0.0, 0.0, 0.0))
        depth = np.where(opacity > 0.5, depth, 0.0).astype(np.float32)
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(np.ascontiguousarray((rgb * 255).astype(np.uint8))),
            o3d.geometry.Image(depth), depth_scale=1.0, depth_trunc=1e6,
            convert_rgb_to_intensity=False)
        extrinsic = np.eye(4)
        extrinsic[:3, :3], extrinsic[:3, 3] = rotation, translation
        volume.integrate(rgbd, camera, extrinsic)
    mesh = volume.extract_triangle_mesh()
    if len(mesh.triangles) == 0:
        return 0
    mesh.compute_vertex_normals()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not o3d.io.write_triangle_mesh(str(path), mesh):
        raise OSError(f'could not write the mesh to {path}')
    return len(mesh.vertices)


def mesh_triangles(path, max_triangles=60000):
    """Return a mesh file's triangles (T, 3, 3) and their vertex colours (T, 3, 3) in [0, 1]."""
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(path))
    if len(mesh.triangles) > max_triangles:
        mesh = mesh.simplify_quadric_decimation(max_triangles)
    vertices, triangles = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    colours = (np.asarray(mesh.vertex_colors) if mesh.has_vertex_colors()
               else np.full_like(vertices, 0.8))
    return vertices[triangles], colours[triangles]
