"""
The landmark network: a small CNN that regresses every template landmark from any view.

One backbone feeds three heads. The landmark head regresses, for each of the 703 landmarks,
its position in the crop, a log standard deviation (trained with a Gaussian negative
log-likelihood, as in Wood et al. 2022, so the network says how sure it is: a landmark hidden
behind the head gets a large sigma) and a visibility logit. It reads the whole stride-32 feature
map through a fully connected layer rather than heatmaps, because most landmarks of a back view
are hidden and must be inferred from the head's outline, not found as a local peak. The mask
head upsamples stride-32 features onto stride-8 ones and predicts the head's foreground at a
quarter of the input resolution.

Outputs are in crop pixels (OpenCV convention, pixel centres at integers) so the ONNX graph
needs no post-processing: the input is an RGB uint8 NHWC batch, as images come.
"""

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

BACKBONES = ('mobilenet', 'resnet')
# MobileNetV2's inverted residual stages: expansion, channels, blocks, first stride.
MOBILENET_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                    (6, 160, 3, 2), (6, 320, 1, 1))
RESNET_STAGES = ((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2))
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
LOG_SIGMA_RANGE = (-3.0, 5.0)  # in crop pixels: 0.05 px .. 150 px


@dataclass(frozen=True)
class ModelConfig:
    """Network shape: backbone family, width multiplier, input side, landmark count."""

    backbone: str = 'mobilenet'
    width: float = 1.0
    input_size: int = 256
    landmarks: int = 703
    head_channels: int = 32
    hidden: int = 512

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f'backbone must be one of {BACKBONES}, not {self.backbone!r}')
        if self.input_size % 32 or self.input_size < 64:
            raise ValueError(f'input_size must be a multiple of 32 >= 64, not {self.input_size}')
        if not 0.25 <= self.width <= 2.0 or self.landmarks < 1:
            raise ValueError('width must be in 0.25..2 and landmarks >= 1')


def _conv(inputs, outputs, kernel=3, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(outputs)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if act else nn.Sequential(*layers)


def _channels(count, width):
    return max(8, int(round(count * width / 8)) * 8)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand, depthwise 3x3, project; residual when shapes allow."""

    def __init__(self, inputs, outputs, stride, expansion):
        super().__init__()
        hidden = inputs * expansion
        layers = [_conv(inputs, hidden, 1)] if expansion != 1 else []
        layers += [_conv(hidden, hidden, 3, stride, groups=hidden),
                   _conv(hidden, outputs, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions and a (projected) shortcut."""

    def __init__(self, inputs, outputs, stride):
        super().__init__()
        self.body = nn.Sequential(_conv(inputs, outputs, 3, stride),
                                  _conv(outputs, outputs, 3, act=False))
        self.shortcut = (nn.Identity() if stride == 1 and inputs == outputs
                         else _conv(inputs, outputs, 1, stride, act=False))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


def _backbone(cfg):
    """Return stages ending at strides 8, 16 and 32 and their channel counts."""
    if cfg.backbone == 'mobilenet':
        layers, channels, strides = [_conv(3, _channels(32, cfg.width), 3, 2)], [], []
        inputs, stride = _channels(32, cfg.width), 2
        for expansion, outputs, blocks, first_stride in MOBILENET_STAGES:
            outputs = _channels(outputs, cfg.width)
            for n in range(blocks):
                layers.append(InvertedResidual(inputs, outputs, first_stride if n == 0 else 1,
                                               expansion))
                inputs = outputs
                stride *= first_stride if n == 0 else 1
                channels.append(outputs)
                strides.append(stride)
    else:
        stem = _channels(32, cfg.width)
        layers = [_conv(3, stem, 3, 2), _conv(stem, stem * 2, 3, 2)]
        inputs, stride, channels, strides = stem * 2, 4, [], []
        for outputs, blocks, first_stride in RESNET_STAGES:
            outputs = _channels(outputs, cfg.width)
            for n in range(blocks):
                layers.append(BasicBlock(inputs, outputs, first_stride if n == 0 else 1))
                inputs = outputs
                stride *= first_stride if n == 0 else 1
                channels.append(outputs)
                strides.append(stride)
    # Cut the layer list after the last layer of each wanted stride.
    cuts = [max(i for i, s in enumerate(strides) if s == want) for want in (8, 16, 32)]
    offset = len(layers) - len(strides)
    stages, start = nn.ModuleList(), 0
    for cut in cuts:
        stages.append(nn.Sequential(*layers[start:cut + offset + 1]))
        start = cut + offset + 1
    return stages, [channels[c] for c in cuts]


class LandmarkNet(nn.Module):
    """Backbone + landmark (position, log sigma, visibility) and mask heads."""

    def __init__(self, cfg=ModelConfig()):
        super().__init__()
        self.cfg = cfg
        self.stages, (c8, c16, c32) = _backbone(cfg)
        cells = (cfg.input_size // 32) ** 2
        self.reduce = _conv(c32, cfg.head_channels, 1)
        self.regress = nn.Sequential(
            nn.Flatten(), nn.Linear(cfg.head_channels * cells, cfg.hidden), nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, 4 * cfg.landmarks))
        self.lateral8, self.lateral16, self.lateral32 = (_conv(c, 64, 1) for c in (c8, c16, c32))
        self.mask = nn.Sequential(_conv(64, 64, 3), nn.Conv2d(64, 1, 1))
        self.register_buffer('mean', torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer('std', torch.tensor(IMAGE_STD).view(1, 3, 1, 1) * 255.0)
        # Start the landmark head at the crop centre with a wide sigma: a stable start for NLL.
        last = self.regress[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.zero_()
            last.bias.view(cfg.landmarks, 4)[:, 2] = 3.0

    def forward(self, image):
        """
        Run on an RGB uint8 (or 0..255 float) NHWC batch.

        Returns landmarks (B, N, 2) in input pixels, log sigma (B, N) in pixels, visibility
        logits (B, N) and mask logits (B, 1, S/4, S/4).
        """
        x = (image.permute(0, 3, 1, 2).float() - self.mean) / self.std
        f8 = self.stages[0](x)
        f16 = self.stages[1](f8)
        f32 = self.stages[2](f16)
        raw = self.regress(self.reduce(f32)).view(-1, self.cfg.landmarks, 4)
        half = self.cfg.input_size / 2.0
        landmarks = raw[..., :2] * half + (half - 0.5)
        log_sigma = raw[..., 2].clamp(*LOG_SIGMA_RANGE)
        top = self.lateral32(f32)
        mid = self.lateral16(f16) + F.interpolate(top, scale_factor=2.0, mode='nearest')
        fine = self.lateral8(f8) + F.interpolate(mid, scale_factor=2.0, mode='nearest')
        mask = F.interpolate(self.mask(fine), scale_factor=2.0, mode='bilinear',
                             align_corners=False)
        return landmarks, log_sigma, raw[..., 3], mask


def gaussian_nll(landmarks, log_sigma, target, weight=None):
    """
    Mean 2D Gaussian negative log-likelihood of ``target`` (B, N, 2), isotropic sigma.

    Distances are in pixels; ``weight`` (B, N) can drop landmarks from the mean.
    """
    squared = ((landmarks - target) ** 2).sum(-1)
    nll = 0.5 * squared * torch.exp(-2.0 * log_sigma) + 2.0 * log_sigma
    if weight is None:
        return nll.mean()
    return (nll * weight).sum() / weight.sum().clamp(min=1.0)
