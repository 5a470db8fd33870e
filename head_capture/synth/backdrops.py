"""
Backgrounds behind the synthetic heads: real photographs, rooms and studios, not blobs.

A detector trained in front of coloured blobs and gradients finds heads in a studio's lamps,
cables and walls. What stands behind a seated person is a room: walls meeting in a corner, a
floor line, windows and doors, shelves, screens, light stands with softboxes, cables, posters.
``room`` paints such a scene in perspective from a few dozen shapes; ``photo`` cuts a random
piece of one of the real photographs scikit-image ships in its wheel (BSD-licensed, the two
with people left out, so no real head is ever a background); ``sample_backdrop`` mixes them
with the older textured scenes and plain walls, then defocuses some as a phone's lens would.
"""

from functools import lru_cache
from importlib import resources

import cv2
from head_capture.synth.sample_clip import textured_scene
import numpy as np

# scikit-image's bundled photographs without people (astronaut and camera show one each).
PHOTO_FILES = ('brick.png', 'chelsea.png', 'coffee.png', 'coins.png', 'grass.png',
               'gravel.png', 'motorcycle_left.png', 'motorcycle_right.png', 'rocket.jpg',
               'clock_motion.png', 'color.png', 'page.png', 'text.png')
# Wall paints: whites, greys, beiges, muted colours (sRGB).
WALL_PAINTS = np.array([[235, 233, 228], [215, 212, 205], [190, 188, 185], [150, 150, 152],
                        [225, 215, 195], [200, 185, 160], [170, 190, 200], [185, 200, 180],
                        [90, 95, 100], [60, 60, 65], [30, 30, 32], [200, 170, 150]], np.float32)
# Shares of each kind of backdrop: photograph, room or studio, textured scene, plain wall.
KIND_SHARES = (0.3, 0.45, 0.15, 0.1)


@lru_cache(maxsize=1)
def bundled_photos():
    """Return scikit-image's bundled photographs as RGB uint8 arrays (empty without it)."""
    try:
        folder = resources.files('skimage') / 'data'
    except ModuleNotFoundError:
        return ()
    photos = []
    for name in PHOTO_FILES:
        path = folder / name
        if not path.is_file():
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            photos.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return tuple(photos)


def photo(rng, size, photos=None):
    """Return a size² piece of a bundled photograph: random zoom, flip and colour cast."""
    photos = bundled_photos() if photos is None else photos
    if not photos:
        return room(rng, size)
    source = photos[rng.integers(len(photos))]
    height, width = source.shape[:2]
    side = int(min(height, width) * rng.uniform(0.25, 1.0))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    piece = cv2.resize(source[top:top + side, left:left + side], (size, size),
                       interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        piece = piece[:, ::-1]
    cast = rng.uniform(0.75, 1.2, 3) * rng.uniform(0.6, 1.3)
    return np.clip(piece * cast, 0, 255).astype(np.uint8)


def room(rng, size):
    """Paint a room or studio behind a seated person, in a roughly level perspective."""
    canvas = np.empty((size, size, 3), np.float32)
    corner = int(rng.uniform(-0.3, 1.3) * size)
    floor = int(rng.uniform(0.55, 1.4) * size)
    left, right = (WALL_PAINTS[rng.integers(len(WALL_PAINTS))] * rng.uniform(0.85, 1.1, 3)
                   for _ in range(2))
    columns = np.arange(size)[None, :, None]
    rows = np.arange(size)[:, None, None]
    canvas[:] = np.where(columns < corner, left, right)
    # Light falls off across each wall; the floor is darker and warmer.
    canvas *= 1.0 - 0.35 * rng.random() * np.abs(columns - corner) / size
    floor_colour = WALL_PAINTS[rng.integers(len(WALL_PAINTS))] * [0.8, 0.7, 0.6]
    tilt = rng.uniform(-0.15, 0.15)
    canvas = np.where(rows > floor + tilt * (columns - corner), floor_colour, canvas)
    image = _wall_grain(canvas, rng)
    painters = (_window, _door, _shelf, _screen, _light_stand, _cable, _poster, _plant,
                _furniture)
    for _ in range(rng.integers(2, 9)):
        painters[rng.integers(len(painters))](image, rng, size)
    return image


def _wall_grain(canvas, rng):
    """Add plaster grain and a soft shading blob, as a phone's noisy wall shows."""
    size = canvas.shape[0]
    grain = rng.normal(0.0, rng.uniform(1.0, 6.0), (size, size, 1))
    low = cv2.resize(rng.random((4, 4)).astype(np.float32), (size, size),
                     interpolation=cv2.INTER_CUBIC)[..., None]
    return np.clip(canvas * (0.85 + 0.3 * low) + grain, 0, 255).astype(np.uint8)


def _colour(rng, low=0, high=256):
    return tuple(int(c) for c in rng.integers(low, high, 3))


def _rect(rng, size, low=0.1, high=0.6):
    w, h = (int(size * rng.uniform(low, high)) for _ in range(2))
    x, y = int(rng.uniform(-0.2, 1.0) * size), int(rng.uniform(-0.2, 0.9) * size)
    return x, y, w, h


def _window(image, rng, size):
    """Paint a bright, often blown-out window with its frame and bars."""
    x, y, w, h = _rect(rng, size, 0.2, 0.7)
    brightness = rng.uniform(200, 255)
    sky = np.array([brightness, brightness, min(255.0, brightness * rng.uniform(1.0, 1.15))])
    cv2.rectangle(image, (x, y), (x + w, y + h), sky.tolist(), -1)
    frame = _colour(rng, 150, 256) if rng.random() < 0.6 else _colour(rng, 20, 90)
    thickness = int(rng.integers(2, 8))
    cv2.rectangle(image, (x, y), (x + w, y + h), frame, thickness)
    cv2.line(image, (x + w // 2, y), (x + w // 2, y + h), frame, thickness)
    if rng.random() < 0.5:
        cv2.line(image, (x, y + h // 2), (x + w, y + h // 2), frame, thickness)


def _door(image, rng, size):
    """Paint a door with its frame and handle."""
    x, y, w, h = _rect(rng, size, 0.2, 0.4)
    h = int(size * rng.uniform(0.7, 1.3))
    cv2.rectangle(image, (x, y), (x + w, y + h), _colour(rng, 40, 230), -1)
    cv2.rectangle(image, (x, y), (x + w, y + h), _colour(rng, 0, 120), int(rng.integers(2, 6)))
    cv2.circle(image, (x + int(0.85 * w), y + h // 2), max(2, w // 20), _colour(rng, 120, 230),
               -1)


def _shelf(image, rng, size):
    """Paint a shelf of books and boxes: rows of narrow rectangles of any colour."""
    x, y, w, h = _rect(rng, size, 0.3, 0.8)
    board = _colour(rng, 60, 200)
    rows = int(rng.integers(1, 4))
    for row in range(rows):
        base = y + (row + 1) * h // rows
        cv2.line(image, (x, base), (x + w, base), board, int(rng.integers(3, 8)))
        position = x
        while position < x + w:
            width = int(rng.integers(max(2, size // 80), max(3, size // 15)))
            height = int(rng.uniform(0.4, 0.95) * h / rows)
            cv2.rectangle(image, (position, base - height), (position + width, base - 3),
                          _colour(rng), -1)
            position += width + int(rng.integers(0, 3))


def _screen(image, rng, size):
    """Paint a monitor or TV: a dark bezel round a bright picture."""
    x, y, w, h = _rect(rng, size, 0.15, 0.5)
    h = int(w * rng.uniform(0.5, 0.7))
    cv2.rectangle(image, (x, y), (x + w, y + h), _colour(rng, 0, 40), -1)
    inner = image[max(y + 4, 0):max(y + h - 4, 0), max(x + 4, 0):max(x + w - 4, 0)]
    if inner.size:
        inner[:] = cv2.resize(textured_scene(64, 64, rng), inner.shape[1::-1]) * 0.6 + 90
    cv2.line(image, (x + w // 2, y + h), (x + w // 2, y + h + h // 3), _colour(rng, 0, 60), 4)


def _light_stand(image, rng, size):
    """Paint a studio light: a thin stand with legs and a softbox, umbrella or bare lamp."""
    x = int(rng.uniform(0.0, 1.0) * size)
    top = int(rng.uniform(-0.1, 0.5) * size)
    bottom = int(rng.uniform(0.9, 1.5) * size)
    stand = _colour(rng, 10, 70)
    cv2.line(image, (x, top), (x, bottom), stand, int(rng.integers(2, 5)))
    for spread in (-1, 1, 0):
        cv2.line(image, (x, bottom - size // 8), (x + spread * size // 10, bottom), stand, 2)
    head = int(size * rng.uniform(0.08, 0.3))
    kind = rng.integers(3)
    if kind == 0:  # softbox: a bright rectangle or octagon, blown out in the middle
        centre = (x, top)
        points = cv2.ellipse2Poly(centre, (head, int(head * rng.uniform(0.7, 1.3))),
                                  int(rng.uniform(0, 30)), 0, 360, 45)
        cv2.fillConvexPoly(image, points, _colour(rng, 20, 60))
        inner = cv2.ellipse2Poly(centre, (int(head * 0.85), int(head * 0.8)), 0, 0, 360, 45)
        cv2.fillConvexPoly(image, inner, (250, 250, 248))
    elif kind == 1:  # umbrella
        cv2.ellipse(image, (x, top), (head, head // 2), 0, 180, 360,
                    (240, 240, 240) if rng.random() < 0.7 else _colour(rng, 0, 60), -1)
    else:  # a bare lamp: a small bright disc in a dark housing
        cv2.circle(image, (x, top), head // 3, _colour(rng, 0, 50), -1)
        cv2.circle(image, (x, top), head // 5, (255, 255, 240), -1)


def _cable(image, rng, size):
    """Paint a cable: a sagging dark curve across the scene."""
    start = rng.uniform(-0.2, 1.2, 2) * size
    end = rng.uniform(-0.2, 1.2, 2) * size
    sag = rng.uniform(0.0, 0.4) * size
    t = np.linspace(0.0, 1.0, 24)[:, None]
    curve = start + (end - start) * t + np.array([0.0, sag]) * 4 * t * (1 - t)
    cv2.polylines(image, [curve.astype(np.int32)], False, _colour(rng, 0, 80),
                  int(rng.integers(1, 5)), cv2.LINE_AA)


def _poster(image, rng, size):
    """Paint a framed picture: a piece of a photograph."""
    x, y, w, h = _rect(rng, size, 0.12, 0.45)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, size), min(y + h, size)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    image[y0:y1, x0:x1] = cv2.resize(photo(rng, 64), (x1 - x0, y1 - y0))
    cv2.rectangle(image, (x0, y0), (x1, y1), _colour(rng, 0, 256), int(rng.integers(1, 6)))


def _plant(image, rng, size):
    """Paint a pot plant: a cluster of green leaves over a pot."""
    x, y = int(rng.uniform(0, 1) * size), int(rng.uniform(0.3, 1.0) * size)
    reach = int(size * rng.uniform(0.05, 0.2))
    for _ in range(int(rng.integers(8, 25))):
        centre = (x + int(rng.normal(0, reach)), y - int(abs(rng.normal(0, reach))))
        green = (int(rng.uniform(20, 90)), int(rng.uniform(70, 170)), int(rng.uniform(20, 80)))
        cv2.ellipse(image, centre, (max(2, reach // 3), max(1, reach // 8)),
                    float(rng.uniform(0, 180)), 0, 360, green, -1)
    cv2.rectangle(image, (x - reach // 2, y), (x + reach // 2, y + reach), _colour(rng, 40, 200),
                  -1)


def _furniture(image, rng, size):
    """Paint a sofa, desk or cupboard: a large block low in the scene, its top edge lit."""
    x, y, w, h = _rect(rng, size, 0.3, 0.9)
    y = int(rng.uniform(0.5, 0.95) * size)
    colour = np.array(_colour(rng, 20, 220), float)
    cv2.rectangle(image, (x, y), (x + w, y + h), colour.tolist(), -1)
    cv2.rectangle(image, (x, y), (x + w, y + max(2, h // 10)),
                  (colour * 1.2).clip(0, 255).tolist(), -1)


def gradient_wall(rng, size):
    """Return a plain wall lit from one side: a colour ramp."""
    ramp = np.linspace(0.0, 1.0, size)[None, :, None]
    low, high = rng.uniform(30, 230, 3), rng.uniform(30, 230, 3)
    return np.broadcast_to(low + (high - low) * ramp, (size, size, 3)).astype(np.uint8)


def sample_backdrop(rng, size):
    """Return a size² RGB background of a random kind, defocused now and then."""
    kind = rng.choice(len(KIND_SHARES), p=KIND_SHARES)
    if kind == 0:
        background = photo(rng, size)
    elif kind == 1:
        background = room(rng, size)
    elif kind == 2:
        background = textured_scene(size * 2, size * 2, rng)[:size, :size]
    else:
        background = gradient_wall(rng, size)
    if rng.random() < 0.5:
        background = cv2.GaussianBlur(background, (0, 0), rng.uniform(1.0, 6.0))
    return np.ascontiguousarray(background, np.uint8)
