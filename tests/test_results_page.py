"""The results page: every image and cluster present, names escaped, links right, one page per k."""

import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from skdcec.results_page import _original_url, write_results_page

HOSTILE = '<b>&"x".jpg'
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self):
        super().__init__()
        self.tags = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(path):
    parser = _Elements()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    return parser


def _collection(folder, n_images=40):
    """Digits as PNG files, one of them with a hostile name and one with a non-ASCII name."""
    images = load_digits().images[:n_images].astype(np.uint8) * 15
    os.makedirs(folder)
    paths = []
    for i, pixels in enumerate(images):
        name = HOSTILE if i == 0 else ("Öl auf Leinwand é.png" if i == 1 else f"digit {i}.png")
        paths.append(os.path.join(folder, name))
        Image.fromarray(pixels).save(paths[-1], format="PNG")
    return paths, images


def _clustering(k, n_images, seed, prototypes=True):
    rng = np.random.default_rng(seed)
    labels = np.arange(n_images) % k
    return {
        "n_clusters": k,
        "labels": labels,
        "confidence": rng.uniform(0.3, 1.0, n_images),
        "prototypes": rng.integers(0, 256, (k, 8, 8), dtype=np.uint8) if prototypes else None,
        "map": rng.normal(size=(n_images, 2)),
        "scores": {"silhouette": 0.1 * k, "Calinski–Harabasz": None},
    }


@pytest.fixture
def page(tmp_path):
    paths, _ = _collection(tmp_path / "collection")
    clusterings = [_clustering(3, len(paths), 0), _clustering(7, len(paths), 1, prototypes=False)]
    results = tmp_path / "results"
    summary = {"n_images": len(paths), "skipped": [{"path": "bad.jpg", "reason": "<not an image>"}]}
    files = write_results_page(
        results,
        paths,
        clusterings,
        names=[os.path.basename(p) for p in paths],
        best=7,
        summary=summary,
        n_jobs=2,
    )
    return results, paths, clusterings, files


def test_writes_an_index_a_page_per_k_and_thumbnails(page):
    """index.html, k3.html and k7.html, one thumbnail per image, prototypes for the k that has them."""
    results, paths, _, files = page
    assert files == ["index.html", "k3.html", "k7.html", "thumbnails/", "prototypes/"]
    assert len(os.listdir(results / "thumbnails")) == len(paths)
    assert sorted(os.listdir(results / "prototypes")) == ["k3_0.png", "k3_1.png", "k3_2.png"]
    with Image.open(results / "thumbnails" / "5.jpg") as thumbnail:
        assert max(thumbnail.size) <= 128


@pytest.mark.parametrize("page_name, k", [("k3.html", 3), ("k7.html", 7), ("index.html", 7)])
def test_every_image_of_every_cluster_is_shown_by_confidence(page, page_name, k):
    """Each cluster shows all its images, lazily loaded, most confident first, with the name as alt text."""
    results, paths, clusterings, _ = page
    clustering = next(c for c in clusterings if c["n_clusters"] == k)
    parsed = _parse(results / page_name)
    sections = [attrs["id"] for tag, attrs in parsed.tags if tag == "section"]
    assert sections == [f"c{c}" for c in range(k)]
    grid = [attrs for tag, attrs in parsed.tags if tag == "img" and attrs.get("loading") == "lazy"]
    assert all(attrs["src"].startswith("thumbnails/") for attrs in grid)
    assert sorted(int(attrs["src"][11:-4]) for attrs in grid) == list(range(len(paths)))
    assert all(attrs["alt"] == os.path.basename(paths[int(attrs["src"][11:-4])]) for attrs in grid)
    shown = [int(attrs["src"][11:-4]) for attrs in grid]
    for cluster in range(k):
        members = [i for i in shown if clustering["labels"][i] == cluster]
        confidence = list(clustering["confidence"][members])
        assert confidence == sorted(confidence, reverse=True)


def test_hostile_and_non_ascii_names_are_text(page):
    """A file named <b>&"x".jpg adds no element; it and a non-ASCII name come back intact."""
    results, paths, _, _ = page
    parsed = _parse(results / "index.html")
    assert not any(tag == "b" for tag, _ in parsed.tags)
    alts = {attrs.get("alt") for tag, attrs in parsed.tags if tag == "img"}
    assert {HOSTILE, "Öl auf Leinwand é.png"} <= alts
    assert "<not an image>" in "".join(parsed.text)


def test_links_open_the_originals(page):
    """Every image links to its original through a relative, quoted URL that resolves to the file."""
    results, paths, _, _ = page
    from urllib.parse import unquote

    parsed = _parse(results / "k3.html")
    hrefs = [attrs.get("href", "") for tag, attrs in parsed.tags if tag == "a"]
    links = [href for href in hrefs if href.startswith("..")]
    assert links
    assert {os.path.normpath(os.path.join(results, unquote(link))) for link in links} == set(paths)
    assert any("%3Cb%3E%26%22x%22.jpg" in link for link in links)


def test_pages_link_to_each_other(page):
    """Every page has a navigation to the overview and every k, and marks the current one."""
    results, _, _, _ = page
    for name in ("index.html", "k3.html", "k7.html"):
        parsed = _parse(results / name)
        hrefs = [attrs["href"] for tag, attrs in parsed.tags if tag == "a"]
        assert {"index.html", "k3.html", "k7.html"} <= set(hrefs)
        current = [attrs["href"] for tag, attrs in parsed.tags if tag == "a" and "aria-current" in attrs]
        assert current == [name]
        assert ("html", {"lang": "en"}) in parsed.tags
    svg = [attrs for tag, attrs in _parse(results / "index.html").tags if tag == "svg"]
    assert any(attrs.get("aria-label") == "silhouette against k" for attrs in svg)


def test_nothing_outside_the_folder_is_fetched(page):
    """No http(s) URL anywhere: the page works without network."""
    results, _, _, _ = page
    for name in ("index.html", "k3.html", "k7.html"):
        text = (results / name).read_text(encoding="utf-8")
        assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "https://" not in text


@pytest.mark.parametrize(
    "path, folder, expected",
    [
        ("/data/paintings/a b.jpg", "/data/results", "../paintings/a%20b.jpg"),
        ("/data/results/images/x.png", "/data/results", "images/x.png"),
        ("/mnt/usb/a&b.jpg", "/home/me/results", "file:///mnt/usb/a%26b.jpg"),
    ],
)
def test_original_url(path, folder, expected):
    """Relative when the image and the folder share a parent, a file: URI when only the root."""
    if os.name != "posix":
        pytest.skip("POSIX paths")
    assert _original_url(path, folder) == expected


def test_unreadable_image_is_named_without_a_thumbnail(tmp_path):
    """A file that cannot be read is listed by name, and the page is still written."""
    paths, _ = _collection(tmp_path / "collection", n_images=4)
    Path(paths[2]).write_bytes(b"not an image")
    write_results_page(tmp_path / "results", paths, [_clustering(2, 4, 0)])
    text = (tmp_path / "results" / "index.html").read_text(encoding="utf-8")
    assert "digit 2.png (no thumbnail)" in text
    assert len(os.listdir(tmp_path / "results" / "thumbnails")) == 3


@pytest.mark.parametrize(
    "change, message",
    [
        ({"labels": [0, 1]}, "one value per image path"),
        ({"labels": [0, 1, 2, 5]}, "labels must lie in 0..2"),
        ({"map": np.zeros((4, 3))}, "map must have shape"),
        ({"prototypes": np.zeros((3, 8, 8))}, "uint8 array"),
    ],
)
def test_bad_clusterings_are_refused(tmp_path, change, message):
    """Malformed data raises a ValueError that says what is expected."""
    paths, _ = _collection(tmp_path / "collection", n_images=4)
    clustering = {**_clustering(3, 4, 0), **change}
    with pytest.raises(ValueError, match=message):
        write_results_page(tmp_path / "results", paths, [clustering])


def test_best_must_be_fitted(tmp_path):
    """best names a k that was given."""
    paths, _ = _collection(tmp_path / "collection", n_images=4)
    with pytest.raises(ValueError, match="best=5"):
        write_results_page(tmp_path / "results", paths, [_clustering(2, 4, 0)], best=5)


def _browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}; install Debian's chromium package")
    return sync_api.sync_playwright


@pytest.mark.slow
def test_the_page_in_chromium(page, tmp_path):
    """In headless Chromium every image loads, every cluster shows, names are text and j/k move focus."""
    sync_playwright = _browser()
    results, paths, _, _ = page
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            tab.goto((results / "k3.html").as_uri())
            tab.screenshot(path=str(tmp_path / "k3.png"))
            tab.eval_on_selector_all("img[loading=lazy]", "all => all.forEach(i => i.loading = 'eager')")
            tab.wait_for_function("Array.from(document.images).every(i => i.complete)")
            widths = tab.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
            assert len(widths) == len(paths) + 3 and min(widths) > 0
            assert tab.locator("section.cluster").count() == 3
            assert tab.locator("section.cluster").evaluate_all("s => s.every(e => e.offsetHeight > 0)")
            assert tab.get_by_alt_text(HOSTILE, exact=True).count() == 1
            assert tab.locator("b").count() == 0
            tab.locator("body").press("j")
            assert tab.evaluate("document.activeElement.closest('section').id") == "c0"
            tab.keyboard.press("j")
            tab.keyboard.press("j")
            assert tab.evaluate("document.activeElement.closest('section').id") == "c2"
            tab.keyboard.press("k")
            assert tab.evaluate("document.activeElement.closest('section').id") == "c1"
            tab.goto((results / "index.html").as_uri())
            assert tab.locator("section.cluster").count() == 7
            assert tab.locator("svg image").count() > 0
            tab.screenshot(path=str(tmp_path / "index.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "index.png").stat().st_size > 0
    shutil.rmtree(results)
