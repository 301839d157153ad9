"""PyTorch baselines of ``bpjax bench``: the notebook's own loop and makemore part 5's, in eager PyTorch.

Not part of the installed package: ``bpjax bench`` imports this file from a source checkout (the
README's editable install) when torch is importable, and says so when either is missing. Each
function times ``steps`` steps after a short warm-up and returns the steps/s of each repeat; the
model's defaults are its sizes (the notebook's MLP, the lecture's WaveNet), as ``bpjax bench``
times them.

    BASELINES[model] -> [(name, variant, fn)]      # the rows bpjax bench adds for that model
"""

from __future__ import annotations

import time

import numpy as np


def _time_eager(run, steps: int, repeats: int) -> list[float]:
    """Steps/s of ``run(steps)`` over ``repeats`` repeats, after a warm-up of 20 steps."""
    run(min(20, steps))
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(steps)
        rates.append(steps / (time.perf_counter() - t))
    return rates


# --------------------------------------------------------------------------------------------
# The notebook's PyTorch loop, written for the benchmark (its bug fixed: fresh bn_raw, bn_var_inv)
# --------------------------------------------------------------------------------------------
def notebook_loop(
    Xtr,
    Ytr,
    vocab_size: int,
    *,
    steps: int,
    repeats: int,
    index_add: bool,
    n_hidden: int = 64,
    n_embd: int = 10,
    block_size: int = 3,
    batch: int = 32,
) -> list[float]:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    X_train, y_train = torch.tensor(np.asarray(Xtr), dtype=torch.long), torch.tensor(np.asarray(Ytr), dtype=torch.long)
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((vocab_size, n_embd), generator=g)
    W1 = torch.randn((n_embd * block_size, n_hidden), generator=g) * (5 / 3) / ((n_embd * block_size) ** 0.5)
    b1 = torch.randn(n_hidden, generator=g) * 0.1
    W2 = torch.randn((n_hidden, vocab_size), generator=g) * 0.1
    b2 = torch.randn(vocab_size, generator=g) * 0.1
    bngain = torch.ones((1, n_hidden)) * 0.1 + 1.0
    bnbias = torch.ones((1, n_hidden)) * 0.1
    parameters = [C, W1, b1, W2, b2, bngain, bnbias]
    n = batch

    @torch.no_grad()
    def run(n_steps, i0=0):
        for i in range(i0, i0 + n_steps):
            ix = torch.randint(0, X_train.shape[0], (batch,), generator=g)
            X_batch, y_batch = X_train[ix], y_train[ix]
            emb = C[X_batch]
            embcat = emb.view(emb.shape[0], -1)
            h_pre_bn = embcat @ W1 + b1
            bn_mean_i = h_pre_bn.mean(0, keepdim=True)
            bn_var = h_pre_bn.var(0, keepdim=True, unbiased=True)
            bn_var_inv = (bn_var + 1e-5) ** -0.5
            bn_raw = (h_pre_bn - bn_mean_i) * bn_var_inv
            h = torch.tanh(bngain * bn_raw + bnbias)
            logits = h @ W2 + b2
            loss = F.cross_entropy(logits, y_batch)
            dlogits = F.softmax(logits, 1)
            dlogits[range(n), y_batch] -= 1
            dlogits /= n
            dh = dlogits @ W2.T
            dW2 = h.T @ dlogits
            db2 = dlogits.sum(0)
            dhpreact = (1.0 - h**2) * dh
            dbngain = (bn_raw * dhpreact).sum(0, keepdim=True)
            dbnbias = dhpreact.sum(0, keepdim=True)
            dhprebn = (
                bngain
                * bn_var_inv
                / n
                * (n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bn_raw * (dhpreact * bn_raw).sum(0))
            )
            dembcat = dhprebn @ W1.T
            dW1 = embcat.T @ dhprebn
            db1 = dhprebn.sum(0)
            demb = dembcat.view(emb.shape)
            dC = torch.zeros_like(C)
            if index_add:
                dC.index_add_(0, X_batch.view(-1), demb.view(-1, n_embd))
            else:
                for k in range(X_batch.shape[0]):
                    for j in range(X_batch.shape[1]):
                        dC[X_batch[k, j]] += demb[k, j]
            lr = 0.1 if i < 100_000 else 0.01
            for p, grad in zip(parameters, [dC, dW1, db1, dW2, db2, dbngain, dbnbias], strict=True):
                p.data += -lr * grad
            loss.item()  # the notebook's lossi.append(loss.log10().item()) syncs every step

    return _time_eager(run, steps, repeats)


def wavenet_autograd(
    Xtr,
    Ytr,
    vocab_size: int,
    *,
    steps: int,
    repeats: int,
    n_embd: int = 24,
    n_hidden: int = 128,
    block_size: int = 8,
    batch: int = 32,
) -> list[float]:
    """makemore part 5's training loop in PyTorch: eager autograd, the lecture's layers and init."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(42)
    X_train, y_train = torch.tensor(np.asarray(Xtr), dtype=torch.long), torch.tensor(np.asarray(Ytr), dtype=torch.long)

    class Linear:
        def __init__(self, fan_in, fan_out, bias=True):
            self.weight = torch.randn((fan_in, fan_out), generator=g) / fan_in**0.5
            self.bias = torch.zeros(fan_out) if bias else None

        def __call__(self, x):
            out = x @ self.weight
            return out + self.bias if self.bias is not None else out

        def parameters(self):
            return [self.weight] + ([] if self.bias is None else [self.bias])

    class BatchNorm1d:
        def __init__(self, dim, eps=1e-5, momentum=0.1):
            self.eps, self.momentum, self.training = eps, momentum, True
            self.gamma, self.beta = torch.ones(dim), torch.zeros(dim)
            self.running_mean, self.running_var = torch.zeros(dim), torch.ones(dim)

        def __call__(self, x):
            dim = 0 if x.ndim == 2 else (0, 1)
            xmean, xvar = x.mean(dim, keepdim=True), x.var(dim, keepdim=True)
            out = self.gamma * (x - xmean) / torch.sqrt(xvar + self.eps) + self.beta
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * xmean
                self.running_var = (1 - self.momentum) * self.running_var + self.momentum * xvar
            return out

        def parameters(self):
            return [self.gamma, self.beta]

    class Tanh:
        def __call__(self, x):
            return torch.tanh(x)

        def parameters(self):
            return []

    class Embedding:
        def __init__(self, n, d):
            self.weight = torch.randn((n, d), generator=g)

        def __call__(self, ix):
            return self.weight[ix]

        def parameters(self):
            return [self.weight]

    class FlattenConsecutive:
        def __init__(self, n):
            self.n = n

        def __call__(self, x):
            B, T, C = x.shape
            x = x.view(B, T // self.n, C * self.n)
            return x.squeeze(1) if x.shape[1] == 1 else x

        def parameters(self):
            return []

    layers = [Embedding(vocab_size, n_embd)]
    c_in, T = n_embd, block_size
    while T > 1:
        layers += [FlattenConsecutive(2), Linear(2 * c_in, n_hidden, bias=False), BatchNorm1d(n_hidden), Tanh()]
        c_in, T = n_hidden, T // 2
    layers.append(Linear(n_hidden, vocab_size))
    with torch.no_grad():
        layers[-1].weight *= 0.1
    parameters = [p for layer in layers for p in layer.parameters()]
    for p in parameters:
        p.requires_grad = True

    def run(n_steps, i0=0):
        for i in range(i0, i0 + n_steps):
            ix = torch.randint(0, X_train.shape[0], (batch,), generator=g)
            x = X_train[ix]
            for layer in layers:
                x = layer(x)
            loss = F.cross_entropy(x, y_train[ix])
            for p in parameters:
                p.grad = None
            loss.backward()
            lr = 0.1 if i < 150_000 else 0.01
            for p in parameters:
                p.data += -lr * p.grad
            loss.log10().item()

    return _time_eager(run, steps, repeats)


BASELINES = {  # model -> rows: (display name, variant, its backward, fn(Xtr, Ytr, vocab_size, steps=, repeats=))
    "mlp": [
        (
            "notebook loop (Python double loop dC)",
            "double_loop",
            "manual",
            lambda *a, **k: notebook_loop(*a, index_add=False, **k),
        ),
        ("notebook loop, index_add_ dC", "index_add", "manual", lambda *a, **k: notebook_loop(*a, index_add=True, **k)),
    ],
    "wavenet": [("PyTorch eager autograd, wavenet", "autograd", "autodiff", wavenet_autograd)],
}
