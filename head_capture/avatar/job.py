"""
The avatar trainer as a child process of a live capture, followed through its event log.

Training takes minutes to hours; the process that starts it (the ROS node) must keep serving.
``TrainingJob`` freezes the session's registered keyframes into ``training_transforms.json``
(the capture may go on), runs ``head-capture train`` on it in a child process, and reads the
new lines of its ``events.jsonl`` when polled. A run that was killed is resumed from its
checkpoint by the next start; a finished one is kept and the next start trains a new one.
"""

from collections import Counter
import json
from pathlib import Path
import subprocess
import sys

from head_capture.avatar import TrainingError
from head_capture.avatar.trainer import CHECKPOINT, EVENTS, PREVIEW
from head_capture.session import read_transforms, SessionError, TRANSFORMS_FILE, \
    write_transforms

TRAINING_TRANSFORMS = 'training_transforms.json'
METRICS = 'metrics.json'
LOG = 'trainer.log'


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
        self._offset, self.last_event = 0, None

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
        self.out.mkdir(parents=True, exist_ok=True)
        self._log = open(self.out / LOG, 'ab')
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        self._offset = 0
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
        """Return the finished avatar's description: its directory, files and metrics."""
        metrics = json.loads((self.out / METRICS).read_text())
        files = {name: str(self.out / name) for name in
                 ('transforms.json', 'metrics.json', 'turntable.mp4', 'avatar.ply',
                  CHECKPOINT, PREVIEW) if (self.out / name).exists()}
        return {'avatar_dir': str(self.out), 'files': files, 'metrics': metrics}

    def log_tail(self, lines=5):
        """Return the last lines of the child's output, for error messages."""
        path = self.out / LOG if self.out else None
        if path is None or not path.exists():
            return ''
        return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])

    def stop(self):
        """Stop the child (its checkpoint is kept: the next start resumes it)."""
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
