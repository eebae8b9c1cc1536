use super::*;

fn fraction(d: &Detector, s: &[f64]) -> f64 {
    d.apply(s).iter().map(|&f| f as f64).sum::<f64>() / s.len() as f64
}

#[test]
fn accepts_target_fraction_on_distinct_scores() {
    let s: Vec<f64> = (0..100).map(|i| i as f64).collect();
    let d = Detector::calibrate(&s, 0.95, "energy", Some(1.0)).unwrap();
    // reject 0..=4, accept 5..=99: tau halfway between 4 and 5
    assert_eq!(d.tau, 4.5);
    assert_eq!(d.accepted_fraction, 0.95);
    assert_eq!(fraction(&d, &s), 0.95);
    assert!(d.accepts(4.6) && !d.accepts(4.5) && !d.accepts(f64::NAN));
    // 20 scores: exactly 19 accepted despite 0.95 * 20 rounding
    let s20: Vec<f64> = (0..20).map(|i| i as f64).collect();
    assert_eq!(
        Detector::calibrate(&s20, 0.95, "energy", None)
            .unwrap()
            .accepted_fraction,
        0.95
    );
}

#[test]
fn ties_at_the_cut_are_accepted_together() {
    // 10 scores, target 0.75 -> k = 8 -> lowest accepted is sorted[2] = 1.0, tied with sorted[1]
    let s = [0.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
    let d = Detector::calibrate(&s, 0.75, "maxlogit", None).unwrap();
    assert_eq!(d.tau, 0.5);
    assert_eq!(d.accepted_fraction, 0.9);
    // all equal: everything accepted, tau just below
    let d = Detector::calibrate(&[2.0; 5], 0.5, "energy", None).unwrap();
    assert!(d.tau < 2.0 && d.accepted_fraction == 1.0);
    let d = Detector::calibrate(&[0.0, 0.0], 0.5, "energy", None).unwrap();
    assert!(d.tau < 0.0 && d.accepts(0.0));
}

#[test]
fn refusals() {
    assert!(matches!(
        Detector::calibrate(&[1.0], 1.0, "e", None),
        Err(DetectorError::Tpr(_))
    ));
    assert!(matches!(
        Detector::calibrate(&[1.0], 0.0, "e", None),
        Err(DetectorError::Tpr(_))
    ));
    assert!(matches!(
        Detector::calibrate(&[], 0.9, "e", None),
        Err(DetectorError::Empty)
    ));
    let e = Detector::calibrate(&[1.0, f64::NAN], 0.9, "e", None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "calibration score at index 1 is NaN (non-finite scores are refused)"
    );
}

#[test]
fn scores_of_another_method_are_refused() {
    let energy: Vec<f64> = (0..20).map(|i| 5.0 + i as f64).collect();
    let d = Detector::calibrate(&energy, 0.95, "energy", Some(1.0)).unwrap();
    let msp = [0.2, 0.99, 0.5];
    let e = d.check_scores(&msp, None).unwrap_err().to_string();
    assert!(e.starts_with("every score lies in [0, 1], as MSP scores do, but this energy detector was calibrated on scores in [5, 24]"), "{e}");
    // declared as energy: the user vouches for them
    d.check_scores(&msp, Some("energy")).unwrap();
    let e = d
        .check_scores(&energy, Some("msp"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "the detector was calibrated on energy scores, these are declared msp"
    );
    d.check_scores(&energy, None).unwrap();
    // an MSP detector refuses scores outside [0, 1], at calibration and at detection
    let m = Detector::calibrate(&[0.1, 0.6, 0.9], 0.5, "msp", Some(1.0)).unwrap();
    let e = m.check_scores(&[0.5, 7.0], None).unwrap_err().to_string();
    assert_eq!(e, "msp scores lie in [0, 1], but score 1 is 7");
    assert!(matches!(
        Detector::calibrate(&energy, 0.95, "msp", None),
        Err(DetectorError::OutOfDomain { index: 0, .. })
    ));
}

#[test]
fn load_refuses_device_nodes_and_oversized_files() {
    // Regression: `Detector::load` read any path whole (`/dev/zero` never ended).
    let e = Detector::load(Path::new("/dev/zero")).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; (MAX_FILE_BYTES + 1) as usize]).unwrap();
    let e = Detector::load(&big).unwrap_err();
    assert!(e.to_string().contains("more than a detector file's"), "{e}");
}

#[test]
fn old_detector_files_still_load_and_check() {
    // the committed artifact format (models/*.json) has no field added since
    let mut n = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        if text.contains("eood-detector") {
            let d = Detector::load(&p).unwrap();
            d.check_scores(&[d.score_stats.min, d.score_stats.max], None)
                .unwrap();
            n += 1;
        }
    }
    assert_eq!(n, 2, "models/ holds two detectors");
}

#[test]
fn save_load_roundtrip_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("det.json");
    let d = Detector::calibrate(&[0.1, 0.7, 0.3, 0.9], 0.5, "energy", Some(1.0)).unwrap();
    d.save(&p).unwrap();
    assert_eq!(Detector::load(&p).unwrap(), d);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("\"tau\"") && text.contains("\"method\": \"energy\""));

    std::fs::write(&p, "{not json").unwrap();
    let e = Detector::load(&p).unwrap_err().to_string();
    assert!(e.contains("det.json: not a valid detector file"), "{e}");
    std::fs::write(&p, text.replace("eood-detector", "other")).unwrap();
    assert!(Detector::load(&p)
        .unwrap_err()
        .to_string()
        .contains("expected \"eood-detector\""));
    assert!(Detector::load(&dir.path().join("none.json"))
        .unwrap_err()
        .to_string()
        .contains("none.json"));
}

/// Regression: serde_json's default float parser can be 1 ulp off, so a loaded tau could
/// flip `score > tau` for a score next to it (seen in 3 of 40 detectors written by the
/// Python package). ood-core enables serde_json's `float_roundtrip`.
#[test]
fn tau_survives_json_bit_for_bit() {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..200 {
        let scores: Vec<f64> = (0..51)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f64 / (1u64 << 53) as f64 * 2e3 - 1e3
            })
            .collect();
        let d = Detector::calibrate(&scores, 0.9, "energy", Some(1.0)).unwrap();
        let text = serde_json::to_string(&d).unwrap();
        let back = Detector::parse(&text, Path::new("t.json")).unwrap();
        assert_eq!(back.tau.to_bits(), d.tau.to_bits(), "{text}");
        assert_eq!(back, d);
    }
}
