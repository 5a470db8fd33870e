"""
The two-stage avatar trainer (the paper's "Avatar Generation").

Stage 1 is BARF with the coarse field only: the field and every training camera's correction
are optimised together, the field's detail faded in coarse to fine; its field is then thrown
away. Stage 2 trains coarse and fine fields from scratch, the cameras starting where stage 1
left them and still refined, at a lower rate. In each stage the cameras can be held while the
new field takes shape (``poses.warmup``). Progress goes to ``events.jsonl`` (one JSON object per
line, what the ROS node publishes) and to an optional callback. A checkpoint is written
atomically every ``trainer.checkpoint_every`` steps and at each stage's start and end; ``resume``
continues from it exactly (same random stream). Asked to stop (``should_stop``: a signal, a
cancel), a run checkpoints where it is and returns without metrics, to be resumed later. A step
whose loss or gradients are not finite is undone: the last checkpoint is reloaded and the
learning rates halved, and the event log says so.
"""

from contextlib import contextmanager
from dataclasses import replace
import functools
import io
import itertools
import json
import logging
import math
import operator
from pathlib import Path
import time

from head_capture.avatar import TrainingError
from head_capture.avatar.barf import perturb, PoseCorrections
from head_capture.avatar.evaluate import evaluate_held_out
from head_capture.avatar.export import render_view, write_mesh, write_turntable
from head_capture.avatar.fields import make_field
from head_capture.avatar.rays import foreground_pixels, holdout_split, load_views, near_far, \
    pixel_rays, sample_pixels
from head_capture.avatar.render import render_rays, squared_error
from head_capture.avatar.scene import fit_scene, scene_bounds
from head_capture.avatar.training_config import AvatarConfig
from head_capture.avatar.visual_hull import VisualHull
from head_capture.config_files import build
from head_capture.files import write_bytes_atomic, write_image_atomic
from head_capture.geometry import pose_errors, w2c_to_c2w_opengl
from head_capture.session import Transforms, write_transforms
import numpy as np
import torch

log = logging.getLogger(__name__)
CHECKPOINT = 'checkpoint.pt'
EVENTS = 'events.jsonl'
PREVIEW = 'preview.png'
# The refined poses when stage 1 ends, for the report's pose plot.
STAGE1_TRANSFORMS = 'stage1_transforms.json'
MAX_ROLLBACKS = 6


def _device(name):
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise TrainingError('device cuda was asked for, but torch sees no CUDA device')
    return torch.device(name)


def device_name(device):
    """Return how a torch device is named in events and /diagnostics: 'cpu', 'cuda (H100)'."""
    if device.type != 'cuda':
        return device.type
    return f'cuda ({torch.cuda.get_device_name(device)})'


def _read_checkpoint(path):
    """Load a checkpoint's state dict, with a clear error for a missing or damaged file."""
    if not Path(path).is_file():
        raise TrainingError(f'no avatar checkpoint at {path}')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
        if not isinstance(state, dict) or state.get('format') != 1:
            raise ValueError('unknown checkpoint format')
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise TrainingError(f'{path} is not a usable avatar checkpoint ({exc}); remove it to '
                            'start again') from exc
    return state


def _any_of(cuts):
    """Return a test marking the points any of ``cuts`` marks."""
    return lambda points: functools.reduce(operator.or_, (cut(points) for cut in cuts))


def decayed(pair, share):
    """Exponential decay from pair[0] at share 0 to pair[1] at share 1."""
    return pair[0] * (pair[1] / pair[0]) ** min(max(share, 0.0), 1.0)


class AvatarTrainer:
    """One avatar run in ``out_dir``: data, stages, checkpoints, events."""

    def __init__(self, data, out_dir, config=AvatarConfig(), perturb_sigma=0.0, seed=0,
                 resume=False, progress=None, chosen=None, should_stop=None):
        """
        Set up a run of ``config`` on ``data`` in ``out_dir``, or resume the one there.

        ``chosen``: the config keys the user set. Where the field clearly misses the scene the
        cameras look at, its bounds are derived from them unless chosen, and refused if chosen
        (``scene.fit_scene``; None: every key is chosen). ``should_stop``: a callable that says
        when to checkpoint and stop between steps.
        """
        self.out = Path(out_dir)
        self.progress = progress
        self.should_stop = should_stop or (lambda: False)
        torch.set_num_threads(config.trainer.threads)
        self.device = _device(config.trainer.device)
        if self.device.type == 'cuda':
            # TF32 matrix products: several times faster on the MLP, the same training in practice.
            torch.set_float32_matmul_precision('high')
        checkpoint = self.out / CHECKPOINT
        if checkpoint.exists() and not resume:
            raise TrainingError(f'{self.out} already holds a run: pass --resume to continue '
                                'it, or choose another --out')
        self.data = str(Path(data).resolve())
        self.views = load_views(data, config.data.image_size)
        config, scene_note = fit_scene(
            config, scene_bounds(self.views, config.scene.support_scale), chosen)
        self.config = config
        # Where the fields may hold density while training, in what they render views, and
        # in what they show as the avatar (the head down to its neck).
        volume = self.views.volume
        self.support = None if volume is None else (volume.centre, volume.semi_axes)
        self.training_support = None if volume is None else (
            volume.centre, volume.semi_axes * config.scene.support_scale)
        self.below_neck = None if volume is None or volume.neck is None else \
            volume.neck.holds_body
        self._hull = (None, None)  # (stage, step) it was worked out at, the hull
        self.train_ids, self.held_ids = holdout_split(len(self.views), config.data.holdout_every)
        sampling = config.sampling
        self.focus = (foreground_pixels(self.views.masks, self.train_ids, sampling.focus_margin)
                      if sampling.focus_share > 0 else None)
        if len(self.train_ids) < 2:
            raise TrainingError(f'{data} leaves {len(self.train_ids)} training view(s)')
        self.generator = torch.Generator().manual_seed(seed)
        self.reference = (self.views.rotations, self.views.translations)
        if perturb_sigma > 0:
            self.initial = perturb(*self.reference, perturb_sigma, self.generator)
        else:
            self.initial = self.reference
        self.seed, self.perturb_sigma = seed, perturb_sigma
        self.stage, self.step, self.lr_scale, self.rollbacks = 1, 0, 1.0, 0
        self.started = time.monotonic()
        self._build_stage(*(p[self.train_ids] for p in self.initial))
        if checkpoint.exists():
            self._load(checkpoint)
            self._event('resumed', {})
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            self._save()
        # Where this process's clock for the ETA starts: (time, steps trained so far).
        self._timing = (time.monotonic(), self.done_steps)
        self._event('device', {'device': device_name(self.device)})
        if scene_note:
            self._event('scene_bounds', {'note': scene_note,
                                         'scene_radius': config.scene.radius})

    @classmethod
    def reopen(cls, out_dir, progress=None):
        """Reopen a run from its directory alone: data and config come from the checkpoint."""
        path = Path(out_dir) / CHECKPOINT
        state = _read_checkpoint(path)
        config = build(AvatarConfig, state['config'], str(path))
        return cls(state['data'], out_dir, config, resume=True, progress=progress)

    # -- the stages --------------------------------------------------------------------------

    def _build_stage(self, rotations, translations):
        cfg = self.config
        torch.manual_seed(self.seed * 7 + self.stage)
        count = 1 if self.stage == 1 or cfg.sampling.fine == 0 else 2
        self.fields = torch.nn.ModuleList(make_field(cfg, self.training_support)
                                          for _ in range(count)).to(self.device)
        self.poses = PoseCorrections(rotations, translations, cfg.poses.gauge,
                                     cfg.poses.translation_unit).to(self.device)
        grid = [p for n, p in self.fields.named_parameters() if '.grids.' in n]
        dense = [p for n, p in self.fields.named_parameters() if '.grids.' not in n]
        groups = [{'params': dense, 'lr_pair': cfg.field.lr}]
        if grid:
            groups.append({'params': grid, 'lr_pair': cfg.grid.lr})
        # One fused kernel per step instead of a loop of tensor ops: the grid's 1.6 M values
        # made Adam a sixth of a cpu_preview step on 2 cores (107 -> 89 ms a step).
        self.field_optimizer = torch.optim.Adam(groups, lr=cfg.field.lr[0], fused=True)
        pose_lr = cfg.stage(self.stage).pose_lr
        self.pose_optimizer = torch.optim.Adam([{'params': self.poses.parameters(),
                                                 'lr_pair': pose_lr}], lr=pose_lr[0])

    @property
    def stage_steps(self):
        """Return the length of the current stage."""
        return self.config.stage(self.stage).steps

    @property
    def done_steps(self):
        """Return the steps trained in both stages so far."""
        return self.step + (self.config.stage1.steps if self.stage == 2 else 0)

    def eta_s(self):
        """Return the seconds the steps left should take at this process's pace so far."""
        started, done = self._timing
        trained = self.done_steps - done
        if trained <= 0:
            return None
        left = self.config.stage1.steps + self.config.stage2.steps - self.done_steps
        return round((time.monotonic() - started) / trained * left, 1)

    @property
    def c2f(self):
        """Return the coarse-to-fine schedule of the current stage."""
        cfg = self.config
        on = self.stage == 1 or cfg.c2f.stage2
        return (cfg.c2f.start, cfg.c2f.end) if on else (0.0, 0.0)

    def run(self):
        """
        Train both stages to the end (or from where a resumed run stopped); return metrics.

        None when asked to stop: the checkpoint then holds the run, for ``resume``.
        """
        while True:
            if not self.run_stage():
                return None
            if not self.next_stage():
                break
        return self.finish()

    def run_stage(self):
        """Train the current stage to its end and checkpoint it; False if asked to stop first."""
        while self.step < self.stage_steps:
            if self.should_stop():
                self._save()
                self._event('stopped', {'steps': self.stage_steps,
                                        'checkpoint': str(self.out / CHECKPOINT)})
                return False
            self._train_step()
        self._save()
        self.write_preview()
        self._event('stage_end', self.pose_report())
        return True

    def next_stage(self):
        """Start stage 2 from stage 1's cameras; False when there is none to start."""
        if self.stage == 2 or self.config.stage2.steps == 0:
            return False
        self._write_refined_transforms(STAGE1_TRANSFORMS)
        rotations, translations = (p.detach().cpu() for p in self.poses())
        self.stage, self.step = 2, 0
        self._build_stage(rotations, translations)
        self._save()
        return True

    def _train_step(self):
        cfg = self.config
        share = self.step / max(self.stage_steps, 1)
        pose_share = (share - cfg.poses.warmup) / (1.0 - cfg.poses.warmup)
        for optimizer, at in ((self.field_optimizer, share), (self.pose_optimizer, pose_share)):
            for group in optimizer.param_groups:
                group['lr'] = decayed(group['lr_pair'], at) * self.lr_scale
        frames, u, v, colour, mask, weight = sample_pixels(
            self.views, self.train_ids, cfg.sampling.rays, self.generator, self.focus,
            cfg.sampling.focus_share)
        local = self._local_index(frames)
        rotations, translations = self.poses(local.to(self.device))
        origins, directions = pixel_rays(self.views.intrinsics, rotations, translations,
                                         u.to(self.device), v.to(self.device))
        near, far = near_far(origins, cfg.scene.radius, cfg.scene.near, cfg.scene.far)
        background = self._background(len(u)).to(self.device)
        target = (colour * mask[:, None]).to(self.device) + (1 - mask[:, None]).to(
            self.device) * background
        outputs = render_rays(self.fields, origins, directions, near, far,
                              (cfg.sampling.coarse, cfg.sampling.fine), background, share,
                              self.c2f, self.generator)
        weight = weight.to(self.device) if weight is not None else None
        losses = [squared_error(rgb, target, weight) for rgb, _, _ in outputs]
        loss = sum(losses)
        self.field_optimizer.zero_grad(set_to_none=True)
        self.pose_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not self._finite(loss):
            self._rollback(float(loss.detach()))
            return
        self.field_optimizer.step()
        if cfg.poses.refine and pose_share >= 0:
            self.pose_optimizer.step()
        self.step += 1
        if self.step % cfg.trainer.log_every == 0 or self.step == self.stage_steps:
            psnr = -10.0 * math.log10(max(float(losses[-1].detach()), 1e-10))
            self._event('step', {'loss': float(loss.detach()), 'psnr': psnr,
                                 'steps': self.stage_steps, 'eta_s': self.eta_s(),
                                 **self.pose_report(),
                                 'lr_field': self.field_optimizer.param_groups[0]['lr'],
                                 'lr_pose': self.pose_optimizer.param_groups[0]['lr']})
        if self.step % cfg.trainer.checkpoint_every == 0:
            self._save()
            self.write_preview()

    def _local_index(self, frames):
        """Map frame numbers to rows of the pose corrections (training frames only)."""
        lookup = torch.full((len(self.views),), -1, dtype=torch.long)
        lookup[torch.as_tensor(self.train_ids)] = torch.arange(len(self.train_ids))
        return lookup[frames]

    def _background(self, count):
        if self.config.scene.background == 'random':
            return torch.rand((count, 3), generator=self.generator)
        return torch.full((count, 3), 1.0 if self.config.scene.background == 'white' else 0.0)

    def _finite(self, loss):
        grads = [p.grad for p in itertools.chain(self.fields.parameters(),
                                                 self.poses.parameters()) if p.grad is not None]
        # One check (one device sync) for the loss and every gradient.
        return bool(torch.stack([torch.isfinite(loss)] + [torch.isfinite(g).all()
                                                          for g in grads]).all())

    def _rollback(self, loss):
        self.rollbacks += 1
        if self.rollbacks > MAX_ROLLBACKS:
            raise TrainingError(f'training diverged {self.rollbacks} times (loss {loss}); the '
                                f'last good state is in {self.out / CHECKPOINT}')
        scale, rollbacks = self.lr_scale * 0.5, self.rollbacks
        self._load(self.out / CHECKPOINT)
        self.lr_scale, self.rollbacks = scale, rollbacks
        self._event('rollback', {'loss': loss, 'lr_scale': scale, 'rollbacks': rollbacks})
        log.warning('non-finite loss or gradient at stage %d step %d: rolled back to the last '
                    'checkpoint, learning rates x%.3g', self.stage, self.step, scale)

    # -- reports -----------------------------------------------------------------------------

    def pose_report(self):
        """Mean correction so far and, for the training frames, errors against the reference."""
        rotation_update, translation_update = self.poses.update_norms()
        rotations, translations = (p.detach().cpu().double().numpy() for p in self.poses())
        errors = pose_errors(rotations, translations,
                             *(p[self.train_ids].double().numpy() for p in self.reference))
        return {'pose_update_deg': float(rotation_update.mean()),
                'pose_update_translation': float(translation_update.mean()),
                'rotation_error_deg': float(errors.rotation_deg.mean()),
                'translation_error': float(errors.translation_cm.mean() / 100.0)}

    def _event(self, kind, values):
        event = {'event': kind, 'stage': self.stage, 'step': self.step,
                 'seconds': round(time.monotonic() - self.started, 2), **values}
        with open(self.out / EVENTS, 'a') as handle:
            handle.write(json.dumps(event) + '\n')
        if self.progress is not None:
            self.progress(event)

    # -- checkpoints -------------------------------------------------------------------------

    def _state(self):
        return {'format': 1, 'stage': self.stage, 'step': self.step,
                'lr_scale': self.lr_scale, 'rollbacks': self.rollbacks,
                'config': self.config.as_dict(), 'data': self.data, 'seed': self.seed,
                'frames': list(self.views.names), 'reference': list(self.reference),
                'perturb_sigma': self.perturb_sigma,
                'initial': [p.clone() for p in self.initial],
                'fields': self.fields.state_dict(), 'poses': self.poses.state_dict(),
                'field_optimizer': self.field_optimizer.state_dict(),
                'pose_optimizer': self.pose_optimizer.state_dict(),
                'generator': self.generator.get_state()}

    def _save(self):
        buffer = io.BytesIO()
        torch.save(self._state(), buffer)
        write_bytes_atomic(self.out / CHECKPOINT, buffer.getvalue())

    def _load(self, path):
        state = _read_checkpoint(path)
        other = self._other_views(state)
        if other:
            raise TrainingError(f'{path} was trained on other views than {self.data} ({other}): '
                                f'resume with the data it was trained on ({state["data"]}) or '
                                'choose another --out')
        # Settings added since the checkpoint was written read as their defaults, which is
        # how it was trained.
        if build(AvatarConfig, state['config'], str(path)) != self.config:
            raise TrainingError(f'{path} was written with another config; resume with the same '
                                'config or choose another --out')
        self.stage, self.step = state['stage'], state['step']
        self.lr_scale, self.rollbacks = state['lr_scale'], state['rollbacks']
        self.seed, self.perturb_sigma = state['seed'], state['perturb_sigma']
        self.initial = tuple(state['initial'])
        poses = state['poses']
        self._build_stage(poses['rotations'], poses['translations'])
        self.fields.load_state_dict(state['fields'])
        self.poses.load_state_dict(poses)
        self.field_optimizer.load_state_dict(state['field_optimizer'])
        self.pose_optimizer.load_state_dict(state['pose_optimizer'])
        self.generator.set_state(state['generator'])

    def _other_views(self, state):
        """Return how the views a checkpoint was trained on differ from these, '' if not."""
        count = len(state['initial'][0])
        if count != len(self.views):
            return f'{count} frames, these {len(self.views)}'
        # Checkpoints from before the frames were recorded only know their number.
        if state.get('frames', self.views.names) != self.views.names:
            return 'frames of other names'
        reference = state.get('reference', self.reference)
        if not all(torch.allclose(a, b, atol=1e-5) for a, b in zip(reference, self.reference)):
            return 'the same frames with other poses'
        return ''

    # -- outputs -----------------------------------------------------------------------------

    def _write_outputs(self):
        """Held-out renders and metrics, turntable video, mesh; return what was made."""
        cfg, outputs, made = self.config, self.config.outputs, {}
        if len(self.held_ids):
            held = evaluate_held_out(self, outputs.test_pose_steps)
            for view in held['per_view']:
                pair = np.hstack([view['image'], view['truth']])
                write_image_atomic(self.out / 'held_out' / f'{Path(view["frame"]).stem}.png',
                                   (pair * 255).round().astype(np.uint8))
            made.update(held_out_psnr=held['psnr'], held_out_ssim=held['ssim'],
                        test_time_pose_steps=outputs.test_pose_steps,
                        held_out_views=[{'frame': v['frame'], 'psnr': round(v['psnr'], 3),
                                         'ssim': round(v['ssim'], 4)}
                                        for v in held['per_view']])
        training = tuple(p.detach().cpu().double().numpy() for p in self.poses())
        # The orbit cameras look at the head's centre: the view's middle, wherever the
        # training views were cut from their frames.
        camera = self.views.intrinsics
        orbit_camera = replace(camera, cx=(camera.width - 1) / 2, cy=(camera.height - 1) / 2)
        with self.displayed(bust=True):
            if outputs.turntable_frames:
                write_turntable(self.out / 'turntable.mp4', self.fields, *training,
                                orbit_camera, cfg, outputs.turntable_frames)
                made['turntable'] = 'turntable.mp4'
            if outputs.mesh_views:
                made['mesh_vertices'] = write_mesh(self.out / 'avatar.ply', self.fields,
                                                   *training, orbit_camera, cfg,
                                                   outputs.mesh_views, outputs.mesh_resolution)
                made['mesh'] = 'avatar.ply' if made['mesh_vertices'] else None
        return made

    @contextmanager
    def displayed(self, bust=False):
        """
        Cut the fields to what the avatar shows while rendering.

        That is the head volume itself (see ``scene.support_scale``), less the space outside the
        training views' visual hull once a stage has ended. With ``bust``, the fields are cut
        below the neck as well: the avatar's turntable and mesh end there. Views are rendered
        whole, as the masks they are scored on keep the collar.
        """
        hull = self._visual_hull()
        cuts = [cut for cut in (self.below_neck if bust else None,
                                hull.outside if hull else None) if cut]
        centre, axes = self.support or (np.zeros(3), np.full(3, np.inf))
        shown = (centre, axes, _any_of(cuts)) if cuts else self.support
        for field in self.fields:
            field.bound_to(shown)
        try:
            yield
        finally:
            for field in self.fields:
                field.bound_to(self.training_support)

    def _visual_hull(self):
        """
        Return the training views' hull at the cameras' poses when the stage ended.

        None while a stage runs (the cameras still move; working it out takes seconds) and
        when ``hull.min_views`` switches it off.
        """
        cfg, at = self.config, (self.stage, self.step)
        if cfg.hull.min_views == 0 or self.step < self.stage_steps:
            return None
        if self._hull[0] != at:
            centre, axes = self.support or (np.zeros(3), np.full(3, cfg.scene.radius))
            rotations, translations = (p.detach().cpu() for p in self.poses())
            self._hull = at, VisualHull.of_views(
                self.views, self.train_ids, rotations, translations, centre - axes,
                centre + axes, cfg.hull.min_views, cfg.hull.margin).to(self.device)
        return self._hull[1]

    def write_preview(self):
        """Render the first held-out (else first) view as it looks now to ``preview.png``."""
        frame = int(self.held_ids[0]) if len(self.held_ids) else int(self.train_ids[0])
        rotations, translations = self.refined_poses()
        with self.displayed():
            image = render_view(self.fields, rotations[frame], translations[frame],
                                self.views.intrinsics, self.config, (1.0, 1.0, 1.0),
                                progress=self.step / max(self.stage_steps, 1), c2f=self.c2f)[0]
        write_image_atomic(self.out / PREVIEW, (image * 255).round().astype(np.uint8))

    def refined_poses(self):
        """Return every frame's pose: refined for training frames, the starting one otherwise."""
        rotations, translations = (p.clone() for p in self.initial)
        refined = self.poses()
        rotations[self.train_ids] = refined[0].detach().cpu()
        translations[self.train_ids] = refined[1].detach().cpu()
        return rotations, translations

    def refined_transforms(self):
        """Return the poses as they are now as Transforms (input order, held-out flagged)."""
        rotations, translations = self.refined_poses()
        source = self.views.transforms
        held = set(self.held_ids.tolist())
        frames = [replace(f, c2w=w2c_to_c2w_opengl(r.double().numpy(), t.double().numpy()),
                          meta={**f.meta, 'held_out': n in held})
                  for n, (f, r, t) in enumerate(zip(source.frames, rotations, translations))]
        return Transforms(source.intrinsics, frames, source.meta)

    def _write_refined_transforms(self, name):
        write_transforms(self.out / name, self.refined_transforms())

    def finish(self):
        """Write transforms.json (refined poses, input order) and metrics.json; return metrics."""
        self._write_refined_transforms('transforms.json')
        metrics = {'stage': self.stage, 'step': self.step,
                   'seconds': round(time.monotonic() - self.started, 1),
                   'training_frames': len(self.train_ids), 'held_out_frames': len(self.held_ids),
                   'perturb_sigma': self.perturb_sigma, 'rollbacks': self.rollbacks,
                   **self.pose_report(), **self._write_outputs()}
        write_bytes_atomic(self.out / 'metrics.json',
                           (json.dumps(metrics, indent=2) + '\n').encode())
        return metrics
