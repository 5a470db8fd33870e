"""
One reconstruction as a single self-contained HTML page, to look at, mail and archive.

Everything is embedded (pictures as base64 JPEG or PNG, the turntable as a base64 mp4, charts
as inline SVG drawn here), so the page opens offline with nothing beside it. A section whose
inputs are missing says so in one line: a capture that was never trained still gets a report.
"""

import base64
from dataclasses import dataclass
from datetime import datetime
import html
import json
import logging
import math
import os
from pathlib import Path

import cv2
from head_capture.avatar.evaluate import psnr
from head_capture.avatar.trainer import CHECKPOINT, EVENTS, PREVIEW, STAGE1_TRANSFORMS
from head_capture.capture.coverage import coverage_image, session_coverage
from head_capture.capture.head_volume import META_KEY as HEAD_VOLUME
from head_capture.files import write_bytes_atomic
from head_capture.geometry import umeyama
from head_capture.pose_evaluation import evaluate, frame_key
from head_capture.session import (KEYFRAMES_DIR, read_image, read_transforms, SessionError,
                                  Transforms, TRANSFORMS_FILE)
import numpy as np

log = logging.getLogger(__name__)

THUMBNAILS, THUMBNAIL_PX = 100, 96
HELD_OUT_VIEWS, HELD_OUT_PX = 24, 512
JPEG_QUALITY = 85
# Pose sets in the order they are drawn (the truth last, on top), with their colours.
PNP, TRUTH = 'PnP (session)', 'ground truth'
POSE_SETS = ((PNP, '#1f77b4'), ('after stage 1', '#ff7f0e'), ('after stage 2', '#2ca02c'),
             (TRUTH, '#222222'))
STAGE_COLOURS = {1: '#ff7f0e', 2: '#2ca02c'}
OUTPUT_FILES = (CHECKPOINT, 'avatar.ply', TRANSFORMS_FILE, STAGE1_TRANSFORMS, 'metrics.json',
                EVENTS, 'evaluation.json', 'turntable.mp4', PREVIEW)
# Written by a later command (`head-capture evaluate`), not by training: listed when there.
ON_REQUEST_FILES = ('evaluation.json',)
METRIC_LABELS = (('held_out_psnr', 'held-out PSNR (dB)'), ('held_out_ssim', 'held-out SSIM'),
                 ('rotation_error_deg', 'rotation error vs. the input poses (°)'),
                 ('translation_error', 'translation error vs. the input poses (scene units)'),
                 ('pose_update_deg', 'mean pose correction (°)'),
                 ('seconds', 'training time (s)'), ('stage', 'last stage'),
                 ('step', 'steps in the last stage'), ('training_frames', 'training frames'),
                 ('held_out_frames', 'held-out frames'), ('rollbacks', 'rollbacks'))
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 1200px;
       color: #222; background: #fff; }
h1 { margin-bottom: 0; } h2 { border-bottom: 1px solid #ccc; margin-top: 32px; }
table { border-collapse: collapse; } td, th { padding: 2px 12px 2px 0; text-align: left; }
td.value { font-variant-numeric: tabular-nums; }
.missing { color: #a33; font-style: italic; }
.sheet { display: flex; flex-wrap: wrap; gap: 4px; }
.sheet figure, .pairs figure { margin: 0; font-size: 11px; text-align: center; }
.sheet img { border: 3px solid transparent; display: block; width: 96px; height: auto; }
.sheet figure.unregistered img { border-color: #d62728; }
.sheet figcaption { max-width: 102px; overflow-wrap: anywhere; }
.pairs { display: flex; flex-wrap: wrap; gap: 12px; } .pairs img { width: 384px; }
video { width: 400px; max-width: 100%; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.legend span { margin-right: 16px; } .legend b { font-size: 18px; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
"""
# Counts the pictures that decoded once the page has loaded (headless checks read it).
IMAGE_CHECK = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute('data-images-loaded', images.length - broken.length);
  document.body.setAttribute('data-images-broken', broken.length);
});
"""


@dataclass
class _ReportInputs:
    """What one report is drawn from; None (or empty) for whatever is not there."""

    session_dir: Path
    avatar_dir: Path
    out_dir: Path
    session: Transforms
    stage1: Transforms
    refined: Transforms
    truth: Transforms
    metrics: dict
    events: list
    extra_metrics: dict


@dataclass(frozen=True)
class _Keyframe:
    """One keyframe of the session, and why it got no pose if it did not."""

    path: Path
    registered: bool
    reason: str = ''


def write_report(session_dir, avatar_dir, out_path, truth=None,
                 title='head_capture reconstruction', extra_metrics=None):
    """
    Write the HTML report of a session and its avatar (``avatar_dir`` may be None); return it.

    ``truth`` is a transforms.json of the true poses of the same frames, ``extra_metrics``
    a dict of more rows for the summary table.
    """
    out_path = Path(out_path)
    inputs = _gather_inputs(session_dir, avatar_dir, truth, out_path.parent, extra_metrics)
    sections = (('summary', 'Summary', _summary_section),
                ('keyframes', 'Keyframes', _keyframes_section),
                ('poses', 'Camera poses', _poses_section),
                ('coverage', 'View coverage', _coverage_section),
                ('training', 'Training curves', _training_section),
                ('held-out', 'Held-out views', _held_out_section),
                ('turntable', 'Turntable', _turntable_section), ('files', 'Files', _files_section))
    body = '\n'.join(f'<section id="{key}">\n<h2>{heading}</h2>\n{draw(inputs)}\n</section>'
                     for key, heading, draw in sections)
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n'
            f'<script>{IMAGE_CHECK}</script>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n'
            f'{body}\n</body>\n</html>\n')
    write_bytes_atomic(out_path, page.encode())
    return out_path


# -- inputs ------------------------------------------------------------------------------------

def _gather_inputs(session_dir, avatar_dir, truth, out_dir, extra_metrics=None):
    """Read everything the report shows; a missing or unreadable file becomes None."""
    session_dir = Path(session_dir)
    avatar = Path(avatar_dir) if avatar_dir is not None else None
    return _ReportInputs(session_dir, avatar, Path(out_dir),
                         _optional_transforms(session_dir / TRANSFORMS_FILE),
                         _optional_transforms(_inside(avatar, STAGE1_TRANSFORMS)),
                         _optional_transforms(_inside(avatar, TRANSFORMS_FILE)),
                         _optional_transforms(truth),
                         _optional_json(_inside(avatar, 'metrics.json')),
                         _read_events(_inside(avatar, EVENTS)), dict(extra_metrics or {}))


def _inside(folder, name):
    """Return ``folder / name``, or None when there is no folder."""
    return None if folder is None else folder / name


def _optional_transforms(path):
    """Return a transforms.json's content, or None when there is none to read."""
    if path is None or not Path(path).is_file():
        return None
    try:
        return read_transforms(path)
    except SessionError as exc:
        log.warning('report: %s', exc)
        return None


def _optional_json(path):
    """Return a JSON object file's content, or {} when there is none to read."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        log.warning('report: %s is not readable JSON (%s)', path, exc)
        return {}


def _read_events(path):
    """Return the events of a trainer's log; a line cut short by a kill is skipped."""
    if path is None or not Path(path).is_file():
        return []
    events = []
    for line in Path(path).read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _trained_frames(transforms):
    """Return only the frames the trainer refined (held-out ones keep their input pose)."""
    if transforms is None:
        return None
    return Transforms(transforms.intrinsics,
                      [f for f in transforms.frames if not f.meta.get('held_out', False)],
                      transforms.meta)


def _pose_sets(inputs):
    """Return the (label, colour, transforms) of every pose set there is, in drawing order."""
    found = (inputs.session, _trained_frames(inputs.stage1), _trained_frames(inputs.refined),
             inputs.truth)
    return [(label, colour, transforms)
            for (label, colour), transforms in zip(POSE_SETS, found) if transforms is not None]


def _keyframes(inputs):
    """
    Return the session's keyframes in file order, registered or not.

    Registration lists the frames it refused in the metadata, with the reason; a live capture
    lists only registered keyframes, so the others are the unlisted files of ``keyframes/``.
    """
    if inputs.session is None:
        return []
    refused = inputs.session.meta.get('head_capture', {}).get('unregistered', [])
    listed = [_Keyframe(inputs.session_dir / f.file_path, f.c2w is not None,
                        f.meta.get('reason', '')) for f in inputs.session.frames]
    listed += [_Keyframe(inputs.session_dir / m['file_path'], False, m.get('reason', ''))
               for m in refused]
    known = {k.path for k in listed}
    unlisted = (inputs.session_dir / KEYFRAMES_DIR).glob('*.png')
    listed += [_Keyframe(path, False) for path in unlisted if path not in known]
    return sorted(listed, key=lambda k: str(k.path))


# -- HTML pieces -------------------------------------------------------------------------------

def _missing(what):
    """Return the one line that stands for a section (or part) with nothing to show."""
    return f'<p class="missing">{html.escape(what)}: not available</p>'


def _image_uri(rgb, encoding='.jpg'):
    """Return an RGB uint8 image as a data: URI, JPEG (quality 85) or PNG."""
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if encoding == '.jpg' else []
    ok, encoded = cv2.imencode(encoding, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f'could not encode an image of shape {rgb.shape}')
    kind = 'jpeg' if encoding == '.jpg' else 'png'
    return f'data:image/{kind};base64,{base64.b64encode(encoded.tobytes()).decode()}'


def _shrunk(rgb, long_side):
    """Return the image with its long side at most ``long_side`` pixels."""
    scale = long_side / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _evenly_spread(items, count):
    """Return at most ``count`` of ``items``, evenly spread, first and last included."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, count).round().astype(int))]


def _img(rgb, long_side, alt):
    """Return an <img> of an RGB image, shrunk and embedded as JPEG."""
    return f'<img src="{_image_uri(_shrunk(rgb, long_side))}" alt="{html.escape(alt)}">'


def _picture(path, long_side, alt):
    """Return an image file as an embedded <img>, or a line saying it is not readable."""
    try:
        return _img(read_image(path), long_side, alt)
    except SessionError:
        return _missing(Path(path).name)


def _table(rows):
    """Return a two-column HTML table of (label, value) rows."""
    cells = ''.join(f'<tr><th>{html.escape(str(label))}</th>'
                    f'<td class="value">{html.escape(_formatted(value))}</td></tr>'
                    for label, value in rows)
    return f'<table>{cells}</table>'


def _formatted(value):
    """Return a number with four significant digits, anything else as it prints."""
    if isinstance(value, float):
        return f'{value:.4g}'
    return str(value)


def _legend(entries):
    """Return an HTML legend of (label, colour) entries."""
    return '<p class="legend">' + ''.join(
        f'<span><b style="color:{colour}">●</b> {html.escape(label)}</span>'
        for label, colour in entries) + '</p>'


# -- SVG charts --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plot:
    """A chart's data ranges mapped onto its pixel box, y upwards."""

    x_range: tuple
    y_range: tuple
    width: int = 440
    height: int = 280
    margin: tuple = (60, 16, 44, 28)  # left, right, bottom, top

    def px(self, x, y):
        """Return the pixel positions of data points."""
        left, right, bottom, top = self.margin
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        u = left + (np.asarray(x, float) - x0) / (x1 - x0) * (self.width - left - right)
        v = self.height - bottom - (np.asarray(y, float) - y0) / (y1 - y0) * (
            self.height - bottom - top)
        return u, v


def _padded_range(values, share=0.05):
    """Return (low, high) around finite values with a margin; a unit span around one value."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * share if high > low else max(abs(low) * 0.1, 0.5)
    return low - pad, high + pad


def _ticks(low, high, count=5):
    """Return round tick values (1, 2 or 5 times a power of ten apart) within [low, high]."""
    raw = (high - low) / count
    base = 10.0 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    return np.arange(math.ceil(low / step), math.floor(high / step) + 1) * step


def _axes(plot, x_label, y_label):
    """Return the SVG of a plot's box, grid, tick labels and axis labels."""
    left, right, bottom, top = plot.margin
    parts = [f'<rect x="{left}" y="{top}" width="{plot.width - left - right}" '
             f'height="{plot.height - top - bottom}" fill="none" stroke="#888"/>']
    for value in _ticks(*plot.x_range):
        u, _ = plot.px(value, plot.y_range[0])
        parts.append(f'<line x1="{u:.1f}" x2="{u:.1f}" y1="{top}" y2="{plot.height - bottom}" '
                     f'stroke="#eee"/><text x="{u:.1f}" y="{plot.height - bottom + 14}" '
                     f'text-anchor="middle">{value:g}</text>')
    for value in _ticks(*plot.y_range):
        _, v = plot.px(plot.x_range[0], value)
        parts.append(f'<line x1="{left}" x2="{plot.width - right}" y1="{v:.1f}" y2="{v:.1f}" '
                     f'stroke="#eee"/><text x="{left - 4}" y="{v + 4:.1f}" '
                     f'text-anchor="end">{value:g}</text>')
    parts.append(f'<text x="{(left + plot.width - right) / 2}" y="{plot.height - 6}" '
                 f'text-anchor="middle">{html.escape(x_label)}</text>')
    parts.append(f'<text transform="translate(14 {(top + plot.height - bottom) / 2}) '
                 f'rotate(-90)" text-anchor="middle">{html.escape(y_label)}</text>')
    return '\n'.join(parts)


def _svg(plot, title, content):
    """Return a complete inline SVG element of ``plot``'s size with a title on top."""
    return (f'<svg width="{plot.width}" '
            f'height="{plot.height}" viewBox="0 0 {plot.width} {plot.height}" role="img">'
            f'<title>{html.escape(title)}</title><text x="{plot.width / 2}" y="16" '
            f'text-anchor="middle" font-weight="bold">{html.escape(title)}</text>\n'
            f'{content}</svg>')


def _scatter_chart(title, series, x_label, y_label):
    """
    Return an equal-aspect scatter SVG of (label, colour, points (N, 2)) series.

    The origin (the head's centre) is marked; both axes share one scale so that an orbit
    looks round.
    """
    points = np.concatenate([p for _, _, p in series] + [np.zeros((1, 2))])
    centre = (points.max(0) + points.min(0)) / 2
    half = max(float((points.max(0) - points.min(0)).max()) * 0.55, 0.05)
    plot = _Plot((centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half),
                 360, 360, (52, 12, 40, 28))
    marks = []
    for _, colour, xy in series:
        u, v = plot.px(xy[:, 0], xy[:, 1])
        marks += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}" '
                  f'fill-opacity="0.75"/>' for a, b in zip(u, v)]
    u, v = plot.px(0.0, 0.0)
    marks.append(f'<circle cx="{u:.1f}" cy="{v:.1f}" r="6" fill="none" stroke="#999"/>')
    return _svg(plot, title, _axes(plot, x_label, y_label) + '\n' + '\n'.join(marks))


def _line_chart(title, series, x_label, y_label, marks_x=()):
    """Return a line chart SVG of (label, colour, x, y) series, dashed lines at ``marks_x``."""
    plot = _Plot(_padded_range(np.concatenate([s[2] for s in series]), 0.0),
                 _padded_range(np.concatenate([s[3] for s in series])))
    lines = []
    for _, colour, x, y in series:
        u, v = plot.px(x[np.isfinite(y)], y[np.isfinite(y)])
        coordinates = ' '.join(f'{a:.1f},{b:.1f}' for a, b in zip(u, v))
        lines.append(f'<polyline points="{coordinates}" fill="none" stroke="{colour}" '
                     f'stroke-width="1.5"/>')
    for x in marks_x:
        u, _ = plot.px(x, 0.0)
        lines.append(f'<line x1="{u:.1f}" x2="{u:.1f}" y1="{plot.margin[3]}" '
                     f'y2="{plot.height - plot.margin[2]}" stroke="#999" '
                     f'stroke-dasharray="4 3"/>')
    return _svg(plot, title, _axes(plot, x_label, y_label) + '\n' + '\n'.join(lines))


# -- sections ----------------------------------------------------------------------------------

def _summary_section(inputs):
    """Return the summary: when, what was captured, the metrics, the errors against the truth."""
    frames = _keyframes(inputs)
    rows = [('written', datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')),
            ('session', inputs.session_dir),
            ('avatar', inputs.avatar_dir if inputs.avatar_dir is not None else 'none'),
            ('keyframes', len(frames)), ('registered', sum(k.registered for k in frames))]
    rows += [(label, inputs.metrics[key]) for key, label in METRIC_LABELS
             if key in inputs.metrics]
    rows += list(inputs.extra_metrics.items())
    parts = [_table(rows)]
    if inputs.truth is not None:
        parts.append('<h3>Pose errors against the ground truth (after Sim(3) alignment)</h3>')
        parts.append(_truth_errors_table(inputs))
    if not inputs.metrics:
        parts.append(_missing('training metrics (metrics.json)'))
    return '\n'.join(parts)


def _truth_errors_table(inputs):
    """Return a table of every pose set's rotation and translation errors against the truth."""
    rows = []
    for label, _, transforms in _pose_sets(inputs):
        if label == TRUTH:
            continue
        try:
            report = evaluate(transforms, inputs.truth)
        except ValueError as exc:
            rows.append((label, f'not available ({exc})'))
            continue
        if report['rotation_deg'] is None:
            rows.append((label, f'not available ({report["registered"]} registered frames)'))
            continue
        rotation, translation = report['rotation_deg'], report['translation_cm']
        rows.append((f'{label}: rotation (°) mean / median / max',
                     ' / '.join(f'{rotation[k]:.3g}' for k in ('mean', 'median', 'max'))))
        rows.append((f'{label}: translation (cm) mean / median / max',
                     ' / '.join(f'{translation[k]:.3g}' for k in ('mean', 'median', 'max'))))
        rows.append((f'{label}: frames', f'{report["registered"]} of {report["frames"]}'))
    return _table(rows)


def _keyframes_section(inputs):
    """Return a contact sheet of the keyframes, the ones without a pose outlined red."""
    frames = _keyframes(inputs)
    if not frames:
        return _missing('keyframes (session transforms.json)')
    shown = _evenly_spread(frames, THUMBNAILS)
    figures = [_thumbnail(frame) for frame in shown]
    note = (f'<p>{len(shown)} of {len(frames)} keyframes; outlined red: no pose.</p>'
            if len(shown) < len(frames) else '<p>Outlined red: no pose.</p>')
    return note + '<div class="sheet">' + '\n'.join(figures) + '</div>'


def _thumbnail(frame):
    """Return one keyframe's figure for the contact sheet."""
    name = html.escape(frame.path.name)
    caption = name + (f' — {html.escape(frame.reason)}' if frame.reason else '')
    kind = '' if frame.registered else ' class="unregistered"'
    image = _picture(frame.path, THUMBNAIL_PX, frame.path.name)
    return f'<figure{kind} title="{caption}">{image}<figcaption>{caption}</figcaption></figure>'


def _camera_centres(transforms):
    """Return {frame key: camera centre} of the frames with a pose."""
    return {frame_key(f.file_path): np.asarray(f.c2w, float)[:3, 3]
            for f in transforms.frames if f.c2w is not None}


def _aligned_to(centres, reference):
    """
    Return ``centres`` moved onto ``reference`` by the Sim(3) fit on the frames both have.

    Unmoved when fewer than three frames are shared or they lie on one line.
    """
    shared = [key for key in centres if key in reference]
    points = np.array(list(centres.values())).reshape(-1, 3)
    if len(shared) < 3:
        return points
    try:
        fit = umeyama(np.array([centres[k] for k in shared]),
                      np.array([reference[k] for k in shared]))
    except ValueError:
        return points
    return fit.apply(points)


def _poses_section(inputs):
    """Return top and side views of every pose set's camera centres, aligned to one another."""
    sets = [(label, colour, _camera_centres(t)) for label, colour, t in _pose_sets(inputs)]
    sets = [s for s in sets if s[2]]
    if not sets:
        return _missing('camera poses')
    by_label = {label: centres for label, _, centres in sets}
    onto = TRUTH if TRUTH in by_label else PNP
    aligned = [(label, colour, _aligned_to(centres, by_label.get(onto, {})))
               for label, colour, centres in sets]
    top = _scatter_chart('top view', [(a, b, p[:, [0, 1]]) for a, b, p in aligned], 'x (m)',
                         'y (m)')
    side = _scatter_chart('side view', [(a, b, p[:, [0, 2]]) for a, b, p in aligned], 'x (m)',
                          'z (m, up)')
    return (f'<p>Camera centres in the head frame; each set moved onto the {onto} poses by the '
            'similarity fitted on the frames both have (at least three); the circle is the '
            "head's centre.</p>"
            + _legend([(label, colour) for label, colour, _ in sets])
            + f'<div class="charts">{top}{side}</div>')


def _coverage_section(inputs):
    """Return which directions around the head the registered keyframes see."""
    coverage, views = session_coverage(inputs.session.frames if inputs.session else [])
    if not views:
        return _missing('view coverage (no registered keyframe)')
    ring = (f'<img src="{_image_uri(coverage_image(coverage, 256), ".png")}" '
            'alt="coverage ring" width="256" height="256">')
    return (f'<p>{coverage.summary()}. '
            "Left: the capture guide's ring seen from above, the face at the top (grey empty, "
            "amber seen, green covered). Right: each keyframe's direction, azimuth around and "
            'elevation as radius (the pole in the middle).</p>'
            f'<div class="charts">{ring}{_directions_chart(views, coverage.edges)}</div>')


def _directions_chart(views, band_edges_deg, size=300):
    """Return a polar SVG of view directions: azimuth around (front up), elevation inward."""
    half = size / 2
    elevations = np.array([w.elevation_deg for w in views])
    # The rim: 15° below the lowest band or view, so that the rings use the whole chart.
    rim = 15.0 * math.floor(min(band_edges_deg[0], elevations.min()) / 15.0 - 1.0)
    scale = (half - 24) / (90.0 - rim)

    def at(azimuth_deg, elevation_deg):
        r = scale * (90.0 - np.asarray(elevation_deg))
        a = np.radians(azimuth_deg)
        return half - r * np.sin(a), half - r * np.cos(a)

    parts = []
    for elevation in (rim, *band_edges_deg):
        r = scale * (90.0 - elevation)
        parts.append(f'<circle cx="{half}" cy="{half}" r="{r:.1f}" fill="none" stroke="#ccc"/>'
                     f'<text x="{half + 3}" y="{half - r + 11:.1f}">{elevation:g}°</text>')
    for azimuth in range(0, 360, 30):
        u, v = at(azimuth, rim)
        parts.append(f'<line x1="{half}" y1="{half}" x2="{u:.1f}" y2="{v:.1f}" stroke="#eee"/>')
        u, v = at(azimuth, rim - 12.0 / scale)
        parts.append(f'<text x="{u:.1f}" y="{v + 4:.1f}" text-anchor="middle">{azimuth}°</text>')
    u, v = at([w.azimuth_deg for w in views], elevations)
    parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="#1f77b4" fill-opacity="0.8"/>'
              for a, b in zip(u, v)]
    return (f'<svg width="{size}" height="{size}" '
            f'viewBox="0 0 {size} {size}" role="img"><title>keyframe directions</title>'
            + '\n'.join(parts) + '</svg>')


def _training_curves(events):
    """
    Return {stage: step events in step order}, the last one logged for each step.

    A rollback or a resume logs some steps again; the later line is the one that stands.
    """
    latest = {(e['stage'], e['step']): e for e in events
              if e.get('event') == 'step' and {'stage', 'step'} <= e.keys()}
    stages = {}
    for stage, step in sorted(latest):
        stages.setdefault(stage, []).append(latest[(stage, step)])
    return stages


def _training_section(inputs):
    """Return loss, PSNR and the rotation error against the input poses, over both stages."""
    stages = _training_curves(inputs.events)
    if not stages:
        return _missing('training curves (events.jsonl)')
    offsets, start = {}, 0
    for stage, events in sorted(stages.items()):
        offsets[stage], start = start, start + events[-1]['step']
    charts = []
    for key, title, label in (('loss', 'training loss', 'loss (MSE)'),
                              ('psnr', 'training PSNR', 'PSNR (dB)'),
                              ('rotation_error_deg', 'rotation error vs. the input poses',
                               'rotation (°)')):
        series = [(f'stage {stage}', STAGE_COLOURS.get(stage, '#555'),
                   np.array([e['step'] for e in events]) + offsets[stage],
                   np.array([e.get(key, np.nan) for e in events], float))
                  for stage, events in sorted(stages.items())]
        charts.append(_line_chart(title, series, 'step (both stages in a row)', label,
                                  [offsets[s] for s in offsets if offsets[s] > 0]))
    return (_legend([(f'stage {s}', STAGE_COLOURS.get(s, '#555')) for s in sorted(stages)])
            + f'<div class="charts">{"".join(charts)}</div>')


def _held_out_section(inputs):
    """Return the held-out renders next to their pictures, each with its PSNR."""
    folder = inputs.avatar_dir / 'held_out' if inputs.avatar_dir is not None else None
    pairs = sorted(folder.glob('*.png')) if folder is not None and folder.is_dir() else []
    if not pairs:
        return _missing('held-out renders')
    shown = _evenly_spread(pairs, HELD_OUT_VIEWS)
    scores = {Path(view['frame']).stem: view['psnr']
              for view in inputs.metrics.get('held_out_views', [])}
    figures = [_held_out_figure(path, scores.get(path.stem)) for path in shown]
    count = f'{len(shown)} of {len(pairs)}' if len(shown) < len(pairs) else f'{len(pairs)}'
    steps = inputs.metrics.get('test_time_pose_steps', 'an unknown number of')
    return (f'<p>{count} held-out views, rendered after {steps} steps of test-time pose '
            'refinement, with their PSNR; grey in a truth marks pixels its mask is unsure of '
            '(the body, mostly), which are not scored.</p>'
            f'<div class="pairs">{"".join(figures)}</div>')


def _held_out_figure(path, score=None):
    """Return one render|truth pair with its PSNR (measured on the pair when not given)."""
    try:
        pair = read_image(path)
    except SessionError:
        return _missing(path.name)
    if score is None:
        half = pair.shape[1] // 2
        score = psnr(pair[:, :half] / 255.0, pair[:, half:2 * half] / 255.0)
    return (f'<figure>{_img(pair, HELD_OUT_PX, path.stem)}<figcaption>render | truth — '
            f'{html.escape(path.stem)} — {score:.2f} dB</figcaption></figure>')


def _turntable_section(inputs):
    """Return the turntable video, embedded, and where the avatar ends."""
    path = inputs.avatar_dir / 'turntable.mp4' if inputs.avatar_dir is not None else None
    if path is None or not path.is_file():
        return _missing('turntable video')
    payload = base64.b64encode(path.read_bytes()).decode()
    volume = inputs.session.meta.get(HEAD_VOLUME) if inputs.session is not None else None
    ends = ('<p>The avatar ends at the neck: the keyframes call collar and shoulders head '
            'from some sides and background from others, so the turntable and the mesh leave '
            'them out.</p>' if isinstance(volume, dict) and 'neck' in volume else '')
    return ('<video controls loop muted autoplay playsinline>'
            f'<source type="video/mp4" src="data:video/mp4;base64,{payload}"></video>{ends}')


def _file_size(count):
    """Return a byte count the way people read it (kB, MB, GB)."""
    for unit in ('kB', 'MB', 'GB'):
        count /= 1000.0
        if count < 1000 or unit == 'GB':
            return f'{count:.3g} {unit}'


def _files_section(inputs):
    """Return links to the outputs, relative to the report, so they open when kept beside it."""
    places = [inputs.session_dir / TRANSFORMS_FILE]
    if inputs.avatar_dir is not None:
        places += [inputs.avatar_dir / name for name in OUTPUT_FILES]
    items = []
    for path in places:
        if path.is_file():
            href = html.escape(Path(os.path.relpath(path.resolve(),
                                                    inputs.out_dir.resolve())).as_posix())
            items.append(f'<li><a href="{href}">{html.escape(href)}</a> '
                         f'({_file_size(path.stat().st_size)})</li>')
        elif path.name not in ON_REQUEST_FILES:
            items.append(f'<li>{html.escape(path.name)}: not available</li>')
    return f'<ul>{"".join(items)}</ul>'
