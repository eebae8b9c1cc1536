//! The argument structs every subcommand shares, flattened into its `Args` (clap), so that one
//! flag means one thing everywhere (docs/cli.md lists which command takes which):
//! [`ModelArgs`] (the model, given one way), [`ArchArgs`] (a WideResNet), [`DeviceArgs`],
//! [`RuntimeArgs`] (threads, workers, quiet), [`OptimizerArgs`] and [`CheckpointOutArgs`].
//! Sizes and rates are validated here with `ood_core::limits` before anything is allocated
//! from them; a bad value is one line and exit status 2 (not a clap usage error).
#[cfg(feature = "nn")]
mod bench;
mod model;
mod runtime;
mod score;
mod training;

pub use model::{ArchArgs, ModelArgs, ModelRef};
pub use score::{check_temperature, ScoreMethod};
// only the neural commands take these
#[cfg(feature = "nn")]
pub use {
    bench::{BenchModelArgs, NormalizeArgs, PresetArchArgs},
    runtime::{DeviceArgs, RuntimeArgs},
    training::{CheckpointOutArgs, OptimizerArgs},
};

#[cfg(test)]
mod tests {
    use super::runtime::{DeviceChoice, RuntimeArgs, DEFAULT_MAX_THREADS, DEFAULT_WORKERS};
    use super::*;

    #[test]
    fn devices_parse_once_into_an_enum() {
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert!("gpu".parse::<DeviceChoice>().is_err());
        assert!("cuda:-1".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn temperatures_outside_the_range_are_refused() {
        for t in [f64::NAN, -1.0, 0.0, 1e308, f64::INFINITY, 1e-4] {
            assert!(check_temperature(t).is_err(), "{t}");
        }
        for t in [1.0, 1000.0, 1e-3, 1e6] {
            assert_eq!(check_temperature(t).unwrap(), t);
        }
        assert_eq!(
            check_temperature(-1.0).unwrap_err().to_string(),
            "temperature must be a positive finite number, got -1"
        );
    }

    #[cfg(feature = "nn")]
    #[test]
    fn mean_and_std_are_one_or_c_finite_values() {
        let n = |m: &str, s: &str| NormalizeArgs {
            mean: Some(m.into()),
            std: Some(s.into()),
        };
        let ok = n("0.5", "0.25,0.5,1").normalize(3).unwrap().unwrap();
        assert_eq!((ok.mean, ok.std), (vec![0.5; 3], vec![0.25, 0.5, 1.0]));
        assert_eq!(NormalizeArgs::default().normalize(3).unwrap(), None);
        for (m, s, msg) in [
            (
                "0,0",
                "1",
                "--mean: 2 values for 3-channel images (give 1 or 3)",
            ),
            ("0", "1,1,1,1", "--std: 4 values for 3-channel images"),
            ("nan", "1", "--mean must be finite, got NaN"),
            ("0", "0", "--std must be positive and finite, got 0"),
            ("0", "-1", "--std must be positive and finite, got -1"),
            ("0", "inf", "--std must be positive and finite, got inf"),
            ("zero", "1", "--mean: \"zero\" is not a number"),
        ] {
            let e = n(m, s).normalize(3).unwrap_err().to_string();
            assert!(e.starts_with(msg), "{m} {s}: {e}");
        }
    }

    #[test]
    fn default_threads_stay_few() {
        let r = RuntimeArgs {
            threads: None,
            workers: DEFAULT_WORKERS,
            quiet: false,
        };
        let t = r.threads().unwrap();
        assert!((1..=DEFAULT_MAX_THREADS).contains(&t), "{t}");
        let zero = RuntimeArgs {
            threads: Some(0),
            ..r
        };
        assert!(zero.check().is_err());
    }
}
