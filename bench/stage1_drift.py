"""
Does stage 1 hold the true cameras? Stage 1 alone, from the truth and from PnP, per setting.

Fig. 4's optimised cameras end far from the paper's 0.334°. This separates the two reasons
that could have: the optimiser not travelling far enough from PnP, or the objective itself
preferring cameras away from the truth. Each run is stage 1 of a config (a variant overrides
some keys) on one subject of Fig. 4's sequences, started from its true train cameras or from
its PnP cameras; the train cameras' errors against the truth (after Sim(3), as Fig. 4) are
recorded a dozen times along the stage.

    python bench/stage1_drift.py --sequences SEQ --work WORK --out bench/results/stage1_drift.json

SEQ is Fig. 4's (its PnP cameras are registered beside the views if missing). Every run is
kept in WORK: a re-run skips what is done. ``--jobs N`` trains N runs at once (for a GPU).
"""

import argparse
from concurrent.futures import ProcessPoolExecutor
import json
from multiprocessing import get_context
from pathlib import Path
import shutil
import time

from common import save
from fig4 import pose_summary, prepare_subject
from head_capture.avatar.trainer import AvatarTrainer
from head_capture.avatar.training_config import load_avatar_config
from head_capture.landmarks.detector import LandmarkDetector
from head_capture.landmarks.template import HeadTemplate
from head_capture.pose_evaluation import evaluate
from head_capture.session import read_transforms
import torch

# Each variant overrides the config's keys; 'base' is the config as it is.
VARIANTS = {
    'base': {},
    'white_background': {'scene.background': 'white'},
    'no_coarse_to_fine': {'c2f.end': 0.0},
    'mlp_field': {'field.kind': 'mlp', 'stage1.pose_lr': [3.0e-4, 3.0e-6]},
    'rays_2048': {'sampling.rays': 2048},
    'stage1_9000_steps': {'stage1.steps': 9000},
    'pose_lr_low': {'stage1.pose_lr': [3.0e-4, 3.0e-6]},
    'pose_lr_constant': {'stage1.pose_lr': [3.0e-4, 2.9e-4]},
    'pose_warmup_0.1': {'poses.warmup': 0.1},
    'focus_share_0.9': {'sampling.focus_share': 0.9},
    'focus_share_0': {'sampling.focus_share': 0.0},
    'coarse_samples_128': {'sampling.coarse': 128},
    'image_200': {'data.image_size': 200},
    'image_200_samples_128': {'data.image_size': 200, 'sampling.coarse': 128},
    'finer_grid': {'grid.levels': 6, 'grid.top': 128},
    'gauge_first': {'poses.gauge': 'first'},
    'scene_radius_0.25': {'scene.radius': 0.25},
}
STARTS = ('truth', 'pnp')
SNAPSHOTS = 12


def run(subject, start, variant, data, work, config_name):
    """Train stage 1 of one run, or read it back from ``work``; return its pose trace."""
    folder = work / f'{subject.name}_{start}_{variant}'
    done = folder / 'drift.json'
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished run starts over
    config = load_avatar_config(config_name, {
        **VARIANTS[variant], 'stage2.steps': 0, 'data.holdout_every': 0,
        'outputs.turntable_frames': 0, 'outputs.mesh_views': 0})
    config = config.updated({'trainer.log_every': max(config.stage1.steps // SNAPSHOTS, 1),
                             'trainer.checkpoint_every': config.stage1.steps})
    truth = read_transforms(subject / 'transforms_train.json')

    def score(step):
        errors = pose_summary(evaluate(trainer.refined_transforms(), truth))
        return [step, errors['rotation_deg'], errors['translation_cm']]

    def snapshot(event):
        if event['event'] == 'step':
            trace.append(score(event['step']))

    started = time.monotonic()
    trainer = AvatarTrainer(data, folder, config, progress=snapshot)  # a fresh run: no events yet
    trace = [score(0)]
    trainer.run_stage()
    result = {'subject': subject.name, 'start': start, 'variant': variant,
              'overrides': VARIANTS[variant], 'steps': config.stage1.steps,
              'rotation_deg': trace[-1][1], 'translation_cm': trace[-1][2],
              'trace_step_rotation_deg_translation_cm': trace,
              'seconds': round(time.monotonic() - started, 1)}
    print(f'  {subject.name} from {start}, {variant}: {trace[0][1]:.2f}° -> '
          f'{trace[-1][1]:.2f}° / {trace[-1][2]:.2f} cm', flush=True)
    done.write_text(json.dumps(result, indent=2) + '\n')
    return result


def main():
    """Run the chosen variants from the chosen starts on the chosen subjects."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--sequences', type=Path, required=True, help="Fig. 4's subjects")
    parser.add_argument('--subjects', nargs='+', default=['subject_01', 'subject_02'])
    parser.add_argument('--starts', nargs='+', choices=STARTS, default=list(STARTS))
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=['base'])
    parser.add_argument('--config', default='cpu_preview')
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--work', type=Path, required=True)
    parser.add_argument('--out', type=Path, required=True)
    args = parser.parse_args()
    started = time.monotonic()
    args.work.mkdir(parents=True, exist_ok=True)
    detector = LandmarkDetector(threads=2)
    template = HeadTemplate.load().positions
    tasks = []
    for name in args.subjects:
        subject = args.sequences / name
        cameras = prepare_subject(subject, detector, template)
        tasks += [(subject, start, variant, cameras['true_poses' if start == 'truth' else 'pnp'],
                   args.work, args.config) for variant in args.variants for start in args.starts]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context('spawn')) as pool:
            list(pool.map(run, *zip(*tasks)))
    runs = [run(*task) for task in tasks]
    print('| subject | start | variant | rotation (°) | translation (cm) |')
    for r in runs:
        print(f'| {r["subject"]} | {r["start"]} | {r["variant"]} | {r["rotation_deg"]:.2f} | '
              f'{r["translation_cm"]:.2f} |')
    save(args.out, {'benchmark': 'stage 1 alone from the true and the PnP cameras',
                    'config': args.config, 'device': torch.cuda.get_device_name()
                    if torch.cuda.is_available() else 'cpu', 'runs': runs,
                    'seconds': round(time.monotonic() - started, 1)})


if __name__ == '__main__':
    main()
