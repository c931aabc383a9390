"""Load test: fit on 100,000 small images, and predict on a 1,000,000-row memory map.

Two measurements, each in its own process so that peak memory is its own:

- ``fit``: fits and predicts on ``--n-fit`` (100,000) structured 28x28 uint8
  images: scikit-learn's 8x8 digits upscaled, shifted by up to 2 pixels and
  noised, made in chunks. Reports wall times and the peak resident memory
  (``VmHWM``, or ``ru_maxrss`` without ``/proc``), also as its increase over
  the process before the data were made. The images themselves take ``n * 784`` bytes.
- ``predict``: writes ``--predict-rows`` (250,000 and 1,000,000) such images
  to a uint8 ``.npy`` file, opens it as a read-only memory map and predicts
  with a model fitted on 10,000 of them. Reports the peak increase of
  resident memory over the process just before ``predict``, split into
  anonymous memory (what the process allocated) and file-backed pages of the
  memory map (reclaimable page cache that the kernel keeps mapped while
  memory is plentiful, so it grows with whatever was read), sampled every
  10 ms from ``/proc/self/status``, and the peak resident memory. Streaming predict
  means the anonymous increase does not grow with the number of rows beyond
  the output itself (labels, and the embeddings' 4 bytes per dimension and
  row).

The small settings (``--pretrain-epochs 1``, ``--max-iter 100``, filters
(8, 16, 32)) keep the run to minutes on 2 CPU cores: the point is memory and
completion, not clustering quality (see ``bench_quality.py``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_load.py --json load.json
    python benchmarks/bench_load.py --n-fit 20000 --predict-rows 50000 200000
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

SIDE = 28
CHUNK_ROWS = 20_000


def _kib_to_mib(kib):
    return round(kib / 1024, 1)


def _status_kib(*keys):
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in keys:
                values[key] = int(rest.split()[0])
    return [values[key] for key in keys]


def _peak_rss_mib():
    """Peak resident memory of this process, in MiB.

    ``ru_maxrss`` (KiB on Linux) starts a child process at its parent's peak,
    which here held the data being written; ``VmHWM`` is the peak of this
    process image alone, so it is used where there is one.
    """
    try:
        (peak,) = _status_kib("VmHWM")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _kib_to_mib(peak)


def _status_mib():
    """Current anonymous and file-backed resident memory of this process, in MiB."""
    return tuple(_kib_to_mib(value) for value in _status_kib("RssAnon", "RssFile"))


class _Sampler:
    """Samples anonymous and file-backed resident memory in a thread; keeps the peaks."""

    def __init__(self, interval=0.01):
        self.interval = interval
        self.peak_anon = self.peak_file = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            anon, file = _status_mib()
            self.peak_anon, self.peak_file = max(self.peak_anon, anon), max(self.peak_file, file)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _digit_templates():
    """The 1,797 digits of scikit-learn upscaled to 24x24 uint8, and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    templates = np.stack(
        [
            np.asarray(
                Image.fromarray(np.rint(image * 255 / 16).astype(np.uint8)).resize(
                    (SIDE - 4, SIDE - 4), Image.Resampling.BICUBIC
                )
            )
            for image in digits.images
        ]
    )
    return templates, digits.target


def make_images(n, out, seed=0):
    """Write ``n`` jittered, noised 28x28 digit images into the uint8 array ``out``, chunk by chunk."""
    templates, targets = _digit_templates()
    rng = np.random.default_rng(seed)
    labels = np.empty(n, dtype=np.int8)
    for start in range(0, n, CHUNK_ROWS):
        stop = min(n, start + CHUNK_ROWS)
        size = stop - start
        which = rng.integers(len(templates), size=size)
        canvas = np.zeros((size, SIDE, SIDE), dtype=np.int16)
        shifts = rng.integers(0, 5, size=(size, 2))
        for (top, left) in {tuple(shift) for shift in shifts.tolist()}:
            rows = np.flatnonzero((shifts[:, 0] == top) & (shifts[:, 1] == left))
            canvas[rows, top : top + SIDE - 4, left : left + SIDE - 4] = templates[which[rows]]
        canvas += rng.integers(-20, 21, size=canvas.shape, dtype=np.int16)
        out[start:stop] = np.clip(canvas, 0, 255).astype(np.uint8)
        labels[start:stop] = targets[which]
    return labels


def _estimator(args, n_clusters=10):
    from skdcec import DeepConvEmbeddingClustering

    return DeepConvEmbeddingClustering(
        n_clusters,
        filters=tuple(args.filters),
        pretrain_epochs=args.pretrain_epochs,
        max_iter=args.max_iter,
        update_interval=args.update_interval,
        batch_size=args.batch_size,
        n_init=1,
        device="cpu",
        random_state=0,
    )


def measure_fit(args):
    """Fit and predict on ``args.n_fit`` images in memory; this process's figures."""
    import torch
    from sklearn.metrics import normalized_mutual_info_score

    baseline = _peak_rss_mib()
    started = time.perf_counter()
    images = np.empty((args.n_fit, SIDE, SIDE, 1), dtype=np.uint8)
    labels = make_images(args.n_fit, images[..., 0])
    made = time.perf_counter() - started
    after_data = _peak_rss_mib()
    est = _estimator(args)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(images)
    fitted = time.perf_counter() - started
    started = time.perf_counter()
    predicted = est.predict(images)
    predict_seconds = time.perf_counter() - started
    peak = _peak_rss_mib()
    return {
        "n_images": args.n_fit,
        "torch_threads": torch.get_num_threads(),
        "data_mib": round(images.nbytes / 2**20, 1),
        "make_data_seconds": round(made, 1),
        "fit_seconds": round(fitted, 1),
        "predict_seconds": round(predict_seconds, 1),
        "n_iter": est.n_iter_,
        "nmi_vs_digit": round(normalized_mutual_info_score(labels, predicted), 3),
        "peak_rss_mib": peak,
        "baseline_rss_mib": baseline,
        "peak_increase_mib": round(peak - baseline, 1),
        "peak_increase_over_data_mib": round(peak - after_data, 1),
    }


def measure_predict(args):
    """Predict on the memory-mapped ``args.data`` with the model in ``args.model``; this process's figures."""
    import torch

    from skdcec import load

    est = load(args.model)
    rows = np.load(args.data, mmap_mode="r")
    rows_mib = round(rows.nbytes / 2**20, 1)
    baseline_rss = _peak_rss_mib()
    baseline_anon, baseline_file = _status_mib()
    started = time.perf_counter()
    with _Sampler() as sampler:
        labels = est.predict(rows)
    seconds = time.perf_counter() - started
    return {
        "n_rows": len(rows),
        "torch_threads": torch.get_num_threads(),
        "file_mib": rows_mib,
        "predict_seconds": round(seconds, 1),
        "rows_per_second": round(len(rows) / seconds),
        "output_mib": round(labels.nbytes / 2**20, 1),
        "peak_anon_increase_mib": round(sampler.peak_anon - baseline_anon, 1),
        "peak_file_backed_increase_mib": round(sampler.peak_file - baseline_file, 1),
        "peak_rss_increase_mib": round(_peak_rss_mib() - baseline_rss, 1),
    }


def _run_child(mode, args, extra):
    command = [sys.executable, __file__, "--mode", mode, *extra]
    command += ["--filters", *map(str, args.filters), "--pretrain-epochs", str(args.pretrain_epochs)]
    command += ["--max-iter", str(args.max_iter), "--update-interval", str(args.update_interval)]
    command += ["--batch-size", str(args.batch_size)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-fit", type=int, default=100_000)
    parser.add_argument("--predict-rows", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--filters", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--pretrain-epochs", type=int, default=1)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--update-interval", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--parts", nargs="+", choices=["fit", "predict"], default=["fit", "predict"])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--mode", choices=["all", "fit", "predict"], default="all", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.mode == "fit":
        print(json.dumps(measure_fit(args)))
        return
    if args.mode == "predict":
        print(json.dumps(measure_predict(args)))
        return

    report = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count()}
    if "fit" in args.parts:
        report["fit"] = _run_child("fit", args, ["--n-fit", str(args.n_fit)])
        print(json.dumps({"fit": report["fit"]}, indent=2), flush=True)
    if "predict" not in args.parts:
        _write(report, args.json)
        return
    report["predict"] = []
    with tempfile.TemporaryDirectory(prefix="skdcec-bench-load-") as folder:
        largest = max(args.predict_rows)
        data_path = os.path.join(folder, "rows.npy")
        rows = np.lib.format.open_memmap(data_path, mode="w+", dtype=np.uint8, shape=(largest, SIDE, SIDE, 1))
        make_images(largest, rows[..., 0], seed=1)
        rows.flush()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _estimator(args).fit(np.array(rows[:10_000]))
        del rows
        model.save(os.path.join(folder, "model"))
        for n in sorted(args.predict_rows):
            # A file of exactly n rows, so that predict reads the whole of it.
            path = os.path.join(folder, f"rows_{n}.npy")
            if n == largest:
                path = data_path
            else:
                source = np.load(data_path, mmap_mode="r")
                np.save(path, source[:n])
                del source
            extra = ["--model", os.path.join(folder, "model"), "--data", path]
            record = _run_child("predict", args, extra)
            report["predict"].append(record)
            print(json.dumps(record, indent=2), flush=True)
            if path != data_path:
                os.remove(path)
    _write(report, args.json)


def _write(report, path):
    if path:
        with open(path, "w") as file:
            json.dump(report, file, indent=2)


if __name__ == "__main__":
    main()
