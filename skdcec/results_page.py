"""A static results page: every cluster with all of its images, for people who would rather look.

:func:`write_results_page` writes ``index.html``, one page per number of
clusters (``k3.html``, ``k7.html``, ...), a ``thumbnails/`` folder with one
small JPEG per image, shared by every page, and a ``prototypes/`` folder. The
pages need no server, no network and no script library: they open from the
folder with a double click. They are built with the standard library; every
value is escaped with :func:`html.escape` and every URL quoted with
:func:`urllib.parse.quote`.
"""

import html
import math
import os
from collections.abc import Mapping
from pathlib import Path, PurePath
from urllib.parse import quote

import numpy as np
from joblib import Parallel, delayed
from PIL import Image, ImageOps

__all__ = ["write_results_page"]

THUMBNAIL_FOLDER = "thumbnails"
PROTOTYPE_FOLDER = "prototypes"
# Thumbnails are written in chunks of this many files, one chunk per task.
_CHUNK = 64
_JPEG_QUALITY = 82
# Thumbnails shown on the embedding map: at most one per cell of this grid.
_MAP_GRID = 10
_MAP_SIZE = 1000
# Colours of the first ten clusters (matplotlib's tab10); further ones by golden angle.
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip

_CSS = """
:root{color-scheme:light dark;--t:112px}
body{font:15px/1.45 system-ui,sans-serif;margin:0 1.5rem 3rem;max-width:none}
a.skip{position:absolute;left:-999px}a.skip:focus{left:1rem;top:.5rem;background:Canvas;padding:.3rem}
:focus-visible{outline:3px solid #1a5fb4;outline-offset:2px}
nav.k a{margin-right:.8rem}nav.k a[aria-current]{font-weight:bold}
.toc{columns:14rem}.sw{display:inline-block;width:.9em;height:.9em;border-radius:2px;
margin-right:.35em;vertical-align:-.1em;background:var(--c)}
h2{margin-top:2rem}h2 small{font-weight:normal}section.cluster{border-top:1px solid #8886;margin-top:1.5rem;
padding-top:.6rem}section.cluster h2{margin:0}
.head{display:flex;gap:1rem;align-items:flex-end}
.proto{width:var(--t);height:var(--t);object-fit:contain;image-rendering:pixelated;
border:2px solid var(--c)}
.grid{display:flex;flex-wrap:wrap;gap:4px;margin-top:.6rem}
.grid a{display:block;text-decoration:none;color:inherit;font-size:11px;width:var(--t)}
.grid img{display:block;width:var(--t);height:var(--t);object-fit:contain;background:#8882}
body:has(#names:checked) .grid a::after{content:attr(title);display:block;overflow-wrap:anywhere}
svg{max-width:min(100%,720px);height:auto;border:1px solid #8886}
svg.chart{max-width:420px}table{border-collapse:collapse}td,th{padding:.1rem .6rem;text-align:left;
vertical-align:top;border-bottom:1px solid #8883}dl{margin:.2rem 0}dt{font-weight:bold}dd{margin-left:1.2rem}
"""
# Keyboard navigation between clusters: j next, k previous.
_SCRIPT = """
document.addEventListener("keydown",function(e){
if(e.ctrlKey||e.metaKey||e.altKey||(e.key!=="j"&&e.key!=="k"))return;
var t=e.target.tagName;if(t==="INPUT"||t==="TEXTAREA"||t==="SELECT")return;
var h=Array.prototype.slice.call(document.querySelectorAll("h2.cluster"));if(!h.length)return;
var s=document.activeElement&&document.activeElement.closest("section.cluster"),i=-1;
if(s){i=h.indexOf(s.querySelector("h2.cluster"));}else{for(var n=0;n<h.length;n++){
if(h[n].getBoundingClientRect().top<=1)i=n;}}
i=e.key==="j"?Math.min(i+1,h.length-1):Math.max(i-1,0);h[i].focus();h[i].scrollIntoView();
e.preventDefault();});
"""


def write_results_page(
    folder,
    image_paths,
    clusterings,
    *,
    names=None,
    best=None,
    summary=None,
    title="Clusters",
    thumbnail_size=128,
    n_jobs=None,
):
    """Write a static HTML page that shows every cluster with all of its images.

    The folder receives ``index.html`` (the summary, the k-selection curves
    when several k were fitted, and every cluster of the ``best`` k),
    ``k<K>.html`` for every k, ``thumbnails/`` (one JPEG per image, written
    once, in parallel, and shared by the pages) and ``prototypes/`` (one PNG
    per cluster and k). Each cluster shows its size, its prototype and all
    of its images, most confident first, lazily loaded; hovering an image
    shows its name and confidence, clicking it opens the original file. An
    embedding map places thumbnails of the collection by ``map``. The pages
    use no network, server or script library; ``j`` and ``k`` move the focus
    to the next and previous cluster.

    Parameters
    ----------
    folder : str or os.PathLike
        The results folder; created if missing. Files already there with the
        same names are replaced.
    image_paths : sequence of str or os.PathLike
        The image files, in the order of the rows of every clustering. They
        are read to make the thumbnails, and linked to with a URL relative
        to ``folder`` when they share a parent folder other than the file
        system's root, and a ``file:`` URI otherwise.
    clusterings : sequence of mapping
        One mapping per number of clusters, with the keys
        ``"n_clusters"`` (int), ``"labels"`` (array-like of shape
        (n_images,), ints from 0 to n_clusters - 1), ``"confidence"``
        (array-like of shape (n_images,), such as the largest soft
        assignment) and, optionally, ``"prototypes"`` (uint8 array of shape
        (n_clusters, height, width) or (n_clusters, height, width,
        channels), or None), ``"map"`` (array-like of shape (n_images, 2),
        such as the first two principal components of the embedding, or
        None) and ``"scores"`` (mapping from a score's name to a number or
        None; drawn against k when there are several clusterings).
    names : sequence of str, default=None
        The names shown for the images (alt text, hover text), such as
        their paths relative to the collection's folder. ``None`` uses the
        file names.
    best : int, default=None
        The ``n_clusters`` whose clusters ``index.html`` shows; ``None``
        means the first clustering's.
    summary : mapping, default=None
        Shown as it is at the end of ``index.html``: counts, skipped files
        and why, settings, timings. Values may be numbers, strings, None,
        lists and mappings; a list of mappings is shown as a table.
    title : str, default="Clusters"
        The pages' title.
    thumbnail_size : int, default=128
        The longer side of the thumbnails, in pixels.
    n_jobs : int, default=None
        Threads writing thumbnails; ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context, -1 means all processors.

    Returns
    -------
    list of str
        The files and folders written, relative to ``folder``.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from skdcec.results_page import write_results_page
    >>> work = tempfile.TemporaryDirectory()
    >>> paths = []
    >>> for i in range(6):
    ...     paths.append(os.path.join(work.name, f"image {i}.png"))
    ...     Image.new("L", (20, 30), color=40 * i).save(paths[-1])
    >>> clustering = {"n_clusters": 2, "labels": [0, 0, 0, 1, 1, 1],
    ...               "confidence": [0.9, 0.8, 0.7, 0.9, 0.6, 0.8]}
    >>> write_results_page(os.path.join(work.name, "results"), paths, [clustering])
    ['index.html', 'k2.html', 'thumbnails/']
    >>> work.cleanup()
    """
    folder = os.path.abspath(os.fspath(folder))
    image_paths = [os.path.abspath(os.fspath(path)) for path in image_paths]
    n_images = len(image_paths)
    names = [os.path.basename(path) for path in image_paths] if names is None else [str(n) for n in names]
    if len(names) != n_images:
        raise ValueError(f"names has {len(names)} entries for {n_images} image paths; give one per image.")
    if not isinstance(thumbnail_size, int) or isinstance(thumbnail_size, bool) or thumbnail_size < 1:
        raise ValueError(f"thumbnail_size must be a positive int, got {thumbnail_size!r}.")
    clusterings = [_checked_clustering(c, n_images) for c in clusterings]
    if not clusterings:
        raise ValueError("clusterings is empty; give at least one clustering.")
    ks = [c["n_clusters"] for c in clusterings]
    if len(set(ks)) != len(ks):
        raise ValueError(f"clusterings repeat a number of clusters ({ks}); give each k once.")
    best = ks[0] if best is None else best
    if best not in ks:
        raise ValueError(f"best={best!r} is not one of the numbers of clusters {ks}; pass one of them.")

    os.makedirs(os.path.join(folder, THUMBNAIL_FOLDER), exist_ok=True)
    made = _write_thumbnails(folder, image_paths, thumbnail_size, n_jobs)
    page = _Page(folder, image_paths, names, made, ks, title)
    files = []
    has_prototypes = False
    for clustering in clusterings:
        has_prototypes |= _write_prototypes(folder, clustering)
    best_clustering = clusterings[ks.index(best)]
    _write_text(folder, "index.html", page.index(best_clustering, clusterings, summary))
    files.append("index.html")
    for clustering in clusterings:
        name = f"k{clustering['n_clusters']}.html"
        _write_text(folder, name, page.for_k(clustering))
        files.append(name)
    files.append(f"{THUMBNAIL_FOLDER}/")
    if has_prototypes:
        files.append(f"{PROTOTYPE_FOLDER}/")
    return files


def _checked_clustering(clustering, n_images):
    if not isinstance(clustering, Mapping):
        raise TypeError(
            f"each clustering must be a mapping (such as a dict), got {type(clustering).__name__}."
        )
    missing = {"n_clusters", "labels", "confidence"} - set(clustering)
    if missing:
        raise ValueError(
            f"a clustering lacks the keys {sorted(missing)}; give n_clusters, labels and confidence."
        )
    k = int(clustering["n_clusters"])
    labels = np.asarray(clustering["labels"])
    confidence = np.asarray(clustering["confidence"], dtype=float)
    if labels.shape != (n_images,) or confidence.shape != (n_images,):
        raise ValueError(
            f"k={k}: labels and confidence must have shape ({n_images},), one value per image path; "
            f"got {labels.shape} and {confidence.shape}."
        )
    if n_images and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"k={k}: labels must lie in 0..{k - 1}; got {labels.min()}..{labels.max()}.")
    points = clustering.get("map")
    if points is not None:
        points = np.asarray(points, dtype=float)
        if points.shape != (n_images, 2):
            raise ValueError(f"k={k}: map must have shape ({n_images}, 2); got {points.shape}.")
    prototypes = clustering.get("prototypes")
    if prototypes is not None:
        prototypes = np.asarray(prototypes)
        if prototypes.dtype != np.uint8 or prototypes.ndim not in (3, 4) or len(prototypes) != k:
            raise ValueError(
                f"k={k}: prototypes must be a uint8 array of shape ({k}, height, width[, channels]); "
                f"got {prototypes.dtype} of shape {prototypes.shape}."
            )
    return {
        "n_clusters": k,
        "labels": labels.astype(int),
        "confidence": confidence,
        "prototypes": prototypes,
        "map": points,
        "scores": dict(clustering.get("scores") or {}),
    }


# ------------------------------------------------------------------ files


def _write_text(folder, name, text):
    with open(os.path.join(folder, name), "w", encoding="utf-8") as file:
        file.write(text)


def _thumbnail_name(index):
    return f"{THUMBNAIL_FOLDER}/{index}.jpg"


def _write_thumbnails(folder, image_paths, size, n_jobs):
    """Write one JPEG per image; return whether each was made."""
    n_images = len(image_paths)
    chunks = [range(start, min(start + _CHUNK, n_images)) for start in range(0, n_images, _CHUNK)]
    # Threads: Pillow releases the GIL while decoding, resizing and encoding.
    results = Parallel(n_jobs=n_jobs, require="sharedmem")(
        delayed(_thumbnail_chunk)(folder, image_paths, chunk, size) for chunk in chunks
    )
    return [made for chunk in results for made in chunk]


def _thumbnail_chunk(folder, image_paths, indices, size):
    return [_write_thumbnail(image_paths[i], os.path.join(folder, _thumbnail_name(i)), size) for i in indices]


def _write_thumbnail(source, target, size):
    try:
        with Image.open(source) as image:
            image.thumbnail((size, size))
            image = ImageOps.exif_transpose(image)
            image = _opaque(image)
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
    # Images much smaller than a thumbnail (icons, digits) are enlarged with crisp pixels.
    factor = size // max(image.size)
    if factor >= 2:
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    image.save(target, "JPEG", quality=_JPEG_QUALITY)
    return True


def _opaque(image):
    """An RGB or L image; transparent areas become white, as on paper."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _prototype_name(k, cluster):
    return f"{PROTOTYPE_FOLDER}/k{k}_{cluster}.png"


def _write_prototypes(folder, clustering):
    prototypes = clustering["prototypes"]
    if prototypes is None:
        return False
    os.makedirs(os.path.join(folder, PROTOTYPE_FOLDER), exist_ok=True)
    for cluster, pixels in enumerate(prototypes):
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[..., 0]
        Image.fromarray(pixels).save(os.path.join(folder, _prototype_name(clustering["n_clusters"], cluster)))
    return True


def _original_url(path, folder):
    """A URL for ``path`` from a page in ``folder``: relative when they share a parent, else ``file:``."""
    try:
        common = os.path.commonpath([path, folder])
        relative = os.path.relpath(path, folder)
    except ValueError:
        # Different drives on Windows.
        common, relative = None, None
    if common is None or os.path.dirname(common) == common:
        return Path(path).as_uri()
    return quote(PurePath(relative).as_posix())


# ------------------------------------------------------------------ html


def _e(value):
    return html.escape(str(value), quote=True)


def _color(cluster):
    if cluster < len(_PALETTE):
        return _PALETTE[cluster]
    return f"hsl({cluster * 137.508 % 360:.0f} 60% 45%)"


def _number(value):
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{float(value):.4g}"


class _Page:
    """What every page shares: the images' names, links and thumbnails."""

    def __init__(self, folder, image_paths, names, made, ks, title):
        self.names = names
        self.made = made
        self.ks = ks
        self.title = title
        self.links = [_e(_original_url(path, folder)) for path in image_paths]

    def index(self, best, clusterings, summary):
        k = best["n_clusters"]
        parts = [f"<h1 id=top>{_e(self.title)}</h1>", self._k_nav(None)]
        if len(clusterings) > 1:
            parts.append(f"<p>This page shows k = {k}; the other pages show every k.</p>")
            parts.append(_k_selection(clusterings, k))
        parts.append(self._clusters(best))
        if summary:
            parts.append(f"<h2 id=summary>Summary</h2>{_value(summary)}")
        return self._document(self.title, parts, with_summary=bool(summary))

    def for_k(self, clustering):
        k = clustering["n_clusters"]
        title = f"{self.title}: k = {k}"
        parts = [f"<h1 id=top>{_e(title)}</h1>", self._k_nav(k), self._clusters(clustering)]
        return self._document(title, parts, with_summary=False)

    def _document(self, title, parts, with_summary):
        summary_link = ' · <a href="#summary">summary</a>' if with_summary else ""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            '<a class="skip" href="#clusters">Skip to the clusters</a>'
            + "\n".join(parts)
            + f"<p><a href=#top>Back to the top</a>{summary_link}</p>"
            + f"<script>{_SCRIPT}</script></body></html>\n"
        )

    def _k_nav(self, current):
        overview = ' aria-current="page"' if current is None else ""
        links = [f'<a href="index.html"{overview}>Overview</a>']
        links += [
            f'<a href="k{k}.html"' + (' aria-current="page"' if k == current else "") + f">k = {k}</a>"
            for k in self.ks
        ]
        return '<nav class="k" aria-label="Pages">' + "".join(links) + "</nav>"

    def _clusters(self, clustering):
        k = clustering["n_clusters"]
        labels, confidence = clustering["labels"], clustering["confidence"]
        sizes = np.bincount(labels, minlength=k)
        toc = "".join(
            f'<li><a href="#c{c}"><span class=sw style="--c:{_color(c)}"></span>Cluster {c}</a>: '
            f"{_number(int(sizes[c]))} images</li>"
            for c in range(k)
        )
        parts = [
            f'<h2 id="clusters">{k} clusters of {_number(len(labels))} images</h2>',
            "<p>Images are sorted by confidence, highest first. Hover an image for its name, click it "
            "for the original. Keys: <kbd>j</kbd> next cluster, <kbd>k</kbd> previous cluster. "
            '<label><input type="checkbox" id="names"> Show file names</label></p>',
            f'<nav aria-label="Clusters"><ul class="toc">{toc}</ul></nav>',
        ]
        if clustering["scores"]:
            parts.append(_value({name: value for name, value in clustering["scores"].items()}))
        if clustering["map"] is not None:
            parts.append(self._map(clustering))
        order = np.lexsort((np.arange(len(labels)), -confidence))
        for c in range(k):
            members = order[labels[order] == c]
            mean = f" · mean confidence {confidence[members].mean():.2f}" if len(members) else ""
            prototype = ""
            if clustering["prototypes"] is not None:
                source = _prototype_name(k, c)
                prototype = f'<img class="proto" src="{source}" alt="Prototype of cluster {c}">'
            images = "".join(self._figure(i, confidence[i]) for i in members)
            parts.append(
                f'<section class="cluster" id="c{c}" style="--c:{_color(c)}">'
                f'<div class="head">{prototype}<h2 class="cluster" tabindex="-1">'
                f"<span class=sw></span>Cluster {c} <small>· {_number(len(members))} images{mean}</small>"
                f'</h2></div><div class="grid">{images}</div></section>'
            )
        return "\n".join(parts)

    def _figure(self, i, confidence):
        name = _e(self.names[i])
        if not self.made[i]:
            return f'<a href="{self.links[i]}" title="{name}">{name} (no thumbnail)</a>'
        return (
            f'<a href="{self.links[i]}" title="{name} · {confidence:.2f}">'
            f'<img src="{_thumbnail_name(i)}" alt="{name}" loading="lazy"></a>\n'
        )

    def _map(self, clustering):
        labels, points = clustering["labels"], clustering["map"]
        low, high = points.min(axis=0), points.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        margin = 40
        xy = margin + (points - low) / span * (_MAP_SIZE - 2 * margin)
        xy[:, 1] = _MAP_SIZE - xy[:, 1]
        xy = np.rint(xy).astype(int)
        dots = "".join(
            f'<path stroke="{_color(c)}" d="'
            + "".join(f"M{x} {y}h0" for x, y in xy[labels == c])
            + '"/>'
            for c in range(clustering["n_clusters"])
        )
        thumbs = []
        side = _MAP_SIZE / _MAP_GRID
        cells = {}
        for i in np.lexsort((np.arange(len(labels)), -clustering["confidence"])):
            if self.made[i]:
                cells.setdefault((xy[i, 0] // side, xy[i, 1] // side), i)
        for i in sorted(cells.values()):
            x, y = xy[i]
            thumbs.append(
                f'<a href="{self.links[i]}"><image href="{_thumbnail_name(i)}" x="{x - 24}" y="{y - 24}" '
                f'width="48" height="48"><title>{_e(self.names[i])}</title></image></a>'
            )
        return (
            '<figure><svg viewBox="0 0 1000 1000" role="group" aria-labelledby="map-caption" '
            'xmlns="http://www.w3.org/2000/svg"><g fill="none" stroke-width="7" stroke-linecap="round" '
            f'opacity=".7">{dots}</g>{"".join(thumbs)}</svg><figcaption id="map-caption">Map of the '
            "collection: each dot is an image, coloured by cluster, with a thumbnail of the most confident "
            "image in each region.</figcaption></figure>"
        )


def _k_selection(clusterings, best):
    names = []
    for clustering in clusterings:
        names += [name for name in clustering["scores"] if name not in names]
    charts = [_chart(name, clusterings, best) for name in names]
    return '<h2 id="k-selection">Choosing k</h2>' + "".join(chart for chart in charts if chart)


def _chart(name, clusterings, best):
    """A line of ``name`` against k, as inline SVG."""
    points = [
        (c["n_clusters"], float(c["scores"][name]))
        for c in clusterings
        if isinstance(c["scores"].get(name), (int, float, np.integer, np.floating))
        and math.isfinite(c["scores"][name])
    ]
    if not points:
        return ""
    width, height, margin = 400, 220, 50
    ks = [k for k, _ in points]
    values = [v for _, v in points]
    k_low, k_high = min(ks), max(ks)
    v_low, v_high = min(values), max(values)

    def x(k):
        return margin + (k - k_low) / ((k_high - k_low) or 1) * (width - 2 * margin)

    def y(v):
        return height - margin + 10 - (v - v_low) / ((v_high - v_low) or 1) * (height - 2 * margin)

    line = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in points)
    marks = "".join(
        f'<circle cx="{x(k):.1f}" cy="{y(v):.1f}" r="{7 if k == best else 4}" '
        f'fill="{"#d62728" if k == best else "currentColor"}"><title>k = {k}: {_number(v)}</title></circle>'
        f'<text x="{x(k):.1f}" y="{height - 12}" text-anchor="middle">{k}</text>'
        for k, v in points
    )
    return (
        f'<figure><svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(name)} against k" xmlns="http://www.w3.org/2000/svg" font-size="13" '
        f'fill="currentColor"><polyline points="{line}" fill="none" stroke="currentColor"/>{marks}'
        f'<text x="4" y="{y(v_high) + 4:.1f}">{_number(v_high)}</text>'
        f'<text x="4" y="{y(v_low) + 4:.1f}">{_number(v_low)}</text></svg>'
        f"<figcaption>{_e(name)} against k (k = {best}, in red, is shown above)</figcaption></figure>"
    )


def _value(value):
    """A summary value as HTML: mappings as definition lists, lists of mappings as tables."""
    if isinstance(value, Mapping):
        if not value:
            return "—"
        items = "".join(f"<dt>{_e(key)}</dt><dd>{_value(item)}</dd>" for key, item in value.items())
        return f"<dl>{items}</dl>"
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        if all(isinstance(item, Mapping) for item in value):
            columns = list(dict.fromkeys(key for item in value for key in item))
            head = "".join(f"<th>{_e(column)}</th>" for column in columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_value(item.get(column))}</td>" for column in columns) + "</tr>"
                for item in value
            )
            return f"<table><tr>{head}</tr>{rows}</table>"
        return _e(", ".join(_number(item) for item in value))
    return _e(_number(value))
