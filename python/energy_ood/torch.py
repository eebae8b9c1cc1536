"""PyTorch helpers, pure Python: torch is imported when a function runs, never at
``import energy_ood`` (it is not a dependency of the package).

* ``extract(model, data)`` -> ``(logits, features)`` of any ``nn.Module`` classifier: the
  features are the input of its last ``nn.Linear`` (the penultimate layer), caught by a forward
  hook. ``layer=`` points the hook at another module (the module itself or its name in
  ``model.named_modules()``), ``capture="output"`` takes that module's output instead.
* ``head(model)`` -> ``(weight K x D, bias K)`` of that last linear layer, as NumPy.
* ``energy_loss`` / ``oe_loss``: the fine-tuning objectives of ``eood finetune``
  (crates/ood-nn/src/losses.rs), differentiable, for one's own training loop.
* ``suggest_margins`` -> ``(m_in, m_out)`` like ``eood finetune --m-in auto --m-out auto``.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Tuple, Union

import numpy as np


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("energy_ood.torch needs PyTorch (pip install torch)") from e
    return torch


def _last_linear(model: Any) -> Any:
    nn = _torch().nn
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear layer; pass layer= (a module or its name)"
        )
    return last


def _resolve_layer(model: Any, layer: Any) -> Any:
    if layer is None:
        return _last_linear(model)
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"no module named {layer!r} in {type(model).__name__}")
        return modules[layer]
    return layer


def head(model: Any) -> Tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` of the last ``nn.Linear`` as float64 NumPy (K x D and K; b = 0 without bias)."""
    lin = _last_linear(model)
    w = lin.weight.detach().cpu().double().numpy()
    b = (lin.bias.detach().cpu().double().numpy() if lin.bias is not None
         else np.zeros(w.shape[0]))
    return w, b


def _batches(data: Any, batch_size: int) -> Iterator[Any]:
    """Input batches from a tensor / array (sliced), a Dataset (loaded), or an iterable of
    batches (a DataLoader: the first element of a (x, y) batch is the input)."""
    torch = _torch()
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, torch.Tensor):
        for i in range(0, data.shape[0], batch_size):
            yield data[i:i + batch_size]
        return
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (list, tuple)):
        data = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    for batch in data:
        if isinstance(batch, (list, tuple)):
            batch = batch[0]
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(batch)
        yield batch


def extract(
    model: Any,
    data: Any,
    batch_size: int = 256,
    device: Any = None,
    layer: Any = None,
    capture: str = "input",
) -> Tuple[np.ndarray, np.ndarray]:
    """Logits (N x K) and features (N x D, flattened) of ``model`` on ``data``, in eval mode
    and without gradients, as NumPy in the model's dtype; the model's mode is restored.

    ``device``: where to run (default: the device of the model's first parameter, else CPU).
    ``layer``/``capture``: which module's input (default: the last ``nn.Linear``'s) or output
    becomes the features.
    """
    torch = _torch()
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if capture not in ("input", "output"):
        raise ValueError(f"capture must be 'input' or 'output', got {capture!r}")
    params = list(model.parameters())
    dev = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
    dtype = params[0].dtype if params else torch.float32
    target = _resolve_layer(model, layer)
    caught: list = []

    def hook(_m: Any, inputs: Any, output: Any) -> None:
        t = inputs[0] if capture == "input" else output
        caught.append(t.detach().flatten(1).cpu())

    handle = target.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    logits, feats = [], []
    try:
        with torch.no_grad():
            for x in _batches(data, batch_size):
                caught.clear()
                out = model(x.to(device=dev, dtype=dtype))
                if not caught:
                    raise RuntimeError("the hooked layer did not run in forward(); pass layer=")
                logits.append(out.detach().cpu())
                feats.append(caught[-1])
    finally:
        handle.remove()
        model.train(was_training)
    if not logits:
        raise ValueError("data has no rows")
    return torch.cat(logits).numpy(), torch.cat(feats).numpy()


def _energy(logits: Any) -> Any:
    """Free energy at T = 1, ``E(x) = -logsumexp_k f_k(x)`` (Liu et al. 2020, eq. 3)."""
    return -_torch().logsumexp(logits, dim=1)


def energy_loss(
    logits_in: Any,
    logits_out: Any,
    m_in: float = -23.0,
    m_out: float = -5.0,
    targets: Any = None,
    lam: float = 0.1,
) -> Any:
    """Energy-bounded regulariser (Liu et al. 2020, eq. 9), differentiable:
    ``L_energy = mean(relu(E_in - m_in)^2) + mean(relu(m_out - E_out)^2)``, ``E = -logsumexp f``.

    With ``targets`` (class indices of the ID rows) it returns the whole objective of eq. 8
    exactly as ``eood finetune --loss energy`` computes it: ``CE(logits_in, targets) + lam *
    L_energy`` (code of record: lam 0.1, m_in -23, m_out -5 on CIFAR-10).
    """
    torch = _torch()
    f = torch.nn.functional
    reg = (f.relu(_energy(logits_in) - m_in).square().mean()
           + f.relu(m_out - _energy(logits_out)).square().mean())
    if targets is None:
        return reg
    return f.cross_entropy(logits_in, targets) + lam * reg


def oe_loss(logits_out: Any, logits_in: Any = None, targets: Any = None, lam: float = 0.5) -> Any:
    """Outlier Exposure term (Hendrycks et al. 2019) as the code of record writes it:
    ``mean_out(logsumexp f - mean_k f_k)``, the cross-entropy to the uniform distribution up to
    log K. With ``logits_in`` and ``targets``: ``CE + lam * term`` (``eood finetune --loss oe``)."""
    torch = _torch()
    term = (torch.logsumexp(logits_out, dim=1) - logits_out.mean(dim=1)).mean()
    if targets is None:
        return term
    if logits_in is None:
        raise ValueError("oe_loss with targets needs logits_in")
    return torch.nn.functional.cross_entropy(logits_in, targets) + lam * term


def suggest_margins(
    model: Any,
    id_data: Any,
    outlier_data: Any,
    limit: int = 2048,
    batch_size: int = 256,
    device: Any = None,
) -> Tuple[float, float]:
    """``(m_in, m_out)``: the pretrained model's mean energy on the first ``limit`` ID training
    rows and on the first ``limit`` outliers, as ``eood finetune --m-in auto --m-out auto``.
    The paper then tunes margins on validation OOD data around such values
    (``eood finetune --m-in-grid/--m-out-grid``)."""

    def mean_energy(data: Any) -> float:
        torch = _torch()
        logits, _ = extract(model, _first_rows(data, limit, batch_size), batch_size, device)
        return float(_energy(torch.from_numpy(logits).double()).mean())

    return mean_energy(id_data), mean_energy(outlier_data)


def _first_rows(data: Any, limit: int, batch_size: int) -> Iterable[Any]:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    n = 0
    for x in _batches(data, batch_size):
        take = min(x.shape[0], limit - n)
        yield x[:take]
        n += take
        if n >= limit:
            return


__all__ = ["extract", "head", "energy_loss", "oe_loss", "suggest_margins"]
