"""Benchmark ``skdcec.images.load_images`` on a folder of large JPEG photographs.

The folder holds ``--n-images`` JPEGs (2,000 by default) whose sides measure
1,000 to 3,000 pixels, cut and resized from real photographs: scikit-learn's
two sample images and, when scikit-image is installed, the colour photographs
bundled with ``skimage.data``. Upscaling smooths a photograph, so mild sensor
grain is added to keep the files as hard to decode as camera JPEGs.

Each configuration loads the whole folder ``--repeats`` times (the file cache
is warmed first) and reports the median. ``load_images`` always asks Pillow to
decode JPEGs at reduced scale (draft mode); the rows "without draft" disable
Pillow's ``JpegImageFile.draft`` to measure what it saves.

Usage::

    python benchmarks/bench_images.py [--dir DIR] [--n-images 2000] [--repeats 3]
                                      [--size 128] [--json results.json]

Without ``--dir`` the images are written to a temporary folder and deleted at
the end; with it they are kept and reused by later runs.
"""

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from unittest import mock

import joblib
import numpy as np
import PIL
from joblib import Parallel, delayed
from PIL import Image, JpegImagePlugin, features
from sklearn.datasets import load_sample_images

from skdcec.images import load_images

# skimage.data photographs bundled with scikit-image (no download needed).
SKIMAGE_PHOTOS = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
)
LONG_SIDES = (1500, 3000)
ASPECT_RATIOS = (1.0, 4 / 3, 3 / 2)
GRAIN_STD = 4.0
JPEG_QUALITY = 90
MARKER = ".bench_images.json"


def source_photos():
    """Return the real photographs available offline, as RGB uint8 arrays."""
    photos = dict(zip(["sklearn china", "sklearn flower"], load_sample_images().images))
    try:
        import skimage.data
    except ImportError:
        return photos
    for name in SKIMAGE_PHOTOS:
        try:
            pixels = getattr(skimage.data, name)()
        except (AttributeError, ImportError, OSError, ValueError):
            continue  # absent from this version, or needs a download
        photos[f"skimage {name}"] = np.asarray(Image.fromarray(pixels).convert("RGB"))
    return photos


def make_photo(path, photos, seed):
    """Write one JPEG cut from a random photograph, resized to 1,000-3,000 px."""
    rng = np.random.default_rng(seed)
    pixels = photos[rng.integers(len(photos))]
    height, width = pixels.shape[:2]
    crop_height = int(height * rng.uniform(0.5, 1.0))
    crop_width = int(width * rng.uniform(0.5, 1.0))
    top = rng.integers(height - crop_height + 1)
    left = rng.integers(width - crop_width + 1)
    crop = Image.fromarray(pixels[top : top + crop_height, left : left + crop_width])

    long_side = int(rng.integers(LONG_SIDES[0], LONG_SIDES[1] + 1))
    short_side = round(long_side / ASPECT_RATIOS[rng.integers(len(ASPECT_RATIOS))])
    size = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
    large = np.asarray(crop.resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
    grain = rng.standard_normal(large.shape, dtype=np.float32) * GRAIN_STD
    grainy = np.clip(large + grain, 0, 255).astype(np.uint8)
    Image.fromarray(grainy).save(path, quality=JPEG_QUALITY)
    return size


def prepare_folder(folder, n_images, seed):
    """Create the benchmark JPEGs in ``folder`` unless an earlier run left them."""
    marker = os.path.join(folder, MARKER)
    wanted = {"n_images": n_images, "seed": seed}
    if os.path.exists(marker):
        with open(marker) as file:
            made = json.load(file)
        if made["params"] == wanted:
            return made["sizes"], 0.0
    if any(name.lower().endswith(".jpg") for name in os.listdir(folder)):
        sys.exit(
            f"{folder} holds JPEGs this benchmark did not make with these settings; give an empty folder."
        )
    photos = list(source_photos().values())
    start = time.perf_counter()
    sizes = Parallel(n_jobs=-1, prefer="threads")(
        delayed(make_photo)(os.path.join(folder, f"photo_{i:05d}.jpg"), photos, [seed, i])
        for i in range(n_images)
    )
    elapsed = time.perf_counter() - start
    with open(marker, "w") as file:
        json.dump({"params": wanted, "sizes": sizes}, file)
    return sizes, elapsed


def time_loading(folder, size, n_jobs, draft):
    """Load the folder once; return the images and the wall-clock and CPU times."""
    patch = (
        contextlib.nullcontext()
        if draft
        else mock.patch.object(JpegImagePlugin.JpegImageFile, "draft", lambda self, mode, size: None)
    )
    with patch:
        start, cpu_start = time.perf_counter(), time.process_time()
        collection = load_images(folder, size=size, n_jobs=n_jobs)
        return collection.images, time.perf_counter() - start, time.process_time() - cpu_start


def warm_file_cache(folder):
    for entry in os.scandir(folder):
        with open(entry.path, "rb") as file:
            while file.read(1 << 24):
                pass


def run(folder, args):
    sizes, generation_s = prepare_folder(folder, args.n_images, args.seed)
    warm_file_cache(folder)
    n_bytes = sum(entry.stat().st_size for entry in os.scandir(folder) if entry.name.endswith(".jpg"))
    megapixels = [width * height / 1e6 for width, height in sizes]
    n_threads = joblib.effective_n_jobs(-1)

    # Other processes competing for the CPUs slow the parallel rows most.
    load_before = os.getloadavg()[0]
    configurations = [(n_jobs, draft) for draft in (True, False) for n_jobs in (1, -1)]
    times = {configuration: [] for configuration in configurations}
    cpu_times = {configuration: [] for configuration in configurations}
    images = {}
    # Configurations take turns within each repeat, so that a burst of load
    # from other processes hits all of them rather than one.
    for _ in range(args.repeats):
        for n_jobs, draft in configurations:
            images[n_jobs, draft], wall, cpu = time_loading(folder, args.size, n_jobs, draft)
            times[n_jobs, draft].append(wall)
            cpu_times[n_jobs, draft].append(cpu)
    rows = []
    for n_jobs, draft in configurations:
        median = statistics.median(times[n_jobs, draft])
        rows.append(
            {
                "n_jobs": n_jobs,
                "threads": 1 if n_jobs == 1 else n_threads,
                "draft": draft,
                "times_s": times[n_jobs, draft],
                "cpu_times_s": cpu_times[n_jobs, draft],
                "median_s": median,
                # Below the thread count when other processes hold CPUs.
                "cores_used": statistics.median(
                    cpu / wall for cpu, wall in zip(cpu_times[n_jobs, draft], times[n_jobs, draft])
                ),
                "images_per_s": args.n_images / median,
            }
        )
    for draft in (True, False):
        # Threads must change the speed only, never the pixels.
        np.testing.assert_array_equal(images[1, draft], images[-1, draft])
    draft_error = np.abs(images[1, True].astype(np.int16) - images[1, False]).mean()

    baseline = next(row["median_s"] for row in rows if row["n_jobs"] == 1 and not row["draft"])
    for row in rows:
        row["speedup"] = baseline / row["median_s"]
    return {
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
            "pillow": PIL.__version__,
            "libjpeg_turbo": features.version("libjpeg_turbo"),
            "numpy": np.__version__,
            "joblib": joblib.__version__,
        },
        "dataset": {
            "n_images": args.n_images,
            "sides_px": [min(min(s) for s in sizes), max(max(s) for s in sizes)],
            "mean_megapixels": float(np.mean(megapixels)),
            "total_mb": n_bytes / 1e6,
            "generation_s": generation_s,
        },
        "size": args.size,
        "repeats": args.repeats,
        "mean_abs_pixel_difference_draft_vs_full": float(draft_error),
        "results": rows,
    }


def markdown(report):
    dataset, environment = report["dataset"], report["environment"]
    smallest, largest = dataset["sides_px"]
    summary = (
        f"{dataset['n_images']} JPEGs, sides {smallest}-{largest} px, "
        f"mean {dataset['mean_megapixels']:.1f} MP and {dataset['total_mb'] / dataset['n_images']:.2f} MB; "
        f"output {report['size']}x{report['size']} RGB; median of {report['repeats']} runs; "
        f"{environment['cpu_count']} CPUs (1-minute load average {environment['load_average_before']:.1f} "
        f"before, {environment['load_average_after']:.1f} after), Pillow {environment['pillow']} "
        f"(libjpeg-turbo {environment['libjpeg_turbo']})."
    )
    draft_error = report["mean_abs_pixel_difference_draft_vs_full"]
    lines = [
        summary,
        "",
        "| n_jobs | threads | JPEG draft | median time (s) | images/s | speed-up | CPU cores used |",
        "|---:|---:|:---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['n_jobs']} | {row['threads']} | {'yes' if row['draft'] else 'no'} "
            f"| {row['median_s']:.2f} | {row['images_per_s']:.0f} | {row['speedup']:.1f}x "
            f"| {row['cores_used']:.2f} |"
        )
    lines += ["", f"Mean absolute pixel difference, draft vs full decoding: {draft_error:.2f} (of 255)."]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="folder for the JPEGs, kept and reused (default: a temporary one)")
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=128, help="side of the square output images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
        report = run(args.dir, args)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_images_") as folder:
            report = run(folder, args)
    print(markdown(report))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=2)


if __name__ == "__main__":
    sys.exit(main())
