"""
Training the landmark network on synthetic landmark sets, on CPU or GPU, resumable.

The whole set is held in memory as uint8 (16k samples at 256² take 4 GB) and every batch is
augmented on the training device. Validation runs on held-out identities (a separate set, or
the last shards of the training set: each shard has its own identities) and is broken down by
azimuth, since views from behind are the hard part. A checkpoint is written atomically every
``checkpoint_every`` steps and at every validation; a run started again in the same folder
resumes from it. A step whose loss is not finite is skipped; a run of them stops training
with the last good checkpoint kept. A run can start from an exported model instead of random
weights (``init_model``, fine-tuning on new data); its batch norms were folded away on export,
so their statistics stay frozen.
"""

from dataclasses import asdict, dataclass, field
import io
import json
import logging
import math
from pathlib import Path
import time

from head_capture.config_files import build, ConfigError, load_yaml
from head_capture.files import write_bytes_atomic
from head_capture.landmarks.augment import augment_batch, AugmentConfig
from head_capture.landmarks.dataset import read_samples
from head_capture.landmarks.metrics import (accuracy_report, in_window,
                                            sigma_error_correlation)
from head_capture.landmarks.model import gaussian_nll, LandmarkNet, ModelConfig
import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)
CHECKPOINT = 'checkpoint.pt'
HISTORY = 'history.jsonl'
MODEL_FILE = 'head_landmarks.onnx'
MAX_BAD_STEPS = 25


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, data and bookkeeping of one training run."""

    sets: tuple = ()
    validation_set: str = ''
    init_model: str = ''
    validation_shards: int = 1
    validation_views: int = 512
    steps: int = 20000
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    mask_weight: float = 1.0
    visibility_weight: float = 0.3
    validate_every: int = 1000
    checkpoint_every: int = 250
    threads: int = 2
    device: str = 'auto'
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError('steps, batch_size and learning_rate must be positive')
        if self.device not in ('auto', 'cpu', 'cuda'):
            raise ValueError(f'device must be auto, cpu or cuda, not {self.device!r}')


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run is made of: model, augmentation, training."""

    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def as_dict(self):
        """Plain JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))


def load_run_config(path, overrides=None):
    """Read a YAML with ``model``, ``augment`` and ``train`` sections; overrides go in train."""
    data = load_yaml(path)
    unknown = sorted(set(data) - {'model', 'augment', 'train'})
    if unknown:
        raise ConfigError(f'{path}: unknown section(s) {unknown}')
    train = {**data.get('train', {}), **(overrides or {})}
    return RunConfig(build(ModelConfig, data.get('model', {}), f'{path}:model'),
                     build(AugmentConfig, data.get('augment', {}), f'{path}:augment'),
                     build(TrainConfig, train, f'{path}:train'))


def learning_rate(cfg, step):
    """Linear warm-up, then cosine decay to zero: a function of the step, so resumes match."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _select_device(name):
    if name == 'cuda' and not torch.cuda.is_available():
        raise ConfigError('device cuda asked for, but torch sees no CUDA device')
    return torch.device('cuda' if name == 'auto' and torch.cuda.is_available() else
                        'cpu' if name == 'auto' else name)


def _load_split(cfg):
    """Return (training, validation) sample dicts as numpy arrays."""
    if not cfg.sets:
        raise ConfigError('train.sets is empty: name at least one landmark set')
    training = [read_samples(path) for path in cfg.sets]
    if cfg.validation_set:
        validation = read_samples(cfg.validation_set, cfg.validation_views)
    else:
        # The last shards of the first set: identities the rest never shows.
        first = training[0]
        manifest = json.loads((Path(cfg.sets[0]) / 'manifest.json').read_text())
        held = min(len(first['images']) // 2,
                   cfg.validation_shards * manifest['config']['shard_size'])
        validation = {key: value[-held:] for key, value in first.items()}
        training[0] = {key: value[:-held] for key, value in first.items()}
    keys = ('images', 'masks', 'landmarks', 'visible')
    merged = {key: np.concatenate([part[key] for part in training]) for key in keys}
    validation = {key: value[:cfg.validation_views] for key, value in validation.items()}
    return merged, validation


def compute_loss(model, batch, cfg):
    """Return the total loss and its parts for an augmented batch."""
    images, masks, landmarks, visible = batch
    predicted, log_sigma, visibility, mask_logit = (out.float() for out in model(images))
    size = images.shape[1]
    # Points near the camera plane project far away: no target there (see metrics.in_window).
    valid = ((landmarks - (size - 1) / 2.0).abs() < 1.5 * size).all(-1)
    target = torch.where(valid[..., None], landmarks, predicted.detach())
    nll = gaussian_nll(predicted, log_sigma, target, valid.float())
    seen = F.binary_cross_entropy_with_logits(visibility, visible.float())
    mask = F.binary_cross_entropy_with_logits(mask_logit[:, 0], masks)
    total = nll + cfg.visibility_weight * seen + cfg.mask_weight * mask
    return total, {'nll': nll.item(), 'visibility': seen.item(), 'mask': mask.item()}


@torch.no_grad()
def predict(model, images, device, batch_size=64):
    """Run ``model`` on uint8 images (B, S, S, 3); return landmarks and sigma as numpy."""
    model.eval()
    marks, sigmas = [], []
    for start in range(0, len(images), batch_size):
        chunk = torch.from_numpy(images[start:start + batch_size]).to(device)
        landmarks, log_sigma, _, _ = model(chunk)
        marks.append(landmarks.float().cpu().numpy())
        sigmas.append(torch.exp(log_sigma).float().cpu().numpy())
    return np.concatenate(marks), np.concatenate(sigmas)


def validate(model, validation, device):
    """Accuracy of ``model`` on the validation views, by azimuth and elevation."""
    landmarks, sigma = predict(model, validation['images'], device)
    truth, size = validation['landmarks'], validation['images'].shape[1]
    report = accuracy_report(landmarks, truth, validation['rotations'],
                             validation['translations'], size)
    valid = in_window(truth, size)
    errors = np.linalg.norm(landmarks - truth, axis=-1)
    report['sigma_error_spearman'] = sigma_error_correlation(sigma[valid], errors[valid])
    return report


def _initial_model(run):
    """Random weights, or those of ``init_model`` (which must have the run's model config)."""
    if not run.train.init_model:
        return LandmarkNet(run.model)
    from head_capture.landmarks.export import load_onnx_model, model_config_of

    path = Path(run.train.init_model)
    if not path.is_file():
        raise ConfigError(f'init_model: no file at {path}')
    found = model_config_of(path)
    if found != run.model:
        raise ConfigError(f'init_model {path} has model config {found}, the run {run.model}')
    return load_onnx_model(path)


def _set_training(model, frozen_norms):
    """Training mode; with ``frozen_norms`` the batch norms keep normalising by their stats."""
    model.train()
    if frozen_norms:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()


def _save_checkpoint(path, model, optimizer, step, run, best, generator):
    state = {'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'step': step,
             'model_config': asdict(run.model), 'run_config': json.dumps(run.as_dict()),
             'best_nme': best, 'generator': generator.get_state()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def train(run, out_dir, progress=None):
    """
    Train (or resume) into ``out_dir``.

    Returns the model (on the CPU), the final validation report and the validation views;
    ``progress(step, losses)`` is called after every step.
    """
    cfg = run.train
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    device = _select_device(cfg.device)
    torch.manual_seed(cfg.seed)
    checkpoint = out_dir / CHECKPOINT
    # A resumed run takes its weights from the checkpoint, not from init_model.
    model = (LandmarkNet(run.model) if checkpoint.exists() else _initial_model(run)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate,
                                  weight_decay=cfg.weight_decay)
    generator = torch.Generator(device='cpu').manual_seed(cfg.seed)
    step, best = 0, float('inf')
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if json.loads(state['run_config']) != run.as_dict():
            raise ConfigError(f'{checkpoint} was made with another config; use a new folder')
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        generator.set_state(state['generator'])
        step, best = state['step'], state['best_nme']
        log.info('resuming from step %d', step)
    (out_dir / 'run_config.json').write_text(json.dumps(run.as_dict(), indent=1) + '\n')

    training, validation = _load_split(cfg)
    arrays = {key: torch.from_numpy(value).to(device) for key, value in training.items()}
    count = len(training['images'])
    log.info('training on %d views, validating on %d held-out views, device %s', count,
             len(validation['images']), device)
    augment_generator = torch.Generator(device=device).manual_seed(cfg.seed + step)
    autocast = torch.autocast('cuda', dtype=torch.bfloat16, enabled=device.type == 'cuda')
    bad_steps, report = 0, None
    frozen_norms = bool(cfg.init_model)  # an exported model's norms are folded identities
    _set_training(model, frozen_norms)
    while step < cfg.steps:
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(cfg, step)
        index = torch.randint(0, count, (cfg.batch_size,), generator=generator).to(device)
        batch = augment_batch(arrays['images'][index], arrays['masks'][index],
                              arrays['landmarks'][index], arrays['visible'][index], run.augment,
                              augment_generator)
        with autocast:
            loss, parts = compute_loss(model, batch, cfg)
        if not torch.isfinite(loss):
            bad_steps += 1
            optimizer.zero_grad(set_to_none=True)
            if bad_steps >= MAX_BAD_STEPS:
                raise RuntimeError(f'training diverged at step {step}: loss not finite '
                                   f'{bad_steps} times in a row; {checkpoint} holds the last '
                                   'good weights')
            continue
        bad_steps = 0
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        step += 1
        if progress is not None:
            progress(step, parts)
        if step % cfg.validate_every == 0 or step == cfg.steps:
            report = validate(model, validation, device)
            best = min(best, report['nme'])
            entry = {'step': step, 'time': time.time(), **parts, 'val_nme': report['nme'],
                     'val_by_azimuth': [b['mean'] for b in report['by_azimuth']]}
            with open(out_dir / HISTORY, 'a') as handle:
                handle.write(json.dumps(entry) + '\n')
            log.info('step %d: validation NME %.4f (best %.4f)', step, report['nme'], best)
            _set_training(model, frozen_norms)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save_checkpoint(checkpoint, model, optimizer, step, run, best, generator)
    if report is None:
        report = validate(model, validation, device)
    write_bytes_atomic(out_dir / 'validation.json', (json.dumps(report, indent=1) + '\n').encode())
    return model.cpu().eval(), report, validation


def train_and_export(run, out_dir, progress=None):
    """Train, then export ``head_landmarks.onnx`` checked against torch; return the report."""
    from head_capture.landmarks.export import export_checked

    model, report, validation = train(run, out_dir, progress)
    error = export_checked(model, Path(out_dir) / MODEL_FILE, validation['images'][:4],
                           metadata={'training_sets': json.dumps(list(run.train.sets)),
                                     'validation_nme': f"{report['nme']:.5f}"})
    report['onnx_parity_px'] = error
    write_bytes_atomic(Path(out_dir) / 'validation.json',
                       (json.dumps(report, indent=1) + '\n').encode())
    return report


def main(argv=None):
    """Train from a YAML config: ``python -m head_capture.landmarks.train CONFIG OUT``."""
    import argparse

    from tqdm import tqdm

    parser = argparse.ArgumentParser(description='train the head landmark network')
    parser.add_argument('config', type=Path, help='YAML with model/augment/train sections')
    parser.add_argument('out', type=Path, help='run folder (resumes when it holds a checkpoint)')
    parser.add_argument('--set', action='append', dest='sets', help='landmark set (repeatable)')
    parser.add_argument('--validation-set')
    parser.add_argument('--init-model', help='exported model to fine-tune (ONNX)')
    parser.add_argument('--steps', type=int)
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'))
    args = parser.parse_args(argv)
    overrides = {key: value for key, value in (
        ('sets', tuple(args.sets) if args.sets else None), ('steps', args.steps),
        ('validation_set', args.validation_set), ('init_model', args.init_model),
        ('device', args.device)) if value is not None}
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    run = load_run_config(args.config, overrides)
    with tqdm(total=run.train.steps, desc='training', unit='step') as bar:
        def advance(step, parts):
            bar.n = step
            bar.set_postfix(parts, refresh=False)
            bar.update(0)
        report = train_and_export(run, args.out, advance)
    print(json.dumps({'nme': report['nme'], 'onnx_parity_px': report['onnx_parity_px'],
                      'by_azimuth': [b['mean'] for b in report['by_azimuth']]}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
