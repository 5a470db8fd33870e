"""
Volume rendering along rays: stratified samples, alpha compositing, hierarchical resampling.

Depths are along directions of camera depth 1; the spacing between samples is scaled by the
direction's length so densities are per metre. The background colour is composited behind
whatever the field leaves transparent, which is how masked (segmented) views are trained.
"""

from head_capture.avatar.fields import BoundedField
import torch


def stratified_depths(near, far, count, generator=None):
    """Return (R, count) sorted depths, one per equal bin, jittered when a generator is given."""
    steps = torch.arange(count, dtype=near.dtype, device=near.device)
    offsets = (torch.rand((len(near), count), generator=generator).to(near)
               if generator is not None else torch.full((len(near), count), 0.5).to(near))
    share = (steps + offsets) / count
    return near[:, None] + (far - near)[:, None] * share


def composite(colour, density, depths, directions, background):
    """
    Alpha-composite samples front to back; return colour, opacity, depth, sample weights.

    ``colour`` (R, S, 3), ``density`` (R, S), ``depths`` (R, S), ``background`` (R, 3) or (3,).
    """
    gaps = torch.diff(depths, dim=-1)
    # The last sample spans as much as the one before it, not to infinity: what the field
    # leaves transparent shows the background.
    gaps = torch.cat([gaps, gaps[:, -1:]], -1) * directions.norm(dim=-1, keepdim=True)
    alpha = 1.0 - torch.exp(-density * gaps)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]),
                                             1.0 - alpha + 1e-10], -1), -1)[:, :-1]
    weights = alpha * transmittance
    opacity = weights.sum(-1)
    rgb = (weights[..., None] * colour).sum(-2) + (1.0 - opacity[:, None]) * background
    depth = (weights * depths).sum(-1) / opacity.clamp_min(1e-6)
    return rgb, opacity, depth, weights


def resample(depths, weights, count, generator=None):
    """
    Draw ``count`` more depths per ray where ``weights`` put the content (inverse CDF).

    Returns the union with ``depths``, sorted; the new samples carry no gradient.
    """
    mids = 0.5 * (depths[:, 1:] + depths[:, :-1])
    pdf = weights[:, 1:-1].detach() + 1e-5
    cdf = torch.cumsum(pdf / pdf.sum(-1, keepdim=True), -1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], -1)
    if generator is not None:
        u = torch.rand((len(depths), count), generator=generator).to(depths)
    else:
        u = torch.linspace(0.0, 1.0, count).to(depths).expand(len(depths), count)
    index = torch.searchsorted(cdf, u.contiguous(), right=True).clamp(1, cdf.shape[-1] - 1)
    low, high = torch.gather(cdf, 1, index - 1), torch.gather(cdf, 1, index)
    bin_low, bin_high = torch.gather(mids, 1, index - 1), torch.gather(mids, 1, index)
    t = ((u - low) / (high - low).clamp_min(1e-5)).clamp(0.0, 1.0)
    extra = (bin_low + t * (bin_high - bin_low)).detach()
    return torch.sort(torch.cat([depths, extra], -1), -1).values


def render_rays(fields, origins, directions, near, far, samples, background, progress=1.0,
                c2f=(0.0, 0.0), generator=None):
    """
    Render rays with a coarse field and, when given, a fine one on resampled depths.

    ``fields`` is (coarse,) or (coarse, fine); ``samples`` is (coarse count, fine count).
    Returns a list of (rgb, opacity, depth) per field. Rays that miss every field's support
    are not sampled: they show the background, with opacity and depth 0.
    """
    crossing = torch.stack([field.crossed_by(origins, directions, near, far)
                            if isinstance(field, BoundedField) else
                            torch.ones(len(origins), dtype=torch.bool, device=origins.device)
                            for field in fields]).any(0)
    if crossing.all():
        return _render_sampled(fields, origins, directions, near, far, samples, background,
                               progress, c2f, generator)
    background = background.expand(len(origins), 3)
    index = crossing.nonzero()[:, 0]
    if len(index) == 0:
        return [(background, torch.zeros_like(near), torch.zeros_like(near)) for _ in fields]
    outputs = []
    kept = (origins[index], directions[index], near[index], far[index])
    for rgb, opacity, depth in _render_sampled(fields, *kept, samples, background[index],
                                               progress, c2f, generator):
        outputs.append((background.index_put((index,), rgb),
                        torch.zeros_like(near).index_put((index,), opacity),
                        torch.zeros_like(near).index_put((index,), depth)))
    return outputs


def _render_sampled(fields, origins, directions, near, far, samples, background, progress,
                    c2f, generator):
    """``render_rays`` with every ray sampled."""
    unit = directions / directions.norm(dim=-1, keepdim=True)
    depths = stratified_depths(near, far, samples[0], generator)
    outputs, weights = [], None
    for number, field in enumerate(fields):
        if number == 1:
            depths = resample(depths, weights, samples[1], generator)
        points = origins[:, None] + directions[:, None] * depths[..., None]
        colour, density = field(points, unit[:, None].expand_as(points), progress, c2f)
        rgb, opacity, depth, weights = composite(colour, density, depths, directions,
                                                 background)
        outputs.append((rgb, opacity, depth))
    return outputs


def squared_error(rendered, target, weight=None):
    """Mean squared colour error of a batch of rays, each weighted (None: all alike)."""
    error = (rendered - target) ** 2
    if weight is None:
        return error.mean()
    return (error * weight[..., None]).sum() / (3 * weight.sum().clamp_min(1.0))
