"""
Throughput of the landmark training set: finished samples/s at 256² and 400² on this machine.

A sample is what `head-capture synth landmarks` writes: a new appearance every 8 views, a
textured head with hair volume under random light, composited on a random background, with
all 703 landmarks projected and tested for visibility. Compression and the disk write of a
shard are not included.

    python bench/render.py --out bench/results/render.json
"""

import argparse
import time

from common import save
from head_capture.synth.landmark_set import LandmarkSetConfig, LandmarkSetWriter


def samples_per_second(size, count):
    """Return samples/s of one shard of ``count`` samples at ``size``², after a warm-up."""
    writer = LandmarkSetWriter(LandmarkSetConfig(size=size, shard_size=count))
    writer.shard(10_000)
    start = time.perf_counter()
    writer.shard(0)
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='bench/results/render.json')
    parser.add_argument('--count', type=int, default=128)
    args = parser.parse_args()
    rates = {f'samples_per_s_{size}': round(samples_per_second(size, args.count), 1)
             for size in (256, 400)}
    result = {'benchmark': 'landmark training set samples (textured heads, OSMesa, 2 cores)',
              'samples_per_shard': args.count, **rates,
              'hours_for_100k_at_256': round(1e5 / rates['samples_per_s_256'] / 3600, 2)}
    print(result)
    save(args.out, result)


if __name__ == '__main__':
    main()
