"""
Held-out views: where their cameras are in the trained scene, and how well it renders them.

The trained scene lives in the frame of the refined cameras, not the one the held-out views
were given in, so (as BARF does) each held-out camera is first carried over by the similarity
that maps the given training cameras onto the refined ones, then its pose is optimised against
its own image with the field frozen: what is left is the field's quality, not a registration
error. Metrics: PSNR and SSIM (Gaussian window 11, sigma 1.5, on [0, 1] RGB).

The test-time optimisation is BARF's: Adam at a constant learning rate of 1e-3. A camera can
then travel about 0.06° a step, 5.7° in 100 steps; the refined cameras keep errors of a few
degrees that a similarity does not carry over (a common tilt about their own axes), and a rate
decayed to 1e-5 over the steps, tried before, stopped each camera after about 1.2°.
"""

import cv2
from head_capture.avatar.barf import PoseCorrections
from head_capture.avatar.export import render_view
from head_capture.avatar.rays import load_views, near_far, pixel_rays
from head_capture.avatar.render import render_rays, squared_error
from head_capture.geometry import camera_center, umeyama, w2c_from_center
import numpy as np
import torch

TEST_POSE_LR = 1e-3
# Held-out truth shows the pixels its mask is unsure of (not scored) in this grey.
UNSURE_GREY = 0.5
# What a stored score was measured with: a score under another protocol is not comparable.
TEST_TIME_PROTOCOL = f'Adam, constant learning rate {TEST_POSE_LR:g}'


def carry_over(reference_train, refined_train, reference_held):
    """
    Map held-out poses into the refined cameras' frame: Sim(3) fit on the training centres.

    Each argument is (R (N, 3, 3), t (N, 3)) as numpy; returns the held-out (R, t).
    """
    fit = umeyama(camera_center(*reference_train), camera_center(*refined_train))
    rotations = reference_held[0] @ fit.rotation.T
    centres = fit.apply(camera_center(*reference_held))
    return w2c_from_center(rotations, centres)


def optimise_pose(fields, image, rotation, translation, intrinsics, config, background,
                  steps=100, rays=1024, generator=None, weight=None):
    """Refine one camera against its image (pixels ``weight``ed) with the field frozen."""
    device = next(fields.parameters()).device
    image, background = image.to(device), background.to(device)
    weight = weight.to(device) if weight is not None else None
    correction = PoseCorrections(rotation[None], translation[None], gauge='none').to(device)
    optimiser = torch.optim.Adam(correction.parameters(), lr=TEST_POSE_LR)
    height, width = image.shape[:2]
    for parameter in fields.parameters():
        parameter.requires_grad_(False)
    try:
        for _ in range(steps):
            v = torch.randint(height, (rays,), generator=generator).to(device)
            u = torch.randint(width, (rays,), generator=generator).to(device)
            r, t = correction(torch.zeros(rays, dtype=torch.long, device=device))
            origins, directions = pixel_rays(intrinsics, r, t, u.float(), v.float())
            near, far = near_far(origins, config.scene.radius, config.scene.near, config.scene.far)
            outputs = render_rays(fields, origins, directions, near, far,
                                  (config.sampling.coarse, config.sampling.fine), background)
            loss = squared_error(outputs[-1][0], image[v, u],
                                 weight[v, u] if weight is not None else None)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    finally:
        for parameter in fields.parameters():
            parameter.requires_grad_(True)
    r, t = correction()
    return r[0].detach().cpu(), t[0].detach().cpu()


def psnr(image, truth, weight=None):
    """Peak signal-to-noise ratio of images in [0, 1], over ``weight``ed pixels."""
    error = ((image - truth) ** 2).mean(-1)
    mean = error.mean() if weight is None else (error * weight).sum() / max(weight.sum(), 1.0)
    return float(-10.0 * np.log10(max(float(mean), 1e-12)))


def ssim(image, truth):
    """Structural similarity of RGB images in [0, 1] (Gaussian window 11, sigma 1.5)."""
    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    a, b = image.astype(np.float64), truth.astype(np.float64)
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
             / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
    return float(index.mean())


def evaluate_held_out(trainer, pose_steps=100, background=1.0):
    """PSNR and SSIM of the run's own held-out views (see ``evaluate_views``)."""
    held = trainer.held_ids
    reference = tuple(p[held].double().numpy() for p in trainer.reference)
    return evaluate_views(trainer, trainer.views, held, reference, pose_steps, background)


def evaluate_test_set(trainer, transforms_path, pose_steps=100, background=1.0):
    """PSNR and SSIM of the views of another transforms.json, given in the same frame."""
    views = load_views(transforms_path, trainer.config.data.image_size)
    if (views.intrinsics.width, views.intrinsics.height) != (trainer.views.intrinsics.width,
                                                             trainer.views.intrinsics.height):
        raise ValueError(f'{transforms_path} has {views.intrinsics.width}x'
                         f'{views.intrinsics.height} views at the training size, the avatar '
                         f'{trainer.views.intrinsics.width}x{trainer.views.intrinsics.height}')
    given = (views.rotations.double().numpy(), views.translations.double().numpy())
    return evaluate_views(trainer, views, np.arange(len(views)), given, pose_steps, background)


def evaluate_views(trainer, views, frames, given, pose_steps=100, background=1.0):
    """
    PSNR and SSIM of ``frames`` of ``views`` after test-time pose optimisation; per view too.

    ``given`` holds their poses in the frame of the run's given (reference) cameras;
    ``background`` is the grey level the views are composited on for comparison.
    """
    if len(frames) == 0:
        return {'views': 0}
    config = trainer.config
    refined = tuple(p.detach().cpu().double().numpy() for p in trainer.poses())
    reference = tuple(p[trainer.train_ids].double().numpy() for p in trainer.reference)
    start_r, start_t = carry_over(reference, refined, given)
    generator = torch.Generator().manual_seed(0)
    fill = torch.full((3,), float(background))
    results = []
    with trainer.displayed():
        for number, frame in enumerate(frames):
            mask = views.masks[frame][..., None]
            truth = views.images[frame] * mask + fill * (1 - mask)
            weight = views.weights[frame] if views.weights is not None else None
            rotation = torch.tensor(start_r[number], dtype=torch.float32)
            translation = torch.tensor(start_t[number], dtype=torch.float32)
            if pose_steps > 0:
                rotation, translation = optimise_pose(trainer.fields, truth, rotation,
                                                      translation, views.intrinsics, config,
                                                      fill, pose_steps, generator=generator,
                                                      weight=weight)
            image = render_view(trainer.fields, rotation, translation, views.intrinsics,
                                config, fill)[0]
            truth = scored = shown = truth.numpy()
            sure = weight.numpy() if weight is not None else None
            if sure is not None:  # unsure pixels: not scored, shown grey
                scored = truth * sure[..., None] + image * (1 - sure[..., None])
                shown = truth * sure[..., None] + UNSURE_GREY * (1 - sure[..., None])
            results.append({'frame': views.names[frame], 'psnr': psnr(image, truth, sure),
                            'ssim': ssim(image, scored), 'image': image, 'truth': shown})
    return {'views': len(results), 'psnr': float(np.mean([r['psnr'] for r in results])),
            'ssim': float(np.mean([r['ssim'] for r in results])),
            'test_time_pose_steps': pose_steps, 'per_view': results}
