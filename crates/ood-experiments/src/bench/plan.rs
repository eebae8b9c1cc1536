//! How much work a benchmark run does ([`Plan`]): the presets of the Fashion-MNIST benchmark
//! (full and quick), of the paper's CIFAR settings and of Outlier Exposure's SVHN baseline
//! ([`Plan::for_paper`]). Every number is recorded in `config.json`.
use ood_core::protocol::ProtocolConfig;
use ood_data::transforms::Normalize;
use ood_nn::data::Augmentation;
use ood_nn::losses::FinetuneLoss;
use ood_nn::margin_search::{MarginGrid, ACCURACY_TOLERANCE, MIN_GAP};
use ood_nn::odin::OdinGrid;
use ood_nn::train::OutlierBatchNorm;
use ood_nn::WrnConfig;
use serde::{Deserialize, Serialize};

use super::cifar::PaperBench;

/// How much work a run does. Every number is recorded in the results' `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Architecture when pretraining (`in_channels`/`num_classes` are set from the data).
    pub arch: WrnConfig,
    pub pretrain_epochs: u64,
    /// Initial pretraining learning rate, cosine-annealed to 1e-6 (code of record: 0.1 for
    /// CIFAR; Outlier Exposure's SVHN baseline: 0.01).
    #[serde(default = "default_pretrain_lr")]
    pub pretrain_lr: f64,
    /// Per-channel mean/std of [0, 1] pixels for models that record none (PyTorch state_dicts,
    /// and the model this run pretrains); `None`: the default for the channels (CIFAR's for 3,
    /// Fashion-MNIST's for 1). `eood bench --mean/--std` gives it for a user's state_dict.
    #[serde(default)]
    pub input_normalize: Option<Normalize>,
    /// Augmentation of the in-distribution images when pretraining and fine-tuning.
    #[serde(default)]
    pub id_augmentation: Augmentation,
    /// Augmentation of the auxiliary outliers when fine-tuning.
    #[serde(default)]
    pub outlier_augmentation: Augmentation,
    /// Training images per pretraining epoch (seeded subset; `None` = all).
    pub pretrain_images: Option<usize>,
    /// ID test images scored (seeded subset; `None` = all).
    pub test_id_images: Option<usize>,
    /// Cap on the images of each OOD test set (seeded subset; `None` = all).
    pub test_ood_images: Option<usize>,
    /// ID validation images and images per validation OOD set for margin selection.
    pub val_id_images: usize,
    pub val_ood_images: usize,
    /// The same for the ODIN and Mahalanobis grids (each setting costs extra passes).
    pub select_id_images: usize,
    pub select_ood_images: usize,
    pub odin_grid: OdinGrid,
    pub mahalanobis_epsilons: Vec<f64>,
    /// Training images whose features fit the Mahalanobis class means and covariance.
    pub mahalanobis_fit_images: usize,
    pub finetune_epochs: u64,
    /// ID images per fine-tuning epoch (steps = this / 128); `None` = the whole training set.
    pub finetune_images: Option<usize>,
    pub finetune_lr: f64,
    /// Energy margins: fixed `(m_in, m_out)` (code of record), or a grid around the mean energies.
    pub margins: Option<(f64, f64)>,
    pub margin_offsets_in: Vec<f64>,
    pub margin_offsets_out: Vec<f64>,
    /// Smallest `m_out - m_in` of the grid ([`MarginGrid::around_means`]; configs written before
    /// this field meant [`MIN_GAP`]).
    #[serde(default = "default_min_gap")]
    pub margin_min_gap: f64,
    /// Outlier images whose mean energy centres the margin grid.
    pub outlier_energy_images: usize,
    /// Temperatures of Figure 4a.
    pub temperatures: Vec<f64>,
    pub protocol: ProtocolConfig,
    /// Weight of the outlier term of Outlier Exposure (code of record: 0.5).
    #[serde(default = "default_oe_lambda")]
    pub oe_lambda: f64,
    /// Weight of the energy-bounded term (code of record: 0.1).
    #[serde(default = "default_energy_lambda")]
    pub energy_lambda: f64,
    /// How BatchNorm sees the outliers when fine-tuning (code of record: `joint`).
    #[serde(default)]
    pub finetune_outlier_batchnorm: OutlierBatchNorm,
    /// Margin pairs losing more ID validation accuracy than this (fraction) are not chosen
    /// ([`ood_nn::margin_search::AccuracyFloor`]); `None`: validation FPR alone (the paper).
    #[serde(default)]
    pub margin_accuracy_tolerance: Option<f64>,
}

fn default_pretrain_lr() -> f64 {
    0.1
}

fn default_min_gap() -> f64 {
    MIN_GAP
}

fn default_oe_lambda() -> f64 {
    0.5
}

fn default_energy_lambda() -> f64 {
    0.1
}

impl Plan {
    /// The Fashion-MNIST benchmark on 2 CPU cores (about 15 minutes with the shipped model; see
    /// docs/experiments.md for the measured cost of each step).
    pub fn fmnist() -> Self {
        Self {
            arch: WrnConfig {
                depth: 10,
                widen_factor: 1,
                dropout: 0.0,
                num_classes: 10,
                in_channels: 1,
            },
            // the shipped model's recipe (scripts/bench-train-fmnist-model.sh)
            pretrain_epochs: 10,
            test_ood_images: Some(5000),
            val_id_images: 2000,
            val_ood_images: 500,
            select_id_images: 1000,
            select_ood_images: 200,
            odin_grid: OdinGrid {
                temperatures: vec![1.0, 10.0, 100.0, 1000.0],
                epsilons: vec![0.0, 0.0004, 0.0014, 0.0024, 0.0038],
            },
            mahalanobis_fit_images: 10_000,
            finetune_epochs: 1,
            finetune_images: Some(150 * 128),
            margins: None,
            // m_in at and above the ID mean energy: below it (-4) cost 1-2 points of accuracy
            // (docs/experiments.md, "Fine-tuning that keeps accuracy")
            margin_offsets_in: vec![0.0, 2.0],
            // m_out from the largest m_in up: on this benchmark the outliers' mean energy is the
            // ID mean, and every step of m_out above m_in cost test accuracy (m_in -7: 91.36 /
            // 91.15 / 90.87 at m_out -7 / -6 / -5) while m_out -1 also lost validation FPR
            margin_offsets_out: vec![0.0, 2.0],
            margin_min_gap: 0.0,
            outlier_energy_images: 2000,
            margin_accuracy_tolerance: Some(ACCURACY_TOLERANCE),
            // BatchNorm in evaluation mode while fine-tuning: the texture/photo outliers then
            // never reach the running statistics (measured: 9.03% test error against 9.80%
            // for the code of record's joint pass; OE 9.21% against 10.77%)
            finetune_outlier_batchnorm: OutlierBatchNorm::Frozen,
            // the rest (learning rates, loss weights, temperatures) as the paper's
            ..Self::paper(10)
        }
    }

    /// A few-minute smoke version of [`Plan::fmnist`]: small subsets everywhere.
    pub fn fmnist_quick() -> Self {
        Self {
            pretrain_epochs: 1,
            pretrain_images: Some(4096),
            test_id_images: Some(1000),
            test_ood_images: Some(500),
            val_id_images: 500,
            val_ood_images: 100,
            select_id_images: 300,
            select_ood_images: 50,
            odin_grid: OdinGrid {
                temperatures: vec![1.0, 1000.0],
                epsilons: vec![0.0, 0.0014],
            },
            mahalanobis_epsilons: vec![0.0, 0.0014],
            mahalanobis_fit_images: 2000,
            finetune_images: Some(10 * 128),
            outlier_energy_images: 500,
            ..Self::fmnist()
        }
    }

    /// The paper's CIFAR settings (Section 4.1 and the code of record): WRN-40-2, dropout 0.3,
    /// 100 pretraining epochs, 10 fine-tuning epochs over the whole training set, the code of
    /// record's margins (-23/-5 for 10 classes, -27/-5 for 100), full ODIN and Mahalanobis grids.
    pub fn paper(num_classes: i64) -> Self {
        let m_in = if num_classes >= 100 { -27.0 } else { -23.0 };
        Self {
            arch: WrnConfig {
                num_classes,
                ..WrnConfig::default()
            },
            pretrain_epochs: 100,
            pretrain_lr: default_pretrain_lr(),
            input_normalize: None,
            id_augmentation: Augmentation::CropFlip,
            outlier_augmentation: Augmentation::CropFlip,
            pretrain_images: None,
            test_id_images: None,
            test_ood_images: None,
            val_id_images: 5000,
            val_ood_images: 2000,
            select_id_images: 2000,
            select_ood_images: 1000,
            odin_grid: OdinGrid::default(),
            mahalanobis_epsilons: ood_nn::mahalanobis_input::EPSILONS.to_vec(),
            mahalanobis_fit_images: 50_000,
            finetune_epochs: 10,
            finetune_images: None,
            finetune_lr: 0.001,
            margins: Some((m_in, -5.0)),
            margin_offsets_in: vec![],
            margin_offsets_out: vec![],
            margin_min_gap: MIN_GAP,
            outlier_energy_images: 5000,
            temperatures: vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0],
            protocol: ProtocolConfig::default(),
            oe_lambda: default_oe_lambda(),
            energy_lambda: default_energy_lambda(),
            // the code of record's joint pass (Fashion-MNIST overrides it with `Frozen`:
            // docs/experiments.md, "Fine-tuning that keeps accuracy")
            finetune_outlier_batchnorm: OutlierBatchNorm::Joint,
            margin_accuracy_tolerance: None,
        }
    }
}

impl Plan {
    /// The paper's SVHN benchmark: the in-distribution model is Outlier Exposure's SVHN
    /// baseline (`SVHN/baseline.py`), which the energy paper follows: WRN-16-4, dropout 0.4, 20
    /// epochs, lr 0.01 (cosine to 1e-6, batch 128, Nesterov 0.9, decay 5e-4), train + extra
    /// (`cifar::prepare`), pixels in [0, 1] without normalisation (`ToTensor` only) and
    /// without augmentation. Outliers are flipped only, as in OE's `SVHN/oe_tune.py`.
    /// Fine-tuning keeps the paper's Section 4.1 settings (10 epochs, lr 0.001: OE's SVHN tuning
    /// used 5 epochs at 1e-4) and the code of record's 10-class margins -23/-5 (the paper gives
    /// none for SVHN; `--margins` or a grid changes them).
    pub fn svhn() -> Self {
        Self {
            arch: WrnConfig {
                depth: 16,
                widen_factor: 4,
                dropout: 0.4,
                num_classes: 10,
                in_channels: 3,
            },
            pretrain_epochs: 20,
            pretrain_lr: 0.01,
            input_normalize: Some(Normalize::unit(3)),
            id_augmentation: Augmentation::None,
            outlier_augmentation: Augmentation::Flip,
            ..Self::paper(10)
        }
    }

    /// The preset of a paper benchmark: [`Plan::paper`] for CIFAR, [`Plan::svhn`] for SVHN;
    /// `quick`: the subsets of [`Plan::fmnist_quick`] with the preset's recipe (architecture,
    /// margins, learning rate, input normalisation, augmentation).
    pub fn for_paper(bench: PaperBench, quick: bool) -> Self {
        let full = match bench {
            PaperBench::Svhn => Self::svhn(),
            PaperBench::Cifar10 | PaperBench::Cifar100 => Self::paper(bench.num_classes()),
        };
        if !quick {
            return full;
        }
        Self {
            arch: full.arch,
            margins: full.margins,
            pretrain_lr: full.pretrain_lr,
            input_normalize: full.input_normalize,
            id_augmentation: full.id_augmentation,
            outlier_augmentation: full.outlier_augmentation,
            ..Self::fmnist_quick()
        }
    }

    /// The normalisation fed to a model that records none, for `channels` input channels.
    pub fn normalize_for(&self, channels: usize) -> Option<&Normalize> {
        self.input_normalize
            .as_ref()
            .filter(|n| n.mean.len() == channels)
    }
}

impl Plan {
    /// The Outlier Exposure loss with this plan's weight.
    pub fn oe_loss(&self) -> FinetuneLoss {
        FinetuneLoss::OutlierExposure {
            lambda: self.oe_lambda,
        }
    }

    /// The energy-bounded loss with margins `(m_in, m_out)` and this plan's weight.
    pub fn energy_loss(&self, m_in: f64, m_out: f64) -> FinetuneLoss {
        FinetuneLoss::Energy {
            m_in,
            m_out,
            lambda: self.energy_lambda,
        }
    }

    /// The margin candidates: the fixed pair, or the grid around the pre-trained model's mean
    /// energies on ID validation data and auxiliary outliers.
    pub fn margin_grid(&self, mean_in: f64, mean_out: f64) -> MarginGrid {
        match self.margins {
            Some((a, b)) => MarginGrid::fixed(a, b),
            None => MarginGrid::around_means(
                mean_in,
                mean_out,
                &self.margin_offsets_in,
                &self.margin_offsets_out,
                self.margin_min_gap,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_weights_come_from_the_plan_and_default_to_the_code_of_record() {
        let mut p = Plan::fmnist_quick();
        assert_eq!(p.oe_loss(), FinetuneLoss::outlier_exposure());
        assert_eq!(p.energy_loss(-23.0, -5.0), FinetuneLoss::energy_cifar10());
        p.oe_lambda = 0.25;
        assert_eq!(p.oe_loss(), FinetuneLoss::OutlierExposure { lambda: 0.25 });
        // a config.json written before the weights were recorded still reads
        let mut v = serde_json::to_value(Plan::paper(10)).unwrap();
        v.as_object_mut().unwrap().remove("oe_lambda");
        let back: Plan = serde_json::from_value(v).unwrap();
        assert_eq!(back.oe_lambda, 0.5);
        // a Fashion-MNIST config from before the gap was a field: those runs' rule (gap 2)
        let mut v = serde_json::to_value(Plan::fmnist()).unwrap();
        v.as_object_mut().unwrap().remove("margin_min_gap");
        let back: Plan = serde_json::from_value(v).unwrap();
        assert_eq!(
            (Plan::fmnist().margin_min_gap, back.margin_min_gap),
            (0.0, MIN_GAP)
        );
        assert_eq!(
            Plan::paper(100).margin_grid(0.0, 0.0),
            MarginGrid::fixed(-27.0, -5.0)
        );
        // ... and so does one written before the recipe fields: the CIFAR defaults
        let mut v = serde_json::to_value(Plan::svhn()).unwrap();
        for k in [
            "pretrain_lr",
            "input_normalize",
            "id_augmentation",
            "outlier_augmentation",
        ] {
            v.as_object_mut().unwrap().remove(k);
        }
        let back: Plan = serde_json::from_value(v).unwrap();
        assert_eq!(back.pretrain_lr, 0.1);
        assert_eq!(back.input_normalize, None);
        assert_eq!(back.id_augmentation, Augmentation::CropFlip);
    }

    /// Fashion-MNIST fine-tunes with frozen BatchNorm and m_in at/above the ID mean (measured,
    /// docs/experiments.md); the paper presets keep the code of record's joint pass.
    #[test]
    fn fmnist_finetunes_with_frozen_batchnorm_the_paper_presets_do_not() {
        let f = Plan::fmnist();
        assert_eq!(f.finetune_outlier_batchnorm, OutlierBatchNorm::Frozen);
        assert_eq!(f.margin_offsets_in, vec![0.0, 2.0]);
        assert_eq!(
            f.margin_grid(-9.21, -9.19),
            MarginGrid {
                m_in: vec![-9.0, -7.0],
                m_out: vec![-7.0, -5.0]
            }
        );
        assert_eq!(
            Plan::fmnist_quick().finetune_outlier_batchnorm,
            OutlierBatchNorm::Frozen
        );
        for p in [PaperBench::Cifar10, PaperBench::Cifar100, PaperBench::Svhn] {
            assert_eq!(
                Plan::for_paper(p, false).finetune_outlier_batchnorm,
                OutlierBatchNorm::Joint
            );
        }
    }

    #[test]
    fn svhn_preset_is_outlier_exposures_svhn_baseline() {
        let p = Plan::for_paper(PaperBench::Svhn, false);
        assert_eq!(p, Plan::svhn());
        let a = &p.arch;
        assert_eq!(
            (
                a.depth,
                a.widen_factor,
                a.dropout,
                a.num_classes,
                a.in_channels
            ),
            (16, 4, 0.4, 10, 3)
        );
        assert_eq!((p.pretrain_epochs, p.pretrain_lr), (20, 0.01));
        let unit = Normalize {
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
        };
        assert_eq!(p.input_normalize, Some(unit.clone()));
        assert_eq!(p.normalize_for(3), Some(&unit));
        assert_eq!(p.normalize_for(1), None);
        assert_eq!(
            (p.id_augmentation, p.outlier_augmentation),
            (Augmentation::None, Augmentation::Flip)
        );
        // the paper's fine-tuning settings
        assert_eq!((p.finetune_epochs, p.finetune_lr), (10, 0.001));
        assert_eq!(p.margins, Some((-23.0, -5.0)));
        // --quick shrinks the subsets, never the recipe
        let q = Plan::for_paper(PaperBench::Svhn, true);
        assert_eq!(q.arch, p.arch);
        assert_eq!(
            (q.pretrain_lr, &q.input_normalize, q.id_augmentation),
            (0.01, &p.input_normalize, Augmentation::None)
        );
        assert_eq!(q.pretrain_images, Plan::fmnist_quick().pretrain_images);
        // CIFAR keeps the code of record's WRN-40-2 recipe, normalised and augmented
        let c = Plan::for_paper(PaperBench::Cifar100, true);
        assert_eq!(
            (
                c.arch.depth,
                c.arch.widen_factor,
                c.arch.dropout,
                c.arch.num_classes
            ),
            (40, 2, 0.3, 100)
        );
        assert_eq!(
            (c.pretrain_lr, c.input_normalize, c.id_augmentation),
            (0.1, None, Augmentation::CropFlip)
        );
        assert_eq!(Plan::for_paper(PaperBench::Cifar10, false), Plan::paper(10));
    }
}
