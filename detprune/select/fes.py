"""FES: forgetting events of a small proxy classifier trained on the embeddings."""

from __future__ import annotations

import numpy as np

from .._validation import Interval, Options, param_error
from . import _device
from ._nn import mlp, one_torch_thread, torch_module
from .base import Reducer

__all__ = ["FES", "forgetting_events"]


def forgetting_events(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    epochs: int = 20,
    hidden: int = 128,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Train a one-hidden-layer MLP on ``(X, Y)`` and count forgetting events per row.

    The MLP predicts the multi-hot ``Y`` (sigmoid outputs, binary cross-entropy,
    Adam). A row is *correct* at a step when every thresholded output (> 0.5)
    matches its target. Each time a row is in a minibatch its correctness is
    read from that forward pass (before the update, as in Toneva et al.); a
    *forgetting event* is a correct -> incorrect transition between consecutive
    presentations.

    Parameters
    ----------
    X : ndarray, shape (n, d)
        Standardised inside (per column).
    Y : ndarray of bool, shape (n, C), ``C >= 1``
    epochs, hidden, batch_size, lr, seed, device
        Training settings; shuffling and initialisation are seeded.

    Returns
    -------
    forgets : ndarray of int64, shape (n,)
    learned : ndarray of bool, shape (n,)
        Whether the row was ever correct.
    first_learned : ndarray of int64, shape (n,)
        Presentation index (epoch) when first correct; ``epochs`` when never.
    accuracy : float
        Exact-match accuracy of the final model on all rows.
    """
    torch = torch_module()
    n, d = X.shape
    C = Y.shape[1]
    rng = np.random.default_rng(seed)
    Xs = np.asarray(X, dtype=np.float64)
    mu = Xs.mean(axis=0)
    sd = Xs.std(axis=0)
    sd[sd == 0] = 1.0
    Xt = torch.from_numpy(((Xs - mu) / sd).astype(np.float32)).to(device)
    Yt = torch.from_numpy(Y.astype(np.float32)).to(device)
    net = mlp([d, hidden, C], rng).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    prev = np.zeros(n, dtype=bool)
    learned = np.zeros(n, dtype=bool)
    first = np.full(n, epochs, dtype=np.int64)
    forgets = np.zeros(n, dtype=np.int64)
    Yb = Y.astype(bool)
    for ep in range(epochs):
        perm = rng.permutation(n)
        for s in range(0, n, batch_size):
            rows = perm[s : s + batch_size]
            ridx = torch.from_numpy(rows).to(device)
            logits = net(Xt[ridx])
            loss = loss_fn(logits, Yt[ridx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            pred = (logits.detach() > 0).cpu().numpy()
            correct = (pred == Yb[rows]).all(axis=1)
            forgets[rows] += prev[rows] & ~correct
            newly = correct & ~learned[rows]
            first[rows[newly]] = ep
            learned[rows] |= correct
            prev[rows] = correct
    with torch.no_grad():
        pred = (net(Xt) > 0).cpu().numpy()
    accuracy = float((pred == Yb).all(axis=1).mean())
    return forgets, learned, first, accuracy


class FES(Reducer):
    """Forgetting events: keep the images a proxy classifier keeps forgetting.

    After Toneva et al., "An Empirical Study of Example Forgetting during Deep
    Neural Network Learning" (ICLR 2019): a small MLP (one hidden layer, torch,
    seeded) is trained for ``epochs`` epochs on the embeddings to predict each
    image's multi-hot class-presence vector (the ``targets``;
    :func:`~detprune.select.stratified.stratified_select` passes the stratum's
    rows of ``classes``). Every correct -> incorrect transition of an image
    between consecutive presentations is a forgetting event. Unforgettable
    images are redundant for training and pruned first.

    Parameters
    ----------
    epochs : int >= 2, default 20
    hidden : int >= 1, default 128
        Hidden width of the proxy MLP.
    batch_size : int >= 1, default 256
    lr : float > 0, default 1e-3
        Adam learning rate.
    device : {"auto", "cpu", "cuda"}, default "cpu"

    Scores
    ------
    The number of forgetting events of each pick.

    Pick order
    ----------
    Most forgotten first; then the never-learned images; then the rest, learned
    latest first; ties by lowest index. ``info["accuracy"]`` is the proxy's final
    exact-match training accuracy, ``info["never_learned"]`` their count.
    """

    name = "fes"
    description = (
        "Forgetting events: keep images a proxy MLP on the class targets keeps forgetting."
    )
    _constraints = {  # noqa: RUF012
        "epochs": Interval("int", 2, None),
        "hidden": Interval("int", 1, None),
        "batch_size": Interval("int", 1, None),
        "lr": Interval("real", 0, None, "neither"),
        "device": Options(("auto", "cpu", "cuda")),
    }
    randomized = True
    needs_targets = True

    def __init__(
        self,
        *,
        epochs: int = 20,
        hidden: int = 128,
        batch_size: int = 256,
        lr: float = 1e-3,
        device: str = "cpu",
    ) -> None:
        self.epochs = epochs
        self.hidden = hidden
        self.batch_size = batch_size
        self.lr = lr
        self.device = device

    def _check_extra(self) -> None:
        if self.device == "cuda" and not _device.cuda_available():
            raise param_error(
                self._owner, "device", "'auto' or 'cpu' on a host without CUDA", "cuda"
            )

    def _select(  # type: ignore[override]
        self, X: np.ndarray, budget: int, seed: int, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        n = X.shape[0]
        Y = np.asarray(targets, dtype=bool)
        if Y.shape[1] == 0:  # no class to learn: nothing is ever forgotten
            Y = np.zeros((n, 1), dtype=bool)
        with one_torch_thread():
            forgets, learned, first, acc = forgetting_events(
                X,
                Y,
                epochs=int(self.epochs),
                hidden=int(self.hidden),
                batch_size=int(self.batch_size),
                lr=float(self.lr),
                seed=seed,
                device=_device.resolve(self.device),
            )
        # groups: 0 forgotten at least once, 1 never learned, 2 learned and never forgotten
        group = np.where(forgets > 0, 0, np.where(~learned, 1, 2))
        order = np.lexsort((np.arange(n), -first, -forgets, group))[:budget]
        info = {
            "accuracy": acc,
            "never_learned": int((~learned).sum()),
            "forgotten": int((forgets > 0).sum()),
            "epochs": int(self.epochs),
        }
        return order.astype(np.int64), forgets[order].astype(np.float64), info
