"""
Landmark detection at run time: onnxruntime, a few passes, no separate face detector.

The first pass sees overlapping squares of the frame's short side in one batch and keeps the
square whose landmarks are surest; those landmarks outline the whole head, even from behind,
and give a rough head box. The next pass sees a square crop around that box, framed the way
training views were, and gives the final landmarks; one more follows only when the box still
moved. In a stream the previous frame's box seeds the crop, so a frame costs one pass until
the head is lost.
"""

from dataclasses import dataclass
import json
import os
from pathlib import Path

import cv2
from head_capture.session import MASK_UNSURE
import numpy as np

# The crop side over the head box side: training views show the head at 0.3..0.75 of the view.
CROP_OVER_HEAD = 1.9
# A usable detection: the mask fills this much of the head box, the median sigma is below
# this share of the box side.
MIN_MASK_SHARE = 0.25
MAX_SIGMA_SHARE = 0.08
# A landmark the network gives this probability of being in sight is taken as seen.
MIN_VISIBILITY = 0.5
# At most this many crops after the first pass, each re-centred on the last one's head.
REFINE_PASSES = 2
# A crop has settled when the head box it yields moves less than this share of its side.
SETTLED = 0.15
# Mask probabilities nearer 0.5 than this are unsure, in regions at least UNSURE_CELLS of the
# mask head's MASK_CELLS wide (a sharp silhouette's edge is narrower).
UNSURE_WITHIN = 0.45
UNSURE_CELLS = 2
MASK_CELLS = 64
# What the runtime feeds a landmark model and reads back: name, element type and shape, where
# 'S' is the config's input side, 'N' its landmark count and None a free size.
MODEL_INPUT = ('image', 'tensor(uint8)', (None, 'S', 'S', 3))
MODEL_OUTPUTS = (('landmarks', 'tensor(float)', (None, 'N', 2)),
                 ('log_sigma', 'tensor(float)', (None, 'N')),
                 ('visibility_logit', 'tensor(float)', (None, 'N')),
                 ('mask_logit', 'tensor(float)', (None, 1, None, None)))
OUTPUT_NAMES = tuple(name for name, _, _ in MODEL_OUTPUTS)
NON_FINITE = 'the landmark model gave NaN or infinite outputs'


class ModelError(RuntimeError):
    """The landmark model file is missing, unreadable or not a landmark model."""


class _NoDetection(Exception):
    """A network pass gave nothing to use (its outputs are not finite), with the reason."""


@dataclass(frozen=True)
class Detection:
    """Landmarks of one frame in frame pixels, with sigma (px), visibility and head mask."""

    landmarks: np.ndarray
    sigma: np.ndarray
    visibility: np.ndarray
    mask: np.ndarray
    box: tuple
    passes: int
    # Why there is no detection at all (the landmarks are then empty), None when there is one.
    problem: str = None

    @classmethod
    def nothing(cls, frame_shape, problem, passes):
        """Return the detection of a frame the network gave nothing usable for, and why."""
        return cls(np.zeros((0, 2)), np.zeros(0), np.zeros(0),
                   np.full(frame_shape[:2], 0.5, np.float32), (0.0, 0.0, 0.0), passes, problem)

    @property
    def visible(self):
        """Return which landmarks the network saw (bool, N): the others it guessed."""
        return self.visibility > MIN_VISIBILITY

    @property
    def usable(self):
        """Whether a head was found: enough mask in the head box and confident landmarks."""
        if self.problem is not None:
            return False
        x, y, side = self.box
        height, width = self.mask.shape
        left, top = int(max(0, x - side / 2)), int(max(0, y - side / 2))
        inside = self.mask[top:int(min(height, y + side / 2)), left:int(min(width, x + side / 2))]
        share = float((inside > 0.5).mean()) if inside.size else 0.0
        return share > MIN_MASK_SHARE and float(np.median(self.sigma)) < MAX_SIGMA_SHARE * side

    def head_mask(self, within=None, body=None):
        """
        Return the head mask as a uint8 image, as sessions store it.

        255 is head, 0 background, ``MASK_UNSURE`` a region the network is unsure of (the
        body below the head, mostly) or never saw (outside its crop): views disagree there, and
        an avatar trained on them fills the region with haze. The thin band of middling values
        along every sharp silhouette is not such a region; it stays split at 0.5.
        ``within``: a bool image of the pixels that can show the head; the rest is background.
        ``body``: a bool image of pixels that may show the body (see ``HeadVolume.crossing``):
        background there is unsure, as it may be shoulders, not the room.
        """
        side = 1 + 2 * round(UNSURE_CELLS * self.box[2] * CROP_OVER_HEAD / MASK_CELLS / 2)
        mask = np.zeros(self.mask.shape, np.uint8)
        # Only round the pixels that can show the head; the opening reaches side - 1 pixels.
        region = (slice(None), slice(None)) if within is None else _box_round(within, side)
        if region is None:
            return mask
        probability = self.mask[region]
        unsure = (np.abs(probability - 0.5) < UNSURE_WITHIN).astype(np.uint8)
        unsure = cv2.morphologyEx(unsure, cv2.MORPH_OPEN, np.ones((side, side), np.uint8)) > 0
        if body is not None:
            unsure |= body[region] & (probability <= 0.5)
        part = np.where(unsure, MASK_UNSURE, np.where(probability > 0.5, 255, 0))
        if within is not None:
            part[~within[region]] = 0
        mask[region] = part
        return mask

    def to_json(self):
        """Plain dict for JSON files and ROS String messages."""
        return {'box': [round(float(v), 2) for v in self.box], 'usable': self.usable,
                'passes': self.passes, **({'problem': self.problem} if self.problem else {}),
                'landmarks': np.round(self.landmarks, 2).tolist(),
                'sigma': np.round(self.sigma, 2).tolist(),
                'visibility': np.round(self.visibility, 3).tolist()}


def _box_round(pixels, pad):
    """Return (rows, columns) slices round a bool image's True pixels, ``pad`` wider; or None."""
    rows, columns = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
    if not rows.size:
        return None
    return (slice(max(rows[0] - pad, 0), rows[-1] + pad + 1),
            slice(max(columns[0] - pad, 0), columns[-1] + pad + 1))


def square_warp(centre, side, size):
    """Return the 2x3 affine taking a square (centre, side) of the frame to a size² crop."""
    scale = size / side
    # OpenCV pixel centres: frame point c - side/2 + 0.5/scale maps to crop pixel 0.
    offset = np.asarray(centre, float) * scale - (size - 1) / 2.0
    return np.array([[scale, 0.0, -offset[0]], [0.0, scale, -offset[1]]])


def _footprint(warp, size, shape, margin):
    """Return (x0, y0, x1, y1): the pixels of an image ``shape`` a crop covers, or None."""
    corners = _apply(_invert(warp), np.array([[0.0, 0.0], [size - 1.0, size - 1.0]]))
    x0, y0 = np.floor(np.maximum(corners[0] - margin, 0)).astype(int)
    x1, y1 = np.ceil(np.minimum(corners[1] + margin, [shape[1], shape[0]])).astype(int)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def _shifted(warp, x0, y0):
    """Return ``warp`` for the image part whose top-left pixel is (x0, y0)."""
    return np.column_stack([warp[:, :2], warp[:, :2] @ [x0, y0] + warp[:, 2]])


def _covered_part(frame, warp, size):
    """
    Return the part of ``frame`` the crop covers (plus a margin) and the warp from it.

    An area resize of the whole frame for one crop costs ten times the crop itself.
    """
    part = _footprint(warp, size, frame.shape, 2.0 / warp[0, 0] + 2.0)
    if part is None:  # the square lies outside the frame
        return frame, warp
    x0, y0, x1, y1 = part
    return frame[y0:y1, x0:x1], _shifted(warp, x0, y0)


def crop_square(frame, warp, size):
    """Cut the size² crop ``warp`` describes; big shrinks go through an area resize first."""
    source, source_warp = frame, warp
    if warp[0, 0] < 0.8:  # a plain warp would alias
        frame, warp = _covered_part(frame, warp, size)
        height, width = frame.shape[:2]
        source = cv2.resize(frame, (max(1, round(width * warp[0, 0])),
                                    max(1, round(height * warp[0, 0]))),
                            interpolation=cv2.INTER_AREA)
        shrink = np.array([source.shape[1] / width, source.shape[0] / height])
        # Frame pixel u is shrunk pixel (u + 0.5) * shrink - 0.5.
        source_warp = np.column_stack([warp[:, :2] / shrink,
                                       warp[:, :2] @ (0.5 / shrink - 0.5) + warp[:, 2]])
    return cv2.warpAffine(source, source_warp, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def landmark_extent(landmarks):
    """
    Return the low and high corners of landmarks' 2nd-98th percentile extent.

    Landmarks outline the whole head, hidden side included, even where the mask is fooled by
    a busy background, so the head's extent comes from them alone; the percentiles drop the
    odd landmark thrown far off.
    """
    return np.percentile(landmarks, 2, axis=0), np.percentile(landmarks, 98, axis=0)


def landmark_box(landmarks):
    """Return (centre x, centre y, side) of the square around ``landmark_extent``."""
    low, high = landmark_extent(landmarks)
    centre = (low + high) / 2.0
    return float(centre[0]), float(centre[1]), float((high - low).max())


def _invert(warp):
    return cv2.invertAffineTransform(warp)


def _apply(warp, points):
    return points @ warp[:, :2].T + warp[:, 2]


class LandmarkDetector:
    """onnxruntime session of a landmark model (the shipped one unless named), two-pass crop."""

    def __init__(self, model_path=None, threads=2, providers=None):
        import onnxruntime as ort

        model_path = Path(model_path) if model_path else default_model_path()
        if not model_path.is_file():
            raise ModelError(f'landmark model not found: {model_path} (make it with '
                             "'head-capture train-landmarks' or use the shipped "
                             'models/head_landmarks.onnx)')
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: beside the other nodes on a small
        # machine, spinning takes the cores they need.
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        available = ort.get_available_providers()
        wanted = providers or ['CUDAExecutionProvider', 'CPUExecutionProvider']
        try:
            self.session = ort.InferenceSession(str(model_path), options,
                                                providers=[p for p in wanted if p in available])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelError(f'{model_path} is not a readable ONNX model: {exc}') from exc
        self.path = model_path
        self.config = _model_config(self.session, model_path)
        self.size = int(self.config['input_size'])
        problems = signature_problems(self.session.get_inputs(), self.session.get_outputs(),
                                      self.size, self.config.get('landmarks'))
        if problems:
            raise ModelError(f'{model_path} does not fit the landmark runtime: '
                             + '; '.join(problems))
        self.providers = self.session.get_providers()
        self._cuda_expected = 'CUDAExecutionProvider' in set(available) & set(wanted)

    @property
    def provider(self):
        """Say which onnxruntime provider runs the model, and why not CUDA where it might."""
        used = self.providers[0]
        if used == 'CUDAExecutionProvider' or not self._cuda_expected:
            return used
        # onnxruntime-gpu without a usable CUDA/cuDNN: it falls back with a warning of its own.
        return f'{used} (CUDAExecutionProvider did not load)'

    def run_crops(self, crops):
        """Run the network on uint8 RGB crops (B, S, S, 3); return its four outputs."""
        crops = np.ascontiguousarray(crops, np.uint8)
        try:
            return self.session.run(list(OUTPUT_NAMES), {MODEL_INPUT[0]: crops})
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
            first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            raise ModelError(f'{self.path} failed on a batch of shape {crops.shape}: '
                             f'{first}') from exc

    def _pass(self, frame, warp):
        """
        One network pass on the crop ``warp`` cuts from ``frame``.

        Landmarks and sigma come back in frame pixels, with the head box they span; the mask
        stays in crop space (S/4)², so only the final pass pays for a frame-sized mask.
        """
        crop = crop_square(frame, warp, self.size)
        outputs = self.run_crops(crop[None])
        if not _finite(outputs)[0]:
            raise _NoDetection(NON_FINITE)
        landmarks, log_sigma, visibility, mask_logit = (out[0] for out in outputs)
        back = _invert(warp)
        landmarks = _apply(back, landmarks)
        mask = 1.0 / (1.0 + np.exp(-mask_logit[0]))
        return landmarks, np.exp(log_sigma) / warp[0, 0], 1.0 / (1.0 + np.exp(-visibility)), \
            mask, landmark_box(landmarks)

    def _find_head(self, frame):
        """
        First pass: overlapping squares of the frame's short side, in one batch.

        A head that fills a fifth of a wide frame is too small for the network in a
        letterboxed whole-frame view, but not in a square of the frame's height; a head as
        tall as the frame still fits a square (training zooms out and in). The view whose
        landmarks are surest (lowest median sigma over their box) gives the box.
        """
        height, width = frame.shape[:2]
        short, long_side = min(height, width), max(height, width)
        steps = int(np.ceil(long_side / short - 1e-6))
        if steps == 1:
            centres = [((width - 1) / 2.0, (height - 1) / 2.0, long_side)]
        else:  # overlapping squares of the short side, end to end
            along = short / 2.0 - 0.5 + np.arange(steps) * (long_side - short) / (steps - 1)
            centres = [(a, (height - 1) / 2.0, short) if width >= height
                       else ((width - 1) / 2.0, a, short) for a in along]
        warps = [square_warp(c[:2], c[2], self.size) for c in centres]
        crops = np.stack([crop_square(frame, warp, self.size) for warp in warps])
        outputs = self.run_crops(crops)
        best, best_score = None, np.inf
        for marks, sigma, warp, finite in zip(outputs[0], np.exp(outputs[1]), warps,
                                              _finite(outputs)):
            if not finite:  # a view the network broke down on
                continue
            box = landmark_box(_apply(_invert(warp), marks))
            score = float(np.median(sigma)) / warp[0, 0] / max(box[2], 1.0)
            if score < best_score:
                best, best_score = box, score
        if best is None:
            raise _NoDetection(NON_FINITE)
        return best

    def _frame_mask(self, mask, warp, frame_shape):
        """
        Return the crop's mask in frame pixels, 0.5 (neither head nor background) outside it.

        Only the crop's footprint is warped: a head fills a small part of a phone's frame.
        """
        frame_mask = np.full(frame_shape[:2], 0.5, np.float32)
        # A pixel past the crop's edge still blends in its border pixels.
        part = _footprint(warp, self.size, frame_shape, 1.0 / warp[0, 0] + 1.0)
        if part is None:
            return frame_mask
        x0, y0, x1, y1 = part
        full = cv2.resize(mask.astype(np.float32), (self.size, self.size),
                          interpolation=cv2.INTER_LINEAR)
        frame_mask[y0:y1, x0:x1] = cv2.warpAffine(full, _invert(_shifted(warp, x0, y0)),
                                                  (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                                  borderValue=0.5)
        return frame_mask

    def detect(self, frame, box=None, refine=False):
        """
        Detect the head's landmarks in an RGB frame.

        ``box`` (centre x, centre y, side) from the previous frame seeds the crop; without
        one, a first pass over the frame finds the head and more crops refine the box before
        the final pass. ``refine`` (accuracy first, as for keyframes) refines a seeded box
        the same way, and searches the frame when the head is not in it.
        """
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f'expected an RGB frame (H, W, 3), got shape {frame.shape}')
        searched = box is None
        passes = 0
        try:
            if searched:
                passes += 1
                box = self._find_head(frame)
            for _ in range(REFINE_PASSES if searched or refine else 1):
                warp = self._crop_round(box)
                passes += 1
                landmarks, sigma, visibility, mask, found = self._pass(frame, warp)
                settled = (np.hypot(found[0] - box[0], found[1] - box[1]) < SETTLED * box[2]
                           and abs(found[2] / box[2] - 1.0) < SETTLED)
                box = found
                if settled:  # the crop was already where the head is: one more would agree
                    break
        except _NoDetection as exc:  # a broken model's frame is one without a head
            detection = Detection.nothing(frame.shape, str(exc), passes)
        else:
            detection = Detection(landmarks, sigma, visibility,
                                  self._frame_mask(mask, warp, frame.shape), box, passes)
        if refine and not searched and not detection.usable:
            return self.detect(frame)
        return detection

    def detect_mirrored(self, frame, box):
        """
        Return landmarks (N, 2) and sigma (N,) of the mirrored frame, in ``frame``'s pixels.

        One pass at the mirror of ``box``. The network sees another image of the same head, so
        its errors are partly its own; in ``frame`` these landmarks mark the template's points
        mirrored across the head's midplane (``template.mirrored``).
        """
        width = frame.shape[1]
        x, y, side = box
        # cv2.flip: a tenth of the time of numpy's reversed copy of a phone frame. Only the
        # landmarks are wanted: no frame-sized mask (0.7 ms, 3.7 MB at 1280x720).
        try:
            landmarks, sigma = self._pass(cv2.flip(frame, 1),
                                          self._crop_round((width - 1 - x, y, side)))[:2]
        except _NoDetection:  # NaN landmarks: pose solving leaves them out
            count = int(self.config.get('landmarks', 0))
            return np.full((count, 2), np.nan), np.full(count, np.nan)
        landmarks[:, 0] = width - 1 - landmarks[:, 0]
        return landmarks, sigma

    def _crop_round(self, box):
        """Return the warp of the network's crop round head box ``box``, with its margin."""
        return square_warp(box[:2], max(box[2] * CROP_OVER_HEAD, 16.0), self.size)


def _model_config(session, path):
    """Return the model config a landmark model's metadata keeps; ModelError without one."""
    text = session.get_modelmeta().custom_metadata_map.get('model_config')
    if text is None:
        raise ModelError(f'{path} is not a head_capture landmark model '
                         '(no model_config in its metadata)')
    try:
        config = json.loads(text)
        int(config['input_size'])
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f'{path}: its model_config has no input_size ({exc})') from exc
    return config


def signature_problems(inputs, outputs, size, landmarks=None):
    """
    Return how a model's inputs and outputs differ from what the runtime feeds and reads.

    ``inputs`` and ``outputs``: onnxruntime's NodeArgs (name, type, shape); ``size`` and
    ``landmarks``: the crop side and landmark count the model's config states. Sizes the file
    leaves free (or names) are not checked; an output the runtime does not read is allowed.
    """
    sizes = {'S': size, 'N': landmarks}
    problems = [f'input {arg.name!r} is not one the runtime feeds' for arg in inputs
                if arg.name != MODEL_INPUT[0]]
    for role, args, wanted in (('input', inputs, (MODEL_INPUT,)),
                               ('output', outputs, MODEL_OUTPUTS)):
        found = {arg.name: arg for arg in args}
        for name, kind, shape in wanted:
            arg = found.get(name)
            if arg is None:
                problems.append(f'no {role} {name!r}')
                continue
            if arg.type != kind:
                problems.append(f'{role} {name!r} is {arg.type}, expected {kind}')
            expected = [sizes.get(d, d) for d in shape]
            given = list(arg.shape) if arg.shape is not None else None
            if given is not None and (len(given) != len(expected) or any(
                    isinstance(g, int) and isinstance(e, int) and g != e
                    for g, e in zip(given, expected))):
                problems.append(f'{role} {name!r} has shape {given}, expected '
                                f'{["any" if e is None else e for e in expected]}')
    return problems


def _finite(outputs):
    """Return per crop of a batch whether every network output for it is finite."""
    return np.all([np.isfinite(out).reshape(len(out), -1).all(1) for out in outputs], axis=0)


def default_model_path():
    """Return the shipped model's path, or ``$HEAD_CAPTURE_LANDMARK_MODEL`` when set."""
    from head_capture.resources import share_path

    override = os.environ.get('HEAD_CAPTURE_LANDMARK_MODEL')
    return Path(override) if override else share_path('models', 'head_landmarks.onnx')
