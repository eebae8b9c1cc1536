"""Make pytorch_ood.npz: fixed arrays and pytorch-ood 0.4.0's values on them, for
tests/test_metrics.py and tests/test_detectors.py. Run with an environment that has
pytorch-ood==0.4.0 and torch (e.g. the reference venv):

    python python/tests/golden/make_pytorch_ood_golden.py

pytorch-ood's scores are outlier scores (higher = more OOD); the file stores them as they are,
the tests negate. Its OODMetrics take OOD as the positive class, FPR at the first threshold
reaching 95% TPR and trapezoidal AUPR: our convention="ood-positive".
"""

import pathlib

import numpy as np
import pytorch_ood
import torch
from pytorch_ood.detector import EnergyBased, Mahalanobis, MaxLogit, MaxSoftmax
from pytorch_ood.metrics import OODMetrics

assert pytorch_ood.__version__ == "0.4.0", pytorch_ood.__version__
rng = np.random.default_rng(20201130)

# scores with ties between and within the sets
id_scores = np.round(rng.normal(1.0, 1.0, 2000), 2)
ood_scores = np.round(rng.normal(0.0, 1.2, 1500), 2)
m = OODMetrics()
scores = torch.from_numpy(-np.r_[id_scores, ood_scores])  # outlier scores
labels = torch.from_numpy(np.r_[np.zeros(2000, np.int64), -np.ones(1500, np.int64)])
m.update(scores, labels)
r = m.compute()

logits = rng.normal(0.0, 3.0, size=(300, 10))
t_logits = torch.from_numpy(logits)
energy_t1 = EnergyBased(None, t=1.0).predict_logits(t_logits).numpy()
energy_t2 = EnergyBased(None, t=2.0).predict_logits(t_logits).numpy()
msp = MaxSoftmax(None, t=1.0).predict_logits(t_logits).numpy()
maxlogit = MaxLogit(None).predict_logits(t_logits).numpy()

# well-conditioned features of 4 classes for Mahalanobis
centers = rng.normal(0.0, 2.0, size=(4, 8))
train_labels = rng.integers(0, 4, 800)
train_features = centers[train_labels] + rng.normal(size=(800, 8)) @ np.diag(np.linspace(0.5, 2, 8))
test_features = rng.normal(0.0, 2.5, size=(200, 8)).astype(np.float32)
train_features = train_features.astype(np.float32)  # pytorch-ood fits in float32
md = Mahalanobis(None).fit_features(torch.from_numpy(train_features),
                                          torch.from_numpy(train_labels))
maha = md.predict_features(torch.from_numpy(test_features)).double().numpy()

out = pathlib.Path(__file__).resolve().parent / "pytorch_ood.npz"
np.savez_compressed(
    out, id_scores=id_scores, ood_scores=ood_scores,
    auroc=r["AUROC"], aupr_in=r["AUPR-IN"], aupr_out=r["AUPR-OUT"], fpr95tpr=r["FPR95TPR"],
    logits=logits, energy_t1=energy_t1, energy_t2=energy_t2, msp=msp, maxlogit=maxlogit,
    train_features=train_features, train_labels=train_labels, test_features=test_features,
    mahalanobis=maha,
)
print("wrote", out, {k: r[k] for k in ("AUROC", "AUPR-IN", "AUPR-OUT", "FPR95TPR")})
