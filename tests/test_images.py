"""Tests for skdcec.images.load_images on real image files written to tmp_path."""

import os
import re
import threading
import warnings
from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin
from sklearn.datasets import load_sample_images

from skdcec import images as images_module
from skdcec.images import load_images

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


@pytest.fixture(scope="module")
def photo():
    """A 48 x 64 RGB crop of scikit-learn's china.jpg sample photograph."""
    return load_sample_images().images[0][100:148, 200:264].copy()


def save(image, path, **options):
    """Save a PIL image or a uint8 array to ``path`` and return it as str."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return str(path)


def solid(color, size=(16, 12)):
    return Image.new("RGB", size, color)


def stripes(colors, size):
    """An RGB image of ``size`` (width, height) made of equal vertical stripes."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    for i, color in enumerate(colors):
        pixels[:, i * width // len(colors) : (i + 1) * width // len(colors)] = color
    return pixels


def load_one(path, **params):
    """Load a single file at its own size unless told otherwise."""
    if "size" not in params:
        with Image.open(path) as image:
            params["size"] = (image.height, image.width)
    return load_images([path], **params).images[0]


# Sources, order and shapes -------------------------------------------------------


def test_folder_gives_sorted_paths_and_requested_shape(tmp_path, photo):
    """A folder yields all image files, nested ones included, in sorted path order."""
    names = ["b.png", "a.jpg", "c/d.bmp", "c/e/a.TIFF", "B.webp", "z.gif"]
    for name in names:
        save(photo, tmp_path / name)
    collection = load_images(tmp_path, size=(24, 40))
    assert collection.filenames == sorted(str(tmp_path / name) for name in names)
    assert collection.images.shape == (len(names), 24, 40, 3)
    assert collection.images.dtype == np.uint8
    assert collection.skipped == []


def test_recursive_false_keeps_top_level_only(tmp_path, photo):
    """With recursive=False a folder source ignores its subfolders."""
    save(photo, tmp_path / "top.png")
    save(photo, tmp_path / "sub" / "nested.png")
    collection = load_images(tmp_path, size=8, recursive=False)
    assert collection.filenames == [str(tmp_path / "top.png")]


def test_hidden_and_non_image_files_are_ignored(tmp_path, photo):
    """Hidden files and folders and other extensions are ignored; case is not."""
    save(photo, tmp_path / "UPPER.JPG")
    save(photo, tmp_path / ".hidden.jpg")
    save(photo, tmp_path / ".cache" / "inside.jpg")
    save(photo, tmp_path / "photo.ppm")
    (tmp_path / "notes.txt").write_text("not an image")
    collection = load_images(tmp_path, size=8)
    assert collection.filenames == [str(tmp_path / "UPPER.JPG")]


def test_size_is_height_then_width_and_int_is_square(tmp_path):
    """size=(height, width) follows NumPy order, and an int gives a square."""
    top_red_bottom_blue = np.zeros((40, 20, 3), dtype=np.uint8)
    top_red_bottom_blue[:20] = RED
    top_red_bottom_blue[20:] = BLUE
    path = save(top_red_bottom_blue, tmp_path / "tall.png")

    image = load_one(path, size=(30, 10))
    assert image.shape == (30, 10, 3)
    np.testing.assert_array_equal(image[:12].reshape(-1, 3).mean(axis=0), RED)
    np.testing.assert_array_equal(image[-12:].reshape(-1, 3).mean(axis=0), BLUE)
    assert load_one(path, size=16).shape == (16, 16, 3)


def test_glob_patterns_filter_and_sort(tmp_path, photo):
    """A glob pattern gives the matching image files in sorted order."""
    for name in ["b.png", "a.png", "c.jpg", "sub/d.png"]:
        save(photo, tmp_path / name)
    (tmp_path / "notes.png.txt").write_text("x")
    (tmp_path / "folder.png").mkdir()
    flat = load_images(str(tmp_path / "*.png"), size=8)
    assert flat.filenames == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    deep = load_images(str(tmp_path / "**" / "*.png"), size=8)
    assert deep.filenames == [str(tmp_path / name) for name in ["a.png", "b.png", "sub/d.png"]]
    shallow = load_images(str(tmp_path / "**" / "*.png"), size=8, recursive=False)
    assert shallow.filenames == [str(tmp_path / "sub/d.png")]


def test_list_source_keeps_given_order_and_any_extension(tmp_path, photo):
    """A list of paths is loaded in the given order, whatever the extensions."""
    first = save(photo[:, :32], tmp_path / "z.png")
    second = save(photo[:, 32:], tmp_path / "a.data", format="PNG")
    collection = load_images([tmp_path / "z.png", second], size=(48, 32))
    assert collection.filenames == [first, second]
    np.testing.assert_array_equal(collection.images[0], photo[:, :32])
    np.testing.assert_array_equal(collection.images[1], photo[:, 32:])


def test_single_file_source(tmp_path, photo):
    """A path to one image file loads that file."""
    path = save(photo, tmp_path / "one.png")
    collection = load_images(path, size=(48, 64))
    assert collection.filenames == [path]
    np.testing.assert_array_equal(collection.images[0], photo)


def test_symlink_loops_terminate_and_aliases_are_loaded_once(tmp_path, photo):
    """Links back to an ancestor do not loop; a linked folder is read once."""
    save(photo, tmp_path / "a.png")
    save(photo, tmp_path / "sub" / "b.png")
    os.symlink(tmp_path, tmp_path / "sub" / "back")
    os.symlink(tmp_path / "sub", tmp_path / "alias")
    os.symlink(tmp_path / "sub", tmp_path / "z_alias")
    os.symlink("self", tmp_path / "self")
    result = {}
    walker = threading.Thread(
        target=lambda: result.update(collection=load_images(tmp_path, size=8)),
        daemon=True,
    )
    walker.start()
    walker.join(timeout=20)
    assert not walker.is_alive(), "walking a folder with a link loop did not end"
    assert result["collection"].filenames == [
        str(tmp_path / "a.png"),
        str(tmp_path / "sub" / "b.png"),
    ]


def test_folder_reached_only_through_links_is_listed_under_first_link(tmp_path, photo):
    """A folder outside the source linked twice is read once, via the first name."""
    save(photo, tmp_path / "outside" / "c.png")
    (tmp_path / "source").mkdir()
    for name in ["link_b", "link_a", "link_c"]:
        os.symlink(tmp_path / "outside", tmp_path / "source" / name)
    collection = load_images(tmp_path / "source", size=8)
    assert collection.filenames == [str(tmp_path / "source" / "link_a" / "c.png")]


def test_parallel_decoding_matches_serial(tmp_path, photo):
    """Threads give the same images in the same order as serial decoding."""
    for i in range(8):
        save(np.roll(photo, 5 * i, axis=1), tmp_path / f"{i}.jpg")
    serial = load_images(tmp_path, size=(20, 30), n_jobs=1)
    parallel = load_images(tmp_path, size=(20, 30), n_jobs=2)
    assert parallel.filenames == serial.filenames
    np.testing.assert_array_equal(parallel.images, serial.images)


# Formats, modes and orientation --------------------------------------------------


@pytest.mark.parametrize(
    "name, options, max_error",
    [
        ("photo.png", {}, 0),
        ("photo.bmp", {}, 0),
        ("photo.tiff", {}, 0),
        ("photo.webp", {"lossless": True}, 0),
        ("photo.webp", {"quality": 90}, 8),
        ("photo.jpg", {"quality": 95}, 6),
    ],
)
def test_formats_decode_to_the_saved_pixels(tmp_path, photo, name, options, max_error):
    """Each format gives back the saved pixels, up to its compression loss."""
    image = load_one(save(photo, tmp_path / name, **options))
    assert image.shape == photo.shape
    mean_error = np.abs(image.astype(int) - photo).mean()
    assert mean_error <= max_error


def test_gif_gives_its_palette_colors(tmp_path, photo):
    """A GIF (palette mode P) is expanded to the RGB colours of its palette."""
    path = save(photo, tmp_path / "photo.gif")
    with Image.open(path) as gif:
        assert gif.mode == "P"
        expected = np.asarray(gif.convert("RGB"))
    np.testing.assert_array_equal(load_one(path), expected)


def ramp16():
    """16-bit gray values whose 8-bit readings are 0, 7, 128 and 255."""
    return np.array([[0, 7 * 257, 32768, 65535]], dtype=np.uint16)


def alpha_image(mode):
    """Left half opaque grey 100, right half fully transparent."""
    base = Image.new(mode, (8, 4), 100 if mode == "LA" else (100, 100, 100))
    alpha = np.zeros((4, 8), dtype=np.uint8)
    alpha[:, :4] = 255
    base.putalpha(Image.fromarray(alpha))
    return base


def palette_image(transparent):
    """A P image: left half index 1 (red), right half index 0 (black or transparent)."""
    image = Image.new("P", (8, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, 4, 4))
    if transparent:
        image.info["transparency"] = 0
    return image


HALF_GREY_HALF_WHITE = np.array([[[100] * 3] * 4 + [list(WHITE)] * 4] * 4)


@pytest.mark.parametrize(
    "name, make_image, expected",
    [
        pytest.param(
            "bits.png",
            lambda: Image.fromarray(np.array([[True, False, True, False]])),
            np.array([[[255] * 3, [0] * 3, [255] * 3, [0] * 3]]),
            id="1",
        ),
        pytest.param(
            "gray.png",
            lambda: Image.fromarray(np.array([[0, 50, 200, 255]], dtype=np.uint8)),
            np.array([[[0] * 3, [50] * 3, [200] * 3, [255] * 3]]),
            id="L",
        ),
        pytest.param("la.png", lambda: alpha_image("LA"), HALF_GREY_HALF_WHITE, id="LA"),
        pytest.param("rgba.png", lambda: alpha_image("RGBA"), HALF_GREY_HALF_WHITE, id="RGBA"),
        pytest.param(
            "rgba.webp",
            lambda: alpha_image("RGBA"),
            HALF_GREY_HALF_WHITE,
            id="RGBA-webp",
        ),
        pytest.param(
            "p.png",
            lambda: palette_image(transparent=False),
            np.array([[list(RED)] * 4 + [[0, 0, 0]] * 4] * 4),
            id="P",
        ),
        pytest.param(
            "p-transparent.png",
            lambda: palette_image(transparent=True),
            np.array([[list(RED)] * 4 + [list(WHITE)] * 4] * 4),
            id="P-transparency",
        ),
        pytest.param(
            "p-transparent.gif",
            lambda: palette_image(transparent=True),
            np.array([[list(RED)] * 4 + [list(WHITE)] * 4] * 4),
            id="P-transparency-gif",
        ),
        pytest.param(
            "cmyk.tiff",
            lambda: Image.frombytes("CMYK", (3, 1), bytes([0, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 255])),
            np.array([[list(WHITE), [0, 255, 255], [0, 0, 0]]]),
            id="CMYK",
        ),
        pytest.param(
            "i16.png",
            lambda: Image.fromarray(ramp16()),
            np.array([[[0] * 3, [7] * 3, [128] * 3, [255] * 3]]),
            id="I;16-png",
        ),
        pytest.param(
            "i16.tiff",
            lambda: Image.frombytes("I;16B", (4, 1), ramp16().astype(">u2").tobytes()),
            np.array([[[0] * 3, [7] * 3, [128] * 3, [255] * 3]]),
            id="I;16B-tiff",
        ),
        pytest.param(
            "i32-16bit.tiff",
            lambda: Image.fromarray(ramp16().astype(np.int32)),
            np.array([[[0] * 3, [7] * 3, [128] * 3, [255] * 3]]),
            id="I-16-bit-values",
        ),
        pytest.param(
            "i32-8bit.tiff",
            lambda: Image.fromarray(np.array([[-5, 7, 128, 255]], dtype=np.int32)),
            np.array([[[0] * 3, [7] * 3, [128] * 3, [255] * 3]]),
            id="I-8-bit-values",
        ),
        pytest.param(
            "float-unit.tiff",
            lambda: Image.fromarray(np.array([[0, 0.5, 1, 0.2]], dtype=np.float32)),
            np.array([[[0] * 3, [128] * 3, [255] * 3, [51] * 3]]),
            id="F-unit-range",
        ),
        pytest.param(
            "float-byte.tiff",
            lambda: Image.fromarray(np.array([[0, 7.4, 300, 128]], dtype=np.float32)),
            np.array([[[0] * 3, [7] * 3, [255] * 3, [128] * 3]]),
            id="F-byte-range",
        ),
    ],
)
def test_modes_convert_to_rgb_and_gray(tmp_path, name, make_image, expected):
    """Every Pillow mode becomes 8-bit RGB, and its luma, with the documented values."""
    path = save(make_image(), tmp_path / name)
    np.testing.assert_array_equal(load_one(path), expected)
    gray = load_one(path, color="gray")
    expected_gray = np.asarray(Image.fromarray(expected.astype(np.uint8)).convert("L"))
    np.testing.assert_array_equal(gray, expected_gray[..., np.newaxis])


def test_gray_is_luma_of_rgb(tmp_path, photo):
    """color="gray" gives one channel equal to Pillow's ITU-R 601-2 luma."""
    path = save(photo, tmp_path / "photo.png")
    gray = load_one(path, color="gray")
    assert gray.shape == (48, 64, 1)
    expected = np.asarray(Image.fromarray(photo).convert("L"))
    np.testing.assert_array_equal(gray[..., 0], expected)


def test_cmyk_jpeg_gives_rgb(tmp_path):
    """A CMYK JPEG (Adobe, inverted) is converted to the right RGB colours."""
    cmyk = np.zeros((16, 48, 4), dtype=np.uint8)
    cmyk[:, 16:32, 0] = 255  # cyan
    cmyk[:, 32:, 3] = 255  # black
    image = Image.frombytes("CMYK", (48, 16), cmyk.tobytes())
    loaded = load_one(save(image, tmp_path / "cmyk.jpg", quality=100)).astype(int)
    for columns, color in [(slice(2, 14), WHITE), (slice(18, 30), (0, 255, 255))]:
        assert np.abs(loaded[:, columns] - color).max() <= 3
    assert loaded[:, 34:].max() <= 3


@pytest.mark.parametrize(
    "name, options",
    [
        ("anim.gif", {}),
        ("anim.webp", {"lossless": True}),
        ("pages.tiff", {}),
    ],
)
def test_animated_and_multipage_files_give_first_frame(tmp_path, name, options):
    """Animated GIF/WebP and multi-page TIFF give their first frame."""
    frames = [solid(color) for color in (RED, GREEN, BLUE)]
    path = save(frames[0], tmp_path / name, save_all=True, append_images=frames[1:], **options)
    with Image.open(path) as stored:
        assert stored.n_frames == 3
    image = load_one(path)
    assert (image == RED).all()


def test_exif_orientation_is_applied(tmp_path):
    """A JPEG with EXIF orientation 6 is turned 90 degrees clockwise."""
    exif = Image.Exif()
    exif[0x0112] = 6
    left_red_right_blue = stripes([RED, BLUE], (80, 40))
    path = save(left_red_right_blue, tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = load_one(path, size=(80, 40)).astype(int)
    # Clockwise, the stored left edge becomes the top edge.
    assert np.abs(image[:35].reshape(-1, 3).mean(axis=0) - RED).max() < 8
    assert np.abs(image[45:].reshape(-1, 3).mean(axis=0) - BLUE).max() < 8


@pytest.fixture
def draft_sizes(monkeypatch):
    """Record the size each JPEG is decoded at after Pillow's draft mode."""
    sizes = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def recording_draft(self, mode, size):
        result = draft(self, mode, size)
        sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording_draft)
    return sizes


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, photo, draft_sizes):
    """A large JPEG is decoded at the smallest scale still twice the size asked."""
    large = Image.fromarray(photo).resize((1600, 1200), Image.Resampling.BICUBIC)
    path = save(large, tmp_path / "large.jpg", quality=90)
    drafted = load_one(path, size=(120, 160)).astype(int)
    assert draft_sizes == [(400, 300)]  # 1/4 scale; 1/8 would be under 2 x (160, 120)

    reference = large.resize((160, 120), Image.Resampling.LANCZOS)
    assert np.abs(drafted - np.asarray(reference)).mean() < 3


def test_draft_accounts_for_exif_rotation(tmp_path, draft_sizes):
    """The draft of a rotated JPEG is at least twice size once turned upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(stripes([RED, BLUE], (3200, 1600)), tmp_path / "rotated.jpg", exif=exif)
    image = load_one(path, size=(100, 400))
    assert image.shape == (100, 400, 3)
    # Upright, the stored width becomes the height: 800 x 1600 covers twice
    # (100, 400), while the 1/4 scale that ignores the turn would give 400 wide.
    assert draft_sizes == [(1600, 800)]


# Resize policies -----------------------------------------------------------------


def test_stretch_fills_the_whole_output(tmp_path):
    """resize="stretch" scales the whole image to size, distorting it."""
    path = save(stripes([RED, GREEN, BLUE], (90, 30)), tmp_path / "wide.png")
    image = load_one(path, size=(30, 30), resize="stretch")
    assert (image[:, 2] == RED).all() and (image[:, -3] == BLUE).all()


def test_crop_keeps_the_centre(tmp_path):
    """resize="crop" scales the short side to size and cuts off the sides."""
    # Green spans columns 36 to 144, beyond the centre crop 60 to 120 and the
    # reach of the Lanczos filter around it.
    colors = [RED, GREEN, GREEN, GREEN, BLUE]
    path = save(stripes(colors, (180, 60)), tmp_path / "wide.png")
    image = load_one(path, size=(30, 30), resize="crop")
    assert (image == GREEN).all()


@pytest.mark.parametrize(
    "image_size, bars",
    [((60, 30), "top and bottom"), ((30, 60), "left and right")],
)
def test_pad_letterboxes_with_black(tmp_path, image_size, bars):
    """resize="pad" keeps the whole image and fills the rest with black bars."""
    path = save(solid((200, 100, 50), size=image_size), tmp_path / "image.png")
    image = load_one(path, size=(60, 60), resize="pad")
    if bars == "top and bottom":
        bar_slices = [np.s_[:15], np.s_[45:]]
        content = image[15:45]
    else:
        bar_slices = [np.s_[:, :15], np.s_[:, 45:]]
        content = image[:, 15:45]
    for bar in bar_slices:
        assert (image[bar] == 0).all()
    assert (content == (200, 100, 50)).all()


# Broken files --------------------------------------------------------------------


def truncated_jpeg(photo):
    """The first half of a JPEG file: the header is whole, the scan is cut."""
    buffer = BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG")
    return buffer.getvalue()[: buffer.tell() // 2]


BROKEN_FILES = {
    "truncated.jpg": (truncated_jpeg, "image file is truncated"),
    "empty.jpg": (lambda photo: b"", r"empty \(0 bytes\)"),
    "random.jpg": (
        lambda photo: np.random.default_rng(0).bytes(2000),
        "cannot identify it as an image",
    ),
    "notes.png": (lambda photo: b"buy milk\n", "cannot identify it as an image"),
}


@pytest.mark.parametrize("name", BROKEN_FILES)
def test_broken_file_raises_naming_file_and_cause(tmp_path, photo, name):
    """on_error="raise" names the broken file and why it cannot be read."""
    save(photo, tmp_path / "good.png")
    content, cause = BROKEN_FILES[name]
    (tmp_path / name).write_bytes(content(photo))
    with pytest.raises(ValueError, match=cause) as raised:
        load_images(tmp_path, size=8)
    assert repr(str(tmp_path / name)) in str(raised.value)
    assert "on_error='skip'" in str(raised.value)


def test_skip_leaves_out_broken_files_with_one_warning(tmp_path, photo):
    """on_error="skip" loads the rest, lists each skipped file, and warns once."""
    good = [save(photo, tmp_path / "a_good.png"), save(photo, tmp_path / "z_good.png")]
    for name, (content, _) in BROKEN_FILES.items():
        (tmp_path / name).write_bytes(content(photo))
    with pytest.warns(UserWarning, match="Skipped 4 of 6 image files") as caught:
        collection = load_images(tmp_path, size=(48, 64), on_error="skip")
    assert len(caught) == 1
    assert collection.filenames == good
    assert [path for path, _ in collection.skipped] == sorted(str(tmp_path / name) for name in BROKEN_FILES)
    reasons = dict(collection.skipped)
    for name, (_, cause) in BROKEN_FILES.items():
        assert re.search(cause, reasons[str(tmp_path / name)])
    np.testing.assert_array_equal(collection.images, [photo, photo])


def test_skip_with_no_readable_file_raises(tmp_path):
    """When every file is broken, on_error="skip" still raises: nothing to return."""
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_bytes(b"text")
    with pytest.raises(ValueError, match="None of the 2 image files could be read"):
        load_images(tmp_path, on_error="skip")


def test_unreadable_paths_are_reported(tmp_path, photo):
    """A folder named like an image, a dangling and a looping link all fail clearly."""
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(ValueError, match="folder.jpg.*Is a directory"):
        load_images([tmp_path / "folder.jpg"])

    save(photo, tmp_path / "scan" / "good.png")
    os.symlink(tmp_path / "missing.png", tmp_path / "scan" / "gone.png")
    os.symlink("loop.png", tmp_path / "scan" / "loop.png")
    with pytest.warns(UserWarning, match="Skipped 2 of 3"):
        collection = load_images(tmp_path / "scan", size=8, on_error="skip")
    assert dict(collection.skipped) == {
        str(tmp_path / "scan" / "gone.png"): "No such file or directory",
        str(tmp_path / "scan" / "loop.png"): "Too many levels of symbolic links",
    }


def test_file_without_read_permission_is_reported(tmp_path, photo, monkeypatch):
    """A file without read permission raises a ValueError saying so."""
    path = tmp_path / "secret.png"
    save(photo, path)
    path.chmod(0)
    if getattr(os, "geteuid", lambda: -1)() == 0:
        # Permissions do not stop root: let the OS refusal come from open() itself.
        real_open = open

        def refusing_open(file, *args, **kwargs):
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", refusing_open)
    try:
        with pytest.raises(ValueError, match="secret.png.*Permission denied"):
            load_images(tmp_path)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("bomb_size", [(40, 40), (60, 60)])
def test_decompression_bombs_are_refused_undecoded(tmp_path, photo, monkeypatch, n_jobs, bomb_size):
    """Images over Image.MAX_IMAGE_PIXELS are refused from their header alone."""
    save(photo[:20, :20], tmp_path / "a_small.png")
    bomb = save(solid(RED, size=bomb_size), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    load = ImageFile.ImageFile.load

    def load_small_only(self):
        assert self.width * self.height <= 1000, "the bomb was decoded"
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load_small_only)
    filters_before = list(warnings.filters)

    with pytest.raises(ValueError, match="bomb.png.*exceeds limit.*MAX_IMAGE_PIXELS"):
        load_images(tmp_path, size=8, n_jobs=n_jobs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        collection = load_images(tmp_path, size=8, n_jobs=n_jobs, on_error="skip")
    assert [type(w.message) for w in caught] == [UserWarning]
    assert collection.skipped[0][0] == bomb
    assert collection.filenames == [str(tmp_path / "a_small.png")]
    assert warnings.filters == filters_before


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_fuzzed_corpus_is_loaded_skipped_or_refused_file_by_file(fuzzed_folder, monkeypatch, n_jobs):
    """Every file of a corpus built to break the loader is loaded or skipped with its reason; "raise" names the first."""
    folder, _, expected = fuzzed_folder
    load = ImageFile.ImageFile.load

    def load_small_only(self):
        assert self.width * self.height <= Image.MAX_IMAGE_PIXELS, "a decompression bomb was decoded"
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load_small_only)
    with pytest.warns(UserWarning, match="Skipped") as caught:
        collection = load_images(folder, size=(12, 16), on_error="skip", n_jobs=n_jobs)
    assert len(caught) == 1
    skipped = dict(collection.skipped)
    assert len(skipped) == len(collection.skipped)
    assert sorted(collection.filenames + list(skipped)) == sorted(expected)
    for path, outcome in expected.items():
        if outcome == "loaded":
            assert path in collection.filenames, path
        elif outcome != "either":
            assert re.search(outcome, skipped[path]), (path, skipped[path])
    assert collection.images.shape == (len(collection.filenames), 12, 16, 3)

    first_broken = collection.skipped[0][0]
    with pytest.raises(ValueError, match="Cannot read image file") as raised:
        load_images(folder, size=(12, 16), n_jobs=n_jobs)
    assert repr(first_broken) in str(raised.value) and "on_error='skip'" in str(raised.value)


# Empty sources and argument validation -------------------------------------------


def test_empty_or_imageless_folder_says_what_was_looked_for(tmp_path):
    """A folder without image files raises, listing the extensions looked for."""
    with pytest.raises(ValueError, match=r"No image files found in folder.*\.jpg"):
        load_images(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\.jpeg, \.jpg, \.png.*hidden"):
        load_images(tmp_path)


@pytest.mark.parametrize(
    "source, error, message",
    [
        ("{tmp}/*.png", ValueError, "No image files found in pattern"),
        ("{tmp}/does-not-exist", ValueError, "does not exist"),
        ([], ValueError, "empty list"),
        (42, TypeError, "folder, a glob pattern or a list of paths"),
        (b"/tmp", TypeError, "folder, a glob pattern or a list of paths"),
        ([42], TypeError, "Every path in source"),
    ],
)
def test_bad_sources_are_rejected(tmp_path, source, error, message):
    """Unusable sources raise an error saying what was wrong."""
    if isinstance(source, str):
        source = source.format(tmp=tmp_path)
    with pytest.raises(error, match=message):
        load_images(source)


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"size": 0}, ValueError, "size must be positive"),
        ({"size": (0, 5)}, ValueError, "size must be positive"),
        ({"size": (1, 2, 3)}, TypeError, r"\(height, width\) pair"),
        ({"size": "big"}, TypeError, r"\(height, width\) pair"),
        ({"size": True}, TypeError, r"\(height, width\) pair"),
        ({"size": (4.0, 4)}, TypeError, r"\(height, width\) pair"),
        ({"color": "grey"}, ValueError, r"color must be one of \('rgb', 'gray'\)"),
        ({"resize": "fit"}, ValueError, "resize must be one of"),
        ({"on_error": "ignore"}, ValueError, "on_error must be one of"),
        ({"recursive": "yes"}, TypeError, "recursive must be True or False"),
        ({"n_jobs": 0}, ValueError, "n_jobs must be"),
        ({"n_jobs": "2"}, ValueError, "n_jobs must be"),
        ({"out": 42}, TypeError, "out must be None or a path"),
        ({"out": "{tmp}/missing/images.npy"}, ValueError, "create .* first"),
        ({"out": "{tmp}"}, ValueError, "is a folder"),
        ({"progress": "tqdm"}, TypeError, "progress must be None or a callable"),
    ],
)
def test_bad_parameters_are_rejected(tmp_path, photo, params, error, message):
    """Each invalid parameter raises before any file is read, naming the fix."""
    save(photo, tmp_path / "photo.png")
    params = {
        key: value.format(tmp=tmp_path) if isinstance(value, str) else value for key, value in params.items()
    }
    with pytest.raises(error, match=message):
        load_images(tmp_path, **params)


# Writing to a .npy file ----------------------------------------------------------


def test_out_writes_npy_and_returns_read_only_memmap(tmp_path, photo):
    """out= stores the images in a .npy file and returns a read-only memory map."""
    for i in range(3):
        save(np.roll(photo, 7 * i, axis=0), tmp_path / "images" / f"{i}.png")
    in_memory = load_images(tmp_path / "images", size=(24, 32))
    out = tmp_path / "collection.npy"
    stored = load_images(tmp_path / "images", size=(24, 32), out=out)
    assert isinstance(stored.images, np.memmap)
    assert not stored.images.flags.writeable
    np.testing.assert_array_equal(stored.images, in_memory.images)
    np.testing.assert_array_equal(np.load(out), in_memory.images)
    assert stored.filenames == in_memory.filenames
    assert sorted(os.listdir(tmp_path)) == ["collection.npy", "images"]


def test_out_with_skipped_files_holds_only_loaded_images(tmp_path, photo, monkeypatch):
    """Skipped files leave no empty rows in the .npy file, across chunks too."""
    monkeypatch.setattr(images_module, "_CHUNK_BYTES", 1)  # one image per chunk
    for i in range(4):
        save(np.roll(photo, 9 * i, axis=1), tmp_path / "images" / f"{i}.png")
    (tmp_path / "images" / "1_broken.png").write_bytes(b"broken")
    (tmp_path / "images" / "9_empty.jpg").write_bytes(b"")
    with pytest.warns(UserWarning, match="Skipped 2 of 6"):
        in_memory = load_images(tmp_path / "images", size=(24, 32), on_error="skip")
    out = tmp_path / "collection.npy"
    with pytest.warns(UserWarning, match="Skipped 2 of 6"):
        stored = load_images(tmp_path / "images", size=(24, 32), on_error="skip", out=out)
    assert stored.images.shape == (4, 24, 32, 3)
    np.testing.assert_array_equal(np.load(out), in_memory.images)
    assert stored.filenames == in_memory.filenames
    assert stored.skipped == in_memory.skipped
    header_size = out.stat().st_size - in_memory.images.nbytes
    assert header_size % 64 == 0  # nothing beyond the data
    assert sorted(os.listdir(tmp_path)) == ["collection.npy", "images"]


@pytest.mark.parametrize("chunk_rows, chunk_sizes", [(1, [1] * 5), (2, [2, 2, 1])])
def test_files_are_decoded_in_bounded_chunks(tmp_path, photo, monkeypatch, chunk_rows, chunk_sizes):
    """Only a chunk of decoded images is held at a time, whatever the file count."""
    calls = []

    class RecordingParallel(images_module.Parallel):
        def __call__(self, tasks):
            tasks = list(tasks)
            calls.append(len(tasks))
            return super().__call__(tasks)

    monkeypatch.setattr(images_module, "Parallel", RecordingParallel)
    monkeypatch.setattr(images_module, "_CHUNK_BYTES", chunk_rows * 8 * 8 * 3)
    for i in range(5):
        save(photo, tmp_path / "images" / f"{i}.png")
    load_images(tmp_path / "images", size=8, out=tmp_path / "collection.npy")
    assert calls == chunk_sizes


@pytest.mark.parametrize("existing", [False, True])
def test_out_is_not_written_when_a_file_fails(tmp_path, photo, monkeypatch, existing):
    """An error midway leaves neither the out file nor a temporary file behind."""
    monkeypatch.setattr(images_module, "_CHUNK_BYTES", 1)
    for i in range(4):
        save(photo, tmp_path / "images" / f"{i}.png")
    (tmp_path / "images" / "2_truncated.jpg").write_bytes(truncated_jpeg(photo))
    out = tmp_path / "collection.npy"
    if existing:
        np.save(out, np.arange(3))
    with pytest.raises(ValueError, match="2_truncated.jpg"):
        load_images(tmp_path / "images", size=8, out=out)
    if existing:
        np.testing.assert_array_equal(np.load(out), np.arange(3))
    expected = ["collection.npy", "images"] if existing else ["images"]
    assert sorted(os.listdir(tmp_path)) == expected


def test_out_is_removed_on_keyboard_interrupt(tmp_path, photo, monkeypatch):
    """An interruption while decoding leaves no partial file behind."""
    for i in range(3):
        save(photo, tmp_path / "images" / f"{i}.png")
    exif_transpose = ImageOps.exif_transpose
    calls = []

    def interrupt_second(image, **options):
        calls.append(image)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return exif_transpose(image, **options)

    monkeypatch.setattr(ImageOps, "exif_transpose", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        load_images(tmp_path / "images", size=8, out=tmp_path / "collection.npy")
    assert os.listdir(tmp_path) == ["images"]


# Progress ---------------------------------------------------------------------------


def test_progress_counts_every_file_read_or_skipped(tmp_path, photo, monkeypatch):
    """progress(n_done, n_total) starts at 0, rises chunk by chunk and ends at the file count."""
    monkeypatch.setattr(images_module, "_CHUNK_FILES", 2)
    for i in range(4):
        save(np.roll(photo, 5 * i, axis=1), tmp_path / f"{i}.png")
    (tmp_path / "2_broken.png").write_bytes(b"broken")
    calls = []
    with pytest.warns(UserWarning, match="Skipped 1 of 5"):
        load_images(tmp_path, size=8, on_error="skip", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 5), (2, 5), (4, 5), (5, 5)]


def test_progress_caps_the_chunk_size_whatever_the_image_size(tmp_path, photo):
    """Tiny images still report at least every _CHUNK_FILES files."""
    for i in range(images_module._CHUNK_FILES + 3):
        save(photo[:4, :4], tmp_path / f"{i:04d}.png")
    calls = []
    load_images(tmp_path, size=4, progress=lambda done, total: calls.append(done))
    assert calls == [0, images_module._CHUNK_FILES, images_module._CHUNK_FILES + 3]
