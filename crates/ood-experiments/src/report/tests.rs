//! Unit tests of [`super`] (a file of their own to keep report.rs short).
use super::*;

fn entry(key: &str, group: Group, id: Vec<f64>, ood: Vec<(&str, Vec<f64>)>) -> Entry {
    Entry {
        key: key.into(),
        label: key.to_uppercase(),
        group,
        params: serde_json::json!({}),
        test_error: Some(0.0625),
        id,
        ood: ood.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
    }
}

/// Table 1 with the pre-trained block only (MSP next to energy).
fn pretrained_block() -> Vec<Table1Block> {
    vec![Table1Block {
        name: "pre-trained".into(),
        softmax: "msp".into(),
        energy: "energy".into(),
    }]
}

fn cfg() -> ProtocolConfig {
    ProtocolConfig {
        draws: 3,
        samples: Some(4),
        seed: 7,
        ..Default::default()
    }
}

/// ID scores 1..=20; OOD "far" all below every ID score; OOD "near" with known overlap.
fn fixture() -> Vec<Entry> {
    let id: Vec<f64> = (1..=20).map(f64::from).collect();
    let far = vec![-5.0, -4.0, -3.0, -2.0, -1.0, 0.0];
    // every draw of 4 from {100, 101, 102, 103} is the whole set: all above every ID score
    let above = vec![100.0, 101.0, 102.0, 103.0];
    vec![
        entry(
            "msp",
            Group::PreTrained,
            id.clone(),
            vec![("far", far.clone()), ("above", above.clone())],
        ),
        entry(
            "energy",
            Group::PreTrained,
            id,
            vec![("far", far), ("above", above)],
        ),
    ]
}

#[test]
fn separable_and_inverted_sets_give_exact_metrics() {
    let r = Report::evaluate(&fixture(), &cfg()).unwrap();
    let e = r.entry("msp").unwrap();
    let far = &e.table.rows[0].1;
    assert_eq!((far.samples, far.draws), (4, 3));
    assert_eq!(
        (far.mean.fpr, far.mean.auroc, far.mean.aupr_in),
        (0.0, 1.0, 1.0)
    );
    let above = &e.table.rows[1].1;
    // every OOD score above every ID score: all accepted at 95% TPR, AUROC 0
    assert_eq!((above.mean.fpr, above.mean.auroc), (1.0, 0.0));
    // mean row: (0 + 1) / 2 and (1 + 0) / 2; no spread across draws
    assert_eq!((e.table.mean.fpr, e.table.mean.auroc), (0.5, 0.5));
    assert!(
        e.mean_std.to_array().iter().all(|v| v.abs() < 1e-12),
        "{:?}",
        e.mean_std
    );
}

#[test]
fn markdown_tables_have_the_paper_layout() {
    let r = Report::evaluate(&fixture(), &cfg()).unwrap();
    let blocks = pretrained_block();
    let t1 = r.table1_markdown(&blocks).unwrap();
    let lines: Vec<&str> = t1.lines().collect();
    assert_eq!(lines.len(), 2 + 2 + 1, "{t1}");
    assert_eq!(
        lines[2],
        "| far | pre-trained | 0.00 ± 0.00 | 0.00 ± 0.00 | 100.00 ± 0.00 | 100.00 ± 0.00 | 100.00 ± 0.00 | 100.00 ± 0.00 |"
    );
    assert!(
        lines[4].starts_with(
            "| **average** | pre-trained | 50.00 ± 0.00 | 50.00 ± 0.00 | 50.00 ± 0.00 |"
        ),
        "{}",
        lines[4]
    );
    let t2 = r.table2_markdown();
    assert!(
        t2.contains("| MSP | pre-trained | 50.00 ± 0.00 | 50.00 ± 0.00 |"),
        "{t2}"
    );
    assert!(
        t2.lines()
            .all(|l| !l.starts_with("| MSP") || l.ends_with("| 6.25 |")),
        "{t2}"
    );
    // a block naming an absent method is refused; present_blocks filters it
    let missing = Table1Block::paper();
    assert_eq!(
        r.table1_markdown(&missing),
        Err(ReportError::Unknown("oe".into()))
    );
    assert_eq!(r.present_blocks(&missing).len(), 1);
}

#[test]
fn std_of_the_mean_over_sets_is_over_draws() {
    // two sets whose per-draw FPRs move: std of the per-draw average, not the mean of stds
    let id: Vec<f64> = (0..100).map(|i| i as f64).collect();
    let a: Vec<f64> = (0..50).map(|i| i as f64 * 1.3 - 10.0).collect();
    let b: Vec<f64> = (0..50).map(|i| i as f64 * 0.7).collect();
    let cfg = ProtocolConfig {
        draws: 5,
        samples: Some(10),
        seed: 3,
        ..Default::default()
    };
    let r = Report::evaluate(
        &[entry("x", Group::PreTrained, id, vec![("a", a), ("b", b)])],
        &cfg,
    )
    .unwrap();
    let e = &r.entries[0];
    let (ra, rb) = (&e.table.rows[0].1, &e.table.rows[1].1);
    let avg: Vec<f64> = (0..5)
        .map(|d| (ra.per_draw[d].fpr + rb.per_draw[d].fpr) / 2.0)
        .collect();
    let mu = avg.iter().sum::<f64>() / 5.0;
    let sd = (avg.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / 5.0).sqrt();
    assert!((e.mean_std.fpr - sd).abs() < 1e-12);
    assert!((e.table.mean.fpr - mu).abs() < 1e-12);
    assert!(sd > 0.0);
}

#[test]
fn csv_has_one_row_per_set_and_average() {
    let r = Report::evaluate(&fixture(), &cfg()).unwrap();
    let csv = r.csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 2 * 3);
    assert_eq!(lines[0].split(',').count(), lines[1].split(',').count());
    assert_eq!(
        lines[1],
        "msp,MSP,pre-trained,far,0.0000,0.0000,100.0000,0.0000,100.0000,0.0000,100.0000,0.0000,0.0000,0.0000,4,3,6.2500"
    );
    assert!(lines[3].starts_with("msp,MSP,pre-trained,average,50.0000,0.0000,50.0000"));
}

#[test]
fn mismatched_sets_and_duplicates_are_refused() {
    let mut es = fixture();
    es[1].ood.pop();
    assert!(matches!(
        Report::evaluate(&es, &cfg()),
        Err(ReportError::Sets { .. })
    ));
    let mut es = fixture();
    es[1].key = "msp".into();
    assert_eq!(
        Report::evaluate(&es, &cfg()),
        Err(ReportError::Duplicate("msp".into()))
    );
    assert_eq!(Report::evaluate(&[], &cfg()), Err(ReportError::Empty));
    let mut es = fixture();
    es[0].id[3] = f64::NAN;
    let err = Report::evaluate(&es, &cfg()).unwrap_err().to_string();
    assert!(err.starts_with("method \"msp\": "), "{err}");
}

#[test]
fn per_set_markdown_lists_every_method_and_set() {
    let r = Report::evaluate(&fixture(), &cfg()).unwrap();
    let md = r.per_set_markdown();
    assert!(
        md.starts_with("FPR95 ↓, percent:\n\n| method | model | far | above | average |\n"),
        "{md}"
    );
    assert!(md.contains("AUROC ↑, percent:"), "{md}");
    // msp: "far" entirely below ID (FPR 0), "above" entirely above (FPR 100)
    assert!(
        md.contains("| MSP | pre-trained | 0.00 | 100.00 | 50.00 |\n"),
        "{md}"
    );
    for e in &r.entries {
        let row = format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} |",
            e.label,
            e.group.label(),
            100.0 * e.table.rows[0].1.mean.fpr,
            100.0 * e.table.rows[1].1.mean.fpr,
            100.0 * e.table.mean.fpr
        );
        assert!(md.contains(&row), "{row} missing in {md}");
    }
}

/// Three sets: "far" (below every ID score) and "far2" marked far, "above" marked near.
fn kinded() -> Report {
    let id: Vec<f64> = (1..=20).map(f64::from).collect();
    let far = vec![-5.0, -4.0, -3.0, -2.0, -1.0, 0.0];
    // four below the 95%-TPR threshold, three above: the FPR of a draw of 4 moves across draws
    let mid = vec![-3.0, -2.0, 0.5, 1.5, 9.5, 12.5, 30.0];
    let above = vec![100.0, 101.0, 102.0, 103.0];
    let sets = vec![("far", far), ("above", above), ("mid", mid)];
    Report::evaluate(
        &[
            entry("msp", Group::PreTrained, id.clone(), sets.clone()),
            entry("energy", Group::PreTrained, id, sets),
        ],
        &cfg(),
    )
    .unwrap()
    .with_kinds(|s| match s {
        "far" | "mid" => Some("far"),
        "above" => Some("near"),
        _ => None,
    })
}

#[test]
fn near_and_far_sets_are_marked_and_averaged_by_kind() {
    let r = kinded();
    let e = r.entry("msp").unwrap();
    let (far, above, mid) = (&e.table.rows[0].1, &e.table.rows[1].1, &e.table.rows[2].1);
    let (near_m, near_s) = r.kind_mean(&e.table, "near");
    let (far_m, far_s) = r.kind_mean(&e.table, "far");
    assert_eq!(near_m.fpr, 1.0);
    assert!((far_m.fpr - (far.mean.fpr + mid.mean.fpr) / 2.0).abs() < 1e-12);
    assert!((far_m.auroc - (far.mean.auroc + mid.mean.auroc) / 2.0).abs() < 1e-12);
    assert_eq!(near_s.fpr, 0.0);
    // the far std is over draws of the far mean: "far" never moves, so it is half of mid's std
    assert!(
        (far_s.fpr - mid.std.fpr / 2.0).abs() < 1e-12,
        "{far_s:?} {:?}",
        mid.std
    );
    assert!(
        (far_s.auroc - mid.std.auroc / 2.0).abs() < 1e-12,
        "{far_s:?} {:?}",
        mid.std
    );
    assert_eq!(above.mean.fpr, 1.0);

    let blocks = pretrained_block();
    let t1 = r.table1_markdown(&blocks).unwrap();
    let lines: Vec<&str> = t1.lines().collect();
    // header, separator, 3 sets, average, near mean, far mean
    assert_eq!(lines.len(), 2 + 3 + 1 + 2, "{t1}");
    assert!(
        lines[2].starts_with("| far (far) | pre-trained | 0.00 ± 0.00 |"),
        "{t1}"
    );
    assert!(
        lines[3].starts_with("| above (near) | pre-trained | 100.00 ± 0.00 |"),
        "{t1}"
    );
    assert!(
        lines[6].starts_with(
            "| **near mean** | pre-trained | 100.00 ± 0.00 | 100.00 ± 0.00 | 0.00 ± 0.00 |"
        ),
        "{t1}"
    );
    let far_row = format!(
        "| **far mean** | pre-trained | {} |",
        pm(far_m.fpr, far_s.fpr)
    );
    assert!(lines[7].starts_with(&far_row), "{far_row} vs {t1}");

    let md = r.per_set_markdown();
    assert!(
        md.starts_with("FPR95 ↓, percent:\n\n| method | model | far (far) | above (near) | mid (far) | average | near mean | far mean |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"),
        "{md}"
    );
    let row = format!(
        "| MSP | pre-trained | 0.00 | 100.00 | {:.2} | {:.2} | 100.00 | {:.2} |",
        100.0 * mid.mean.fpr,
        100.0 * e.table.mean.fpr,
        100.0 * far_m.fpr
    );
    assert!(md.contains(&row), "{row} missing in {md}");

    // Recorded in report.json; a report without kinds keeps its old layout and JSON.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["set_kinds"]["above"], "near");
    let plain = Report::evaluate(&fixture(), &cfg()).unwrap();
    assert!(serde_json::to_value(&plain)
        .unwrap()
        .get("set_kinds")
        .is_none());
    assert!(!plain.per_set_markdown().contains("mean |"));
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
}
