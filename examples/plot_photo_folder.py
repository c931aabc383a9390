"""
==================================
Clustering a folder of photographs
==================================

Real collections are folders of image files of every size and shape, not
arrays. This example writes crops of the photographs that ship with
scikit-learn (and with scikit-image, when it is installed) as JPEG files into
a temporary folder, loads them with :func:`skdcec.load_images`, and clusters
them. The photograph each crop was cut from serves as a label to check the
clusters against.
"""

# %%
# A folder of JPEG files
# ----------------------
# Crops of random size and aspect ratio, 20 per photograph, one subfolder per
# photograph.
import os
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import normalized_mutual_info_score

from skdcec import DeepConvEmbeddingClustering, load_images
from skdcec.metrics import cluster_accuracy
from skdcec.plotting import plot_cluster_montage, plot_prototypes

sample = load_sample_images()
photos = {
    os.path.splitext(os.path.basename(path))[0]: image for path, image in zip(sample.filenames, sample.images)
}
try:
    from skimage import data as skimage_data
except ImportError:
    pass
else:
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        photos[name] = getattr(skimage_data, name)()

folder = tempfile.TemporaryDirectory()
rng = np.random.default_rng(0)
tallest = (np.inf, None)  # (width / height, path) of the tallest crop
for name, photo in photos.items():
    os.makedirs(os.path.join(folder.name, name))
    for i in range(20):
        height, width = rng.integers(80, 200, size=2)
        top = rng.integers(photo.shape[0] - height)
        left = rng.integers(photo.shape[1] - width)
        crop = Image.fromarray(photo[top : top + height, left : left + width])
        path = os.path.join(folder.name, name, f"crop_{i:02d}.jpg")
        crop.save(path, quality=90)
        tallest = min(tallest, (width / height, path))
print(f"{len(photos)} photographs: {', '.join(photos)}")

# %%
# Resize policies
# ---------------
# The network needs one size; ``resize`` says how an image of another aspect
# ratio is fitted to it. ``"stretch"`` distorts it, ``"crop"`` cuts off the
# overhanging sides, ``"pad"`` adds black bars — which leak the aspect ratio
# into the pixels: a clusterer can group images by their bars alone.
tall = tallest[1]
fig, axes = plt.subplots(1, 4, figsize=(9, 2.8), layout="constrained")
with Image.open(tall) as original:
    axes[0].imshow(original)
    axes[0].set_title(f"original, {original.height}x{original.width}", fontsize=9)
for ax, policy in zip(axes[1:], ("stretch", "crop", "pad")):
    ax.imshow(load_images([tall], size=64, resize=policy).images[0])
    ax.set_title(f'resize="{policy}", 64x64', fontsize=9)
for ax in axes:
    ax.set_axis_off()
plt.show()

# %%
# Load the folder
# ---------------
# One call reads every image file in the folder and its subfolders, in sorted
# order, into one ``uint8`` array of equal-sized images.
collection = load_images(folder.name, size=32, resize="crop")
X = collection.images
source = np.array([os.path.basename(os.path.dirname(path)) for path in collection.filenames])
print(f"images {X.shape} {X.dtype}, e.g. {os.path.relpath(collection.filenames[0], folder.name)}")

# %%
# Cluster
# -------
# One cluster per photograph. The settings are short so that the example runs
# in well under a minute.
dcec = DeepConvEmbeddingClustering(
    n_clusters=len(photos),
    pretrain_epochs=60,
    max_iter=200,
    update_interval=10,
    batch_size=64,
    n_init=10,
    random_state=0,
)
with warnings.catch_warnings():
    # Short runs stop at max_iter rather than at tol; fit warns about it.
    warnings.simplefilter("ignore", ConvergenceWarning)
    dcec.fit(X)
print(
    f"NMI {normalized_mutual_info_score(source, dcec.labels_):.3f}, "
    f"accuracy {cluster_accuracy(source, dcec.labels_):.3f} against the source photographs"
)

# %%
# Prototypes and montages
# -----------------------
# Crops of one photograph share colours and textures; the decoded prototypes
# show the colours each cluster stands for, the montages (named by file) show
# which crops it holds.
plot_prototypes(dcec)
for cluster in range(2):
    names = [os.path.relpath(path, folder.name) for path in collection.filenames]
    plot_cluster_montage(dcec, X, cluster, n_images=16, filenames=names)
plt.show()

folder.cleanup()
