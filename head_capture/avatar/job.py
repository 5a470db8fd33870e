"""
The avatar trainer as a child process of a live capture, followed through its event log.

Training takes minutes to hours; the process that starts it (the ROS node) must keep serving.
``TrainingJob`` freezes the session's registered keyframes into ``training_transforms.json``
(the capture may go on), runs ``head-capture train --refine`` on it in a child process
(which first bundle-adjusts the keyframes' cameras, ``capture.refine``), and reads the
new lines of its ``events.jsonl`` when polled. ``cancel`` asks the child to stop (SIGTERM: it
checkpoints at its next step and exits). A run that was stopped or killed is resumed from its
checkpoint by the next start; a finished one is kept and the next start trains a new one.
"""

from collections import Counter
import json
from pathlib import Path
import subprocess
import sys

from head_capture.avatar import TrainingError
from head_capture.avatar.trainer import CHECKPOINT, EVENTS
from head_capture.session import read_transforms, SessionError, TRAINING_TRANSFORMS, \
    TRANSFORMS_FILE, write_transforms

METRICS = 'metrics.json'
LOG = 'trainer.log'
# The progress a step event carries, in this order: what the ROS node publishes as numbers.
PROGRESS_FIELDS = ('stage', 'step', 'steps', 'psnr', 'eta_s')
# How long a stopping child may take to write its checkpoint before it is killed.
STOP_WAIT_S = 30.0


def progress_values(event):
    """Return a step event's PROGRESS_FIELDS as floats (NaN where unknown), None for others."""
    if event.get('event') != 'step':
        return None
    return [float('nan') if event.get(k) is None else float(event[k]) for k in PROGRESS_FIELDS]


def registered_keyframes(session_dir, min_frames):
    """Return the session's Transforms cut to its registered keyframes; refuse too few."""
    session_dir = Path(session_dir)
    try:
        transforms = read_transforms(session_dir / TRANSFORMS_FILE)
    except (SessionError, OSError) as exc:
        raise TrainingError(f'no registered keyframes yet in {session_dir} ({exc})') from exc
    refused = Counter(f.meta.get('unregistered', 'no pose yet') for f in transforms.frames
                      if f.c2w is None)
    transforms.frames = [f for f in transforms.frames if f.c2w is not None]
    if len(transforms.frames) < min_frames:
        why = '; '.join(f'{count} x {reason}' for reason, count in refused.most_common(3))
        raise TrainingError(f'{len(transforms.frames)} registered keyframes in {session_dir}; '
                            f'at least {min_frames} are needed'
                            + (f' (the others: {why})' if why else ''))
    return transforms


class TrainingJob:
    """One training run of a session's keyframes in a child process."""

    def __init__(self, session_dir, config='cpu_preview', overrides=(), min_frames=8):
        self.session = Path(session_dir)
        self.config, self.overrides, self.min_frames = config, list(overrides), min_frames
        self.process, self.out, self._log = None, None, None
        self._offset, self.last_event, self.cancelled = 0, None, False

    @property
    def running(self):
        """Whether the child is still training."""
        return self.process is not None and self.process.poll() is None

    def start(self):
        """Freeze the keyframes and start the child; return what was started."""
        if self.running:
            raise TrainingError(f'already training into {self.out}')
        transforms = registered_keyframes(self.session, self.min_frames)
        self.out, resume = self._output_dir()
        if not resume:
            write_transforms(self.session / TRAINING_TRANSFORMS, transforms)
        command = [sys.executable, '-m', 'head_capture.cli', 'train',
                   str(self.session / TRAINING_TRANSFORMS), '--config', self.config,
                   '--out', str(self.out)] + [f'--set={o}' for o in self.overrides]
        if resume:
            command.append('--resume')
        else:  # bundle-adjust the keyframes' PnP cameras before stage 1
            command.append('--refine')
        self.out.mkdir(parents=True, exist_ok=True)
        # A resumed run appends to its event log: only what this child writes is news.
        events = self.out / EVENTS
        self._offset = events.stat().st_size if events.exists() else 0
        self.last_event, self.cancelled = None, False
        self._log = open(self.out / LOG, 'ab')
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        what = 'resuming' if resume else 'training'
        return f'{what} {len(transforms.frames)} keyframes ({self.config}) into {self.out}'

    def _output_dir(self):
        """Return the run directory and whether it holds an unfinished run to resume."""
        number = 1
        while True:
            out = self.session / ('avatar' if number == 1 else f'avatar_{number}')
            if not (out / CHECKPOINT).exists():
                return out, False
            if not (out / METRICS).exists():
                return out, True
            number += 1

    def poll(self):
        """Return the events written since the last poll."""
        if self.out is None or not (self.out / EVENTS).exists():
            return []
        with open(self.out / EVENTS, 'rb') as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        complete = chunk[:chunk.rfind(b'\n') + 1]  # a line being written waits for next time
        self._offset += len(complete)
        events = [json.loads(line) for line in complete.decode().splitlines() if line.strip()]
        if events:
            self.last_event = events[-1]
        return events

    @property
    def returncode(self):
        """Return the child's exit status, None while it runs or before a start."""
        return None if self.process is None else self.process.poll()

    def result(self):
        """Return the finished avatar's description: its directory, every file, metrics."""
        metrics = json.loads((self.out / METRICS).read_text())
        files = {path.relative_to(self.out).as_posix(): str(path)
                 for path in sorted(self.out.rglob('*')) if path.is_file()}
        return {'avatar_dir': str(self.out), 'files': files, 'metrics': metrics}

    def cancel(self):
        """Ask the child to checkpoint and exit (no wait); False when nothing is training."""
        if not self.running:
            return False
        self.process.terminate()
        self.cancelled = True
        return True

    def stopped_summary(self):
        """Return where a cancelled run stopped and what the next start does."""
        event = self.last_event or {}
        if event.get('event') == 'stopped':
            return (f'cancelled at stage {event["stage"]} step {event["step"]} of '
                    f'{event["steps"]}; checkpoint kept in {self.out / CHECKPOINT}: the next '
                    'train request resumes it')
        if self.out is not None and (self.out / CHECKPOINT).exists():
            return (f'cancelled; the last checkpoint in {self.out / CHECKPOINT}: the next '
                    'train request resumes it')
        return 'cancelled before the trainer started: the next train request starts afresh'

    def log_tail(self, lines=5):
        """Return the last lines of the child's output, for error messages."""
        path = self.out / LOG if self.out else None
        if path is None or not path.exists():
            return ''
        return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])

    def stop(self):
        """Stop the child and wait (it checkpoints first: the next start resumes it)."""
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
