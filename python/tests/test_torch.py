"""energy_ood.torch on a tiny model: extract equals a manual forward, head, the losses equal
the CLI's (crates/ood-nn/src/losses.rs) on the golden logits that the Rust test
`losses::tests::losses_match_pytorch` checks to 1e-9, and the margin helper."""

import json

import numpy as np
import pytest

from conftest import REPO

LOSSES = REPO / "crates" / "ood-nn" / "tests" / "golden" / "losses.json"


def _tiny(torch):
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(16, 7), nn.ReLU(), nn.Linear(7, 3))


def test_import_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys, energy_ood, energy_ood.torch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_extract_equals_manual_forward(torch):
    model = _tiny(torch).train()
    from energy_ood.torch import extract, head

    x = torch.randn(50, 3, 4)
    logits, feats = extract(model, x, batch_size=16)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        h = model[:6](x)
        want = model(x)
    np.testing.assert_allclose(logits, want.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(feats, h.numpy(), rtol=1e-6, atol=1e-6)
    assert feats.shape == (50, 7)
    w, b = head(model)
    np.testing.assert_allclose(feats.astype(np.float64) @ w.T + b, logits, rtol=1e-5, atol=1e-5)
    # the same from NumPy input, a Dataset and a DataLoader of (x, y)
    ds = torch.utils.data.TensorDataset(x, torch.zeros(50, dtype=torch.long))
    for data in (x.numpy(), ds, torch.utils.data.DataLoader(ds, batch_size=7)):
        l2, f2 = extract(model, data)
        np.testing.assert_allclose(l2, logits, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(f2, feats, rtol=1e-6, atol=1e-6)
    # another layer: the input of the second linear layer (by name), or its output
    _, f16 = extract(model, x, layer="1", capture="output")
    with torch.no_grad():
        np.testing.assert_allclose(f16, model[1](model[0](x)).numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="no module named 'nope'"):
        extract(model, x, layer="nope")


def test_head_without_linear(torch):
    from energy_ood.torch import head
    with pytest.raises(ValueError, match="has no nn.Linear layer"):
        head(torch.nn.Sequential(torch.nn.ReLU()))


def test_losses_equal_the_cli(torch):
    from energy_ood.torch import energy_loss, oe_loss

    g = json.loads(LOSSES.read_text())
    logits = torch.tensor(g["logits"], dtype=torch.float64)
    target = torch.tensor(g["target"])
    n_in = g["n_in"]
    l_in, l_out = logits[:n_in], logits[n_in:]
    for case in g["energy"]:
        got = energy_loss(l_in, l_out, case["m_in"], case["m_out"], targets=target, lam=0.1)
        assert abs(got.item() - case["loss"]) <= 1e-6 * max(1.0, abs(case["loss"]))
        reg = energy_loss(l_in, l_out, case["m_in"], case["m_out"])
        assert abs(got.item() - (g["cross_entropy"] + 0.1 * reg.item())) <= 1e-9
    got_oe = oe_loss(l_out, l_in, target, lam=0.5).item()
    assert abs(got_oe - g["oe"]) <= 1e-6 * abs(g["oe"])


def test_energy_loss_is_differentiable(torch):
    from energy_ood.torch import energy_loss

    li = torch.randn(8, 4, requires_grad=True)
    lo = torch.randn(6, 4, requires_grad=True)
    energy_loss(li, lo, m_in=-25.0, m_out=-1.0).backward()  # both hinges active
    assert li.grad.abs().sum() > 0 and lo.grad.abs().sum() > 0


def test_suggest_margins_are_mean_energies(torch):
    from energy_ood.torch import suggest_margins

    model = _tiny(torch)
    x_in, x_out = torch.randn(40, 12), torch.randn(30, 12) * 3
    m_in, m_out = suggest_margins(model, x_in, x_out, limit=32, batch_size=8)
    model.eval()
    with torch.no_grad():
        e_in = -torch.logsumexp(model(x_in[:32]).double(), 1).mean().item()
        e_out = -torch.logsumexp(model(x_out).double(), 1).mean().item()
    assert m_in == pytest.approx(e_in, abs=1e-6) and m_out == pytest.approx(e_out, abs=1e-6)
