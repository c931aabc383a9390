"""Saving and loading: exact round trips, plain-data formats, refusal of foreign, newer or malicious files."""

import json
import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import skdcec
from skdcec import DeepConvEmbeddingClustering, load
from skdcec._files import file_sha256
from skdcec._persistence import FORMAT_VERSION, MANIFEST_FILE, TENSORS_FILE

QUICK = {
    "pretrain_epochs": 2,
    "max_iter": 20,
    "update_interval": 10,
    "batch_size": 64,
    "n_init": 2,
    "device": "cpu",
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _fit(X, n_clusters=3, **params):
    params = {**QUICK, "random_state": 0, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return DeepConvEmbeddingClustering(n_clusters, **params).fit(X)


@pytest.fixture(scope="module")
def digits_X():
    from sklearn.datasets import load_digits

    return load_digits().data[:120]


@pytest.fixture(scope="module")
def fitted(digits_X):
    return _fit(digits_X)


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "model"
    fitted.save(path)
    return path


def _assert_same_model(restored, original, X):
    assert type(restored) is DeepConvEmbeddingClustering
    np.testing.assert_array_equal(restored.predict(X), original.predict(X))
    np.testing.assert_array_equal(restored.predict_proba(X), original.predict_proba(X))
    np.testing.assert_array_equal(restored.transform(X), original.transform(X))
    centers = original.cluster_centers_
    np.testing.assert_array_equal(restored.inverse_transform(centers), original.inverse_transform(centers))
    assert restored.score(X) == original.score(X)
    for name in ("cluster_centers_", "labels_", "input_mean_", "input_scale_"):
        expected = getattr(original, name)
        actual = getattr(restored, name)
        assert actual.dtype == expected.dtype, name
        np.testing.assert_array_equal(actual, expected, err_msg=name)
    assert restored.history_ == original.history_
    assert restored.n_iter_ == original.n_iter_
    assert restored.image_shape_ == original.image_shape_ and isinstance(restored.image_shape_, tuple)
    assert restored.n_features_in_ == original.n_features_in_
    assert restored._input_ndim == original._input_ndim
    assert restored._input_dtype == original._input_dtype
    assert restored.device_ == torch.device("cpu")
    assert hasattr(restored, "feature_names_in_") == hasattr(original, "feature_names_in_")
    if hasattr(original, "feature_names_in_"):
        np.testing.assert_array_equal(restored.feature_names_in_, original.feature_names_in_)
        assert restored.feature_names_in_.dtype == object
    original_weights = original.autoencoder_.state_dict()
    for name, tensor in restored.autoencoder_.state_dict().items():
        torch.testing.assert_close(tensor, original_weights[name], rtol=0, atol=0)


@pytest.mark.parametrize("layout", ["flat float64", "3-D float32", "4-D uint8 RGB", "DataFrame"])
def test_round_trip_is_exact(layout, digits_X, rgb_images, tmp_path):
    """A saved and loaded model predicts, embeds and decodes exactly as the original."""
    if layout == "flat float64":
        X = digits_X
    elif layout == "3-D float32":
        X = digits_X.reshape(-1, 8, 8).astype(np.float32)
    elif layout == "4-D uint8 RGB":
        X = rgb_images
    else:
        pd = pytest.importorskip("pandas")
        X = pd.DataFrame(digits_X, columns=[f"pixel_{i}" for i in range(digits_X.shape[1])])
    original = _fit(X)
    original.save(tmp_path / "model")
    restored = load(tmp_path / "model")
    _assert_same_model(restored, original, X)
    assert restored.get_params() == original.get_params()


def test_save_returns_the_estimator_and_load_is_public(fitted, tmp_path):
    """est.save returns est; skdcec.load is exported."""
    assert fitted.save(tmp_path / "model") is fitted
    assert "load" in skdcec.__all__ and skdcec.load is load


def test_folder_holds_json_and_plain_tensors(saved, fitted):
    """model.json is plain JSON with versions; state.pt is a dict of tensors that loads weights-only."""
    assert sorted(os.listdir(saved)) == [MANIFEST_FILE, TENSORS_FILE]
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    assert manifest["format"] == "skdcec-model"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["skdcec_version"] == skdcec.__version__
    assert manifest["params"]["n_clusters"] == fitted.n_clusters
    assert manifest["files"][TENSORS_FILE]["sha256"] == file_sha256(saved / TENSORS_FILE)
    tensors = torch.load(saved / TENSORS_FILE, weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in tensors.values())
    np.testing.assert_array_equal(tensors["labels_"].numpy(), fitted.labels_)


def test_parameters_come_back_as_plain_values(digits_X, tmp_path):
    """Tuples stay tuples, a device object becomes a string, memory and RandomState become None."""
    original = _fit(
        digits_X,
        filters=[8, 16],
        image_shape=[8, 8],
        device=torch.device("cpu"),
        memory=str(tmp_path / "cache"),
        random_state=np.random.RandomState(0),
    )
    original.save(tmp_path / "model")
    restored = load(tmp_path / "model")
    params = restored.get_params()
    assert params["filters"] == (8, 16) and isinstance(params["filters"], tuple)
    assert params["image_shape"] == (8, 8) and isinstance(params["image_shape"], tuple)
    assert params["device"] == "cpu"
    assert params["memory"] is None
    assert params["random_state"] is None
    np.testing.assert_array_equal(restored.predict(digits_X), original.predict(digits_X))


def test_unfitted_estimator_is_not_saved(tmp_path):
    """Saving an unfitted estimator raises NotFittedError and writes nothing."""
    with pytest.raises(NotFittedError):
        DeepConvEmbeddingClustering().save(tmp_path / "model")
    assert os.listdir(tmp_path) == []


class _WritesMarker:
    """A pickle payload that creates a file when it is unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_payload_is_live(tmp_path):
    """The payload used below really runs code under an ordinary unpickler."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_WritesMarker(marker))).close()
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("container", ["pickle", "torch archive"])
@pytest.mark.parametrize("checksum", ["stale", "forged"])
def test_load_never_executes_code(saved, tmp_path, container, checksum):
    """A state.pt whose unpickling would create a file is refused, and the file is never created."""
    marker = tmp_path / "marker"
    payload = {"cluster_centers_": _WritesMarker(marker)}
    state = saved / TENSORS_FILE
    if container == "pickle":
        state.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, state)
    if checksum == "forged":
        manifest = json.loads((saved / MANIFEST_FILE).read_text())
        manifest["files"][TENSORS_FILE]["sha256"] = file_sha256(state)
        (saved / MANIFEST_FILE).write_text(json.dumps(manifest))
        match = "does not hold plain tensors"
    else:
        match = "modified or corrupted"
    with pytest.raises(ValueError, match=match):
        load(saved)
    assert not marker.exists()


def test_newer_format_is_refused_naming_the_versions(saved):
    """A model written in a newer format names both versions and says to upgrade."""
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    manifest["skdcec_version"] = "9.9.9"
    (saved / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ValueError) as info:
        load(saved)
    message = str(info.value)
    assert "9.9.9" in message and f"format version {FORMAT_VERSION + 1}" in message
    assert skdcec.__version__ in message and f"up to {FORMAT_VERSION}" in message
    assert "Upgrade skdcec" in message


def _edit_manifest(path, edit):
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    edit(manifest)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


def _forge_tensors(path, edit):
    tensors = torch.load(path / TENSORS_FILE, weights_only=True)
    edit(tensors)
    torch.save(tensors, path / TENSORS_FILE)
    _edit_manifest(path, lambda m: m["files"][TENSORS_FILE].update(sha256=file_sha256(path / TENSORS_FILE)))


@pytest.mark.parametrize(
    "damage, error, match",
    [
        (lambda p: (p / MANIFEST_FILE).write_text("{not json"), ValueError, "not valid JSON"),
        (lambda p: (p / MANIFEST_FILE).unlink(), ValueError, "not a skdcec model folder"),
        (lambda p: (p / TENSORS_FILE).unlink(), ValueError, "missing"),
        (lambda p: _edit_manifest(p, lambda m: m.update(format="other")), ValueError, "does not describe"),
        (lambda p: _edit_manifest(p, lambda m: m.update(format_version="1")), ValueError, "invalid format"),
        (lambda p: _edit_manifest(p, lambda m: m["params"].update(spam=1)), ValueError, "not valid"),
        (lambda p: _edit_manifest(p, lambda m: m["params"].update(n_clusters=-1)), ValueError, "not valid"),
        (lambda p: _edit_manifest(p, lambda m: m["params"].update(n_clusters=4)), ValueError, "inconsistent"),
        (
            lambda p: _edit_manifest(p, lambda m: m["params"].update(hidden_layers=[4, 4])),
            ValueError,
            "do not fit",
        ),
        (lambda p: _edit_manifest(p, lambda m: m["attributes"].pop("n_iter_")), ValueError, "incomplete"),
        (lambda p: _forge_tensors(p, lambda t: t.pop("labels_")), ValueError, "lacks"),
        (
            lambda p: _forge_tensors(p, lambda t: t.update(labels_=t["labels_"] + 10)),
            ValueError,
            "inconsistent",
        ),
        (lambda p: (p / TENSORS_FILE).write_bytes(b"\0" * 10), ValueError, "modified or corrupted"),
    ],
)
def test_damaged_or_foreign_folders_are_refused(saved, damage, error, match):
    """Every kind of damage gives a clear error instead of a half-working model."""
    damage(saved)
    with pytest.raises(error, match=match):
        load(saved)


def test_convolutional_weights_that_do_not_fit_the_filters_are_refused(digits_X, tmp_path):
    """A convolutional model whose saved filters were edited is refused, like a dense one's widths."""
    path = tmp_path / "model"
    _fit(digits_X.reshape(-1, 8, 8)).save(path)
    _edit_manifest(path, lambda m: m["params"].update(filters=[4, 4]))
    with pytest.raises(ValueError, match="do not fit"):
        load(path)


def test_paths_that_are_not_model_folders_are_refused(saved, tmp_path):
    """A missing path, a file and an unrelated folder are refused with their own message."""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="is a file"):
        load(saved / TENSORS_FILE)
    with pytest.raises(ValueError, match="not a skdcec model folder"):
        load(tmp_path)


def test_model_trained_on_a_gpu_loads_on_the_cpu(saved, fitted, digits_X):
    """A model whose device was CUDA runs on the CPU where there is none."""
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the model would load there")

    def on_cuda(manifest):
        manifest["params"]["device"] = "cuda"
        manifest["attributes"]["device_"] = "cuda:0"

    _edit_manifest(saved, on_cuda)
    restored = load(saved)
    assert restored.device_ == torch.device("cpu")
    assert next(restored.autoencoder_.parameters()).device == torch.device("cpu")
    assert restored.device == "cuda"
    np.testing.assert_array_equal(restored.predict(digits_X), fitted.predict(digits_X))
    with pytest.raises(ValueError, match="CUDA is not available"):
        load(saved, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_round_trip(digits_X, tmp_path):
    """A model fitted on CUDA saves, and loads back on CUDA or on the CPU with the same labels."""
    original = _fit(digits_X, device="cuda")
    original.save(tmp_path / "model")
    on_gpu = load(tmp_path / "model")
    on_cpu = load(tmp_path / "model", device="cpu")
    assert on_gpu.device_.type == "cuda" and on_cpu.device_ == torch.device("cpu")
    np.testing.assert_array_equal(on_gpu.predict(digits_X), original.predict(digits_X))
    assert (on_cpu.predict(digits_X) == original.predict(digits_X)).mean() > 0.95


def test_existing_target_needs_overwrite(fitted, saved, digits_X):
    """An existing model is kept unless overwrite=True, which replaces it whole."""
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fitted.save(saved)
    other = _fit(digits_X, n_clusters=4)
    other.save(saved, overwrite=True)
    assert load(saved).n_clusters == 4
    assert sorted(os.listdir(saved.parent)) == ["model"]


def test_overwrite_never_replaces_a_foreign_folder(fitted, tmp_path):
    """overwrite=True refuses to delete a folder that is not a model, and leaves it as it was."""
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="not written by skdcec"):
        fitted.save(folder, overwrite=True)
    assert os.listdir(folder) == ["holiday.jpg"]


@pytest.mark.parametrize("existing", [False, True])
def test_failed_save_leaves_nothing_behind(fitted, digits_X, tmp_path, monkeypatch, existing):
    """If writing fails midway, no partial folder appears and an existing model is untouched."""
    path = tmp_path / "model"
    if existing:
        previous = _fit(digits_X, n_clusters=2)
        previous.save(path)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        fitted.save(path, overwrite=True)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == (["model"] if existing else [])
    if existing:
        assert load(path).n_clusters == 2


def test_interrupted_save_leaves_nothing_behind(fitted, tmp_path, monkeypatch):
    """Ctrl-C while writing removes the temporary folder."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(tmp_path / "model")
    assert os.listdir(tmp_path) == []


def test_missing_parent_folder_is_reported(fitted, tmp_path):
    """Saving into a folder that does not exist says which folder to create."""
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        fitted.save(tmp_path / "absent" / "model")


@pytest.mark.parametrize("interrupted_move", [1, 2])
def test_interrupted_replacement_keeps_the_old_model(fitted, digits_X, tmp_path, monkeypatch, interrupted_move):
    """Ctrl-C while the new folder is swapped in puts the old model back, byte for byte, and leaves nothing else."""
    path = tmp_path / "model"
    _fit(digits_X, n_clusters=2).save(path)
    before = {name: (path / name).read_bytes() for name in os.listdir(path)}
    real_replace = os.replace
    moves = []

    def interrupt_one_move(source, target):
        moves.append(source)
        if len(moves) == interrupted_move:
            raise KeyboardInterrupt
        return real_replace(source, target)

    # The first move puts the old folder aside, the second the new one in place.
    monkeypatch.setattr(os, "replace", interrupt_one_move)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(path, overwrite=True)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model"]
    assert {name: (path / name).read_bytes() for name in os.listdir(path)} == before
    assert load(path).n_clusters == 2


def test_overwriting_a_link_replaces_the_link_not_its_target(fitted, digits_X, tmp_path):
    """save(overwrite=True) onto a symbolic link to a model replaces the link and leaves its target untouched."""
    target = tmp_path / "elsewhere" / "model"
    target.parent.mkdir()
    _fit(digits_X, n_clusters=2).save(target)
    before = {name: (target / name).read_bytes() for name in os.listdir(target)}
    link = tmp_path / "model"
    os.symlink(target, link)
    fitted.save(link, overwrite=True)
    assert not link.is_symlink() and load(link).n_clusters == fitted.n_clusters
    assert {name: (target / name).read_bytes() for name in os.listdir(target)} == before
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "model"]


def test_input_dtype_is_public_and_survives_the_round_trip(fitted, saved):
    """input_dtype_ decides the scaling; a loaded model keeps it."""
    assert fitted.input_dtype_ == fitted._input_dtype
    assert load(saved).input_dtype_ == fitted.input_dtype_
    assert not hasattr(DeepConvEmbeddingClustering(), "input_dtype_")
