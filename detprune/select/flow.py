"""FLOW: density-aware pruning with a RealNVP normalizing flow (or a GMM) on PCA features."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validation import Interval, Options
from ._nn import mlp, one_torch_thread, torch_module
from .base import Reducer

__all__ = ["FLOW", "log_density", "pca_whiten"]


def pca_whiten(X: np.ndarray, dims: int) -> np.ndarray:
    """Project centred ``X`` on its top ``dims`` principal axes and scale each to unit variance.

    Exact (eigendecomposition of the smaller Gram/covariance matrix, float64);
    axes with (numerically) zero variance are dropped. Returns ``(n, r)``, ``r >= 1``
    (a zero column when all rows are equal).
    """
    Xc = np.asarray(X, dtype=np.float64)
    Xc = Xc - Xc.mean(axis=0, keepdims=True)
    n, d = Xc.shape
    if n >= d:
        evals, V = np.linalg.eigh(Xc.T @ Xc)
        evals, V = evals[::-1], V[:, ::-1]
        keep = evals > 1e-12 * max(evals[0], 1e-300)
        r = int(min(dims, keep.sum()))
        Z = Xc @ V[:, :r]
    else:
        evals, U = np.linalg.eigh(Xc @ Xc.T)
        evals, U = evals[::-1], U[:, ::-1]
        keep = evals > 1e-12 * max(evals[0], 1e-300)
        r = int(min(dims, keep.sum()))
        Z = U[:, :r] * np.sqrt(evals[:r])[None, :]
    if r == 0:
        return np.zeros((n, 1))
    sd = Z.std(axis=0)
    sd[sd == 0] = 1.0
    return Z / sd


class _RealNVP:
    """Affine coupling layers with alternating masks (Dinh, Sohl-Dickstein and Bengio, 2017)."""

    def __init__(self, dim: int, layers: int, hidden: int, rng: np.random.Generator) -> None:
        torch = torch_module()
        self.torch = torch
        masks = []
        for i in range(layers):
            m = np.zeros(dim, dtype=np.float32)
            if dim == 1:
                m[:] = 0.0  # one dimension: a pure element-wise affine layer
            elif i % 4 < 2:
                m[i % 2 :: 2] = 1.0
            else:
                m[: dim // 2] = 1.0 if i % 2 == 0 else 0.0
                m[dim // 2 :] = 0.0 if i % 2 == 0 else 1.0
            masks.append(torch.from_numpy(m))
        self.masks = masks
        self.nets = torch.nn.ModuleList(
            [mlp([dim, hidden, hidden, 2 * dim], rng, act="tanh", zero_last=True) for _ in masks]
        )

    def parameters(self) -> Any:
        return self.nets.parameters()

    def log_prob(self, x: Any) -> Any:
        torch = self.torch
        logdet = torch.zeros(x.shape[0])
        for m, net in zip(self.masks, self.nets, strict=True):
            xm = x * m
            s, t = net(xm).chunk(2, dim=1)
            s = torch.tanh(s) * (1 - m)
            t = t * (1 - m)
            x = xm + (1 - m) * (x * torch.exp(s) + t)
            logdet = logdet + s.sum(dim=1)
        d = x.shape[1]
        base = -0.5 * (x**2).sum(dim=1) - 0.5 * d * math.log(2 * math.pi)
        return base + logdet


def log_density(
    Z: np.ndarray,
    *,
    method: str = "flow",
    epochs: int = 30,
    layers: int = 6,
    hidden: int = 64,
    batch_size: int = 256,
    lr: float = 2e-3,
    components: int = 8,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Log-density of every row of ``Z`` under a model fitted to ``Z``.

    ``method="flow"``: RealNVP trained by maximum likelihood (Adam, seeded
    shuffling and initialisation). ``"gmm"``: scikit-learn ``GaussianMixture``
    (full covariances, ``components`` components, seeded). Returns the
    log-densities and the mean training log-likelihood.
    """
    n, d = Z.shape
    if method == "gmm":
        from sklearn.mixture import GaussianMixture

        gm = GaussianMixture(
            n_components=max(1, min(components, n)),
            covariance_type="full",
            reg_covar=1e-4,
            random_state=seed % 2**32,  # sklearn takes 32-bit seeds
        ).fit(Z)
        lp = gm.score_samples(Z)
        return lp, float(lp.mean())
    torch = torch_module()
    rng = np.random.default_rng(seed)
    flow = _RealNVP(d, layers, hidden, rng)
    Zt = torch.from_numpy(Z.astype(np.float32))
    opt = torch.optim.Adam(flow.parameters(), lr=lr, weight_decay=1e-5)
    for _ in range(epochs):
        perm = rng.permutation(n)
        for s in range(0, n, batch_size):
            idx = torch.from_numpy(perm[s : s + batch_size])
            loss = -flow.log_prob(Zt[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        lp = np.concatenate(
            [flow.log_prob(Zt[s : s + 8192]).numpy() for s in range(0, n, 8192)]
        ).astype(np.float64)
    lp = np.nan_to_num(lp, nan=-1e6, posinf=1e6, neginf=-1e6)
    return lp, float(lp.mean())


class FLOW(Reducer):
    """Density-aware pruning: keep images with probability ∝ density^-beta.

    The embeddings are PCA-reduced to ``dims`` whitened components and a density
    model is fitted: a RealNVP normalizing flow (Dinh, Sohl-Dickstein and
    Bengio, "Density estimation using Real NVP", ICLR 2017; torch, CPU-trainable,
    seeded) or, with ``density="gmm"``, a Gaussian mixture. The ``budget``
    images are then drawn without replacement with probability ∝
    ``p(x)^-beta`` (Efraimidis-Spirakis weighted sampling keys,
    ``log(u) / w``), so dense, redundant regions are thinned the most while sparse
    regions -- and, through the randomness, every region -- stay covered.
    ``beta = 1`` flattens the kept set towards uniform over the support;
    ``beta = 0`` is simple random sampling. Log-densities are clipped to their
    1st-99th percentile range first so a few extreme estimates do not dominate.

    Parameters
    ----------
    density : {"flow", "gmm"}, default "flow"
    dims : int >= 1, default 16
        PCA components (capped by the data's rank).
    beta : float >= 0, default 1.0
    epochs : int >= 1, default 30
        Flow training epochs.
    layers : int >= 1, default 6
        Coupling layers.
    hidden : int >= 1, default 64
    components : int >= 1, default 8
        Gaussian-mixture components (``density="gmm"``).

    Scores
    ------
    The estimated log-density of each pick (in the PCA space).

    Pick order
    ----------
    By sampling key (the first picks are the most likely under the weights).
    """

    name = "flow"
    description = "Density pruning: keep images with probability ∝ density^-beta (RealNVP or GMM)."
    _constraints = {  # noqa: RUF012
        "density": Options(("flow", "gmm")),
        "dims": Interval("int", 1, None),
        "beta": Interval("real", 0, None),
        "epochs": Interval("int", 1, None),
        "layers": Interval("int", 1, None),
        "hidden": Interval("int", 1, None),
        "components": Interval("int", 1, None),
    }
    randomized = True

    def __init__(
        self,
        *,
        density: str = "flow",
        dims: int = 16,
        beta: float = 1.0,
        epochs: int = 30,
        layers: int = 6,
        hidden: int = 64,
        components: int = 8,
    ) -> None:
        self.density = density
        self.dims = dims
        self.beta = beta
        self.epochs = epochs
        self.layers = layers
        self.hidden = hidden
        self.components = components

    def _select(self, X: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        n = X.shape[0]
        rng = np.random.default_rng(seed)
        u = rng.random(n)
        if n < 4:  # too few rows for a density model: uniform
            lp = np.zeros(n)
            ll = 0.0
        else:
            Z = pca_whiten(X, int(self.dims))
            with one_torch_thread():
                lp, ll = log_density(
                    Z,
                    method=self.density,
                    epochs=int(self.epochs),
                    layers=int(self.layers),
                    hidden=int(self.hidden),
                    components=int(self.components),
                    seed=int(rng.integers(2**31)),
                )
        lo, hi = np.percentile(lp, [1, 99])
        lpc = np.clip(lp, lo, hi)
        # weight w = p^-beta (relative to the densest point); key = log(u) / w
        logw = -float(self.beta) * (lpc - lpc.max())
        keys = np.log(np.maximum(u, 1e-300)) * np.exp(-logw)
        order = np.lexsort((np.arange(n), -keys))[:budget]
        info = {"density": self.density, "mean_log_likelihood": float(ll)}
        return order.astype(np.int64), lp[order], info
