"""gradcore audit of trained weights (issue 20 item 4): a small BatchNorm network trained for a few hundred
steps on synthetic data, saved as a state_dict and audited with --weights --mode eval, against its
initialisation: what the theory predicts from the trained parameters is what the audit measures."""
import json
import math
import sys

import pytest
import torch
from torch import nn

from gradcore import cli
from gradcore.audit import AuditOptions

TRAINED_NETS = '''
from torch import nn

class ResBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3)
    def forward(self, x):
        return x + self.bn(self.conv(x))

def net():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), ResBN(), nn.Flatten(), nn.Linear(75, 2))
'''


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """The network seed 0 builds, trained 300 SGD steps to classify by the sign of a fixed projection."""
    (tmp_path / "trained_nets.py").write_text(TRAINED_NETS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    from trained_nets import net

    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    model = net().train()
    w = torch.randn(2, 5, 5, generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(300):
        x = 2.0 * torch.randn(32, 2, 5, 5, generator=gen) + 1.0   # not N(0, 1): BN's running statistics move
        loss = nn.functional.cross_entropy(model(x), ((x * w).sum((1, 2, 3)) > 0).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(model.state_dict(), tmp_path / "trained.pt")
    return tmp_path, model.state_dict()


def _constants(doc: dict, block: str) -> dict[str, dict]:
    return {k["name"]: k for c in doc["clauses"] if c["id"] == block for k in c["constants"]}


def test_trained_weights_are_audited_with_their_running_statistics(trained):
    root, state = trained
    args = ["audit", "trained_nets:net", "--input-shape", "4,2,5,5", "--mode", "eval", "--max-steps", "75"]
    assert cli.main([*args, "--out", "init"]) in (0, 1)
    assert cli.main([*args, "--out", "trained", "--weights", "trained.pt"]) in (0, 1)
    init, after = (json.loads((root / d / "net.json").read_text()) for d in ("init", "trained"))
    bn_init, bn_after = _constants(init, "1"), _constants(after, "1")
    norm03 = next(n for n in bn_after if n.startswith("NORM-03"))
    # NORM-03 in eval mode: σ_max = max_c |γ_c| / √(running σ²_c + ε), read here from the saved state_dict
    predicted = float((state["1.weight"].abs() / (state["1.running_var"] + 1e-5).sqrt()).max())
    assert math.isclose(bn_after[norm03]["claimed"], predicted, rel_tol=1e-6) and bn_after[norm03]["holds"] is True
    assert math.isclose(bn_init["σ_max"]["measured"], 1 / math.sqrt(1 + 1e-5), rel_tol=1e-5)   # fresh: γ 1, σ² 1
    assert not math.isclose(bn_after["σ_max"]["measured"], bn_init["σ_max"]["measured"], rel_tol=0.05)
    # the residual block's bound RES-02 (σ_max ≤ 1 + σ_max of the branch) holds before and after training
    for doc in (init, after):
        res02 = next(k for n, k in _constants(doc, "2").items() if n.startswith("RES-02"))
        assert res02["holds"] is True and res02["measured"] <= res02["claimed"] * (1 + AuditOptions().tol)
    assert after["audit"]["weights"] == str(root / "trained.pt") and after["audit"]["mode"] == "eval"
