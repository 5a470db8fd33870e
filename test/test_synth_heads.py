"""Synthetic heads: anny identities in the head frame, the landmark template, rendering."""

import os

import cv2
from head_capture.camera import Intrinsics
from head_capture.cli import main
from head_capture.geometry import look_at_w2c
from head_capture.landmarks.template import (HeadTemplate, LANDMARK_COUNT, REGION_QUOTAS,
                                             template_from_model)
import numpy as np
import pytest


@pytest.fixture(scope='module')
def model():
    from head_capture.synth.heads import HeadModel
    return HeadModel()  # about a minute on the first build on a machine, then cached by anny


@pytest.fixture(scope='module')
def renderer():
    from head_capture.synth.render import HeadRenderer
    renderer = HeadRenderer(128, 128)
    yield renderer
    renderer.close()


def test_heads_live_in_the_head_frame(model):
    head = model.mean_vertices
    outer = head[model.outer_vertices]
    np.testing.assert_allclose(outer.min(0) + outer.max(0), 0.0, atol=1e-6)
    nose = outer[np.argmax(outer[:, 0])]
    assert abs(nose[1]) < 0.01 and nose[2] < 0.0  # on the midline, below the eyes
    left_eye = np.unique(model.faces[model.face_parts['eye_front.L']])
    assert head[left_eye, 1].mean() > 0.02  # the subject's left is +y
    assert 0.2 < np.ptp(outer[:, 2]) < 0.3  # metres: crown to neck of an adult


def test_identities_vary_and_repeat(model):
    from head_capture.synth.heads import sample_phenotypes
    phenotypes = sample_phenotypes(np.random.default_rng(5), 4)
    first, again = model.vertices(phenotypes), model.vertices(phenotypes)
    np.testing.assert_array_equal(first, again)
    widths = np.ptp(first[:, model.outer_vertices, 1], axis=1)
    assert np.ptp(widths) > 0.005
    with pytest.raises(ValueError, match='phenotypes must be'):
        model.vertices(np.full((1, 6), 1.5))


def test_template_is_deterministic_and_shipped(model):
    template = template_from_model(model)
    assert len(template) == LANDMARK_COUNT == 703
    assert len(set(template.vertex_ids.tolist())) == 703
    assert set(template.vertex_ids) <= set(model.outer_vertices.tolist())
    for region, quota in REGION_QUOTAS.items():
        assert template.region_mask(region).sum() == quota
    shipped = HeadTemplate.load()
    np.testing.assert_array_equal(shipped.vertex_ids, template.vertex_ids)
    assert shipped.regions == template.regions
    np.testing.assert_allclose(shipped.positions, template.positions, atol=1e-5)


def test_render_puts_a_point_on_its_projected_pixel(renderer):
    # A small sphere 0.5 m in front of the camera, off the optical axis.
    import trimesh
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.01)
    centre = np.array([0.04, -0.03, 0.5])
    camera = Intrinsics(150.0, 150.0, 63.5, 63.5, 128, 128)
    out = renderer.render(ball.vertices + centre, ball.faces, camera, np.eye(3), np.zeros(3))
    ys, xs = np.nonzero(out.alpha > 0)
    expected = camera.matrix @ centre
    np.testing.assert_allclose([xs.mean(), ys.mean()], expected[:2] / expected[2], atol=0.2)
    assert out.depth[ys, xs].min() == pytest.approx(0.49, abs=2e-3)


def test_renders_of_one_mesh_from_many_cameras_match_fresh_renders(renderer):
    # The renderer keeps the meshes of the arrays it was last given; new arrays, new meshes.
    import trimesh
    from head_capture.synth.render import HeadRenderer
    box = trimesh.creation.box((0.1, 0.06, 0.04))
    colours = np.tile([200, 60, 30, 255], (len(box.vertices), 1)).astype(np.uint8)
    camera = Intrinsics.from_fov(128, 128, 40.0)
    poses = [look_at_w2c(np.array(c), np.zeros(3)) for c in ([0.4, 0.0, 0.1], [0.0, 0.4, 0.2])]
    again = [renderer.render(box.vertices, box.faces, camera, *pose, vertex_colors=colours)
             for pose in poses]
    fresh = HeadRenderer(128, 128)
    try:
        for pose, out in zip(poses, again):
            alone = fresh.render(box.vertices.copy(), box.faces, camera, *pose,
                                 vertex_colors=colours)
            np.testing.assert_array_equal(out.rgb, alone.rgb)
            np.testing.assert_array_equal(out.depth, alone.depth)
    finally:
        fresh.close()
    assert not np.array_equal(again[0].alpha, again[1].alpha)
    moved = renderer.render(box.vertices + [0.0, 0.05, 0.0], box.faces, camera, *poses[1],
                            vertex_colors=colours)
    assert not np.array_equal(moved.alpha, again[1].alpha)


def test_an_open_shell_shows_its_inside_to_a_camera_looking_into_it(renderer):
    # A tube (open at both ends) seen from above its rim: its inner far wall faces the camera
    # from inside; culled, the view would show background there, though the wall is there.
    import trimesh
    tube = trimesh.creation.cylinder(radius=0.05, height=0.1, sections=48)
    keep = np.abs(tube.triangles_center[:, 2]) < 0.049  # drop the caps
    tube = trimesh.Trimesh(tube.vertices, tube.faces[keep], process=False)
    camera = Intrinsics.from_fov(128, 128, 40.0)
    rotation, translation = look_at_w2c(np.array([0.25, 0.0, 0.3]), np.zeros(3))
    out = renderer.render(tube.vertices, tube.faces, camera, rotation, translation)
    inside = np.asarray(camera.matrix @ (rotation @ np.array([-0.03, 0.0, 0.0]) + translation))
    column, row = np.round(inside[:2] / inside[2]).astype(int)
    assert out.alpha[row, column] == 1.0  # the far wall, seen from inside
    seen = out.depth[row, column]
    assert seen > np.linalg.norm([0.25, 0.0, 0.3]) - 0.05  # behind the axis, not the near rim


@pytest.mark.parametrize('azimuth, seen, hidden',
                         [(0.0, 'face', 'back'), (180.0, 'back', 'face')])
def test_visible_landmarks_agree_with_the_depth(model, renderer, azimuth, seen, hidden):
    from head_capture.synth.render import project_landmarks
    template = HeadTemplate.load()
    points = model.mean_vertices[template.vertex_ids]
    camera = Intrinsics.from_fov(128, 128, 40.0)
    a = np.radians(azimuth)
    rotation, translation = look_at_w2c([0.6 * np.cos(a), 0.6 * np.sin(a), 0.1], np.zeros(3))
    out = renderer.render(model.mean_vertices, model.faces, camera, rotation, translation)
    uv, visible = project_landmarks(points, camera, rotation, translation, out.depth)
    z = (points @ rotation.T + translation)[:, 2]
    pixel = np.round(uv[visible]).astype(int)
    gap = np.abs(out.depth[pixel[:, 1], pixel[:, 0]] - z[visible])
    assert np.median(gap) < 2e-3  # a pixel spans 3.4 mm here; the surface is sloped
    assert visible[template.region_mask(seen)].mean() > 0.5  # "back" holds the sides too
    assert visible[template.region_mask(hidden)].mean() < 0.05
    dilated = cv2.dilate((out.alpha > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    assert dilated[pixel[:, 1], pixel[:, 0]].all()


@pytest.fixture(scope='module')
def atlas(model):
    from head_capture.synth.appearance import UvAtlas
    return UvAtlas(model, size=256)


@pytest.fixture(scope='module')
def fine_atlas(model):
    """Return an atlas of the landmark set's size: a nostril is a few texels wide."""
    from head_capture.synth.appearance import UvAtlas
    return UvAtlas(model, size=512)


def test_atlas_maps_texels_onto_the_head(model, atlas):
    outer = model.mean_vertices[model.outer_vertices]
    head = atlas.texel_part == 'head'
    assert head.sum() > 5000
    assert np.all(atlas.points[head].min(0) >= outer.min(0) - 1e-3)
    assert np.all(atlas.points[head].max(0) <= outer.max(0) + 1e-3)
    # Every mesh corner keeps its own uv: the split mesh has no fewer vertices than the mesh.
    assert len(atlas.render_vertex_ids) >= len(model.outer_vertices)
    np.testing.assert_array_equal(model.faces, atlas.render_vertex_ids[atlas.render_faces])


def test_appearance_is_seeded_and_hair_sits_on_the_scalp(atlas):
    from dataclasses import replace
    from head_capture.synth.appearance import (hair_coverage, paint_texture,
                                               sample_appearance)
    first = sample_appearance(np.random.default_rng(3))
    again = sample_appearance(np.random.default_rng(3))
    assert paint_texture(atlas, first).tobytes() == paint_texture(atlas, again).tobytes()
    eye_height = np.mean([e[2] for e in atlas.eyes.values()])
    crown, nose, nape = [0.0, 0.0, 0.115], [0.113, 0.0, -0.038], [-0.09, 0.0, -0.02]
    points = np.array([crown, nose, nape])
    for style in ('short', 'medium', 'long'):
        covered = hair_coverage(points, replace(first, hair_style=style,
                                                hairline=np.array([0.05, -0.02, -0.08])),
                                eye_height)
        np.testing.assert_allclose(covered, [1.0, 0.0, 1.0])
    bald = replace(first, hair_style='bald', hairline=np.array([0.2, 0.2, 0.2]))
    assert hair_coverage(points, bald, eye_height).max() == 0.0


def _texel_colour(atlas, texture, point, part='head'):
    """Return the texture colour at the texel of ``part`` whose 3D point is nearest ``point``."""
    among = np.flatnonzero(atlas.texel_part == part)
    nearest = among[np.argmin(np.linalg.norm(atlas.points[among] - point, axis=1))]
    return texture[atlas.texels[0][nearest], atlas.texels[1][nearest]].astype(float)


def test_a_face_has_brows_lids_pupils_and_nostrils_darker_than_its_skin(fine_atlas):
    atlas = fine_atlas
    from dataclasses import replace
    from head_capture.synth.appearance import EYE_OPENING, paint_texture, sample_appearance
    look = replace(sample_appearance(np.random.default_rng(4)), skin=np.full(3, 200.0),
                   hair=np.full(3, 30.0), hair_style='bald', hairline=np.full(3, 0.2),
                   eyebrow_strength=1.0, beard=0.0, glasses=False, headwear='none',
                   freckles=0.0)
    texture = paint_texture(atlas, look)
    eye = atlas.eyes['L']
    cheek = _texel_colour(atlas, texture, eye + [0.01, 0.0, -0.04]).mean()
    brow = _texel_colour(atlas, texture, eye + [0.012, 0.004, 0.024]).mean()
    lashes = _texel_colour(atlas, texture, eye + [0.012, 0.0, EYE_OPENING[1] * 1.1]).mean()
    pupil = _texel_colour(atlas, texture, eye + [0.02, 0.0, 0.0], 'eye_front.L').mean()
    nostril = _texel_colour(atlas, texture, atlas.nose + [-0.008, 0.008, -0.011]).mean()
    assert cheek > 150
    for part in (brow, lashes, pupil, nostril):
        assert part < 0.6 * cheek


def test_glasses_and_a_beard_are_painted_where_they_belong(fine_atlas):
    atlas = fine_atlas
    from dataclasses import replace
    from head_capture.synth.appearance import paint_texture, sample_appearance
    plain = replace(sample_appearance(np.random.default_rng(5)), skin=np.full(3, 200.0),
                    hair=np.full(3, 20.0), beard=0.0, glasses=False, headwear='none',
                    freckles=0.0, accent=np.array([0.0, 0.0, 255.0], np.float32))
    with_both = replace(plain, beard=1.0, glasses=True)
    before, after = paint_texture(atlas, plain), paint_texture(atlas, with_both)
    changed = np.abs(before.astype(int) - after.astype(int)).sum(-1)[atlas.texels] > 30
    points = atlas.points[changed]
    # Everything that changed is on the front half of the face, below the brows or on the
    # frames' temples at eye height; nothing on the crown or the back of the head.
    eye_height = np.mean([e[2] for e in atlas.eyes.values()])
    assert changed.sum() > 500
    assert np.all(points[:, 2] < eye_height + 0.03)
    assert np.all(points[:, 0] > -0.04)
    chin = atlas.mouth + [0.005, 0.0, -0.03]
    assert _texel_colour(atlas, after, chin).mean() < 100  # bearded
    frame = _texel_colour(atlas, after, atlas.eyes['L'] + [0.02, 0.0, 0.017])
    assert frame[2] > frame[0] + 60  # the blue frame above the eye


def test_backdrops_are_seeded_rooms_and_photographs_without_people():
    from head_capture.synth.backdrops import (bundled_photos, photo, PHOTO_FILES, room,
                                              sample_backdrop)
    assert not {'astronaut.png', 'camera.png'} & set(PHOTO_FILES)
    assert len(bundled_photos()) == len(PHOTO_FILES)  # all shipped in scikit-image's wheel
    first = sample_backdrop(np.random.default_rng(1), 96)
    assert first.shape == (96, 96, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, sample_backdrop(np.random.default_rng(1), 96))
    scene = room(np.random.default_rng(2), 128)
    assert scene.std() > 10  # walls, a floor and things, not a flat colour
    piece = photo(np.random.default_rng(3), 64)
    assert piece.shape == (64, 64, 3) and piece.std() > 5


def test_textured_render_shows_the_texture(model, atlas, renderer):
    from head_capture.synth.render import Lighting
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[..., 0] = 220
    camera = Intrinsics.from_fov(128, 128, 40.0)
    rotation, translation = look_at_w2c([0.6, 0.0, 0.0], np.zeros(3))
    out = renderer.render(model.mean_vertices[atlas.render_vertex_ids], atlas.render_faces,
                          camera, rotation, translation, texture=texture, uv=atlas.render_uv,
                          lighting=Lighting(np.ones(3), ()))
    pixels = out.rgb[out.alpha > 0].astype(int)
    assert len(pixels) > 1000
    assert np.median(pixels[:, 0]) > 100 and np.median(pixels[:, 1:]) < 30


def test_each_head_gets_its_own_shoulders_and_a_top(model):
    from head_capture.synth.bust import BustModel, garment_colours, Garment
    bust = BustModel(model)
    phenotypes = np.array([[0.5] * 6, [0.1, 0.9, 0.2, 0.9, 0.1, 0.3]], np.float32)
    heads, busts = model.vertices(phenotypes), bust.vertices(phenotypes)
    for head, body in zip(heads, busts):
        neck = head[:, 2].min()
        # Just under the neck: the top of the bust meets it, the bust hangs below it,
        # centred under the head and wider than it (shoulders).
        assert abs(body[:, 2].max() - neck) < 0.03 and body[:, 2].min() < neck - 0.25
        assert abs(body[:, 1].mean() - head[:, 1].mean()) < 0.02
        assert np.ptp(body[:, 1]) > 2 * np.ptp(head[:, 1])
    assert not np.allclose(busts[0], busts[1], atol=0.01)  # its own shoulders
    garment = Garment(np.array([200.0, 0, 0]), np.array([0.0, 0, 200]), 'plain', 0.03, 0.0)
    colours = garment_colours(busts[0], garment, np.array([90.0, 60, 40]), heads[0][:, 2].min())
    high = busts[0][:, 2] > heads[0][:, 2].min() - 0.015
    low = busts[0][:, 2] < heads[0][:, 2].min() - 0.045
    assert (colours[high] == (90, 60, 40)).all() and (colours[low] == (200, 0, 0)).all()


def test_closed_shoulders_cover_the_torso_and_long_hair_hangs_over_them(model, renderer):
    from head_capture.synth.bust import BustModel, Garment
    from head_capture.synth.figure import (Dressing, figure_colours, hanging_hair,
                                           shoulder_line)
    bust = BustModel(model)
    head, body = model.mean_vertices, bust.vertices(np.full((1, 6), 0.5, np.float32))[0]
    neck = head[:, 2].min()
    dressing = Dressing(True, 'none', 0.02, 'curtain', 0.2, 90.0, 4)
    line, faces, centre, neck_radius = shoulder_line(head[bust.neck_rim], body[bust.top_rim],
                                                     dressing)
    # Looking straight down beside the neck, the open bust shows the inside of the torso
    # (or nothing); the closed figure shows shoulders within a few cm of the neck's base.
    camera = Intrinsics.from_fov(128, 128, 60.0)
    eye = np.array([centre[0], centre[1], 0.6])
    rotation, _ = look_at_w2c(eye, np.array([centre[0], centre[1], neck]), up=(1.0, 0.0, 0.0))
    grey = np.full((len(line), 3), 128, np.uint8)
    depths = [renderer.render(body, bust.faces, camera, rotation, -rotation @ eye,
                              extras=extras).depth  # without the head, which hides the ring
              for extras in ([], [(line, faces, grey)])]
    offset = np.linalg.norm(np.stack(np.meshgrid(np.arange(128), np.arange(128)), -1)
                            - [camera.cx, camera.cy], axis=-1) * (0.6 - neck) / camera.fx
    ring = (offset > np.median(neck_radius) + 0.02) & (offset < np.median(neck_radius) + 0.05)
    below_neck = [np.where(depth[ring] > 0, depth[ring] - (0.6 - neck), np.inf)
                  for depth in depths]
    assert np.mean(below_neck[0] < 0.08) < 0.5
    assert np.mean(below_neck[1] < 0.08) > 0.95
    # Bare skin next to the neck, the top's cloth beyond it.
    skin, red = np.array([90.0, 60, 40]), np.array([200.0, 0, 0])
    colours = figure_colours(line, Garment(red, red, 'plain', 0.0, 0.0), skin, centre,
                             neck_radius, dressing)
    beyond = np.linalg.norm(line[:, :2] - centre, axis=1) - np.median(neck_radius)
    assert (colours[beyond < 0.0] == skin).all() and (colours[beyond > 0.08] == red).all()
    # Long hair falls from the back of the head to below the neck, never inside the body.
    hair, hair_faces, hair_colours = hanging_hair(np.concatenate([head, body, line]),
                                                  0.0, neck, [120.0, 80, 40], dressing)
    assert hair[:, 2].max() > 0.03 and hair[:, 2].min() < neck - 0.1
    assert (hair[:, 0] < 0.02).all()  # behind the head
    assert hair_faces.max() < len(hair) and hair_colours.shape == hair.shape
    assert Dressing(True, 'none', 0.02, 'none', 0.2, 90.0, 4).hanging == 'none'
    assert hanging_hair(head, 0.0, neck, [1.0, 1, 1],
                        Dressing(True, 'none', 0.0, 'none', 0.0, 90.0, 1)) is None


def test_landmark_set_shards_are_seeded_and_resumable(tmp_path):
    from head_capture.landmarks.dataset import compact_copy, read_samples
    from head_capture.synth.landmark_set import LandmarkSetConfig, write_landmark_set
    cfg = LandmarkSetConfig(size=64, shard_size=4, views_per_appearance=2, atlas_size=128,
                            seed=11)
    manifest = write_landmark_set(tmp_path / 'a', 7, cfg)
    assert manifest['count'] == 8 and manifest['shards'] == ['shard_00000.npz',
                                                             'shard_00001.npz']
    # An interrupted run (second shard missing) resumes to the same bytes.
    write_landmark_set(tmp_path / 'b', 4, cfg)
    write_landmark_set(tmp_path / 'b', 8, cfg, workers=1)  # the rest in a worker process
    for name in manifest['shards']:
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes()
    samples = read_samples(tmp_path / 'a')
    assert samples['images'].shape == (8, 64, 64, 3)
    assert samples['landmarks'].shape == (8, 703, 2) and samples['visible'].shape == (8, 703)
    assert samples['visible'].sum(1).min() > 20  # every view sees part of the head
    inside = (samples['landmarks'] >= -0.5) & (samples['landmarks'] < 63.5)
    assert inside.all(-1)[samples['visible']].all()
    assert (samples['masks'] > 0).mean() > 0.05
    with pytest.raises(ValueError, match='another config'):
        write_landmark_set(tmp_path / 'a', 8, LandmarkSetConfig(size=64, shard_size=4, seed=12))
    # A compact copy (JPEG images, float16 landmarks) reads back as the same samples, nearly.
    assert compact_copy(tmp_path / 'a', tmp_path / 'c', quality=95) > 0
    compact = read_samples(tmp_path / 'c')
    assert compact['images'].shape == samples['images'].shape
    assert np.abs(compact['images'].astype(int) - samples['images']).mean() < 6.0
    np.testing.assert_allclose(compact['landmarks'], samples['landmarks'], atol=0.05)
    np.testing.assert_array_equal(compact['visible'], samples['visible'])


def test_contact_sheet_tiles_the_samples():
    from head_capture.synth.preview import contact_sheet
    images = np.zeros((5, 32, 32, 3), np.uint8)
    landmarks = np.full((5, 2, 2), 16.0)
    visible = np.array([[True, False]] * 5)
    sheet = contact_sheet(images, landmarks, visible, ('face', 'back'), columns=4)
    assert sheet.shape == (64, 128, 3)
    np.testing.assert_array_equal(sheet[16, 16], (235, 70, 70))
    assert sheet[48, 112].sum() == 0  # the padding tile stays empty


def test_sequences_follow_the_paper_protocol(tmp_path):
    from head_capture.geometry import c2w_opengl_to_w2c
    from head_capture.session import read_image, read_transforms
    from head_capture.synth.render import project_landmarks
    from head_capture.synth.sequence import SequenceConfig, write_sequences
    cfg = SequenceConfig(subjects=1, train=6, test=2, size=64, seed=4)
    folder, = write_sequences(tmp_path / 'a', cfg)
    train = read_transforms(folder / 'transforms_train.json')
    test = read_transforms(folder / 'transforms_test.json')
    assert (len(train.frames), len(test.frames)) == (6, 2)
    marks = np.load(folder / 'landmarks_train.npz')
    for n, frame in enumerate(train.frames):
        rotation, translation = c2w_opengl_to_w2c(frame.c2w)
        centre = -rotation.T @ translation
        elevation = np.degrees(np.arcsin(centre[2] / np.linalg.norm(centre)))
        assert -25.0 <= elevation <= 45.0
        rgba = cv2.imread(str(folder / frame.file_path), cv2.IMREAD_UNCHANGED)
        assert rgba.shape == (64, 64, 4) and 0 < (rgba[..., 3] > 0).mean() < 1
        # The poses in the file put the stored landmarks back on their pixels.
        depth = np.where(rgba[..., 3] > 0, 1.0, 0.0)
        uv, _ = project_landmarks(marks['points'], train.intrinsics, rotation, translation,
                                  depth)
        np.testing.assert_allclose(uv, marks['landmarks'][n], atol=1e-3)
        assert read_image(folder / frame.file_path).shape == (64, 64, 3)
    assert train.meta['head_capture']['mask_volume_m'] == cfg.volume_m
    # The same seed gives the same files, and a finished subject is skipped.
    again, = write_sequences(tmp_path / 'b', cfg)
    same = 'train/r_003.png'
    assert (again / same).read_bytes() == (folder / same).read_bytes()
    # The preview tool takes a sequence subject too: eight tiles in one row.
    sheet = tmp_path / 'sheet.png'
    assert main(['synth', 'preview', str(folder), '--out', str(sheet)]) == 0
    assert cv2.imread(str(sheet)).shape == (64, 8 * 64, 3)


def test_masks_are_cut_to_the_capture_volume():
    from head_capture.camera import Intrinsics
    from head_capture.synth.sequence import outside_volume
    camera = Intrinsics.from_fov(64, 64, 40.0)
    # A camera 0.6 m in front of the origin, facing a wall through it; a hole with no surface.
    depth = np.full((64, 64), 0.6)
    depth[:4, :4] = 0.0
    outside = outside_volume(depth, camera, np.eye(3), np.array([0.0, 0.0, 0.6]), 0.1)
    rows, cols = np.indices(depth.shape)
    x, y = (cols - camera.cx) / camera.fx * 0.6, (rows - camera.cy) / camera.fy * 0.6
    expected = (np.abs(x) > 0.1) | (np.abs(y) > 0.1)
    expected[:4, :4] = False
    np.testing.assert_array_equal(outside, expected)
    assert 0.2 < outside.mean() < 0.9


def test_synthetic_capture_video_and_its_ground_truth(tmp_path, monkeypatch):
    from head_capture.capture.sources import VideoSource
    from head_capture.geometry import c2w_opengl_to_w2c
    from head_capture.session import read_transforms
    from head_capture.synth import capture_video
    from head_capture.synth.capture_video import CaptureConfig, write_capture
    cfg = CaptureConfig(seconds=1.0, fps=12.0, width=160, height=96, blur_share=0.5, seed=2)
    assert write_capture(tmp_path / 'a', cfg, workers=0) == 12
    truth = read_transforms(tmp_path / 'a' / 'ground_truth.json')
    assert len(truth.frames) == 12 and truth.intrinsics.width == 160
    assert truth.frames[5].file_path == 'capture.mp4#5'
    rotation, translation = c2w_opengl_to_w2c(np.stack([f.c2w for f in truth.frames]))
    centres = -np.einsum('nji,nj->ni', rotation, translation)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 0.6, rtol=0.08)
    # The head centre stays near the middle of the frame despite the hand shake.
    head = np.einsum('nij,j->ni', rotation, [0.0, 0.0, 0.02]) + translation
    pixels = head[:, :2] / head[:, 2:] * truth.intrinsics.fx + [79.5, 47.5]
    assert np.abs(pixels - [79.5, 47.5]).max() < 20
    assert 0 < sum(f.meta['blurred'] for f in truth.frames) < 12
    # Rendered in worker processes, a fresh one every 4 frames (so the blurred frames' streaks
    # are drawn apart from their rendering): the same frames and truth as in one process.
    monkeypatch.setattr(capture_video, 'FRAMES_PER_WORKER', 4)
    monkeypatch.setattr(capture_video, 'FRAMES_PER_TASK', 2)
    assert write_capture(tmp_path / 'b', cfg, workers=1) == 12
    assert (tmp_path / 'a' / 'ground_truth.json').read_text() == \
        (tmp_path / 'b' / 'ground_truth.json').read_text()
    with VideoSource(tmp_path / 'a' / 'capture.mp4') as one, \
            VideoSource(tmp_path / 'b' / 'capture.mp4') as apart:
        one, apart = [f.image for f in one], [f.image for f in apart]
    assert len(one) == len(apart) == 12
    assert all(np.array_equal(a, b) for a, b in zip(one, apart))


def test_the_capture_is_rendered_apart_from_the_process_that_asks_for_it(tmp_path):
    # OSMesa keeps some 7 MB of every render for good: a process that rendered the demo's
    # 1,200 frames held 9 GB. The caller only encodes; the renders' memory goes with workers.
    from head_capture.synth.capture_video import CaptureConfig, write_capture

    def resident_mib():
        return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20

    cfg = CaptureConfig(seconds=2.0, fps=20.0, width=160, height=96, seed=1)
    before = resident_mib()
    assert write_capture(tmp_path, cfg) == 40
    assert resident_mib() - before < 100  # rendered here: 550 MB, 240 of them the 40 renders


def test_the_room_behind_the_capture_is_looked_up_at_half_size_without_a_shift():
    # Against the same lookup from a camera twice the size, scaled down: a misplaced
    # principal point would show as a shift, as a 1 px one does here.
    from dataclasses import replace
    from head_capture.synth.capture_video import room_panorama, sample_panorama
    panorama = room_panorama(np.random.default_rng(0))
    rotation, _ = look_at_w2c(np.array([0.6, 0.2, 0.1]), np.zeros(3))
    camera = Intrinsics.from_fov(640, 360)
    large = camera.resized(1280, 720)

    def seen(from_camera):
        image = sample_panorama(panorama, from_camera, rotation).astype(np.float32)
        return cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA)

    reference = seen(large)
    assert sample_panorama(panorama, camera, rotation).shape == (360, 640, 3)
    error = np.abs(seen(camera) - reference).mean()
    shifted = np.abs(seen(replace(camera, cx=camera.cx + 1)) - reference).mean()
    assert error < 0.5 * shifted


def test_variety_chart_counts_every_sample():
    from head_capture.synth.preview import variety_chart
    centres = np.random.default_rng(0).normal(size=(20, 3))
    rotations = np.stack([look_at_w2c(c, np.zeros(3))[0] for c in centres])
    translations = -np.einsum('nij,nj->ni', rotations, centres)
    chart = variety_chart(rotations, translations, np.full((20, 3), 200.0),
                          ['short'] * 15 + ['bald'] * 5)
    assert chart.shape == (4 * 170, 900, 3)
    assert (chart != 255).any()
