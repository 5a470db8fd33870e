"""
The offline end-to-end job: a video (folder, bag) in, an avatar and its report out.

``reconstruct`` runs keyframes -> landmarks, masks and PnP poses -> the two training stages ->
report, into one output folder. Each finished step is recorded in ``reconstruction.json``, so a
re-run (after Ctrl-C, a crash, a full disk) skips what is done, resumes training from its
checkpoint and only redoes the step that was cut short. The record also holds the request:
everything that shapes the result (the input's content, the camera, the counts, every
parameter, the landmark model), so a re-run that asks for something else is refused with what
changed, instead of handing back the old avatar.
"""

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
import hashlib
import json
import os
from pathlib import Path
import time

from head_capture.avatar import TrainingError
from head_capture.camera import DEFAULT_FOV_DEG, image_intrinsics
from head_capture.capture.coverage import CoverageConfig, session_coverage
from head_capture.capture.head_volume import HeadVolume, keep_in_session, META_KEY as HEAD_VOLUME
from head_capture.capture.keyframes import KeyframeConfig, select_offline, select_online
from head_capture.capture.pose import PoseConfig
from head_capture.capture.preprocess import shrink_keyframe
from head_capture.capture.refine import refine_transforms, RefineConfig
from head_capture.capture.registration import detect_and_solve, keyframe_mask, pose_record
from head_capture.capture.sources import open_source
from head_capture.config_files import ConfigError
from head_capture.files import output_folder, write_bytes_atomic
from head_capture.node_graph import load_node_config
from head_capture.session import Session, TRAINING_TRANSFORMS, TRANSFORMS_FILE, write_transforms

STATE_FILE = 'reconstruction.json'
# A file's content is told by its size and a hash of this much at its start and its end.
FINGERPRINT_BYTES = 1 << 20
# A refused request names at most this many changes.
CHANGES_SHOWN = 6
# Fewer registered keyframes than this cannot make a 360-degree avatar.
MIN_TRAINING_FRAMES = 8


@dataclass
class KeyframeReport:
    """What the keyframe step did, for the CLI summary and the report."""

    session: Session
    selection: object
    source_stats: object
    notes: list = field(default_factory=list)


@contextmanager
def no_progress(description, total):
    """Progress that goes nowhere (callers without a console)."""
    yield lambda: None


def extract_keyframes(source, out_dir, count, size=1280, intrinsics=None, fov_deg=None,
                      config=None, overwrite=False, progress=None):
    """
    Select ``count`` keyframes from ``source`` and write them as a session in ``out_dir``.

    Replayable sources (files, folders, bags) get the offline best-N-evenly-spread choice;
    live streams get the online selector with a budget of ``count``. Keyframes are whole
    frames shrunk to a long side of at most ``size``, as the live graph keeps them: the trainer
    cuts the square round the head once the poses say where it is. ``intrinsics`` describe
    the source frames; without them the camera is taken to span ``fov_deg`` across the long
    side, by default a phone's typical field of view.
    """
    if count < 1:
        raise ValueError(f'count must be >= 1, got {count}')
    if source.replayable:
        selection = select_offline(source, count, config, progress)
    else:
        selection = select_online(source, count, config, progress)
    notes = list(selection.warnings)
    assumed = intrinsics is None and fov_deg is None
    if not selection.keyframes:
        raise ValueError('no usable keyframe in the input: every frame was corrupt, badly '
                         'exposed or blurred')
    session = None
    for keyframe in selection.keyframes:
        image = keyframe.frame.image
        camera = image_intrinsics(image, intrinsics, fov_deg)
        view, view_camera = shrink_keyframe(image, camera, size)
        if session is None:
            # Unfinished until every keyframe is in: a rerun after a failure just replaces it.
            session = Session.create(out_dir, view_camera, overwrite=overwrite, partial=True,
                                     meta={'head_capture': {
                                         'step': 'keyframes', 'source_camera_assumed': assumed,
                                         'source_fov_deg': round(camera.fov_x_deg, 3)}})
        session.add_frame(view, {'source_index': keyframe.frame.index,
                                 'timestamp': round(keyframe.frame.time_s, 6),
                                 'sharpness': round(keyframe.sharpness, 6)})
    session.finish()
    if assumed:
        notes.append(f'no intrinsics given: assumed a {DEFAULT_FOV_DEG:.0f} degree field of '
                     'view across the long side (pass --fov or --intrinsics)')
    return KeyframeReport(session, selection, source.stats, notes)


def register_session(session, detector, template, config=PoseConfig(), progress=None):
    """
    Landmarks, head mask and PnP pose of every keyframe, stored in the session.

    ``template``: the ``HeadTemplate`` PnP solves against. A keyframe without a pose stays
    listed, with the reason, and is left out of training. Returns the number registered.
    """
    camera = session.transforms.intrinsics
    volume = HeadVolume.of_template(template)
    registered = 0
    for index, frame in enumerate(session.frames):
        detection, estimate = detect_and_solve(session.image(index), camera, detector,
                                               template.positions, config, mirror=True)
        if detection.usable:
            session.write_mask(index, keyframe_mask(detection, estimate, camera, volume))
            session.write_landmarks(index, detection.landmarks, detection.sigma,
                                    detection.visible)
        frame.c2w, pose = pose_record(estimate)
        frame.meta.pop('unregistered', None)  # the reason of an earlier run
        frame.meta.update(pose)
        registered += estimate.registered
        if progress is not None:
            progress()
    session.transforms.meta[HEAD_VOLUME] = volume.as_meta()
    session.save()
    return registered


def train_avatar(data, out_dir, config, perturb=0.0, seed=0, resume=False,
                 progress=no_progress, log=print, chosen=None, should_stop=None):
    """
    Train both stages with a progress bar (resuming a run in ``out_dir``); return metrics.

    ``chosen``: the config keys the user set; ``should_stop``: when to checkpoint and return
    None (see ``AvatarTrainer``).
    """
    from head_capture.avatar.trainer import AvatarTrainer  # torch: only for the jobs that train

    with progress('training the avatar', config.stage1.steps + config.stage2.steps) as advance:
        done = {'steps': 0}

        def report(event):
            steps = event['step'] + (config.stage1.steps if event['stage'] == 2 else 0)
            for _ in range(steps - done['steps']):
                advance()
            done['steps'] = max(done['steps'], steps)
            if event['event'] == 'rollback':
                log(f'non-finite loss at stage {event["stage"]} step {event["step"]}: rolled '
                    f'back, learning rates x{event["lr_scale"]:g}')
            elif event['event'] == 'device':
                log(f'training on {event["device"]}')
            elif event['event'] == 'scene_bounds':
                log(f'warning: {event["note"]}')
            elif event['event'] == 'stage_end':
                log(f'stage {event["stage"]} done: rotation error '
                    f'{event["rotation_error_deg"]:.3f}° against the given poses')

        trainer = AvatarTrainer(data, out_dir, config, perturb, seed, resume, report, chosen,
                                should_stop)
        return trainer.run()


@dataclass
class Reconstruction:
    """The output folder of ``reconstruct`` and what it holds."""

    root: Path

    @property
    def session_dir(self):
        """Return the session folder: keyframes, masks, PnP poses (as the live graph writes)."""
        return self.root / 'session'

    @property
    def avatar_dir(self):
        """Return the avatar folder, where the live graph's trainer puts it too."""
        return self.session_dir / 'avatar'

    @property
    def report_path(self):
        """Return the path of the self-contained HTML report."""
        return self.root / 'report.html'

    def state(self):
        """Return the record of finished steps (empty for a new folder)."""
        path = self.root / STATE_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def save_state(self, state):
        """Record the finished steps atomically."""
        write_bytes_atomic(self.root / STATE_FILE, (json.dumps(state, indent=2) + '\n').encode())


def reconstruct(source, out_dir, config='cpu_preview', overrides=None, count=100, size=1280,
                intrinsics=None, fov_deg=None, params=None, model=None, refine=True,
                progress=no_progress, log=print):
    """
    Run (or resume) the whole offline job on ``source``; return the summary.

    ``config`` names the avatar config (or a YAML path) and ``overrides`` change its keys;
    ``params`` is the nodes' parameters file, for the keyframe and pose settings; ``size`` is
    the long side of the keyframes the landmarks see (the trainer cuts the head's square out
    of them and shrinks it to its image size); ``refine``: bundle-adjust the PnP cameras
    before training (``capture.refine``).
    """
    from head_capture.avatar.job import registered_keyframes
    from head_capture.avatar.trainer import CHECKPOINT
    from head_capture.avatar.training_config import load_avatar_config
    from head_capture.landmarks.detector import default_model_path, LandmarkDetector
    from head_capture.landmarks.template import HeadTemplate
    from head_capture.report import write_report

    started = time.monotonic()
    avatar_config = load_avatar_config(config, overrides)
    keyframe_config = load_node_config(KeyframeConfig, 'keyframe_selector', params)
    pose_config = load_node_config(PoseConfig, 'pose_estimator', params)
    coverage_config = load_node_config(CoverageConfig, 'coverage_guide', params)
    refine_config = load_node_config(RefineConfig, 'pose_refinement', params)
    job = Reconstruction(Path(out_dir).resolve())
    output_folder(job.root)
    where = Path(str(source))
    model = Path(model or default_model_path())
    request = json.loads(json.dumps({
        'input': str(where.resolve()) if where.exists() else str(source),
        'input content': content_fingerprint(where),
        '--count': count, '--size': size,
        '--fov': (fov_deg if fov_deg is not None or intrinsics is not None
                  else DEFAULT_FOV_DEG),
        '--intrinsics': asdict(intrinsics) if intrinsics is not None else None,
        '--config': str(Path(config).resolve()) if Path(config).suffix else str(config),
        '--config/--set': asdict(avatar_config),
        '--refine': refine,
        '--params': {'keyframe_selector': asdict(keyframe_config),
                     'pose_estimator': asdict(pose_config),
                     **({'pose_refinement': asdict(refine_config)} if refine else {})},
        'landmark model': content_fingerprint(model)}))
    state = job.state()
    if not state and job.root.is_dir() and any(job.root.iterdir()):
        raise ConfigError(f'--out {job.root} holds files but no reconstruction ({STATE_FILE}); '
                          'choose a new or empty folder')
    changed = request_changes(state.get('request', request), request) if state else []
    if changed:
        more = len(changed) - CHANGES_SHOWN
        raise ConfigError(f'{job.root} holds a reconstruction of another request ('
                          + '; '.join(changed[:CHANGES_SHOWN])
                          + (f'; and {more} more' if more > 0 else '')
                          + '); rerun with the same options and input to resume, or choose '
                          'another --out')
    state['request'] = request
    steps = state.setdefault('steps', {})

    if 'keyframes' not in steps:
        with open_source(source) as frames:
            job.save_state(state)  # the folder is this reconstruction's from now on
            expected = frames.expected_frames
            total = 2 * expected if (expected and frames.replayable) else expected
            with progress('selecting keyframes', total) as advance:
                keyframes = extract_keyframes(frames, job.session_dir, count, size, intrinsics,
                                              fov_deg, keyframe_config, True, advance)
        steps['keyframes'] = {'keyframes': len(keyframes.selection.keyframes),
                              'frames_scored': keyframes.selection.frames_scored,
                              'frames_corrupt': keyframes.source_stats.frames_corrupt,
                              'notes': keyframes.notes}
        job.save_state(state)
        for note in keyframes.notes:
            log(f'warning: {note}')
    log(f'keyframes: {steps["keyframes"]["keyframes"]} in {job.session_dir}')

    session = Session.load(job.session_dir)
    template = HeadTemplate.load()
    if 'poses' not in steps:
        detector = LandmarkDetector(model)
        with progress('landmarks, masks + PnP', len(session.frames)) as advance:
            registered = register_session(session, detector, template, pose_config, advance)
        steps['poses'] = {'registered': registered, 'keyframes': len(session.frames)}
        job.save_state(state)
    elif keep_in_session(session, HeadVolume.of_template(template)):
        log('the session had no head volume (registered before sessions kept one): it now '
            'holds the one its masks were cut to')
    log(f'poses: {steps["poses"]["registered"]} of {steps["poses"]["keyframes"]} keyframes '
        'registered by landmarks + RANSAC PnP')
    if refine and 'refine' not in steps:
        with progress('refining the cameras (bundle adjustment)', None):
            refinement = refine_transforms(job.session_dir / TRANSFORMS_FILE, template.positions,
                                           refine_config, log)
        steps['refine'] = refinement.summary()
        job.save_state(state)
        log(refinement.describe())
        session = Session.load(job.session_dir)
    coverage = session_coverage(session.frames, coverage_config)[0]
    log(f'coverage: {coverage.summary()}')
    if not coverage.complete:
        log(f'warning: views are missing round the head ({coverage.shortfall()}, against '
            f'{coverage_config.target_share:.0%} of every band): the avatar will be blurred or '
            'wrong where no keyframe looked; the report shows which directions')

    if 'avatar' not in steps:
        resume = (job.avatar_dir / CHECKPOINT).is_file()
        if not resume:
            write_transforms(job.session_dir / TRAINING_TRANSFORMS,
                             registered_keyframes(job.session_dir, MIN_TRAINING_FRAMES))
        elif not (job.session_dir / TRAINING_TRANSFORMS).is_file():
            raise TrainingError(f'{job.avatar_dir} holds a checkpoint but its training frames '
                                f'({TRAINING_TRANSFORMS}) are gone; remove the avatar folder')
        else:
            log(f'resuming the training in {job.avatar_dir}')
        steps['avatar'] = train_avatar(job.session_dir / TRAINING_TRANSFORMS, job.avatar_dir,
                                       avatar_config, resume=resume, progress=progress, log=log)
        job.save_state(state)

    write_report(job.session_dir, job.avatar_dir, job.report_path,
                 title=f'head_capture reconstruction of {where.name}')
    metrics = steps['avatar']
    return {'out': str(job.root), 'report': str(job.report_path),
            'avatar': str(job.avatar_dir), 'keyframes': steps['keyframes']['keyframes'],
            'registered': steps['poses']['registered'], 'coverage': coverage.to_json(),
            'held_out_psnr': metrics.get('held_out_psnr'),
            'held_out_ssim': metrics.get('held_out_ssim'),
            'train_seconds': metrics.get('seconds'),
            'seconds': round(time.monotonic() - started, 1)}


def content_fingerprint(path):
    """
    Return what tells the content of a file or folder apart, or None where there is none.

    A file: its size and a SHA-256 of its first and last MiB (a new video saved under the old
    name differs there, a copy of the same one does not). A folder (images, a bag): the names,
    sizes and modification times of its files. A URL or a missing path: None.
    """
    path = Path(path)
    if path.is_file():
        size = path.stat().st_size
        digest = hashlib.sha256()
        with path.open('rb') as handle:
            digest.update(handle.read(FINGERPRINT_BYTES))
            handle.seek(max(0, size - FINGERPRINT_BYTES))
            digest.update(handle.read(FINGERPRINT_BYTES))
        return f'{size} bytes, sha256 {digest.hexdigest()[:16]}'
    if path.is_dir():
        files = sorted((entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
                       for entry in os.scandir(path) if entry.is_file())
        digest = hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]
        return f'{len(files)} files, {sum(f[1] for f in files)} bytes, {digest}'
    return None


def request_changes(recorded, request, prefix=''):
    """Return "what: old -> new" for every entry of ``request`` that differs from the record."""
    changes = []
    for key in dict.fromkeys([*request, *recorded]):
        old, new = recorded.get(key, _NOT_RECORDED), request.get(key, _NOT_RECORDED)
        name = f'{prefix}{key}'
        if isinstance(old, dict) and isinstance(new, dict):
            changes += request_changes(old, new, f'{name}{"." if prefix else " "}')
        elif old != new:
            changes.append(f'{name}: {_shown(old)} -> {_shown(new)}')
    return changes


_NOT_RECORDED = object()


def _shown(value):
    """Return a recorded value as a user reads it: 60 rather than 60.0, none rather than null."""
    if value is _NOT_RECORDED:
        return '(not recorded)'
    if value is None:
        return 'none'
    if isinstance(value, float):
        return f'{value:g}'
    if isinstance(value, dict):
        return '{' + ', '.join(f'{k} {_shown(v)}' for k, v in value.items()) + '}'
    return str(value)
