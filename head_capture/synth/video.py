"""Write frames to a video file with PyAV (H.264 when available, else MPEG-4 part 2)."""

from pathlib import Path

import av
import numpy as np


def write_video(path, frames, fps=30, quality=20):
    """Encode an iterable of RGB uint8 frames (all one size) to ``path``; return the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with av.open(str(path), mode='w') as container:
        stream = None
        for image in frames:
            # yuv420p needs even sizes: drop a last odd row or column.
            image = np.ascontiguousarray(image[:image.shape[0] // 2 * 2, :image.shape[1] // 2 * 2])
            if stream is None:
                stream = _add_stream(container, fps, image.shape[1], image.shape[0], quality)
            frame = av.VideoFrame.from_ndarray(image, format='rgb24')
            container.mux(stream.encode(frame))
            count += 1
        if stream is not None:
            container.mux(stream.encode(None))
    return count


def _add_stream(container, fps, width, height, quality):
    codec = 'libx264' if 'libx264' in av.codecs_available else 'mpeg4'
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = 'yuv420p'
    stream.options = {'crf': str(quality)} if codec == 'libx264' else {'qscale': '3'}
    return stream
