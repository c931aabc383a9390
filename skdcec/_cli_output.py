"""What the command line tells its user: errors, notes, progress displays; and where it may write."""

import contextlib
import math
import os
import sys
import warnings

from sklearn.exceptions import ConvergenceWarning

from skdcec._device import resolve_device

# Plain progress lines are written at every tenth of the work.
PROGRESS_LINES = 10


class UserError(Exception):
    """A mistake of the user's: reported as one line, with exit status 2."""


def one_line(exc):
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename!r}"
    return " ".join(str(exc).split())


def writes_output():
    """Whether this process writes results and progress: all but ranks above 0 of a torchrun launch.

    Under torchrun every process loads the images and trains the model
    together; rank 0 alone writes.
    """
    return os.environ.get("RANK", "0") == "0"


def check_device(device):
    try:
        resolve_device(device)
    except ValueError as exc:
        raise UserError(f"--device {device}: {exc}") from exc


class Reporter:
    """Messages and progress on standard error: bars on a terminal, lines elsewhere, or nothing.

    Once :meth:`interrupt` has been called, every later message and progress
    update raises :class:`KeyboardInterrupt` again.
    """

    def __init__(self, quiet, stream=None):
        self.quiet = quiet
        self.stream = sys.stderr if stream is None else stream
        self.notes = []
        self.interrupted = False

    def interrupt(self):
        """Raise KeyboardInterrupt, now and at every later report: the signal handlers' action.

        Python runs a signal handler wherever the main thread is, also inside
        a finaliser (the ``__del__`` of the thread pool that loaded the
        images, a weak reference's callback), where the exception is printed
        and dropped and the run would go on; the next report raises it again.
        """
        self.interrupted = True
        raise KeyboardInterrupt

    def raise_if_interrupted(self):
        if self.interrupted:
            raise KeyboardInterrupt

    def info(self, message):
        self.raise_if_interrupted()
        if not self.quiet:
            self.stream.write(message + "\n")
            self.stream.flush()

    def note(self, message):
        """A warning worth reading, also kept for summary.json."""
        self.notes.append(message)
        self.info(f"note: {message}")

    def progress(self, description, total, unit):
        return _Interruptible(self._display(description, total, unit), self.raise_if_interrupted)

    def _display(self, description, total, unit):
        if self.quiet:
            return _Silent()
        isatty = getattr(self.stream, "isatty", None)
        if isatty is not None and isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                return _Bar(
                    tqdm(total=total, desc=description, unit=unit, file=self.stream, dynamic_ncols=True)
                )
        return _Lines(self.stream, description, total, unit)


class _Interruptible:
    """A progress display whose every update first raises a standing interruption."""

    def __init__(self, display, check):
        self.display = display
        self.check = check

    def update(self, done, status=""):
        self.check()
        self.display.update(done, status)

    def close(self):
        self.display.close()


class _Silent:
    def update(self, done, status=""):
        pass

    def close(self):
        pass


class _Bar:
    def __init__(self, bar):
        self.bar = bar

    def update(self, done, status=""):
        if status:
            self.bar.set_postfix_str(status, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self):
        self.bar.close()


class _Lines:
    def __init__(self, stream, description, total, unit):
        self.stream = stream
        self.description = description
        self.total = total
        self.unit = unit
        self.done = 0
        self.status = ""
        self.written_step = -1
        self.written_done = None

    def update(self, done, status=""):
        self.done, self.status = done, status
        step = math.floor(PROGRESS_LINES * done / self.total) if self.total else PROGRESS_LINES
        if step > self.written_step:
            self.written_step = step
            self._write()

    def close(self):
        if self.written_done != self.done:
            self._write()

    def _write(self):
        status = f", {self.status}" if self.status else ""
        self.stream.write(f"{self.description}: {self.unit} {self.done}/{self.total}{status}\n")
        self.stream.flush()
        self.written_done = self.done


class TrainingProgress:
    """Progress displays fed by :func:`~skdcec.model_selection.select_n_clusters`'s callback.

    Parameters
    ----------
    reporter : Reporter
        Where the displays go.
    several : bool
        Whether several values of k are fitted: their displays are labelled
        ``k=<k>:``.
    shared_space : str
        How the shared space is named in the scores line.
    """

    def __init__(self, reporter, several, shared_space):
        self.reporter = reporter
        self.several = several
        self.shared_space = shared_space
        self.pretraining = None
        self.clustering = None

    def __call__(self, k, stage, record):
        label = f"k={k}: " if self.several else ""
        if stage == "scored":
            self.close()
            silhouette, shared = record["silhouette_embedding"], record["silhouette_shared"]
            self.reporter.info(
                f"{label}silhouette {format_score(silhouette)} in the embedding, "
                f"{format_score(shared)} in {self.shared_space}; Calinski-Harabasz "
                f"{format_score(record['calinski_harabasz_embedding'])} and "
                f"{format_score(record['calinski_harabasz_shared'])}"
            )
            return
        if stage == "pretrain":
            if self.pretraining is None:
                self.pretraining = self.reporter.progress(f"{label}pretraining", record["n_epochs"], "epoch")
            self.pretraining.update(record["epoch"], f"loss {record['reconstruction_loss']:.4g}")
            return
        if self.clustering is None:
            if self.pretraining is not None:
                self.pretraining.close()
            elif record["pretrain_epochs"]:
                self.reporter.info(f"{label}pretraining: reused the autoencoder pretrained for the first k")
            self.clustering = self.reporter.progress(f"{label}clustering", record["max_iter"], "mini-batch")
        change = record["label_change_fraction"]
        self.clustering.update(record["iteration"], "" if change is None else f"labels changed {change:.1%}")

    def close(self):
        """Close the open displays; the next k opens its own."""
        if self.pretraining is not None and self.clustering is None:
            self.pretraining.close()
        if self.clustering is not None:
            self.clustering.close()
        self.pretraining = self.clustering = None


def format_score(value):
    """A score with three significant digits, or ``undefined``."""
    return "undefined" if value is None else f"{value:.3g}"


@contextlib.contextmanager
def notes_from_warnings(reporter, prefix=""):
    """Turn skdcec's warnings raised in the block into notes; pass other warnings on."""
    package = os.path.dirname(os.path.abspath(__file__))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for warning in caught:
        ours = issubclass(warning.category, ConvergenceWarning) or (
            issubclass(warning.category, UserWarning)
            and os.path.abspath(warning.filename).startswith(package)
        )
        if not ours:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            continue
        message = prefix + " ".join(str(warning.message).split())
        if message not in seen:
            seen.add(message)
            reporter.note(message)


def pyplot_for_files(reporter):
    """pyplot on the Agg backend, or None (with a note) when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        reporter.note('pictures were not drawn: matplotlib is not installed; pip install "skdcec[plot]"')
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path):
    """Save ``fig`` as a PNG file at 100 dpi and close it."""
    fig.savefig(path, dpi=100)
    plt.close(fig)
