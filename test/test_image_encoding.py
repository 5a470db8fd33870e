"""ROS image fields <-> RGB arrays for every supported encoding."""

import cv2
from head_capture.capture.image_encoding import (decode_compressed, decode_raw,
                                                 encode_compressed, encode_raw,
                                                 ImageDecodeError)
import numpy as np
import pytest

RED = np.array([255, 0, 0], np.uint8)


@pytest.fixture
def image(rng):
    pixels = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    pixels[0, 0] = RED
    return pixels


def fields(pixels, encoding, pad=0, bigendian=False):
    """Lay ``pixels`` (already in the encoding's channel order) out as message fields."""
    if bigendian:
        pixels = pixels.astype(pixels.dtype.newbyteorder('>'))
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    rows = np.pad(rows, ((0, 0), (0, pad)))
    return encoding, pixels.shape[0], pixels.shape[1], rows.shape[1], rows.tobytes()


@pytest.mark.parametrize('encoding, layout', [
    ('rgb8', lambda p: p), ('bgr8', lambda p: p[:, :, ::-1]),
    ('rgba8', lambda p: np.dstack([p, np.full(p.shape[:2], 7, np.uint8)])),
    ('bgra8', lambda p: np.dstack([p[:, :, ::-1], np.full(p.shape[:2], 7, np.uint8)])),
])
def test_colour_encodings_with_row_padding(image, encoding, layout):
    decoded = decode_raw(*fields(np.ascontiguousarray(layout(image)), encoding, pad=5))
    np.testing.assert_array_equal(decoded, image)
    np.testing.assert_array_equal(decoded[0, 0], RED)


def test_mono_is_replicated_to_three_channels(image):
    gray = image[:, :, 1].copy()
    decoded = decode_raw(*fields(gray, 'mono8'))
    np.testing.assert_array_equal(decoded, np.dstack([gray] * 3))


@pytest.mark.parametrize('bigendian', [False, True])
def test_sixteen_bit_encodings_keep_the_high_byte(image, bigendian):
    wide = image.astype(np.uint16) * 257
    np.testing.assert_array_equal(
        decode_raw(*fields(wide, 'rgb16', bigendian=bigendian), is_bigendian=bigendian), image)
    np.testing.assert_array_equal(decode_raw(*fields(wide[:, :, ::-1].copy(), 'bgr16')), image)
    mono = decode_raw(*fields(wide[:, :, 0].copy(), 'mono16'))
    np.testing.assert_array_equal(mono[:, :, 0], image[:, :, 0])


@pytest.mark.parametrize('encoding, to_yuv', [
    ('yuv422', cv2.COLOR_YUV2RGB_UYVY), ('yuv422_yuy2', cv2.COLOR_YUV2RGB_YUY2)])
def test_yuv422_encodings(encoding, to_yuv):
    # A flat colour survives 4:2:2 subsampling; pack its BT.601 video-range Y, U, V bytes.
    rgb = np.full((4, 8, 3), (200, 120, 40), np.uint8)
    bt601 = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0],
                      [112.0, -93.786, -18.214]])
    y, u, v = np.round(bt601 @ (rgb[0, 0] / 255.0) + (16, 128, 128)).astype(np.uint8)
    pair = [u, y, v, y] if to_yuv == cv2.COLOR_YUV2RGB_UYVY else [y, u, y, v]
    packed = np.tile(np.array(pair, np.uint8), (4, 4))
    decoded = decode_raw(encoding, 4, 8, 16, packed.tobytes())
    np.testing.assert_allclose(decoded.astype(int), rgb.astype(int), atol=6)


def test_encode_raw_round_trips(image):
    for encoding in ('rgb8', 'bgr8'):
        np.testing.assert_array_equal(decode_raw(*encode_raw(image, encoding)), image)
    mono = decode_raw(*encode_raw(image, 'mono8'))
    assert mono.shape == image.shape
    with pytest.raises(ValueError, match='cannot encode'):
        encode_raw(image, 'yuv422')


@pytest.mark.parametrize('args, message', [
    (('rgb9', 2, 2, 6, bytes(12)), 'unsupported image encoding'),
    (('rgb8', 2, 2, 6, bytes(11)), 'needs rows of 6 bytes'),
    (('rgb8', 2, 2, 4, bytes(12)), 'needs rows of 6 bytes'),
    (('mono8', 0, 2, 2, b''), 'empty image'),
])
def test_bad_raw_images_are_refused(args, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_raw(*args)


def test_compressed_round_trip_and_corruption(image):
    big = cv2.resize(image, (64, 48), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(decode_compressed('png', encode_compressed(big, 'png')), big)
    jpeg = decode_compressed('rgb8; jpeg compressed bgr8', encode_compressed(big, 'jpeg', 95))
    assert np.abs(jpeg.astype(int) - big.astype(int)).mean() < 12
    with pytest.raises(ImageDecodeError, match='does not decode'):
        decode_compressed('jpeg', b'\xff\xd8 definitely not a jpeg')
    with pytest.raises(ValueError, match='choose jpeg or png'):
        encode_compressed(big, 'gif')
