"""The landmark network, its augmentations, training, ONNX export and runtime."""

import json

import cv2
from head_capture.camera import Intrinsics
from head_capture.capture.registration import detect_and_solve
from head_capture.cli import main
from head_capture.config_files import ConfigError
from head_capture.files import write_npz_atomic
from head_capture.landmarks.augment import (augment_batch, AugmentConfig, jpeg_compress,
                                            motion_blur_kernels, warp_batch)
from head_capture.landmarks.detector import (crop_square, LandmarkDetector, ModelError,
                                             NON_FINITE, square_warp)
from head_capture.landmarks.export import export_checked, load_onnx_model, model_config_of
from head_capture.landmarks.export import main as export_main
from head_capture.landmarks.metrics import accuracy_report, sigma_error_correlation
from head_capture.landmarks.model import gaussian_nll, LandmarkNet, ModelConfig
from head_capture.landmarks.overlay import draw_detection
from head_capture.landmarks.train import (load_run_config, RunConfig, train, train_and_export,
                                          TrainConfig)
import numpy as np
import onnx
from onnx import helper, TensorProto
import pytest
import torch

TINY = ModelConfig(backbone='mobilenet', width=0.25, input_size=64, landmarks=8, hidden=64)


@pytest.mark.parametrize('backbone', ['mobilenet', 'resnet'])
def test_network_outputs_have_the_documented_shapes(backbone):
    cfg = ModelConfig(backbone=backbone, width=0.25, input_size=96, landmarks=5, hidden=32)
    net = LandmarkNet(cfg).eval()
    landmarks, log_sigma, visibility, mask = net(torch.zeros((2, 96, 96, 3), dtype=torch.uint8))
    assert landmarks.shape == (2, 5, 2) and log_sigma.shape == visibility.shape == (2, 5)
    assert mask.shape == (2, 1, 24, 24)
    # A new network predicts the crop centre, in pixels, with a wide sigma.
    np.testing.assert_allclose(landmarks.detach().numpy(), 47.5)
    with pytest.raises(ValueError, match='backbone'):
        ModelConfig(backbone='vgg')


@pytest.mark.parametrize('backbone', ['mobilenet', 'resnet'])
def test_an_exported_network_reads_back_with_its_batch_norms_folded(backbone, tmp_path):
    torch.manual_seed(1)
    cfg = ModelConfig(backbone=backbone, width=0.25, input_size=64, landmarks=8, hidden=32)
    net = LandmarkNet(cfg)
    for module in net.modules():  # statistics far from an identity, so folding shows
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.running_mean, -0.5, 0.5)
            torch.nn.init.uniform_(module.running_var, 0.5, 2.0)
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.2, 0.2)
    torch.nn.init.normal_(net.regress[-1].weight, std=0.02)
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    export_checked(net.eval(), tmp_path / 'net.onnx', images)
    back = load_onnx_model(tmp_path / 'net.onnx')
    with torch.no_grad():
        for want, got in zip(net(torch.from_numpy(images)), back(torch.from_numpy(images))):
            np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-3)
    other = RunConfig(TINY, train=TrainConfig(sets=('unused',),
                                              init_model=str(tmp_path / 'net.onnx')))
    with pytest.raises(ConfigError, match='model config'):
        train(other, tmp_path / 'run')


def test_gaussian_nll_is_lowest_at_the_true_spread():
    errors = torch.randn(20000, 1, 2) * 3.0  # isotropic, sigma 3 px
    target = torch.zeros_like(errors)
    losses = {s: float(gaussian_nll(errors, torch.full((20000, 1), np.log(s)), target))
              for s in (1.5, 3.0, 6.0)}
    assert losses[3.0] < losses[1.5] and losses[3.0] < losses[6.0]


def test_warp_moves_landmarks_with_the_pixels():
    size = 64
    rng = np.random.default_rng(0)
    points = rng.uniform(16, 48, (2, 6, 2)).astype(np.float32)
    images = np.zeros((2, size, size, 3), np.uint8)
    for n in range(2):
        for u, v in np.round(points[n]).astype(int):
            cv2.circle(images[n], (int(u), int(v)), 2, (255, 255, 255), -1)
    points = np.round(points)  # the dots' centres
    theta = torch.tensor([[[0.8, -0.3, 0.1], [0.3, 0.8, -0.05]],
                          [[1.2, 0.0, 0.0], [0.0, 1.2, 0.1]]], dtype=torch.float32)
    masks = torch.zeros((2, size, size))
    warped, _, valid, moved = warp_batch(torch.from_numpy(images), masks,
                                         torch.from_numpy(points), theta)
    assert valid.min() >= 0 and valid.max() == 1
    for n in range(2):
        for u, v in moved[n].numpy():
            assert warped[n, 0, int(round(v)), int(round(u))] > 100


def test_jpeg_simulation_is_close_to_real_jpeg():
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8), (0, 0), 2)
    ours = jpeg_compress(torch.from_numpy(image).permute(2, 0, 1)[None].float(),
                         torch.tensor([30]))[0].permute(1, 2, 0).numpy()
    real = cv2.imdecode(cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], 1)
    loss_ours = np.abs(ours - image).mean()
    loss_real = np.abs(real.astype(float) - image).mean()
    assert 0.5 * loss_real < loss_ours < 2.0 * loss_real
    assert np.abs(ours - real).mean() < loss_real


def test_motion_blur_kernels_are_normalised_lines():
    kernels = motion_blur_kernels(torch.tensor([0.0, 7.0]), torch.tensor([0.0, 0.0]), 9)
    np.testing.assert_allclose(kernels.sum((1, 2)).numpy(), 1.0, rtol=1e-5)
    assert kernels[0, 4, 4] > 0.99  # length 0: identity
    assert (kernels[1, 4] > 0).sum() == 7 and kernels[1, 3].sum() == 0  # a horizontal line


def test_augmented_batch_keeps_landmarks_on_their_dots():
    size = 64
    images = np.zeros((4, size, size, 3), np.uint8)
    points = np.full((4, 1, 2), 31.0, np.float32)
    cv2.circle(images[0], (31, 31), 3, (255, 255, 255), -1)
    images[1:] = images[0]
    cfg = AugmentConfig(blur_share=0.0, noise=0.0, jpeg_share=0.0, grey_share=0.0,
                        exposure_stops=(0.0, 0.0), white_balance=0.0, gamma=(1.0, 1.0))
    generator = torch.Generator().manual_seed(3)
    out, masks, moved, visible = augment_batch(
        torch.from_numpy(images), torch.zeros((4, size, size), dtype=torch.uint8),
        torch.from_numpy(points), torch.ones((4, 1), dtype=torch.bool), cfg, generator)
    assert out.shape == (4, size, size, 3) and masks.shape == (4, 16, 16)
    for n in range(4):
        u, v = np.round(moved[n, 0].numpy()).astype(int)
        if visible[n, 0]:
            assert out[n, v, u].min() > 150


def test_defocus_softens_and_sharpening_crisps_an_edge():
    from dataclasses import replace

    from head_capture.landmarks.augment import _lens
    edge = torch.zeros(1, 3, 32, 32)
    edge[..., 16:] = 200.0
    plain = AugmentConfig(vignette_share=0.0, defocus_share=0.0, sharpen_share=0.0)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(_lens(edge.clone(), plain, generator), edge)
    soft = _lens(edge.clone(), replace(plain, defocus_share=1.0), generator)
    crisp = _lens(edge.clone(), replace(plain, sharpen_share=1.0), generator)
    step = (edge[..., 17] - edge[..., 14]).abs().mean()
    assert (soft[..., 17] - soft[..., 14]).abs().mean() < step
    assert crisp[..., 15].max() == 0.0 and crisp[..., 16].min() > 200.0  # overshoot
    dark = _lens(torch.full((1, 3, 32, 32), 100.0), replace(plain, vignette_share=1.0),
                 generator)
    assert dark[..., 0, 0].mean() < dark[..., 16, 16].mean()


def test_accuracy_report_bins_views_by_azimuth():
    truth = np.zeros((3, 4, 2))
    truth[:, :, 0] = [0, 10, 0, 10]
    truth[:, :, 1] = [0, 0, 10, 10]
    predicted = truth + [[[1.0, 0.0]], [[2.0, 0.0]], [[0.0, 0.0]]]
    rotations = np.repeat(np.eye(3)[None], 3, 0)
    # Camera centres -R^T t: in front (+x), on the left (+y), behind (-x).
    translations = -np.array([[1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0]])
    report = accuracy_report(predicted, truth, rotations, translations, size=10)
    by_start = {b['from']: b for b in report['by_azimuth']}
    assert by_start[-15]['count'] == 1 and by_start[-15]['mean'] == pytest.approx(1 / 200 ** .5)
    assert by_start[75]['mean'] == pytest.approx(2 / 200 ** .5)
    assert by_start[165]['count'] == 1
    assert sigma_error_correlation(np.arange(10), np.arange(10) ** 2) == pytest.approx(1.0)


def _disk_set(folder, count, seed, size=64, points=8):
    """Write a toy landmark set: a bright disk whose rim carries the landmarks."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size, 3), np.uint8)
    masks = np.zeros((count, size, size), np.uint8)
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    landmarks = np.zeros((count, points, 2), np.float32)
    for n in range(count):
        centre, radius = rng.uniform(22, 42, 2), rng.uniform(8, 14)
        images[n] = rng.integers(0, 60, 3)
        cv2.circle(images[n], tuple(int(c) for c in centre), int(radius), (240, 200, 90), -1)
        cv2.circle(masks[n], tuple(int(c) for c in centre), int(radius), 255, -1)
        landmarks[n] = centre + radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    rotations = np.repeat(np.eye(3, dtype=np.float32)[None], count, 0)
    translations = np.tile(np.float32([-1, 0, 0]), (count, 1))
    write_npz_atomic(folder / 'shard_00000.npz', images=images, masks=masks,
                     landmarks=landmarks, visible=np.ones((count, points), bool),
                     rotations=rotations, translations=translations)
    (folder / 'manifest.json').write_text(json.dumps(
        {'count': count, 'shards': ['shard_00000.npz'], 'config': {'shard_size': count}}))
    return folder


@pytest.fixture(scope='module')
def disk_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp('disks')
    (root / 'train').mkdir()
    (root / 'val').mkdir()
    return _disk_set(root / 'train', 256, 0), _disk_set(root / 'val', 32, 1)


def _run(train_dir, val_dir, **train):
    mild = AugmentConfig(rotation_deg=10.0, scale=(0.9, 1.1), shift=0.05, jpeg_share=0.2,
                         vignette_share=0.0, defocus_share=0.0, sharpen_share=0.0)
    values = {'sets': (str(train_dir),), 'validation_set': str(val_dir), 'batch_size': 16,
              'learning_rate': 3e-3, 'warmup_steps': 10, 'validate_every': 1000,
              'checkpoint_every': 5, 'threads': 2, 'device': 'cpu'}
    return RunConfig(TINY, mild, TrainConfig(**{**values, **train}))


@pytest.mark.slow
def test_training_learns_resumes_and_exports(disk_sets, tmp_path):
    train_dir, val_dir = disk_sets
    untrained = train(_run(train_dir, val_dir, steps=1, learning_rate=1e-9), tmp_path / 'u')[1]
    run = _run(train_dir, val_dir, steps=150)
    # Stop after 60 steps (as a killed trainer would), then resume to the end.
    stopped = _run(train_dir, val_dir, steps=150)
    with pytest.raises(KeyboardInterrupt):
        def interrupt(step, parts):
            if step == 60:
                raise KeyboardInterrupt
        train(stopped, tmp_path / 'run', interrupt)
    seen = []
    report = train_and_export(run, tmp_path / 'run', lambda step, parts: seen.append(step))
    assert seen[0] == 56 and seen[-1] == 150  # resumed from the last checkpoint (step 55)
    assert report['nme'] < 0.5 * untrained['nme']
    assert report['onnx_parity_px'] < 0.1
    assert model_config_of(tmp_path / 'run' / 'head_landmarks.onnx') == TINY
    # A checkpoint alone (a run killed before its end) exports too, checked the same way.
    assert export_main([str(tmp_path / 'run' / 'checkpoint.pt'),
                        str(tmp_path / 'again.onnx')]) == 0
    assert model_config_of(tmp_path / 'again.onnx') == TINY
    with pytest.raises(ValueError, match='another config'):
        train(_run(train_dir, val_dir, steps=151), tmp_path / 'run')
    # Fine-tuning starts from the exported weights: with a vanishing rate, 20 steps keep the
    # model as it was (batch-norm statistics moving in those steps would break it).
    tuned = train(_run(train_dir, val_dir, steps=20, learning_rate=1e-9,
                       init_model=str(tmp_path / 'run' / 'head_landmarks.onnx')),
                  tmp_path / 'tuned')[1]
    assert tuned['nme'] == pytest.approx(report['nme'], rel=1e-3)


def test_run_config_reads_the_shipped_yaml_files():
    from head_capture.resources import share_path
    for name in ('landmarks_cpu.yaml', 'landmarks_gpu.yaml', 'landmarks_finetune_cpu.yaml'):
        run = load_run_config(share_path('config', name))
        assert run.model.input_size == 256 and run.train.steps > 1000
    # The fine-tuning config must fit the shipped model it starts from.
    assert load_run_config(share_path('config', 'landmarks_finetune_cpu.yaml')).model == \
        model_config_of(share_path('models', 'head_landmarks.onnx'))


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    net = LandmarkNet(TINY)
    torch.nn.init.normal_(net.regress[-1].weight, std=0.02)
    path = tmp_path_factory.mktemp('model') / 'tiny.onnx'
    images = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    assert export_checked(net, path, images) < 0.1
    return net, path


def test_crop_square_puts_frame_points_where_the_warp_says():
    frame = np.zeros((720, 1280, 3), np.uint8)
    cv2.circle(frame, (900, 300), 12, (255, 255, 255), -1)
    for side in (1280, 300):  # a whole-frame shrink (area path) and a close crop
        warp = square_warp((800.0, 360.0), side, 128)
        crop = crop_square(frame, warp, 128)
        expected = np.array([900.0, 300.0]) @ warp[:, :2].T + warp[:, 2]
        ys, xs = np.nonzero(crop[..., 0] > 60)
        centre = np.array([xs.mean(), ys.mean()])
        assert np.linalg.norm(centre - expected) < 0.6


def test_detector_maps_network_output_back_to_the_frame(tiny_model):
    net, path = tiny_model
    detector = LandmarkDetector(path, threads=1)
    assert detector.size == 64 and 'CPUExecutionProvider' in detector.providers
    frame = np.random.default_rng(2).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    box = (90.0, 70.0, 40.0)
    detection = detector.detect(frame, box=box)
    assert detection.passes == 1 and detection.mask.shape == (120, 200)
    warp = square_warp(box[:2], box[2] * 1.9, 64)
    with torch.no_grad():
        crop = torch.from_numpy(crop_square(frame, warp, 64)[None])
        expected, log_sigma, _, _ = (o[0].numpy() for o in net.eval()(crop))
    back = (expected - warp[:, 2]) / warp[0, 0]
    np.testing.assert_allclose(detection.landmarks, back, atol=1e-3)
    np.testing.assert_allclose(detection.sigma, np.exp(log_sigma) / warp[0, 0], rtol=1e-4)
    assert detector.detect(frame).passes in (2, 3)  # the second refining crop only if needed


@pytest.mark.parametrize('box', [(90.0, 70.0, 40.0), (5.0, 110.0, 60.0), (100.0, 60.0, 300.0),
                                 (-200.0, 60.0, 40.0)])
def test_the_frame_mask_is_the_crop_s_mask_warped_and_unknown_elsewhere(tiny_model, box):
    # Boxes inside the frame, across its corner, larger than it and beside it: only the crop's
    # footprint is warped, and that must lose nothing against warping the whole frame.
    net, path = tiny_model
    frame = np.random.default_rng(3).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    detection = LandmarkDetector(path, threads=1).detect(frame, box=box)
    warp = square_warp(box[:2], box[2] * 1.9, 64)
    with torch.no_grad():
        logit = net.eval()(torch.from_numpy(crop_square(frame, warp, 64)[None]))[3][0, 0]
    crop_mask = cv2.resize(torch.sigmoid(logit).numpy(), (64, 64), interpolation=cv2.INTER_LINEAR)
    expected = cv2.warpAffine(crop_mask, cv2.invertAffineTransform(warp), (200, 120),
                              flags=cv2.INTER_LINEAR, borderValue=0.5)
    np.testing.assert_allclose(detection.mask, expected, atol=1e-3)


def test_detector_refuses_missing_or_foreign_models(tmp_path, tiny_model):
    with pytest.raises(ModelError, match='not found'):
        LandmarkDetector(tmp_path / 'none.onnx')
    (tmp_path / 'junk.onnx').write_bytes(b'not a model')
    with pytest.raises(ModelError, match='not a readable ONNX'):
        LandmarkDetector(tmp_path / 'junk.onnx')


def test_landmarks_cli_writes_json_and_overlays(tmp_path, tiny_model):
    _, path = tiny_model
    images = tmp_path / 'images'
    images.mkdir()
    for n in range(2):
        cv2.imwrite(str(images / f'{n}.png'), np.full((80, 120, 3), 40 * n, np.uint8))
    assert main(['landmarks', str(images), '--out', str(tmp_path / 'out'), '--model',
                 str(path)]) == 0
    results = json.loads((tmp_path / 'out' / 'landmarks.json').read_text())
    assert sorted(results) == ['0.png', '1.png']
    assert np.array(results['0.png']['landmarks']).shape == (8, 2)
    assert cv2.imread(str(tmp_path / 'out' / '1_landmarks.png')).shape == (80, 120, 3)
    assert main(['landmarks', str(images), '--out', str(tmp_path / 'o'), '--model',
                 str(tmp_path / 'missing.onnx')]) == 2


def test_mirror_pass_gives_the_mirrored_frames_landmarks_in_the_frames_pixels(tiny_model):
    _, path = tiny_model
    detector = LandmarkDetector(path, threads=1)
    frame = np.random.default_rng(4).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    box = (90.0, 70.0, 40.0)
    plain = detector.detect(frame, box=box)
    # The mirror pass of the mirrored frame at the mirrored box is the plain pass, mirrored.
    landmarks, sigma = detector.detect_mirrored(np.ascontiguousarray(frame[:, ::-1]),
                                                (199.0 - box[0], box[1], box[2]))
    np.testing.assert_allclose(landmarks[:, 0], 199.0 - plain.landmarks[:, 0], atol=1e-3)
    np.testing.assert_allclose(landmarks[:, 1], plain.landmarks[:, 1], atol=1e-3)
    np.testing.assert_allclose(sigma, plain.sigma, rtol=1e-4)


def _stand_in_model(path, image_type='UINT8', log_sigma=0.0, outputs=None, size=32, count=4):
    """
    Write a tiny ONNX graph shaped as a landmark model, or broken the asked way.

    Its landmarks lie on a ring round the crop centre; ``log_sigma`` is every log sigma (NaN
    for a broken network); ``outputs``: the outputs it has (default all four).
    """
    floats = TensorProto.FLOAT
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    ring = (size - 1) / 2 + size / 4 * np.stack([np.cos(angles), np.sin(angles)], 1)
    values = {'landmarks': ring[None], 'log_sigma': np.full((1, count), log_sigma),
              'visibility_logit': np.full((1, count), 2.0),
              'mask_logit': np.full((1, 1, size // 4, size // 4), 3.0)}
    shapes = {'landmarks': ['batch', count, 2], 'log_sigma': ['batch', count],
              'visibility_logit': ['batch', count],
              'mask_logit': ['batch', 1, size // 4, size // 4]}
    names = outputs or list(values)
    # Each output: its constant plus 0 x the batch's mean pixel, so the batch size carries.
    nodes = [helper.make_node('Cast', ['image'], ['pixels'], to=floats),
             helper.make_node('ReduceMean', ['pixels'], ['mean'], axes=[1, 2, 3]),
             helper.make_node('Mul', ['mean', 'zero'], ['nil'])]
    initializers = [helper.make_tensor('zero', floats, [], [0.0])]
    for name in names:
        value = values[name]
        nodes += [helper.make_node('Reshape', ['nil', f'{name}_shape'], [f'{name}_nil']),
                  helper.make_node('Add', [f'{name}_nil', f'{name}_value'], [name])]
        initializers += [helper.make_tensor(f'{name}_shape', TensorProto.INT64, [value.ndim],
                                            [-1] + [1] * (value.ndim - 1)),
                         helper.make_tensor(f'{name}_value', floats, value.shape,
                                            value.ravel().tolist())]
    graph = helper.make_graph(
        nodes, 'stand_in', [helper.make_tensor_value_info(
            'image', getattr(TensorProto, image_type), ['batch', size, size, 3])],
        [helper.make_tensor_value_info(n, floats, shapes[n]) for n in names], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    model.metadata_props.add(key='model_config',
                             value=json.dumps({'input_size': size, 'landmarks': count}))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_a_stand_in_model_detects_its_ring(tmp_path):
    # The stand-in of the tests below, unbroken: a usable detection where its ring says.
    detector = LandmarkDetector(_stand_in_model(tmp_path / 'fit.onnx'), threads=1)
    detection = detector.detect(np.zeros((60, 80, 3), np.uint8))
    assert detection.problem is None and np.isfinite(detection.landmarks).all()
    assert detection.landmarks.shape == (4, 2) and detection.passes >= 2


@pytest.mark.parametrize('broken, message', [
    ({'image_type': 'FLOAT'}, "input 'image' is tensor(float), expected tensor(uint8)"),
    ({'outputs': ['landmarks', 'log_sigma', 'visibility_logit']}, "no output 'mask_logit'"),
    ({'outputs': ['landmarks', 'log_sigma']},
     "no output 'visibility_logit'; no output 'mask_logit'"),
])
def test_a_model_that_does_not_fit_the_runtime_is_refused_as_it_loads(
        tmp_path, capsys, broken, message):
    path = _stand_in_model(tmp_path / 'broken.onnx', **broken)
    with pytest.raises(ModelError, match='does not fit the landmark runtime') as refused:
        LandmarkDetector(path, threads=1)
    assert message in str(refused.value) and '\n' not in str(refused.value)
    # The command line says so in one line, exit 2, before it reads any image.
    images = tmp_path / 'images'
    images.mkdir()
    cv2.imwrite(str(images / 'a.png'), np.zeros((40, 40, 3), np.uint8))
    assert main(['landmarks', str(images), '--out', str(tmp_path / 'out'), '--model',
                 str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err
    assert not (tmp_path / 'out').exists()


def test_non_finite_outputs_are_no_detection_with_the_reason(tmp_path):
    detector = LandmarkDetector(_stand_in_model(tmp_path / 'nan.onnx', log_sigma=np.nan),
                                threads=1)
    frame = np.full((60, 80, 3), 90, np.uint8)
    for box in (None, (40.0, 30.0, 20.0)):  # searched, and seeded by a previous frame
        detection = detector.detect(frame, box, refine=True)
        assert not detection.usable and detection.problem == NON_FINITE
        assert detection.to_json()['problem'] == NON_FINITE
        assert json.loads(json.dumps(detection.to_json(), allow_nan=False))['usable'] is False
        assert draw_detection(frame, detection).shape == frame.shape
    pixels, sigma = detector.detect_mirrored(frame, (40.0, 30.0, 20.0))
    assert pixels.shape == (4, 2) and not np.isfinite(sigma).any()
    camera = Intrinsics.from_fov(80, 60, 60.0)
    _, estimate = detect_and_solve(frame, camera, detector, np.zeros((4, 3)), mirror=True)
    assert not estimate.registered and estimate.reason == NON_FINITE
