"""
Rendering throughput of synthetic heads: images/s at 256² and 400² on this machine.

Each image is a new identity (anny, posed in batches) seen from a random camera on the
sphere, rendered with depth and all 703 landmarks projected and tested for visibility, which
is what the landmark training set needs per image. Appearance (skin, hair, clothing) is not
yet included.

    python bench/render.py --out bench/results/render.json
"""

import argparse
import time

from common import save
from head_capture.camera import Intrinsics
from head_capture.geometry import look_at_w2c
from head_capture.landmarks.template import HeadTemplate
from head_capture.resources import share_path
from head_capture.synth.heads import HeadModel, sample_phenotypes
from head_capture.synth.render import HeadRenderer, project_landmarks
import numpy as np


def throughput(model, template, size, count, rng):
    """Return images/s for ``count`` identities and views at ``size``²."""
    renderer = HeadRenderer(size, size)
    camera = Intrinsics.from_fov(size, size, 35.0)
    start = time.perf_counter()
    heads = model.vertices(sample_phenotypes(rng, count))
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    for vertices, direction in zip(heads, directions):
        rotation, translation = look_at_w2c(0.7 * direction, np.zeros(3),
                                            up=(0.0, 0.0, 1.0) if abs(direction[2]) < 0.95
                                            else (1.0, 0.0, 0.0))
        out = renderer.render(vertices, model.faces, camera, rotation, translation)
        project_landmarks(vertices[template.vertex_ids], camera, rotation, translation,
                          out.depth)
    elapsed = time.perf_counter() - start
    renderer.close()
    return count / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='bench/results/render.json')
    parser.add_argument('--count', type=int, default=200)
    args = parser.parse_args()
    model = HeadModel()
    template = HeadTemplate.load(share_path('models', 'head_template.json'))
    rng = np.random.default_rng(0)
    throughput(model, template, 256, 10, rng)  # warm-up: GL context, anny's first batch
    rates = {f'images_per_s_{size}': round(throughput(model, template, size, args.count, rng),
                                           1) for size in (256, 400)}
    result = {'benchmark': 'synthetic head rendering (geometry only, OSMesa)',
              'images': args.count, **rates,
              'hours_for_100k_at_256': round(1e5 / rates['images_per_s_256'] / 3600, 2)}
    print(result)
    save(args.out, result)


if __name__ == '__main__':
    main()
