"""Image reading rules: RGB uint8 out, conversions documented, clear errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from ipt_ms.data.imageio import ImageReadError, image_size, list_images, read_image, to_uint8, write_image
from ipt_ms.errors import IPTError


def test_png_round_trip(tmp_path, photo):
    path = write_image(tmp_path / "sub" / "x.png", photo)
    got = read_image(path)
    assert got.dtype == np.uint8 and got.shape == photo.shape
    np.testing.assert_array_equal(got, photo)
    assert image_size(path) == photo.shape[:2]


def test_float_is_rounded_and_clipped_on_write(tmp_path):
    img = np.array([[[-3.0, 0.5, 1.49], [254.5, 300.0, 10.5]]], np.float32)
    np.testing.assert_array_equal(to_uint8(img), [[[0, 1, 1], [255, 255, 11]]])
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "f.png", img)), to_uint8(img))


def test_grayscale_becomes_rgb(tmp_path):
    gray = (np.arange(60).reshape(6, 10) * 4).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    got = read_image(tmp_path / "g.png")
    assert got.shape == (6, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(got[:, :, c], gray)


def test_alpha_is_dropped_not_composited(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 0  # fully transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    got = read_image(tmp_path / "a.png")
    assert got.shape == (4, 5, 3)
    np.testing.assert_array_equal(got[0, 0], [200, 100, 50])


def test_palette_image(tmp_path):
    two = np.zeros((6, 5, 3), np.uint8)
    two[:3] = (77, 10, 200)
    two[3:] = (5, 250, 30)
    Image.fromarray(two).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "p.gif")
    np.testing.assert_array_equal(read_image(tmp_path / "p.gif"), two)


def test_16bit_gray_and_rgb_become_8bit_with_warning(tmp_path, caplog):
    import cv2

    gray16 = np.array([[0, 257, 65535, 128, 129, 65000]], np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    rgb16 = np.zeros((2, 3, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 257 * 10, 0  # R, G, B
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    with caplog.at_level(logging.WARNING, logger="ipt_ms.data"):
        g = read_image(tmp_path / "g16.png")
        c = read_image(tmp_path / "c16.png")
    np.testing.assert_array_equal(g[0, :, 0], [0, 1, 255, 0, 1, 253])
    np.testing.assert_array_equal(c[0, 0], [255, 10, 0])  # true 16-bit decode, channel order kept
    messages = [r.getMessage() for r in caplog.records]
    assert any("g16.png" in m and "16-bit" in m for m in messages)
    assert any("c16.png" in m and "16-bit" in m for m in messages)


@pytest.mark.parametrize("kind", ["truncated_jpg", "truncated_png", "text", "empty", "missing"])
def test_unreadable_files_raise_naming_the_file(tmp_path, photo, kind):
    good_jpg = write_image(tmp_path / "good.jpg", photo).read_bytes()
    good_png = write_image(tmp_path / "good.png", photo).read_bytes()
    path = tmp_path / f"bad_{kind}.png"
    if kind == "truncated_jpg":
        path = tmp_path / "bad.jpg"
        path.write_bytes(good_jpg[: len(good_jpg) // 3])
    elif kind == "truncated_png":
        path.write_bytes(good_png[: len(good_png) // 3])
    elif kind == "text":
        path.write_text("this is not an image")
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, IPTError)


def test_list_images_sorted_recursive_and_errors(tmp_path, photo):
    for rel in ["b/2.png", "a/1.JPEG", "a/.hidden.png", "c.png", "notes.txt"]:
        p = tmp_path / "root" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith((".png", ".JPEG")):
            write_image(p.with_suffix(".png"), photo[:8, :8])
            p.with_suffix(".png").rename(p)
        else:
            p.write_text("x")
    found = [p.relative_to(tmp_path / "root").as_posix() for p in list_images(tmp_path / "root")]
    assert found == ["a/1.JPEG", "b/2.png", "c.png"]
    assert [p.name for p in list_images(tmp_path / "root", recursive=False)] == ["c.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(IPTError, match="empty"):
        list_images(tmp_path / "empty")
    with pytest.raises(IPTError, match="nope"):
        list_images(tmp_path / "nope")


@pytest.mark.parametrize("kind", ["baseline", "progressive", "gray", "cmyk", "trailing_bytes"])
def test_jpeg_fast_path_matches_pillow(tmp_path, photo, kind):
    from ipt_ms.data.imageio import _plain_jpeg

    path = tmp_path / f"{kind}.jpg"
    im = Image.fromarray(photo)
    if kind == "gray":
        im = im.convert("L")
    elif kind == "cmyk":
        im = im.convert("CMYK")
    im.save(path, quality=90, progressive=kind == "progressive")
    if kind == "trailing_bytes":
        path.write_bytes(path.read_bytes() + b"\0" * 10)
    raw = path.read_bytes()
    assert _plain_jpeg(raw) == (kind != "cmyk")  # CMYK goes through Pillow's conversion
    expected = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(read_image(path), expected)
    assert not _plain_jpeg(raw[: len(raw) // 2])  # truncated: no end-of-image marker


def _with_app_segments(raw: bytes, count: int) -> bytes:
    """`raw` (a JPEG) with `count` full-size APP15 segments before everything else: the frame
    header then starts past 64 KiB x count, beyond any fixed window a header reader might scan."""
    segment = b"\xff\xef" + (65535).to_bytes(2, "big") + b"\0" * 65533
    return raw[:2] + segment * count + raw[2:]


@pytest.mark.parametrize("case, words", [
    # between Pillow's warning and its error: our check, with the size the header claims
    ("bomb_1x", "claims 10000x10000 = 100,000,000 pixels"),
    # over twice the limit Pillow refuses on opening; the message is still ours, one line
    ("bomb_2x", "claims more than 89,478,485 pixels"),
    ("bomb_after_1MiB_of_markers", "pixels"),
    ("bomb_named_png", "pixels"),
    ("cut_before_frame_header", "cannot read image"),
    ("twelve_bit", "not a recognised image format"),  # Pillow reads 8-bit JPEGs only (as before)
])
def test_jpeg_headers_are_read_by_pillow_and_refused_before_decoding(tmp_path, case, words):
    """Pillow's lazy open reads the JPEG header (no hand-written marker walker): every bad or
    huge header is refused by `image_size` and `read_image` alike, naming the file, nothing decoded."""
    from tests.hostile import crafted

    small = crafted.jpeg_bytes(crafted.photo(16, 16))
    raw = {
        "bomb_1x": lambda: crafted.jpeg_claiming(10_000, 10_000),
        "bomb_2x": lambda: crafted.jpeg_claiming(20_000, 20_000),
        "bomb_after_1MiB_of_markers": lambda: _with_app_segments(crafted.jpeg_claiming(20_000, 20_000), 17),
        "bomb_named_png": lambda: crafted.jpeg_claiming(10_000, 10_000),
        "cut_before_frame_header": lambda: small[: small.index(b"\xff\xc0")],
        "twelve_bit": lambda: small[: small.index(b"\xff\xc0") + 4] + b"\x0c" + small[small.index(b"\xff\xc0") + 5:],
    }[case]()
    path = tmp_path / ("x.png" if case.endswith("png") else "x.jpg")
    path.write_bytes(raw)
    for read in (image_size, read_image):
        with pytest.raises(ImageReadError) as err:
            read(path)
        message = str(err.value)
        assert str(path) in message and words in message and "\n" not in message, message
    assert path.read_bytes() == raw


def test_jpeg_with_a_large_header_still_takes_the_fast_path(tmp_path, photo):
    """The frame header after 1 MiB of APP segments is found (Pillow reads every marker)."""
    from ipt_ms.data.imageio import _plain_jpeg

    buf = tmp_path / "big_header.jpg"
    Image.fromarray(photo).save(buf, quality=90)
    raw = _with_app_segments(buf.read_bytes(), 17)
    buf.write_bytes(raw)
    assert _plain_jpeg(raw)
    assert image_size(buf) == photo.shape[:2]
    np.testing.assert_array_equal(read_image(buf), np.asarray(Image.open(buf).convert("RGB")))
