"""
Batch augmentations that close the gap between clean renders and phone video.

All in torch on whatever device the batch is on, so a GPU trainer is never waiting for CPU
workers. Geometry first (rotation, scale, shift: zooming out teaches the first, whole-frame
pass; shifting out of the frame teaches partial crops), landmarks moved by the same map; then
what a phone does to pixels: exposure, white balance, gamma, vignetting, motion blur, defocus,
the sharpening phones apply, sensor noise, JPEG blocks (a real 8x8 DCT quantisation with the
standard tables) and, rarely, grey.
"""

from dataclasses import dataclass
import math

import torch
import torch.nn.functional as F

# The JPEG standard's example quantisation tables (ITU T.81, Annex K), row-major 8x8.
JPEG_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40,
             57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24,
             35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98,
             112, 100, 103, 99)
JPEG_CHROMA = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99,
               99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of every augmentation; shares are per-sample probabilities."""

    rotation_deg: float = 25.0
    scale: tuple = (0.6, 1.3)
    shift: float = 0.2
    exposure_stops: tuple = (-1.2, 0.8)
    white_balance: float = 0.15
    gamma: tuple = (0.75, 1.35)
    blur_share: float = 0.4
    motion_blur_px: float = 11.0
    noise: float = 8.0
    jpeg_share: float = 0.6
    jpeg_quality: tuple = (25, 95)
    grey_share: float = 0.05
    vignette_share: float = 0.3
    defocus_share: float = 0.2
    defocus_px: float = 2.5
    sharpen_share: float = 0.3

    def __post_init__(self):
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f'bad scale range {self.scale}')
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f'bad jpeg_quality range {self.jpeg_quality}')


def _uniform(generator, count, low, high, device):
    return low + (high - low) * torch.rand(count, generator=generator, device=device)


def random_affine(count, cfg, generator, device):
    """Return (B, 2, 3) maps from output to input normalised coordinates (affine_grid's)."""
    angle = torch.deg2rad(_uniform(generator, count, -cfg.rotation_deg, cfg.rotation_deg, device))
    # Log-uniform scale: as many zoomed-out as zoomed-in views per octave.
    scale = torch.exp(_uniform(generator, count, math.log(cfg.scale[0]), math.log(cfg.scale[1]),
                               device))
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift = _uniform(generator, 2 * count, -cfg.shift, cfg.shift, device).view(count, 2)
    return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                        torch.stack([sin, cos, shift[:, 1]], 1)], 1)


def warp_batch(images, masks, landmarks, theta):
    """
    Resample images (B, S, S, 3) and masks (B, S, S) by ``theta``; move landmarks to match.

    Pixels that come from outside the source are returned as ``valid`` = 0 so the caller can
    fill them. Landmarks use OpenCV pixel centres: normalised x = (u + 0.5) * 2 / S - 1.
    """
    size = images.shape[1]
    stack = torch.cat([images.permute(0, 3, 1, 2).float(), masks[:, None].float(),
                       torch.ones_like(masks[:, None], dtype=torch.float32)], 1)
    grid = F.affine_grid(theta, list(stack.shape), align_corners=False)
    warped = F.grid_sample(stack, grid, mode='bilinear', padding_mode='zeros',
                           align_corners=False)
    normalised = (landmarks + 0.5) * (2.0 / size) - 1.0
    linear, offset = theta[:, :, :2], theta[:, :, 2]
    moved = torch.linalg.solve(linear, (normalised - offset[:, None]).transpose(1, 2))
    return warped[:, :3], warped[:, 3], warped[:, 4], (moved.transpose(1, 2) + 1.0) * (
        size / 2.0) - 0.5


def motion_blur_kernels(lengths, angles, size):
    """Return (B, size, size) line kernels of the given lengths (px) and directions."""
    half = size // 2
    axis = torch.arange(-half, half + 1, device=lengths.device, dtype=torch.float32)
    y, x = torch.meshgrid(axis, axis, indexing='ij')
    cos, sin = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    along, across = x * cos + y * sin, -x * sin + y * cos
    weight = (1.0 - across.abs()).clamp(min=0) * (along.abs() <= lengths[:, None, None] / 2)
    weight[:, half, half] += 1e-6  # a zero-length kernel is the identity
    return weight / weight.sum((1, 2), keepdim=True)


def _dct_matrix(device):
    k = torch.arange(8, device=device, dtype=torch.float32)
    matrix = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    matrix[0] /= math.sqrt(2)
    return matrix


def _quality_tables(quality, device):
    """Scale the standard tables by JPEG quality (B,) the way libjpeg does."""
    quality = quality.float()[:, None]
    factor = torch.where(quality < 50, 5000.0 / quality, 200.0 - 2.0 * quality)
    tables = []
    for base in (JPEG_LUMA, JPEG_CHROMA):
        table = torch.tensor(base, device=device, dtype=torch.float32)[None]
        tables.append(((table * factor + 50.0) / 100.0).floor().clamp(1, 255).view(-1, 8, 8))
    return tables


def jpeg_compress(images, quality):
    """JPEG round trip of (B, 3, H, W) 0..255 images: YCbCr, 4:2:0, 8x8 DCT quantisation."""
    batch, _, height, width = images.shape
    r, g, b = images.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)
    luma_table, chroma_table = _quality_tables(quality, images.device)
    dct = _dct_matrix(images.device)

    def round_trip(plane, table):
        count, rows, cols = plane.shape
        blocks = (plane - 128).view(count, rows // 8, 8, cols // 8, 8).permute(0, 1, 3, 2, 4)
        coefficients = dct @ blocks @ dct.T
        table = table.view(count, 1, 1, 8, 8)
        restored = dct.T @ (torch.round(coefficients / table) * table) @ dct
        return restored.permute(0, 1, 3, 2, 4).reshape(count, rows, cols) + 128

    y = round_trip(y, luma_table)
    chroma_table = chroma_table.repeat_interleave(2, 0)
    chroma = round_trip(chroma.reshape(batch * 2, height // 2, width // 2), chroma_table)
    chroma = F.interpolate(chroma.view(batch, 2, height // 2, width // 2), scale_factor=2.0,
                           mode='bilinear', align_corners=False)
    cb, cr = chroma[:, 0] - 128, chroma[:, 1] - 128
    rgb = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return rgb.clamp(0, 255)


def _gaussian_blur(pixels, sigma):
    """Blur (B, 3, S, S) pixels with per-sample Gaussian ``sigma`` (B,) px, one kernel size."""
    half = max(1, int(math.ceil(2.5 * float(sigma.max()))))
    axis = torch.arange(-half, half + 1, device=pixels.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (axis[None] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(3, 0)
    count, _, size, _ = pixels.shape
    flat = F.pad(pixels.reshape(1, 3 * count, size, size), [half] * 4, mode='replicate')
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=3 * count)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=3 * count)
    return flat.view(count, 3, size, size)


def _lens(pixels, cfg, generator):
    """Vignetting, defocus and a phone's unsharp-mask sharpening, each on a share."""
    count, _, size, _ = pixels.shape
    device = pixels.device
    axis = torch.linspace(-1.0, 1.0, size, device=device)
    radius2 = axis[None, :] ** 2 + axis[:, None] ** 2
    strength = _uniform(generator, count, 0.1, 0.5, device) * (
        torch.rand(count, generator=generator, device=device) < cfg.vignette_share)
    pixels = pixels * (1.0 - strength[:, None, None, None] * radius2 / 2.0)
    chosen = torch.rand(count, generator=generator, device=device) < cfg.defocus_share
    if chosen.any():
        sigma = _uniform(generator, int(chosen.sum()), 0.5, cfg.defocus_px, device)
        pixels[chosen] = _gaussian_blur(pixels[chosen], sigma)
    chosen = torch.rand(count, generator=generator, device=device) < cfg.sharpen_share
    if chosen.any():
        amount = _uniform(generator, int(chosen.sum()), 0.3, 1.2, device)[:, None, None, None]
        soft = _gaussian_blur(pixels[chosen], torch.full((int(chosen.sum()),), 1.0,
                                                         device=device))
        pixels[chosen] = (pixels[chosen] + amount * (pixels[chosen] - soft)).clamp(0, 255)
    return pixels


def augment_batch(images, masks, landmarks, visible, cfg, generator):
    """
    Augment one batch of uint8 images, masks, landmarks and visibility.

    Returns images (B, S, S, 3) as float 0..255, masks (B, S/4, S/4) in 0..1, and the
    landmarks (B, N, 2) and visibility (B, N) after the warp.
    """
    count, size, device = images.shape[0], images.shape[1], images.device
    theta = random_affine(count, cfg, generator, device)
    pixels, mask, valid, landmarks = warp_batch(images, masks / 255.0, landmarks, theta)
    # Outside the source: a flat colour, like letterbox bars or a plain wall.
    fill = _uniform(generator, 3 * count, 0, 255, device).view(count, 3, 1, 1)
    pixels = pixels * valid[:, None] + fill * (1 - valid[:, None])
    inside = ((landmarks > -0.5) & (landmarks < size - 0.5)).all(-1)
    visible = visible.bool() & inside

    # Light and colour: exposure, white balance, then a gamma on 0..1.
    gain = 2.0 ** _uniform(generator, count, *cfg.exposure_stops, device)
    balance = 1.0 + _uniform(generator, 3 * count, -cfg.white_balance, cfg.white_balance,
                             device).view(count, 3)
    gamma = _uniform(generator, count, *cfg.gamma, device)
    scaled = (pixels / 255.0 * (gain[:, None] * balance)[..., None, None]).clamp(0, 1)
    pixels = 255.0 * scaled ** gamma[:, None, None, None]

    # Motion blur (a line of random length and direction) on a share of the batch.
    kernel_size = 2 * int(cfg.motion_blur_px // 2) + 1
    lengths = _uniform(generator, count, 1.0, cfg.motion_blur_px, device)
    lengths = lengths * (torch.rand(count, generator=generator, device=device) < cfg.blur_share)
    angles = _uniform(generator, count, 0.0, math.pi, device)
    blurred = lengths > 0
    if blurred.any():
        kernels = motion_blur_kernels(lengths[blurred], angles[blurred], kernel_size)
        chosen = int(blurred.sum())
        padded = F.pad(pixels[blurred].reshape(1, 3 * chosen, size, size),
                       [kernel_size // 2] * 4, mode='replicate')
        pixels[blurred] = F.conv2d(padded, kernels.repeat_interleave(3, 0)[:, None],
                                   groups=3 * chosen).view(chosen, 3, size, size)

    pixels = _lens(pixels, cfg, generator)
    sigma = _uniform(generator, count, 0.0, cfg.noise, device)
    noise = torch.randn(pixels.shape, generator=generator, device=device)
    pixels = (pixels + noise * sigma[:, None, None, None]).clamp(0, 255)

    quality = _uniform(generator, count, *cfg.jpeg_quality, device).round()
    compressed = torch.rand(count, generator=generator, device=device) < cfg.jpeg_share
    if size % 16 == 0 and compressed.any():
        pixels[compressed] = jpeg_compress(pixels[compressed], quality[compressed])
    grey = torch.rand(count, generator=generator, device=device) < cfg.grey_share
    luma = (pixels * torch.tensor([0.299, 0.587, 0.114], device=device)[:, None, None]).sum(1)
    pixels = torch.where(grey[:, None, None, None], luma[:, None].expand_as(pixels), pixels)
    small_mask = F.avg_pool2d(mask[:, None], 4)[:, 0]
    return pixels.permute(0, 2, 3, 1).contiguous(), small_mask, landmarks, visible
