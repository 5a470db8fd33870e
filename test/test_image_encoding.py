"""ROS image fields <-> RGB arrays for every supported encoding."""

import array

import cv2
from head_capture.capture.image_encoding import (decode_compressed, decode_raw,
                                                 encode_compressed, encode_raw,
                                                 ImageDecodeError)
from hypothesis import given, settings, strategies as st
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
    rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=0xAB)
    return encoding, pixels.shape[0], pixels.shape[1], rows.shape[1], rows.tobytes()


def with_alpha(pixels):
    return np.dstack([pixels, np.full(pixels.shape[:2], 7, pixels.dtype)])


@pytest.mark.parametrize('encoding, layout', [
    ('rgb8', lambda p: p), ('bgr8', lambda p: p[:, :, ::-1]), ('8UC3', lambda p: p[:, :, ::-1]),
    ('rgba8', with_alpha), ('bgra8', lambda p: with_alpha(p[:, :, ::-1])),
])
def test_colour_encodings_with_row_padding(image, encoding, layout):
    decoded = decode_raw(*fields(np.ascontiguousarray(layout(image)), encoding, pad=5))
    assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, image)
    np.testing.assert_array_equal(decoded[0, 0], RED)


@pytest.mark.parametrize('encoding', ['mono8', '8UC1'])
def test_mono_is_replicated_to_three_channels(image, encoding):
    gray = image[:, :, 1].copy()
    decoded = decode_raw(*fields(gray, encoding, pad=3))
    np.testing.assert_array_equal(decoded, np.dstack([gray] * 3))


@pytest.mark.parametrize('bigendian', [False, True])
def test_sixteen_bit_encodings_keep_the_high_byte(image, bigendian):
    # 257 * v keeps v in the high byte and puts v in the low byte too, so a swapped byte
    # order would only pass by accident: add 1 to make the low byte differ.
    wide = image.astype(np.uint16) * 257 + (image < 255)

    def decode(pixels, encoding):
        return decode_raw(*fields(pixels, encoding, pad=2, bigendian=bigendian),
                          is_bigendian=bigendian)

    np.testing.assert_array_equal(decode(wide, 'rgb16'), image)
    np.testing.assert_array_equal(decode(wide[:, :, ::-1].copy(), 'bgr16'), image)
    np.testing.assert_array_equal(decode(with_alpha(wide), 'rgba16'), image)
    np.testing.assert_array_equal(decode(with_alpha(wide[:, :, ::-1]), 'bgra16'), image)
    mono = decode(wide[:, :, 0].copy(), 'mono16')
    np.testing.assert_array_equal(mono, np.dstack([image[:, :, 0]] * 3))


@pytest.mark.parametrize('encoding, to_yuv', [
    ('yuv422', cv2.COLOR_YUV2RGB_UYVY), ('uyvy', cv2.COLOR_YUV2RGB_UYVY),
    ('yuv422_yuy2', cv2.COLOR_YUV2RGB_YUY2), ('yuyv', cv2.COLOR_YUV2RGB_YUY2)])
def test_yuv422_encodings(encoding, to_yuv):
    # A flat colour survives 4:2:2 subsampling; pack its BT.601 video-range Y, U, V bytes.
    rgb = np.full((4, 8, 3), (200, 120, 40), np.uint8)
    bt601 = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0],
                      [112.0, -93.786, -18.214]])
    y, u, v = np.round(bt601 @ (rgb[0, 0] / 255.0) + (16, 128, 128)).astype(np.uint8)
    pair = [u, y, v, y] if to_yuv == cv2.COLOR_YUV2RGB_UYVY else [y, u, y, v]
    packed = np.pad(np.tile(np.array(pair, np.uint8), (4, 4)), ((0, 0), (0, 4)))
    decoded = decode_raw(encoding, 4, 8, 20, packed.tobytes())
    np.testing.assert_allclose(decoded.astype(int), rgb.astype(int), atol=6)


def test_any_buffer_is_accepted_and_never_shared(image):
    encoding, height, width, step, data = encode_raw(image)
    buffers = [bytearray(data), memoryview(data), array.array('B', data),
               np.frombuffer(data, np.uint8)]
    for buffer in buffers:
        decoded = decode_raw(encoding, height, width, step, buffer)
        np.testing.assert_array_equal(decoded, image)
        decoded[0, 0] = 0
    np.testing.assert_array_equal(buffers[-1][:3], RED)


def test_encode_raw_round_trips(image):
    for encoding in ('rgb8', 'bgr8'):
        np.testing.assert_array_equal(decode_raw(*encode_raw(image, encoding)), image)
    assert encode_raw(image, 'bgr8')[4][:3] == bytes(RED[::-1])
    mono = decode_raw(*encode_raw(image, 'mono8'))
    assert mono.shape == image.shape
    np.testing.assert_array_equal(mono[:, :, 0], cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    with pytest.raises(ValueError, match='cannot encode'):
        encode_raw(image, 'yuv422')
    with pytest.raises(ValueError, match='RGB uint8 HxWx3'):
        encode_raw(image.astype(np.float32))


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 9), width=st.integers(1, 9), pad=st.integers(0, 7),
       encoding=st.sampled_from(['rgb8', 'bgr8', 'mono8']), seed=st.integers(0, 2**16))
def test_published_images_decode_back_with_any_padding(height, width, pad, encoding, seed):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    _, rows, cols, step, data = encode_raw(image, encoding)
    padded = np.pad(np.frombuffer(data, np.uint8).reshape(rows, step), ((0, 0), (0, pad)))
    decoded = decode_raw(encoding, rows, cols, step + pad, padded.tobytes())
    expected = image if encoding != 'mono8' else np.dstack(
        [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)] * 3)
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize('args, message', [
    (('rgb9', 2, 2, 6, bytes(12)), 'unsupported image encoding'),
    (('16UC1', 2, 2, 4, bytes(8)), 'unsupported image encoding'),
    (('rgb8', 2, 2, 6, bytes(11)), 'needs rows of 6 bytes'),
    (('rgb8', 2, 2, 6, bytes(13)), '12 bytes of data'),
    (('rgb8', 2, 2, 4, bytes(12)), 'needs rows of 6 bytes'),
    (('mono8', 0, 2, 2, b''), 'empty image'),
    (('yuv422', 2, 3, 6, bytes(12)), 'width 3 must be even'),
])
def test_bad_raw_images_are_refused(args, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_raw(*args)


def test_compressed_round_trip_and_corruption(image):
    big = cv2.resize(image, (64, 48), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(decode_compressed('png', encode_compressed(big, 'png')), big)
    jpeg = decode_compressed('rgb8; jpeg compressed bgr8', encode_compressed(big, 'jpeg', 95))
    assert np.abs(jpeg.astype(int) - big.astype(int)).mean() < 12
    red = decode_compressed('jpeg', encode_compressed(np.full((16, 16, 3), RED), 'jpeg'))
    np.testing.assert_allclose(red[8, 8], RED, atol=8)
    for data in (b'\xff\xd8 definitely not a jpeg', b''):
        with pytest.raises(ImageDecodeError, match='does not decode'):
            decode_compressed('jpeg', data)
    with pytest.raises(ValueError, match='choose jpeg or png'):
        encode_compressed(big, 'gif')
    with pytest.raises(ValueError, match='quality'):
        encode_compressed(big, 'jpeg', quality=120)


def test_grey_and_sixteen_bit_png_come_back_as_rgb8():
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    ok, png = cv2.imencode('.png', grey.astype(np.uint16) * 257)
    decoded = decode_compressed('mono16; png compressed mono16', png.tobytes())
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, np.dstack([grey] * 3))
