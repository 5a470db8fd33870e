"""Offline end-to-end steps, each usable alone: today, video to a keyframe session."""

from dataclasses import dataclass, field

from head_capture.camera import DEFAULT_FOV_DEG, Intrinsics
from head_capture.capture.keyframes import select_offline, select_online
from head_capture.capture.preprocess import prepare_view
from head_capture.session import Session


@dataclass
class KeyframeReport:
    """What the keyframe step did, for the CLI summary and the report."""

    session: Session
    selection: object
    source_stats: object
    notes: list = field(default_factory=list)


def extract_keyframes(source, out_dir, count, size=400, intrinsics=None, fov_deg=None,
                      config=None, overwrite=False, progress=None):
    """
    Select ``count`` keyframes from ``source`` and write them as a session in ``out_dir``.

    Replayable sources (files, folders, bags) get the offline best-N-evenly-spread choice;
    live streams get the online selector with a budget of ``count``. ``intrinsics`` describe
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
    session = None
    for keyframe in selection.keyframes:
        image = keyframe.frame.image
        camera = intrinsics or Intrinsics.from_fov(image.shape[1], image.shape[0],
                                                   fov_deg or DEFAULT_FOV_DEG)
        view, view_camera = prepare_view(image, camera, size)
        if session is None:
            session = Session.create(out_dir, view_camera, overwrite=overwrite, meta={
                'head_capture': {'step': 'keyframes', 'source_camera_assumed': assumed,
                                 'source_fov_deg': round(camera.fov_x_deg, 3)}})
        session.add_frame(view, {'source_index': keyframe.frame.index,
                                 'timestamp': round(keyframe.frame.time_s, 6),
                                 'sharpness': round(keyframe.sharpness, 6)})
    if session is None:
        raise ValueError('no usable keyframe in the input: every frame was corrupt, badly '
                         'exposed or blurred')
    session.save()
    if assumed:
        notes.append(f'no intrinsics given: assumed a {DEFAULT_FOV_DEG:.0f} degree field of '
                     'view across the long side (pass --fov or --intrinsics)')
    return KeyframeReport(session, selection, source.stats, notes)
