"""
Throughput of blur scoring + the online keyframe decision on 1280x720 frames.

Frames are a hand-held pan over a textured scene held in memory, so the number is the
selector's cost alone (decoding is not included). Target: at least 200 frames/s on 2 cores.

    python bench/keyframe_throughput.py --out bench/results/keyframe_throughput.json
"""

import argparse
import time

from common import save
import cv2
from head_capture.capture.keyframes import OnlineKeyframeSelector
from head_capture.capture.sharpness import assess_frame
from head_capture.capture.sources import Frame
from head_capture.synth.sample_clip import textured_scene
import numpy as np


def timed(step, frames, repeats):
    """Return frames per second of ``step`` over ``repeats`` passes of ``frames``."""
    step(frames[0])
    start = time.perf_counter()
    for _ in range(repeats):
        for frame in frames:
            step(frame)
    return repeats * len(frames) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='bench/results/keyframe_throughput.json')
    parser.add_argument('--repeats', type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    scene = textured_scene(1280 + 240, 720, rng)
    images = [np.ascontiguousarray(scene[:, 4 * n:4 * n + 1280]) for n in range(60)]
    frames = [Frame(n, n / 30.0, image) for n, image in enumerate(images)]
    selector = OnlineKeyframeSelector()
    clock = iter(range(10 ** 9))

    def decide(frame):
        n = next(clock)
        selector.update(Frame(n, n / 30.0, frame.image))

    result = {
        'benchmark': 'online keyframe decision, 1280x720 RGB frames',
        'frame_size': [1280, 720],
        'frames_timed': args.repeats * len(frames),
        'blur_score_fps': round(timed(lambda f: assess_frame(f.image), frames, args.repeats), 1),
        'online_decision_fps': round(timed(decide, frames, args.repeats), 1),
        'target_fps': 200,
    }
    print(result)
    save(args.out, result)


if __name__ == '__main__':
    cv2.setNumThreads(2)
    main()
