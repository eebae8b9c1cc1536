//! Unit tests of [`super`] (a file of their own to keep figures.rs short).
use super::*;

#[test]
fn bins_count_every_value() {
    let v = [0.0, 0.1, 0.49, 0.5, 0.99, 1.0, -3.0, 7.0, f64::NAN];
    // bins [0, .5) [.5, 1]; -3 clamps into the first, 1.0 and 7 into the last
    assert_eq!(bin_counts(&v, 0.0, 1.0, 2), vec![4, 4]);
    assert_eq!(bin_counts(&v, 0.0, 1.0, 4), vec![3, 1, 1, 3]);
    assert_eq!(bin_counts(&[5.0, 5.0], 5.0, 5.0, 3), vec![2, 0, 0]);
}

#[test]
fn joint_range_pads_and_handles_degenerate_input() {
    let (lo, hi) = joint_range(&[0.0, 1.0], &[3.0, f64::INFINITY]);
    assert!(
        (lo + 0.06).abs() < 1e-12 && (hi - 3.06).abs() < 1e-12,
        "{lo} {hi}"
    );
    assert_eq!(joint_range(&[2.0], &[2.0]), (1.5, 2.5));
    assert_eq!(joint_range(&[], &[f64::NAN]), (0.0, 1.0));
}

#[test]
fn quantile_range_ignores_extremes() {
    let a: Vec<f64> = (0..=1000).map(f64::from).collect();
    // 0.1% and 99.9% of 0..=1000 are 1 and 999; padded by 2% of 998
    let (lo, hi) = quantile_range(&a, &[], 0.001);
    assert!(
        (lo - (1.0 - 19.96)).abs() < 1e-9 && (hi - (999.0 + 19.96)).abs() < 1e-9,
        "{lo} {hi}"
    );
    assert_eq!(quantile_range(&[], &[], 0.01), (0.0, 1.0));
}

#[test]
fn heat_colors_span_white_to_red() {
    assert_eq!(heat_color(0.0), RGBColor(255, 255, 255));
    assert_eq!(heat_color(100.0), RGBColor(165, 15, 21));
    assert_eq!(heat_color(50.0), RGBColor(210, 135, 138));
    assert_eq!(heat_color(250.0), heat_color(100.0));
}

#[test]
fn figures_are_written_as_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let id: Vec<f64> = (0..200).map(|i| 5.0 + (i % 17) as f64 * 0.1).collect();
    let ood: Vec<f64> = (0..150).map(|i| 2.0 + (i % 13) as f64 * 0.2).collect();
    let panels = vec![
        HistPanel {
            title: "softmax score".into(),
            x_label: "max softmax".into(),
            id: &id,
            ood: &ood,
        },
        HistPanel {
            title: "negative energy".into(),
            x_label: "-E(x)".into(),
            id: &id,
            ood: &ood,
        },
    ];
    let files = score_histograms(&dir.path().join("fig3"), &panels, 2).unwrap();
    assert_eq!(files.len(), 2);
    let png = std::fs::read(&files[0]).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // PNG IHDR: width 840, height 320
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 840);
    assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 320);
    let svg = std::fs::read_to_string(&files[1]).unwrap();
    assert!(
        svg.starts_with("<svg")
            && svg.contains("negative energy")
            && svg.contains("in-distribution")
    );

    let s = vec![Series {
        name: "energy".into(),
        points: vec![(1.0, 10.0), (10.0, 20.0), (1000.0, 40.0)],
    }];
    let files = fpr_vs_temperature(&dir.path().join("sub/fig4a"), "FPR95 vs T", &s).unwrap();
    assert!(files.iter().all(|f| f.exists()));
    assert!(std::fs::read_to_string(&files[1])
        .unwrap()
        .contains("temperature T"));

    let grid = vec![
        vec![Some(12.34), None],
        vec![Some(80.0), Some(3.0)],
        vec![Some(0.0), Some(100.0)],
    ];
    let files = margin_heatmap(
        &dir.path().join("fig4b"),
        "FPR95 over margins",
        &[-9.0, -7.0, -5.0],
        &[-3.0, -1.0],
        &grid,
    )
    .unwrap();
    let svg = std::fs::read_to_string(&files[1]).unwrap();
    for text in ["12.3", "n/a", "80.0", "-7", "-1"] {
        assert!(svg.contains(&format!(">\n{text}\n<")), "{text} missing");
    }
    // one segment per grid value: exactly 3 x-labels and 2 y-labels, no empty extra cell
    assert_eq!(svg.matches("<text").count(), 3 + 3 + 2 + 6);
    // a 1 x 1 grid works too
    margin_heatmap(
        &dir.path().join("one"),
        "t",
        &[1.0],
        &[2.0],
        &[vec![Some(5.0)]],
    )
    .unwrap();
    // no temporary files are left behind
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
    // bad grids are refused
    assert!(margin_heatmap(&dir.path().join("bad"), "t", &[1.0], &[2.0], &[]).is_err());
}
