"""The avatar trainer at toy size: c2f schedule, pose gradients, BARF, resume, rollback."""

from dataclasses import replace
import json
from pathlib import Path

import cv2
from head_capture.avatar import TrainingError
from head_capture.avatar.barf import perturb, PoseCorrections
from head_capture.avatar.evaluate import psnr
from head_capture.avatar.fields import coarse_to_fine, GridField, MLPField
from head_capture.avatar.rays import foreground_pixels, load_views, near_far, pixel_rays, \
    sample_pixels, Views
from head_capture.avatar.render import render_rays, resample, squared_error
from head_capture.avatar.scene import fit_scene, scene_bounds
from head_capture.avatar.trainer import AvatarTrainer, CHECKPOINT, device_name, EVENTS
from head_capture.avatar.training_config import AvatarConfig, load_avatar_config, NAMES
from head_capture.camera import Intrinsics
from head_capture.geometry import look_at_w2c, w2c_to_c2w_opengl
from head_capture.session import FrameRecord, MASK_UNSURE, read_transforms, SessionError, \
    Transforms, write_transforms
import numpy as np
import pytest
import torch

TOY = {'field.kind': 'grid', 'data.image_size': 0, 'sampling.rays': 256, 'sampling.coarse': 24,
       'sampling.fine': 16, 'stage1.steps': 30, 'stage2.steps': 10, 'grid.levels': 3,
       'grid.base': 8, 'grid.top': 24, 'grid.features': 2, 'grid.hidden': 16, 'field.pe_dir': 2,
       'scene.radius': 1.0, 'scene.near': 1.5, 'scene.far': 4.0, 'scene.background': 'white',
       'data.holdout_every': 5, 'trainer.checkpoint_every': 10, 'trainer.log_every': 5,
       'field.lr': (2e-3, 5e-4), 'grid.lr': (3e-2, 3e-3), 'stage1.pose_lr': (3e-3, 1e-4),
       'outputs.test_pose_steps': 5, 'outputs.turntable_frames': 0, 'outputs.mesh_views': 0}


def test_coarse_to_fine_schedule():
    assert coarse_to_fine(0.05, 4, 0.1, 0.5).tolist() == [0, 0, 0, 0]
    assert coarse_to_fine(0.6, 4, 0.1, 0.5).tolist() == [1, 1, 1, 1]
    # Halfway: alpha = 2 bands, so two bands are on and the third just starting.
    np.testing.assert_allclose(coarse_to_fine(0.3, 4, 0.1, 0.5), [1, 1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(coarse_to_fine(0.35, 4, 0.1, 0.5), [1, 1, 0.5, 0], atol=1e-6)
    assert coarse_to_fine(0.0, 3, 0.0, 0.0).tolist() == [1, 1, 1]  # schedule off


@pytest.mark.parametrize('field', [MLPField(depth=2, width=16, skip=1, pe_xyz=3, pe_dir=2),
                                   GridField(levels=2, base=4, top=8, features=2, hidden=8)])
def test_gradients_reach_the_poses_but_not_the_first(field):
    camera = Intrinsics.from_fov(16, 16, 50.0)
    poses = [look_at_w2c(np.array([2.0 * np.cos(a), 2.0 * np.sin(a), 0.5]), np.zeros(3))
             for a in (0.0, 1.0, 2.0)]
    corrections = PoseCorrections(torch.tensor(np.array([p[0] for p in poses])),
                                  torch.tensor(np.array([p[1] for p in poses])))
    frames = torch.tensor([0, 1, 2] * 20)
    rotations, translations = corrections(frames)
    u, v = torch.rand(60) * 15, torch.rand(60) * 15
    origins, directions = pixel_rays(camera, rotations, translations, u, v)
    near, far = near_far(origins, 1.0)
    (rgb, _, _), = render_rays([field], origins, directions, near, far, (16, 0), torch.ones(3))
    rgb.sum().backward()
    grad = corrections.xi.grad
    assert torch.all(grad[0] == 0) and grad[1:].abs().sum() > 0


def test_rays_that_miss_the_support_are_skipped_and_render_the_same():
    torch.manual_seed(0)
    field = GridField(levels=3, base=8, top=16, pe_dir=2, scale=0.3,
                      support=(np.array([0.0, 0.02, 0.0]), np.array([0.1, 0.12, 0.14])))
    for grid in field.grids:
        torch.nn.init.normal_(grid)
    origins = torch.tensor([[0.8, 0.0, 0.1]]).expand(2000, 3)
    directions = torch.tensor([-1.0, 0.0, 0.0]) + 0.15 * torch.randn(2000, 3)
    near, far = near_far(origins, 0.3)
    crossing = field.crossed_by(origins, directions, near, far)
    depths = near[:, None] + (far - near)[:, None] * torch.linspace(0, 1, 4001)
    touched = field.inside(origins[:, None] + directions[:, None] * depths[..., None]).any(-1)
    assert torch.all(crossing[touched]) and (crossing & ~touched).sum() <= 5  # grazing rays
    assert 0.2 < crossing.float().mean() < 0.8
    background = torch.rand(2000, 3)
    skipped = render_rays([field, field], origins, directions, near, far, (16, 16), background)
    alone = render_rays([field, field], origins[crossing], directions[crossing], near[crossing],
                        far[crossing], (16, 16), background[crossing])
    for (rgb, opacity, depth), expected in zip(skipped, alone):  # per field
        assert torch.equal(rgb[~crossing], background[~crossing])
        assert torch.all(opacity[~crossing] == 0) and torch.all(depth[~crossing] == 0)
        assert torch.allclose(rgb[crossing], expected[0], atol=1e-6)


def test_resampling_puts_samples_where_the_weight_is():
    depths = torch.linspace(2.0, 6.0, 33).expand(4, 33)
    weights = torch.zeros(4, 33)
    weights[:, 20] = 1.0
    more = resample(depths, weights, 64, torch.Generator().manual_seed(0))
    assert more.shape == (4, 97) and torch.all(torch.diff(more, dim=-1) >= 0)
    added = more[(more > depths[0, 19]) & (more < depths[0, 21])]
    assert len(added) >= 4 * 60


def test_perturbed_toy_poses_move_toward_the_truth(toy_scene, tmp_path):
    config = AvatarConfig().updated({
        **TOY, 'field.kind': 'mlp', 'mlp.depth': 4, 'mlp.width': 64, 'mlp.skip': 2,
        'mlp.pe_xyz': 6, 'field.lr': (5e-3, 5e-4), 'stage1.steps': 800, 'stage2.steps': 0,
        'trainer.checkpoint_every': 1000, 'trainer.log_every': 100})
    trainer = AvatarTrainer(toy_scene, tmp_path / 'run', config, perturb_sigma=0.06, seed=1)
    before = trainer.pose_report()['rotation_error_deg']
    metrics = trainer.run()
    assert metrics['rotation_error_deg'] < 0.7 * before
    written = json.loads((tmp_path / 'run' / 'transforms.json').read_text())
    assert len(written['frames']) == 30
    assert sum(f['held_out'] for f in written['frames']) == 6


def test_kill_stop_and_resume_continue_exactly(toy_scene, tmp_path):
    config = AvatarConfig().updated(TOY)
    straight = AvatarTrainer(toy_scene, tmp_path / 'a', config, perturb_sigma=0.05, seed=2)
    assert straight.run()['step'] == config.stage2.steps  # both stages trained
    killed = AvatarTrainer(toy_scene, tmp_path / 'b', config, perturb_sigma=0.05, seed=2)
    for _ in range(17):  # killed after step 17: the checkpoint holds step 10
        killed._train_step()
    del killed
    # Asked to stop after step 17 (a cancel, SIGTERM): it checkpoints there and says so.
    asked = iter([False] * 17 + [True])
    stopped = AvatarTrainer(toy_scene, tmp_path / 'c', config, perturb_sigma=0.05, seed=2,
                            should_stop=lambda: next(asked))
    assert stopped.run() is None and not (tmp_path / 'c' / 'metrics.json').exists()
    last = json.loads((tmp_path / 'c' / EVENTS).read_text().splitlines()[-1])
    assert (last['event'], last['step']) == ('stopped', 17)
    assert AvatarTrainer(toy_scene, tmp_path / 'c', config, resume=True).step == 17
    resumed = AvatarTrainer(toy_scene, tmp_path / 'b', config, resume=True)
    assert (resumed.stage, resumed.step) == (1, 10)
    assert resumed.run()['stage'] == 2
    for a, b in zip(straight.fields.state_dict().values(), resumed.fields.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(straight.poses.xi, resumed.poses.xi, rtol=0, atol=0)
    with pytest.raises(TrainingError, match='--resume'):
        AvatarTrainer(toy_scene, tmp_path / 'a', config)


def test_a_nan_is_rolled_back_and_the_learning_rate_lowered(toy_scene, tmp_path):
    config = AvatarConfig().updated({**TOY, 'stage2.steps': 0})
    trainer = AvatarTrainer(toy_scene, tmp_path / 'run', config)
    for _ in range(12):
        trainer._train_step()
    with torch.no_grad():
        trainer.fields[0].grids[0].fill_(float('nan'))
    trainer._train_step()
    assert trainer.step == 10 and trainer.lr_scale == 0.5 and trainer.rollbacks == 1
    assert all(torch.isfinite(p).all() for p in trainer.fields.parameters())
    events = [json.loads(line) for line in (tmp_path / 'run' / EVENTS).read_text().split('\n')
              if line]
    assert events[-1]['event'] == 'rollback'
    # The device it trains on is said first (the node logs it and puts it on /diagnostics).
    assert events[0] == {**events[0], 'event': 'device', 'device': device_name(trainer.device)}
    trainer.run()
    assert trainer.step == config.stage1.steps


def test_a_corrupt_checkpoint_is_a_clear_error(toy_scene, tmp_path):
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / CHECKPOINT).write_bytes(b'not a checkpoint')
    with pytest.raises(TrainingError, match='not a usable avatar checkpoint'):
        AvatarTrainer(toy_scene, tmp_path / 'run', AvatarConfig().updated(TOY), resume=True)


def test_a_checkpoint_from_before_a_new_setting_resumes_but_not_under_other_settings(
        toy_scene, tmp_path):
    config = AvatarConfig().updated({**TOY, 'stage1.steps': 2, 'stage2.steps': 0})
    AvatarTrainer(toy_scene, tmp_path / 'run', config).run_stage()
    path = tmp_path / 'run' / CHECKPOINT
    state = torch.load(path, weights_only=True)
    del state['config']['sampling']['focus_margin']  # as if written before the setting existed
    torch.save(state, path)
    assert AvatarTrainer.reopen(tmp_path / 'run').step == 2  # read as its default
    with pytest.raises(TrainingError, match='another config'):
        AvatarTrainer(toy_scene, tmp_path / 'run', config.updated({'sampling.rays': 128}),
                      resume=True)


def test_shipped_configs_load_and_bad_values_are_refused():
    bench = Path(__file__).parents[1] / 'bench' / 'configs'
    for name in (*NAMES, *sorted(bench.glob('avatar_*.yaml'))):
        assert load_avatar_config(name).stage1.steps > 0
    with pytest.raises(ValueError, match='field.kind'):
        AvatarConfig().updated({'field.kind': 'voxels'})
    with pytest.raises(ValueError, match='near'):
        AvatarConfig().updated({'scene.near': 3.0, 'scene.far': 2.0})


def test_focused_rays_land_on_and_around_the_foreground():
    masks = torch.zeros(3, 20, 30)
    masks[1, 5:8, 10:12] = 1.0  # one 3x2 patch in frame 1; frames 0 and 2 are empty
    focus = foreground_pixels(masks, [0, 1, 2], margin=1)
    assert len(focus) == 5 * 4  # the patch grown by one pixel each way
    views = Views(torch.rand(3, 20, 30, 3), masks, None, None, None, ['a', 'b', 'c'], None)
    generator = torch.Generator().manual_seed(0)
    frames, u, v, _, mask, _ = sample_pixels(views, [0, 1, 2], 400, generator, focus, 0.25)
    near = (frames == 1) & (v >= 4) & (v <= 8) & (u >= 9) & (u <= 12)
    assert bool(near[:100].all()) and mask[:100].mean() > 0.2
    # The other rays are spread over all frames as without focus.
    assert set(frames[100:].tolist()) == {0, 1, 2} and float(near[100:].float().mean()) < 0.1


def test_shrinking_a_segmented_view_keeps_silhouette_colours(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :5] = (40, 200, 120, 255)  # a green-ish half, transparent (black) elsewhere
    cv2.imwrite(str(tmp_path / 'v.png'), rgba)
    frames = [FrameRecord('v.png', w2c_to_c2w_opengl(np.eye(3), np.array([0.0, 0.0, 2.0])))]
    write_transforms(tmp_path / 'transforms.json',
                     Transforms(Intrinsics.from_fov(8, 8, 50.0), frames))
    views = load_views(tmp_path / 'transforms.json', 4)
    # Column 2 of 4 averages one opaque and one transparent column: half covered, and its
    # colour is the foreground's, not darkened by the black behind it.
    np.testing.assert_allclose(views.masks[0, :, 2], 0.5, atol=0.01)
    np.testing.assert_allclose(views.images[0, :, 2], [[120 / 255, 200 / 255, 40 / 255]] * 4,
                               atol=0.01)


def test_a_session_s_wide_frames_train_cut_to_the_square_round_the_head(tmp_path):
    camera = Intrinsics.from_fov(160, 90, 60.0)
    rotation, translation = look_at_w2c(np.array([0.0, -0.8, 0.1]), np.zeros(3))
    volume = {'centre': [0.0, 0.0, 0.0], 'semi_axes': [0.12, 0.12, 0.15]}
    # Colour that says where a pixel was in the frame; the mask is the frame's right half.
    u, v = np.meshgrid(np.arange(160), np.arange(90))
    image = np.stack([u, v, np.zeros_like(u)], -1).astype(np.uint8)[..., ::-1]
    cv2.imwrite(str(tmp_path / 'k.png'), image)
    cv2.imwrite(str(tmp_path / 'm.png'), (u >= 80).astype(np.uint8) * 255)
    frame = FrameRecord('k.png', w2c_to_c2w_opengl(rotation, translation), 'm.png')
    write_transforms(tmp_path / 'transforms.json',
                     Transforms(camera, [frame], {'head_volume': volume}))
    views = load_views(tmp_path / 'transforms.json')
    x0, y0, side = views.volume.square_window(camera, [rotation], [translation])
    assert views.images.shape == (1, side, side, 3) and side < 90
    np.testing.assert_allclose(views.images[0, 0, 0] * 255, [x0, y0, 0])
    np.testing.assert_array_equal(views.masks[0].numpy(), (u >= 80)[y0:y0 + side, x0:x0 + side])
    # The cut view's camera casts the same ray through a pixel as the frame's did.
    assert (views.intrinsics.cx, views.intrinsics.cy) == (camera.cx - x0, camera.cy - y0)
    shrunk = load_views(tmp_path / 'transforms.json', 20)
    assert shrunk.images.shape == (1, 20, 20, 3) and shrunk.intrinsics.width == 20
    # Without a head volume (a rendered dataset) the whole frame trains, as before.
    write_transforms(tmp_path / 'transforms.json', Transforms(camera, [frame]))
    assert load_views(tmp_path / 'transforms.json').images.shape == (1, 90, 160, 3)


def test_what_a_mask_is_unsure_of_is_neither_trained_on_nor_scored(tmp_path):
    # The mask: head (255) on the left, background (0) in the middle, unsure (grey) right.
    mask = np.zeros((8, 12), np.uint8)
    mask[:, :4], mask[:, 8:] = 255, MASK_UNSURE
    cv2.imwrite(str(tmp_path / 'm.png'), mask)
    cv2.imwrite(str(tmp_path / 'k.png'), np.full((8, 12, 3), 90, np.uint8))
    frame = FrameRecord('k.png', w2c_to_c2w_opengl(np.eye(3), np.zeros(3)), 'm.png')
    write_transforms(tmp_path / 'transforms.json',
                     Transforms(Intrinsics.from_fov(12, 8, 50.0), [frame]))
    views = load_views(tmp_path / 'transforms.json')
    np.testing.assert_array_equal(views.weights[0].numpy(), (mask != MASK_UNSURE).astype(float))
    np.testing.assert_array_equal(views.masks[0].numpy(), (mask == 255).astype(float))
    # Shrunk, a pixel half over the unsure part keeps half its weight and its sure mask.
    shrunk = load_views(tmp_path / 'transforms.json', 6)
    np.testing.assert_allclose(shrunk.weights[0, 0].numpy(), [1, 1, 1, 1, 0, 0])
    np.testing.assert_allclose(shrunk.masks[0, 0].numpy(), [1, 1, 0, 0, 0, 0])
    # Weighted out of the loss and of the score.
    rendered, target = torch.zeros(4, 3), torch.tensor([[0.0], [0.0], [1.0], [1.0]]).repeat(1, 3)
    assert float(squared_error(rendered, target, torch.tensor([1.0, 1.0, 0.0, 0.0]))) == 0.0
    assert float(squared_error(rendered, target)) == 0.5
    image, truth = np.zeros((2, 2, 3)), np.zeros((2, 2, 3))
    truth[1] = 1.0
    assert psnr(image, truth, np.array([[1.0, 1.0], [0.0, 0.0]])) == 120.0
    assert psnr(image, truth) == pytest.approx(3.01, abs=0.01)
    # Binary masks (and renders' alpha) are sure everywhere: no weights, the loss as before.
    cv2.imwrite(str(tmp_path / 'm.png'), np.where(mask == MASK_UNSURE, 0, mask))
    assert load_views(tmp_path / 'transforms.json').weights is None


@pytest.mark.parametrize('distortion', [(-0.3, 0.08, 0.001, -0.001),
                                        (-0.3, 0.08, 0.001, -0.001, -0.4)])  # plumb_bob k3
def test_frames_of_a_distorting_lens_train_undistorted(tmp_path, distortion):
    # A phone's camera_info often has distortion; the trainer casts pinhole rays, so a point
    # must land where the pinhole camera puts it in both the image and the mask.
    lens = Intrinsics(300.0, 300.0, 159.5, 119.5, 320, 240, distortion)
    point = np.array([[0.4, 0.28, 1.0]])
    (u, v), = cv2.projectPoints(point, np.zeros(3), np.zeros(3), lens.matrix,
                                np.array(lens.distortion))[0][:, 0]
    dot = np.zeros((240, 320), np.uint8)
    cv2.circle(dot, (round(u), round(v)), 4, 255, -1)
    cv2.imwrite(str(tmp_path / 'k.png'), np.repeat(dot[..., None], 3, -1))
    cv2.imwrite(str(tmp_path / 'm.png'), dot)
    frame = FrameRecord('k.png', w2c_to_c2w_opengl(np.eye(3), np.zeros(3)), 'm.png')
    write_transforms(tmp_path / 'transforms.json', Transforms(lens, [frame]))
    views = load_views(tmp_path / 'transforms.json')
    assert not views.intrinsics.has_distortion
    expected = (views.intrinsics.matrix @ point[0])[:2]
    assert np.hypot(*(expected - (u, v))) > 8  # the lens moves the point visibly
    for pixels in (views.images[0, ..., 0], views.masks[0]):
        ys, xs = np.nonzero(pixels.numpy() > 0.5)
        np.testing.assert_allclose([xs.mean(), ys.mean()], expected, atol=0.75)


def test_cameras_hold_still_while_the_field_warms_up(toy_scene, tmp_path):
    config = AvatarConfig().updated({**TOY, 'poses.warmup': 0.5, 'stage2.steps': 0})
    trainer = AvatarTrainer(toy_scene, tmp_path / 'run', config, perturb_sigma=0.05)
    for _ in range(15):
        trainer._train_step()
    assert float(trainer.poses.xi.detach().abs().max()) == 0.0
    for _ in range(3):
        trainer._train_step()
    assert float(trainer.poses.xi.detach().abs().max()) > 0.0
    with pytest.raises(ValueError, match='poses.warmup'):
        AvatarConfig().updated({'poses.warmup': 1.0})


def test_perturbation_has_the_asked_spread():
    rotations = torch.eye(3).expand(4000, 3, 3)
    rotated, moved = perturb(rotations, torch.zeros(4000, 3), 0.15,
                             torch.Generator().manual_seed(0))
    angles = torch.arccos(((rotated.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1))
    assert abs(float((angles ** 2).mean()) - 3 * 0.15 ** 2) < 0.01


def test_held_out_cameras_are_carried_into_the_refined_frame():
    from head_capture.avatar.evaluate import carry_over
    from head_capture.lie_groups import so3_exp

    rng = np.random.default_rng(3)
    poses = [look_at_w2c(rng.normal(size=3) * 2 + np.array([0, 0, 3]), np.zeros(3))
             for _ in range(8)]
    rotations = np.array([p[0] for p in poses])
    translations = np.array([p[1] for p in poses])
    turn, scale, shift = so3_exp(np.array([0.2, -0.1, 0.3])), 1.7, np.array([0.5, -1.0, 2.0])
    # The same cameras in a frame x' = s A x + b: R' = R A^T, c' = s A c + b.
    moved_r = rotations @ turn.T
    centres = scale * (-np.einsum('nji,nj->ni', rotations, translations)) @ turn.T + shift
    moved_t = -np.einsum('nij,nj->ni', moved_r, centres)
    r, t = carry_over((rotations[:6], translations[:6]), (moved_r[:6], moved_t[:6]),
                      (rotations[6:], translations[6:]))
    np.testing.assert_allclose(r, moved_r[6:], atol=1e-9)
    np.testing.assert_allclose(t, moved_t[6:], atol=1e-9)


def test_test_time_optimisation_recovers_a_camera_turned_a_few_degrees(toy_scene, tmp_path):
    from head_capture.avatar.evaluate import optimise_pose, psnr
    from head_capture.avatar.export import render_view
    from head_capture.lie_groups import so3_exp

    config = AvatarConfig().updated({**TOY, 'stage1.steps': 300, 'stage2.steps': 0,
                                     'poses.refine': False, 'trainer.checkpoint_every': 1000})
    trainer = AvatarTrainer(toy_scene, tmp_path / 'run', config)
    trainer.run_stage()
    frame = int(trainer.held_ids[0])
    mask = trainer.views.masks[frame][..., None]
    image = trainer.views.images[frame] * mask + (1 - mask)

    def score(rotation, translation):
        return psnr(render_view(trainer.fields, rotation, translation, trainer.views.intrinsics,
                                config, torch.ones(3))[0], image.numpy())

    truth = [p[frame].float() for p in (trainer.views.rotations, trainer.views.translations)]
    # Turned 3° about its own centre: farther than a rate decayed to 1e-5 over the 100 steps
    # lets a camera travel (about 1.2°: 21.0 dB here, measured).
    turn = torch.tensor(so3_exp(np.radians(3.0) * np.array([0.8, 0.6, 0.0])), dtype=torch.float32)
    start = (turn @ truth[0], turn @ truth[1])
    found = optimise_pose(trainer.fields, image, *start, trainer.views.intrinsics, config,
                          torch.ones(3), steps=100, generator=torch.Generator().manual_seed(0))
    assert score(*start) < score(*truth) - 2.0
    assert score(*found) > score(*truth) - 0.3


def test_a_head_volume_in_the_data_bounds_the_fields(toy_scene, tmp_path):
    data = json.loads(toy_scene.read_text())
    data['head_volume'] = {'centre': [0.0, 0.0, 0.1], 'semi_axes': [0.5, 0.6, 0.4]}
    bounded = toy_scene.with_name('bounded.json')
    bounded.write_text(json.dumps(data))
    config = AvatarConfig().updated({**TOY, 'stage1.steps': 2, 'stage2.steps': 1})
    trainer = AvatarTrainer(bounded, tmp_path / 'run', config)
    trainer.run()
    for field in trainer.fields:  # stage 2 builds both of its fields bounded as well
        assert field.support_axes.tolist() == pytest.approx([0.5, 0.6, 0.4])
    data['head_volume'] = {'centre': [0.0, 0.0], 'semi_axes': [0.5, 0.6, 0.4]}
    bounded.write_text(json.dumps(data))
    with pytest.raises(SessionError, match='head_volume'):
        AvatarTrainer(bounded, tmp_path / 'other', config)


def test_fields_train_in_the_scaled_head_volume_and_render_cut_to_it(toy_scene, tmp_path):
    from head_capture.avatar.export import render_view

    data = json.loads(toy_scene.read_text())
    data['head_volume'] = {'centre': [0.0, 0.0, 0.0], 'semi_axes': [0.4, 0.4, 0.4],
                           'neck': {'centre': [0.0, 0.0], 'semi_axes': [0.1, 0.1],
                                    'top': -0.1, 'base': -0.2}}
    bounded = toy_scene.with_name('scaled.json')
    bounded.write_text(json.dumps(data))
    config = AvatarConfig().updated({**TOY, 'stage1.steps': 2, 'stage2.steps': 1,
                                     'scene.support_scale': 1.5})
    trainer = AvatarTrainer(bounded, tmp_path / 'run', config)
    trainer.run()
    rotation, translation = (p[0] for p in trainer.refined_poses())
    camera = trainer.views.intrinsics
    origins, directions = pixel_rays(camera, rotation.expand(camera.width * camera.height, 3, 3),
                                     translation.expand(camera.width * camera.height, 3),
                                     *(g.reshape(-1).float() for g in reversed(torch.meshgrid(
                                         torch.arange(camera.height),
                                         torch.arange(camera.width), indexing='ij'))))
    closest = (origins.norm(dim=-1) ** 2 - ((origins * directions).sum(-1) ** 2
                                            / (directions ** 2).sum(-1))).sqrt()
    between = ((closest > 0.41) & (closest < 0.59)).reshape(camera.height, camera.width).numpy()
    # The view is cut to the square round the volume: its corners see past it.
    assert between.sum() > 20  # pixels whose rays cross the training ball, not the volume
    trained = render_view(trainer.fields, rotation, translation, camera, config, (1.0,) * 3)[1]
    with trainer.displayed():
        assert all(f.support_axes.tolist() == pytest.approx([0.4] * 3) for f in trainer.fields)
        shown = render_view(trainer.fields, rotation, translation, camera, config, (1.0,) * 3)[1]
    assert all(f.support_axes.tolist() == pytest.approx([0.6] * 3) for f in trainer.fields)
    assert np.all(trained[between] > 0) and np.all(shown[between] == 0)
    # Views render the whole volume; the avatar's turntable and mesh leave out the body's part.
    beside_and_in_the_neck = torch.tensor([[0.0, 0.2, -0.15], [0.0, 0.0, -0.15]])
    directions = torch.tensor([[1.0, 0.0, 0.0]] * 2)
    for bust, expected in ((False, [True, True]), (True, [False, True])):
        with trainer.displayed(bust=bust):
            for field in trainer.fields:
                density = field(beside_and_in_the_neck, directions)[1]
                assert (density > 0).tolist() == expected
    with pytest.raises(ValueError, match='scene.support_scale'):
        AvatarConfig().updated({'scene.support_scale': 0.9})


def test_a_finished_run_renders_cut_to_the_visual_hull_of_its_views(toy_scene, tmp_path):
    # The blobs segmented: what is not the white background is foreground.
    data = json.loads(toy_scene.read_text())
    for frame in data['frames']:
        image = cv2.imread(str(toy_scene.parent / frame['file_path']))
        alpha = ((255 - image.astype(int)).max(-1) > 8).astype(np.uint8) * 255
        frame['file_path'] = frame['file_path'].replace('.png', '_rgba.png')
        cv2.imwrite(str(toy_scene.parent / frame['file_path']), np.dstack([image, alpha]))
    segmented = toy_scene.with_name('segmented.json')
    segmented.write_text(json.dumps(data))
    in_a_blob_and_in_the_air = torch.tensor([[0.3, 0.0, 0.0], [0.7, -0.7, 0.0]])
    directions = torch.tensor([[1.0, 0.0, 0.0]] * 2)

    def shown(trainer):
        with trainer.displayed():
            return (trainer.fields[0](in_a_blob_and_in_the_air, directions)[1] > 0).tolist()

    config = AvatarConfig().updated({**TOY, 'stage1.steps': 4, 'stage2.steps': 2,
                                     'trainer.log_every': 1})
    trainer = AvatarTrainer(segmented, tmp_path / 'run', config)
    trainer._train_step()
    assert shown(trainer) == [True, True]  # the cameras still move: no hull yet
    trainer.run()
    assert shown(trainer) == [True, False]
    assert (trainer.fields[0](in_a_blob_and_in_the_air, directions)[1] > 0).all()  # training
    uncut = AvatarTrainer(segmented, tmp_path / 'uncut', config.updated({'hull.min_views': 0}))
    uncut.run()
    assert shown(uncut) == [True, True]
    with pytest.raises(ValueError, match='hull.min_views'):
        AvatarConfig().updated({'hull.margin': -0.01})


def test_outputs_held_out_renders_turntable_and_mesh(toy_scene, tmp_path):
    import av

    config = AvatarConfig().updated({
        **TOY, 'stage1.steps': 300, 'stage2.steps': 0, 'poses.refine': False,
        'trainer.checkpoint_every': 1000, 'outputs.turntable_frames': 4, 'outputs.mesh_views': 6,
        'outputs.mesh_resolution': 48})
    metrics = AvatarTrainer(toy_scene, tmp_path / 'run', config).run()
    assert metrics['held_out_psnr'] > 22 and 0.7 < metrics['held_out_ssim'] <= 1
    assert json.loads((tmp_path / 'run' / 'metrics.json').read_text()) == metrics
    assert len(list((tmp_path / 'run' / 'held_out').glob('*.png'))) == 6
    with av.open(str(tmp_path / 'run' / 'turntable.mp4')) as video:
        assert sum(1 for _ in video.decode(video=0)) == 4
    assert metrics['mesh_vertices'] > 100
    assert (tmp_path / 'run' / 'avatar.ply').stat().st_size > 1000


def test_evaluate_cli_reopens_a_run_from_its_directory(toy_scene, tmp_path, capsys):
    from head_capture.cli import main

    overrides = [f'--set={k}={json.dumps(list(v) if isinstance(v, tuple) else v)}'
                 for k, v in TOY.items()]
    assert main(['train', str(toy_scene), '--out', str(tmp_path / 'run'), '--perturb', '0.02',
                 *overrides]) == 0
    capsys.readouterr()
    assert main(['evaluate', str(tmp_path / 'run'), '--test', str(toy_scene),
                 '--pose-steps', '3']) == 0
    report = json.loads((tmp_path / 'run' / 'evaluation.json').read_text())
    assert report['views'] == 30 and 'rotation_error_deg' in report
    assert json.loads(capsys.readouterr().out)['views'] == 30
    assert main(['evaluate', str(tmp_path / 'nothing')]) == 2


def _ball_scene(folder, distance, radius, count=12, size=16, fov=40.0):
    """Write ``count`` segmented views (RGBA) of a ball at the origin, cameras ``distance`` off."""
    folder.mkdir(parents=True, exist_ok=True)
    camera = Intrinsics.from_fov(size, size, fov)
    frames = []
    for n in range(count):
        azimuth, elevation = 2 * np.pi * n / count, np.radians(25 * np.sin(n))
        centre = distance * np.array([np.cos(elevation) * np.cos(azimuth),
                                      np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
        rotation, translation = look_at_w2c(centre, np.zeros(3))
        # The ball's outline: pixels whose ray passes within ``radius`` of the origin.
        v, u = np.mgrid[0:size, 0:size]
        rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy,
                         np.ones(u.shape)], -1) @ rotation
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
        miss = np.linalg.norm(np.cross(rays, -centre), axis=-1)
        image = np.full((size, size, 4), 200, np.uint8)
        image[..., 3] = np.where(miss < radius, 255, 0)
        cv2.imwrite(str(folder / f'v{n:02d}.png'), image)
        frames.append(FrameRecord(f'v{n:02d}.png', w2c_to_c2w_opengl(rotation, translation)))
    write_transforms(folder / 'transforms.json', Transforms(camera, frames))
    return folder / 'transforms.json'


def test_a_scene_larger_than_the_field_gets_bounds_from_its_cameras(tmp_path):
    # Blender-lego-like: cameras 4 units from a ball of radius 1.2; the config's field is 0.3.
    lego = _ball_scene(tmp_path / 'lego', 4.0, 1.2)
    bounds = scene_bounds(load_views(lego))
    np.testing.assert_allclose(bounds.centre, 0.0, atol=0.05)
    assert bounds.depths == pytest.approx((4.0, 4.0), abs=0.05) and bounds.source == 'masks'
    assert 1.15 < bounds.radius < 1.5
    config = load_avatar_config('cpu_preview')
    fitted, note = fit_scene(config, bounds, chosen=frozenset())
    assert bounds.half_side < fitted.scene.radius < 1.2 * bounds.half_side
    # Lengths in scene units keep their ratio to the field's size.
    assert fitted.poses.translation_unit / fitted.scene.radius == pytest.approx(
        config.poses.translation_unit / config.scene.radius, rel=0.01)
    assert f'scene.radius={fitted.scene.radius:g}' in note and '4 units away' in note
    # Bounds a user chose are never changed: refused, with what to set.
    with pytest.raises(TrainingError, match=f'set scene.radius={fitted.scene.radius:g}'):
        fit_scene(config, bounds, chosen={'scene.radius'})
    with pytest.raises(TrainingError, match='near=0.1, far=1'):
        fit_scene(fitted.updated({'scene.near': 0.1, 'scene.far': 1.0}), bounds,
                  chosen={'scene.near', 'scene.far'})
    # A head-sized scene (cameras 0.6 m from a 0.12 m head) keeps the config as it is.
    head = scene_bounds(load_views(_ball_scene(tmp_path / 'head', 0.6, 0.12)))
    assert fit_scene(config, head, chosen=frozenset()) == (config, None)
    # Cameras standing inside the field (a scene in millimetres) are as clearly wrong.
    tiny = scene_bounds(load_views(_ball_scene(tmp_path / 'tiny', 0.04, 0.01)))
    assert fit_scene(config, tiny, chosen=frozenset())[0].scene.radius < 0.05


def test_train_cli_derives_the_bounds_it_was_left_and_refuses_those_set(tmp_path, capsys):
    from head_capture.cli import main

    lego = _ball_scene(tmp_path / 'lego', 4.0, 1.2)
    quick = ['--set=stage1.steps=2', '--set=stage2.steps=0', '--set=outputs.test_pose_steps=0',
             '--set=outputs.turntable_frames=0', '--set=outputs.mesh_views=0',
             '--set=data.image_size=0']
    assert main(['train', str(lego), '--out', str(tmp_path / 'set'), '--set=scene.radius=0.3',
                 *quick]) == 2
    err = capsys.readouterr().err
    assert 'the field reaches only 0.3 round the origin (scene.radius), as set: set ' in err
    assert not (tmp_path / 'set').exists()
    assert main(['train', str(lego), '--out', str(tmp_path / 'run'), *quick]) == 0
    assert 'warning: the cameras look at a scene' in capsys.readouterr().err
    state = torch.load(tmp_path / 'run' / CHECKPOINT, weights_only=True)
    assert 1.2 < state['config']['scene']['radius'] < 2.0


def test_resuming_a_run_on_other_data_is_refused_with_the_reason(toy_scene, tmp_path, capsys):
    from head_capture.cli import main

    config = AvatarConfig().updated(TOY)
    AvatarTrainer(toy_scene, tmp_path / 'run', config)
    transforms = read_transforms(toy_scene)
    fewer = replace(transforms, frames=transforms.frames[:12])
    write_transforms(toy_scene.parent / 'fewer.json', fewer)
    with pytest.raises(TrainingError, match=r'other views .*\(30 frames, these 12\)'):
        AvatarTrainer(toy_scene.parent / 'fewer.json', tmp_path / 'run', config, resume=True)
    turned = replace(transforms, frames=[replace(f, c2w=f.c2w @ np.diag([1.0, -1, -1, 1]))
                                         for f in transforms.frames])
    write_transforms(toy_scene.parent / 'turned.json', turned)
    with pytest.raises(TrainingError, match='the same frames with other poses'):
        AvatarTrainer(toy_scene.parent / 'turned.json', tmp_path / 'run', config, resume=True)
    # The command line: one line and exit 2, not a traceback from the checkpoint's shapes.
    assert main(['train', str(toy_scene.parent / 'fewer.json'), '--out', str(tmp_path / 'run'),
                 '--resume']) == 2
    assert 'was trained on other views' in capsys.readouterr().err
    AvatarTrainer(toy_scene, tmp_path / 'run', config, resume=True)  # its own data resumes
