"""The two training phases: pretraining, target updates, the stop rule and collapse."""

import numpy as np
import pytest
import torch

from skdcec import _training
from skdcec._autoencoder import ConvAutoencoder
from skdcec._clustering import ClusteringLayer
from skdcec._data import ImageBatches
from skdcec._initialization import split_in_two
from skdcec._training import TrainingDivergedError, embed, pretrain, train_clustering

CPU = torch.device("cpu")


def _blobs(n_per_cluster=20, seed=0):
    """Two groups of 4x4 images: dark and bright."""
    rng = np.random.default_rng(seed)
    dark = rng.uniform(0, 60, size=(n_per_cluster, 16))
    bright = rng.uniform(190, 255, size=(n_per_cluster, 16))
    return np.vstack([dark, bright]).astype(np.uint8)


def _setup(X, seed=0):
    torch.manual_seed(seed)
    model = ConvAutoencoder((4, 4, 1), filters=(4, 8), embedding_dim=2)
    data = ImageBatches(X, (4, 4, 1), None, None, CPU)
    return model, data


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def _distance_to_nearest(batch, images):
    """Exact distance from each image of ``batch`` to its nearest image in ``images``."""
    exact = "donot_use_mm_for_euclid_dist"
    return torch.cdist(batch.flatten(1), images.flatten(1), compute_mode=exact).min(dim=1).values


def _clustering_kwargs(**overrides):
    kwargs = dict(
        gamma=0.1,
        max_iter=50,
        update_interval=10,
        tol=1e-3,
        batch_size=8,
        learning_rate=1e-3,
        generator=_generator(),
        inference_batch_size=16,
        split_cluster=split_in_two,
    )
    kwargs.update(overrides)
    return kwargs


def test_pretraining_lowers_the_reconstruction_loss():
    """Pretraining records one loss per epoch and the loss goes down."""
    model, data = _setup(_blobs())
    history = pretrain(model, data, epochs=30, batch_size=8, learning_rate=1e-2, generator=_generator())
    assert [r["epoch"] for r in history] == list(range(1, 31))
    assert all(r["seconds"] > 0 for r in history)
    assert history[-1]["reconstruction_loss"] < 0.5 * history[0]["reconstruction_loss"]


def test_pretraining_divergence_names_learning_rate():
    """A NaN loss stops pretraining with an error that tells the user what to change."""
    model, data = _setup(_blobs())
    with torch.no_grad():
        model.encoder[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="learning_rate"):
        pretrain(model, data, epochs=1, batch_size=8, learning_rate=1e-3, generator=_generator())


def test_embed_does_not_depend_on_batch_size():
    """Inference at batch shapes of 1 and 64 agrees to float32 accuracy."""
    model, data = _setup(_blobs())
    all_at_once = embed(model, data, batch_size=64)
    one_by_one = embed(model, data, batch_size=1)
    # Different shapes may pick kernels that sum in different orders.
    torch.testing.assert_close(all_at_once, one_by_one)


def _centers(model, data):
    z = embed(model, data, batch_size=64)
    return torch.stack([z[:20].mean(0), z[20:].mean(0)])


def test_stable_labels_stop_at_the_second_update():
    """When no label changes, training stops at the first update after the initial one."""
    model, data = _setup(_blobs())
    layer = ClusteringLayer(_centers(model, data))
    result = train_clustering(model, layer, data, **_clustering_kwargs(learning_rate=1e-12))
    assert result.converged and not result.collapsed
    assert result.n_iter == 10
    assert [r["iteration"] for r in result.history] == [0, 10]
    assert result.history[0]["label_change_fraction"] is None
    assert result.history[1]["label_change_fraction"] == 0.0


def test_zero_tol_runs_to_max_iter():
    """tol=0 can never be beaten by a fraction: training runs max_iter mini-batches."""
    model, data = _setup(_blobs())
    layer = ClusteringLayer(_centers(model, data))
    result = train_clustering(model, layer, data, **_clustering_kwargs(tol=0.0, max_iter=25))
    assert not result.converged
    assert result.n_iter == 25
    # Updates at 0, 10, 20 and a final recompute at max_iter: labels from the final weights.
    assert [r["iteration"] for r in result.history] == [0, 10, 20, 25]


class _ScriptedLayer(ClusteringLayer):
    """A clustering layer whose full-data labels follow a script, one entry per update."""

    def __init__(self, centers, label_script):
        super().__init__(centers)
        # None in the script stands for the layer's own assignments.
        self.label_script = [
            torch.as_tensor(float("nan") if labels is None else labels) for labels in label_script
        ]
        self.n_updates = 0

    def log_assignment_of_all(self, z):
        log_q = super().log_assignment_of_all(z)
        labels = self.label_script[min(self.n_updates, len(self.label_script) - 1)]
        self.n_updates += 1
        if labels.dim() == 0:
            return log_q
        logits = torch.full((z.shape[0], 2), -10.0, dtype=torch.float64)
        logits[torch.arange(z.shape[0]), labels] = 0.0
        return torch.log_softmax(logits, dim=1)


def _flip_script(flips, n=40):
    """Half the labels in each cluster, then flip the first ``f`` labels at each update."""
    labels = np.array([0, 1] * (n // 2))
    script = []
    for f in flips:
        labels = labels.copy()
        labels[:f] = 1 - labels[:f]
        script.append(labels)
    return script


@pytest.mark.parametrize(
    "flips, tol, expected_updates",
    [
        ([0, 20, 4, 0, 0], 1e-3, 4),  # stops when nothing changes, never at the first update
        ([0, 20, 4, 1, 0], 0.05, 4),  # 1/40 = 0.025 < 0.05 stops at the fourth update
        ([0, 20, 2, 1, 0], 0.05, 4),  # 2/40 = 0.05 is not < 0.05: one more update
    ],
)
def test_stop_rule_on_scripted_label_changes(flips, tol, expected_updates):
    """The stop rule compares full-data labels of consecutive updates with a strict '<'."""
    model, data = _setup(_blobs())
    layer = _ScriptedLayer(_centers(model, data), _flip_script(flips))
    result = train_clustering(model, layer, data, **_clustering_kwargs(tol=tol, max_iter=1000))
    changes = [r["label_change_fraction"] for r in result.history]
    assert changes == [None] + [f / 40 for f in flips[1:expected_updates]]
    assert result.converged and result.n_iter == 10 * (expected_updates - 1)


def test_target_is_held_fixed_between_updates(monkeypatch):
    """P is computed once per update from all samples, never per batch."""
    shapes = []
    original = _training.target_distribution

    def spy(q):
        shapes.append(tuple(q.shape))
        return original(q)

    monkeypatch.setattr(_training, "target_distribution", spy)
    model, data = _setup(_blobs())
    layer = ClusteringLayer(_centers(model, data))
    kwargs = _clustering_kwargs(tol=0.0, max_iter=35, learning_rate=1e-6)
    result = train_clustering(model, layer, data, **kwargs)
    assert result.n_iter == 35
    # Updates at 0, 10, 20, 30 (the final recompute at 35 needs no target).
    assert shapes == [(40, 2)] * 4


def test_augmented_joint_phase_takes_q_from_transformed_and_p_from_clean_images(monkeypatch):
    """DEC-DA: training steps see transformed images; the target's Q sees clean ones."""
    model, data = _setup(_blobs())
    layer = ClusteringLayer(_centers(model, data))
    clean = data.take(np.arange(len(data)))
    inputs = {"target": [], "training": []}
    encode = model.encode

    def spy(x):
        inputs["target" if torch.is_inference_mode_enabled() else "training"].append(x.detach().clone())
        return encode(x)

    monkeypatch.setattr(model, "encode", spy)
    # A transformation that cannot go unnoticed: a left-right mirror.
    monkeypatch.setattr(_training, "augment_batch", lambda images, names, generator: images.flip(-1))
    train_clustering(
        model, layer, data, augmentations=frozenset({"flip"}), **_clustering_kwargs(tol=0.0, max_iter=20)
    )
    # Target updates at 0, 10 and 20, each on all clean samples in order, in
    # batches of 16 (the last one padded with blank images to that shape).
    padded = torch.cat([clean, torch.zeros((48 - len(clean), *clean.shape[1:]))])
    assert {tuple(x.shape) for x in inputs["target"]} == {(16, *clean.shape[1:])}
    torch.testing.assert_close(torch.cat(inputs["target"]), torch.cat([padded] * 3))
    assert len(inputs["training"]) == 20
    for batch in inputs["training"]:
        # Every training image is a mirrored sample, none is a clean one.
        assert _distance_to_nearest(batch, clean.flip(-1)).max() < 1e-6
        assert _distance_to_nearest(batch, clean).min() > 0.1


@pytest.mark.parametrize("phase", ["pretraining", "joint"])
@pytest.mark.parametrize("reconstruct_augmented", [True, False])
def test_the_reconstruction_target_is_the_augmented_or_the_clean_batch(
    monkeypatch, phase, reconstruct_augmented
):
    """Both phases reconstruct the transformed batch (DEC-DA's code) or the clean one, as asked."""
    model, data = _setup(_blobs())
    clean = data.take(np.arange(len(data)))
    targets = []
    mse_loss = torch.nn.functional.mse_loss

    def spy(reconstruction, target):
        targets.append(target.detach().clone())
        return mse_loss(reconstruction, target)

    monkeypatch.setattr(torch.nn.functional, "mse_loss", spy)
    monkeypatch.setattr(_training, "augment_batch", lambda images, names, generator: images.flip(-1))
    options = dict(augmentations=frozenset({"flip"}), reconstruct_augmented=reconstruct_augmented)
    if phase == "pretraining":
        pretrain(model, data, epochs=2, batch_size=8, learning_rate=1e-3, generator=_generator(), **options)
    else:
        layer = ClusteringLayer(_centers(model, data))
        train_clustering(model, layer, data, **options, **_clustering_kwargs(tol=0.0, max_iter=10))
    assert len(targets) == 10
    expected = clean.flip(-1) if reconstruct_augmented else clean
    for target in targets:
        # Each target is a batch of rows of `expected`, and of nothing else.
        assert _distance_to_nearest(target, expected).max() < 1e-6


def test_joint_phase_uses_a_fresh_adam_over_all_weights_and_centres(monkeypatch):
    """The joint phase builds its own Adam (no state from pretraining) covering the centres."""
    created = []
    original = torch.optim.Adam

    class SpyAdam(original):
        def __init__(self, params, **kwargs):
            params = list(params)
            created.append((params, kwargs))
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", SpyAdam)
    model, data = _setup(_blobs())
    pretrain(model, data, epochs=2, batch_size=8, learning_rate=1e-3, generator=_generator())
    layer = ClusteringLayer(_centers(model, data))
    train_clustering(model, layer, data, **_clustering_kwargs(max_iter=5))
    assert len(created) == 2
    joint_params, joint_kwargs = created[1]
    assert joint_kwargs["lr"] == 1e-3
    assert any(p is layer.centers for p in joint_params)
    assert {id(p) for p in model.parameters()} <= {id(p) for p in joint_params}


def test_collapse_stops_and_restores_the_last_healthy_weights():
    """A cluster that empties out stops training; the weights of the last update come back."""
    model, data = _setup(_blobs())
    script = _flip_script([0, 20]) + [np.zeros(40, dtype=int)]
    layer = _ScriptedLayer(_centers(model, data), script)
    seen = {}

    def remember(stage, record):
        if record["iteration"] == 10:
            seen["state"] = {k: v.clone() for k, v in model.state_dict().items()}

    result = train_clustering(model, layer, data, callback=remember, **_clustering_kwargs(tol=0.0))
    assert result.collapsed and not result.converged
    assert result.history[-1]["cluster_sizes"] == [40, 0]
    assert result.n_iter == 20 and result.restored_iter == 10
    assert torch.equal(result.labels, torch.as_tensor(script[1]))
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, seen["state"][name], rtol=0, atol=0)


def test_collapse_is_first_met_by_relocating_the_dying_centre():
    """Before a collapse stops training, the emptied cluster was given half of the other."""
    model, data = _setup(_blobs())
    layer = _ScriptedLayer(_centers(model, data), _flip_script([0, 20]) + [np.zeros(40, dtype=int)])
    result = train_clustering(model, layer, data, **_clustering_kwargs(tol=0.0))
    assert result.collapsed
    assert result.history[-1]["relocations"] == [{"cluster": 1, "split_from": 0, "size_before_split": 40}]


def test_without_split_cluster_no_centre_is_reseeded():
    """split_cluster=None re-seeds nothing: the collapse stops training at the update that finds it."""
    model, data = _setup(_blobs())
    layer = _ScriptedLayer(_centers(model, data), _flip_script([0, 20]) + [np.zeros(40, dtype=int)])
    result = train_clustering(model, layer, data, **_clustering_kwargs(tol=0.0, split_cluster=None))
    assert result.collapsed and result.restored_iter == 10
    assert not any("relocations" in record for record in result.history)
    assert result.history[-1]["cluster_sizes"] == [40, 0]


def test_dying_cluster_takes_half_of_the_merged_one_and_training_goes_on():
    """A cluster left with under a tenth of its images is re-seeded inside the cluster that took them."""
    model, data = _setup(_blobs())
    pretrain(model, data, epochs=30, batch_size=8, learning_rate=1e-2, generator=_generator())
    merged = np.zeros(40, dtype=int)
    merged[0] = 1  # cluster 1 keeps 1 of its 20 images
    layer = _ScriptedLayer(_centers(model, data), [None, merged, None])
    result = train_clustering(model, layer, data, **_clustering_kwargs(max_iter=200, learning_rate=1e-4))
    relocation = result.history[1]
    assert relocation["relocations"] == [{"cluster": 1, "split_from": 0, "size_before_split": 39}]
    # The split found the dark and the bright images again; the update does not count as converged.
    assert sorted(relocation["cluster_sizes"]) == [20, 20]
    assert relocation["label_change_fraction"] is None
    assert not result.collapsed and result.converged
    assert abs(np.corrcoef(result.labels.numpy(), np.repeat([0, 1], 20))[0, 1]) == pytest.approx(1.0)


def test_relocations_stop_after_n_clusters_of_them():
    """A cluster dying at every update is relocated n_clusters times in all, then left alone."""
    model, data = _setup(_blobs())
    pretrain(model, data, epochs=30, batch_size=8, learning_rate=1e-2, generator=_generator())
    script = [np.repeat([0, 1], 20)] + [np.where(np.arange(40) == 0, 1, 0)] * 20
    layer = _ScriptedLayer(_centers(model, data), script)
    result = train_clustering(model, layer, data, **_clustering_kwargs(tol=0.0, max_iter=60))
    relocated = [r for record in result.history for r in record.get("relocations", [])]
    assert len(relocated) == 2
    assert not result.collapsed and result.n_iter == 60


def test_relocation_splits_the_widest_cluster_by_two_means():
    """The dying centre and the widest centre move to the two halves' means; other centres stay."""
    # Cluster 0 holds two groups, around x = 0 and x = 10; cluster 2 keeps one image.
    z = torch.tensor([[0, 0], [0, 0.2], [10, 0], [10, 0.2], [50, 50], [50, 50.2], [-9, 9.0]])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    layer = ClusteringLayer(torch.tensor([[5.0, 0.1], [50.0, 50.1], [-9.0, 9.0]]))
    optimizer = torch.optim.Adam(layer.parameters())
    layer(z).sum().backward()
    optimizer.step()
    before = layer.centers.detach().clone()
    records = _training._relocate([2], z, labels, layer, optimizer, split_in_two, _generator(), None)
    assert records == [{"cluster": 2, "split_from": 0, "size_before_split": 4}]
    moved = layer.centers.detach()[[0, 2]]
    assert sorted(moved[:, 0].tolist()) == pytest.approx([0.0, 10.0])
    torch.testing.assert_close(moved[:, 1], torch.tensor([0.1, 0.1]))
    assert torch.equal(layer.centers.detach()[1], before[1])


def test_relocated_centres_move_by_at_most_the_learning_rate():
    """After many Adam steps, a relocation's next steps move no centre by more than the learning rate."""
    z = torch.tensor([[0, 0], [0, 0.2], [10, 0], [10, 0.2], [50, 50], [50, 50.2], [-9, 9.0]])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    layer = ClusteringLayer(torch.tensor([[5.0, 0.1], [50.0, 50.1], [-9.0, 9.0]]))
    learning_rate = 1e-3
    optimizer = torch.optim.Adam(layer.parameters(), lr=learning_rate)
    for _ in range(200):
        optimizer.zero_grad()
        layer(z).sum().backward()
        optimizer.step()
    _training._relocate([2], z, labels, layer, optimizer, split_in_two, _generator(), None)
    for _ in range(3):
        before = layer.centers.detach().clone()
        optimizer.zero_grad()
        layer(z).sum().backward()
        optimizer.step()
        # Adam's steps are bounded by the learning rate when its state is coherent
        # (zeroed moments under a step count of 200 move by about 3 times it).
        assert (layer.centers.detach() - before).abs().max() <= learning_rate * 1.001


def test_clustering_divergence_names_learning_rate():
    """Weights that turn NaN in the joint phase raise an error naming learning_rate."""
    model, data = _setup(_blobs())
    layer = ClusteringLayer(_centers(model, data))
    with torch.no_grad():
        model.encoder[0].weight.fill_(float("inf"))
    with pytest.raises(TrainingDivergedError, match="learning_rate"):
        train_clustering(model, layer, data, **_clustering_kwargs())


@pytest.mark.parametrize("n_rows", [1, 2, 3, 7, 39])
def test_embedding_of_a_row_does_not_depend_on_the_rows_embedded_with_it(n_rows):
    """Any subset of rows, embedded at the fixed batch shape, gets the rows' embeddings in the whole set."""
    model, data = _setup(_blobs())
    whole = embed(model, data, batch_size=16).double().numpy()
    for start in range(0, len(data), n_rows):
        part = ImageBatches(data.X[start : start + n_rows], (4, 4, 1), None, None, CPU)
        # scikit-learn's tolerance for subset invariance of float64 output.
        np.testing.assert_allclose(
            embed(model, part, batch_size=16).double().numpy(), whole[start : start + n_rows], rtol=1e-7
        )


def test_a_final_interval_cut_short_by_max_iter_never_counts_as_convergence():
    """No label change over the last 5 of 15 mini-batches (interval 10) is no convergence."""
    model, data = _setup(_blobs())
    layer = _ScriptedLayer(_centers(model, data), _flip_script([0, 20, 0]))
    result = train_clustering(model, layer, data, **_clustering_kwargs(max_iter=15))
    assert [r["iteration"] for r in result.history] == [0, 10, 15]
    assert result.history[-1]["label_change_fraction"] == 0.0
    assert not result.converged and result.n_iter == 15


def test_no_update_during_the_warm_up_counts_as_convergence():
    """Labels that stay put while the learning rate is still ramping up are no convergence."""
    model, data = _setup(_blobs())
    layer = _ScriptedLayer(_centers(model, data), _flip_script([0, 0, 0, 0, 0]))
    result = train_clustering(model, layer, data, **_clustering_kwargs(max_iter=50, update_interval=5, warmup=20))
    assert [r["label_change_fraction"] for r in result.history][1:4] == [0.0, 0.0, 0.0]
    assert result.converged and result.n_iter == 20


def test_no_centre_is_reseeded_at_the_final_update():
    """A cluster found dying at max_iter keeps its trained centre: no training would follow a re-seeding."""
    model, data = _setup(_blobs())
    dying = np.zeros(40, dtype=int)
    dying[1] = 1
    layer = _ScriptedLayer(_centers(model, data), _flip_script([0, 20]) + [dying])
    centers_before = {}

    def remember(stage, record):
        centers_before[record["iteration"]] = layer.centers.detach().clone()

    result = train_clustering(model, layer, data, callback=remember, **_clustering_kwargs(tol=0.0, max_iter=20))
    assert result.n_iter == 20 and "relocations" not in result.history[-1]
    assert torch.equal(layer.centers.detach(), centers_before[20])


def test_plateau_of_the_label_change_stops_training():
    """With n_iter_no_change, updates without a new low of changed labels stop training, unconverged."""
    model, data = _setup(_blobs())
    # Changed labels per update: 4, 2 (new lows), then 3, 2, 3: three updates without a new low.
    script = _flip_script([0, 4, 2, 3, 2, 3, 2, 3, 2, 3])
    layer = _ScriptedLayer(_centers(model, data), script)
    kwargs = _clustering_kwargs(tol=1e-3, max_iter=1000, n_iter_no_change=3)
    result = train_clustering(model, layer, data, **kwargs)
    changes = [r["label_change_fraction"] for r in result.history]
    assert changes == [None, 4 / 40, 2 / 40, 3 / 40, 2 / 40, 3 / 40]
    assert result.plateaued and not result.converged and result.n_iter == 50


def test_without_n_iter_no_change_a_plateau_runs_on():
    """n_iter_no_change=None is DCEC's rule: a lasting swap of a few labels runs on to max_iter."""
    model, data = _setup(_blobs())
    layer = _ScriptedLayer(_centers(model, data), _flip_script([0, 4, 2, 3, 2, 3, 2, 3, 2, 3]))
    result = train_clustering(model, layer, data, **_clustering_kwargs(max_iter=90, n_iter_no_change=None))
    assert not result.plateaued and not result.converged and result.n_iter == 90


def test_warmup_ramps_the_learning_rate_over_its_own_length(monkeypatch):
    """The learning rate reaches its full value after ``warmup`` mini-batches, not ``update_interval``."""
    rates = []
    original = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    model, data = _setup(_blobs())
    layer = ClusteringLayer(_centers(model, data))
    train_clustering(model, layer, data, **_clustering_kwargs(tol=0.0, max_iter=30, warmup=20))
    assert rates[:20] == pytest.approx([1e-3 * (step + 1) / 20 for step in range(20)])
    assert rates[20:] == pytest.approx([1e-3] * 10)


def test_pretraining_stops_when_the_loss_plateaus():
    """A loss that no longer improves by the asked fraction over the window ends pretraining early."""
    model, data = _setup(_blobs())
    history = pretrain(
        model, data, epochs=50, batch_size=8, learning_rate=1e-12, generator=_generator(),
        plateau_window=3, plateau_improvement=0.01,
    )
    # The loss is flat from the start: the first check, after two windows of 3 epochs, stops.
    assert len(history) == 6


@pytest.mark.parametrize(
    "losses, expected",
    [
        ([1.0, 1.0, 0.85, 0.85], False),  # 15 % better: not below the threshold of 10 %
        ([2.0, 1.0, 0.9, 0.9], False),  # 40 % better than the first window's mean
        ([1.0, 1.0, 0.95, 0.95], True),
        ([1.0, 1.0, 1.1, 1.2], True),  # worse
        ([1.0, 1.0, 1.0], False),  # no verdict before two full windows
        ([9.0, 1.0, 1.0, 0.99, 0.99], True),  # only the last two windows count
    ],
)
def test_reconstruction_plateau_rule(losses, expected):
    """Mean of the last window against the window before, strictly below the threshold."""
    history = [{"reconstruction_loss": loss} for loss in losses]
    assert _training._reconstruction_plateaued(history, 2, 0.1) is expected
    assert _training._reconstruction_plateaued(history, None, 0.1) is False


def test_pretraining_plateau_waits_for_the_minimum_epochs():
    """No plateau verdict before plateau_min_epochs, however flat the loss."""
    model, data = _setup(_blobs())
    history = pretrain(
        model, data, epochs=50, batch_size=8, learning_rate=1e-12, generator=_generator(),
        plateau_window=3, plateau_improvement=0.01, plateau_min_epochs=10,
    )
    assert len(history) == 10
