//! The paper's figures with plotters, each written as PNG and SVG (`<stem>.png`, `<stem>.svg`):
//!
//! - [`score_histograms`]: ID vs OOD score distributions, softmax vs energy, pre-trained and
//!   fine-tuned (Liu et al. 2020, Figure 3);
//! - [`fpr_vs_temperature`]: FPR95 as a function of the energy temperature T (Figure 4a);
//! - [`margin_heatmap`]: FPR95 over the m_in x m_out grid of energy fine-tuning (Figure 4b).
//!
//! Text is rendered with the DejaVu Sans font bundled in `assets/` (via plotters' `ab_glyph`), so
//! PNGs need no system fonts. Files are drawn to a temporary name and renamed into place.
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

const ID_COLOR: RGBColor = RGBColor(31, 119, 180);
const OOD_COLOR: RGBColor = RGBColor(214, 39, 40);
const SERIES: [RGBColor; 4] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    #[error("{}: {message}", path.display())]
    Draw { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("figure {0}: nothing to draw")]
    Empty(String),
}

fn register_font() {
    REGISTER.call_once(|| {
        // the bundled file is a valid TrueType font (tested); failure would only lose text
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One histogram panel: ID and OOD scores of one score function.
#[derive(Debug, Clone)]
pub struct HistPanel<'a> {
    pub title: String,
    pub x_label: String,
    pub id: &'a [f64],
    pub ood: &'a [f64],
}

/// One line of [`fpr_vs_temperature`]: `(T, FPR95 in percent)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Counts of `values` in `bins` equal bins over `[lo, hi]`; values outside are clamped into the
/// first / last bin (so every value is counted), NaN is skipped.
pub fn bin_counts(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<usize> {
    let mut counts = vec![0; bins.max(1)];
    let width = (hi - lo) / bins.max(1) as f64;
    for &v in values {
        if v.is_nan() {
            continue;
        }
        let i = if width > 0.0 {
            ((v - lo) / width).floor()
        } else {
            0.0
        };
        let i = (i.max(0.0) as usize).min(counts.len() - 1);
        counts[i] += 1;
    }
    counts
}

/// Range covering both sets (finite values), padded by 2% (a degenerate range is widened).
pub fn joint_range(a: &[f64], b: &[f64]) -> (f64, f64) {
    let finite = a.iter().chain(b).copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.02 * (hi - lo) } else { 0.5 };
    (lo - pad, hi + pad)
}

/// Range from the `q` to the `1 - q` quantile of both sets together (finite values), padded by
/// 2%: a few extreme scores do not squeeze the histograms (values outside land in the edge bins).
pub fn quantile_range(a: &[f64], b: &[f64], q: f64) -> (f64, f64) {
    let mut v: Vec<f64> = a
        .iter()
        .chain(b)
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_unstable_by(f64::total_cmp);
    let at = |p: f64| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    joint_range(&[at(q)], &[at(1.0 - q)])
}

/// Writes `<stem>.png` and `<stem>.svg`; returns both paths.
fn write_both(
    stem: &Path,
    size: (u32, u32),
    draw_png: impl Fn(DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
    draw_svg: impl Fn(DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
) -> Result<Vec<PathBuf>, FigureError> {
    register_font();
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| FigureError::Io {
            path: dir.into(),
            source,
        })?;
    }
    let name = stem
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    for ext in ["png", "svg"] {
        let path = stem.with_file_name(format!("{name}.{ext}"));
        let tmp = stem.with_file_name(format!(".{name}.tmp.{ext}"));
        let result = if ext == "png" {
            let root = BitMapBackend::new(&tmp, size).into_drawing_area();
            draw_png(root.clone()).and_then(|_| root.present().map_err(|e| e.to_string()))
        } else {
            let root = SVGBackend::new(&tmp, size).into_drawing_area();
            draw_svg(root.clone()).and_then(|_| root.present().map_err(|e| e.to_string()))
        };
        if let Err(message) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(FigureError::Draw { path, message });
        }
        std::fs::rename(&tmp, &path).map_err(|source| FigureError::Io {
            path: path.clone(),
            source,
        })?;
        out.push(path);
    }
    Ok(out)
}

/// Figure 3: a grid of ID-vs-OOD histograms (fraction of each set per bin), `columns` wide.
pub fn score_histograms(
    stem: &Path,
    panels: &[HistPanel],
    columns: usize,
) -> Result<Vec<PathBuf>, FigureError> {
    if panels.is_empty() {
        return Err(FigureError::Empty("score histograms".into()));
    }
    let cols = columns.clamp(1, panels.len());
    let rows = panels.len().div_ceil(cols);
    let size = (420 * cols as u32, 320 * rows as u32);
    write_both(
        stem,
        size,
        |r| draw_histograms(r, panels, rows, cols),
        |r| draw_histograms(r, panels, rows, cols),
    )
}

fn draw_histograms<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &[HistPanel],
    rows: usize,
    cols: usize,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((rows, cols));
    const BINS: usize = 50;
    for (area, p) in areas.iter().zip(panels) {
        let (lo, hi) = quantile_range(p.id, p.ood, 0.001);
        let frac = |v: &[f64]| {
            let n = v.iter().filter(|x| !x.is_nan()).count().max(1) as f64;
            bin_counts(v, lo, hi, BINS)
                .into_iter()
                .map(|c| c as f64 / n)
                .collect::<Vec<f64>>()
        };
        let (fid, food) = (frac(p.id), frac(p.ood));
        let ymax = fid
            .iter()
            .chain(&food)
            .copied()
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.08;
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(lo..hi, 0.0..ymax)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(p.x_label.as_str())
            .y_desc("fraction")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
        let w = (hi - lo) / BINS as f64;
        for (vals, color, name) in [
            (&fid, ID_COLOR, "in-distribution"),
            (&food, OOD_COLOR, "OOD"),
        ] {
            chart
                .draw_series(vals.iter().enumerate().map(|(i, &v)| {
                    let x0 = lo + i as f64 * w;
                    Rectangle::new([(x0, 0.0), (x0 + w, v)], color.mix(0.45).filled())
                }))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.mix(0.45).filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 12))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Figure 4a: FPR95 (percent) vs temperature on a log axis, one line per series.
pub fn fpr_vs_temperature(
    stem: &Path,
    title: &str,
    series: &[Series],
) -> Result<Vec<PathBuf>, FigureError> {
    let pts = series.iter().flat_map(|s| &s.points);
    let (tmin, tmax) = pts
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.0), h.max(p.0))
        });
    if !tmin.is_finite() || tmin <= 0.0 {
        return Err(FigureError::Empty(
            "FPR95 vs T (needs positive temperatures)".into(),
        ));
    }
    let ymax = pts.map(|p| p.1).fold(0.0, f64::max);
    let ymax = (ymax * 1.1).clamp(5.0, 100.0);
    write_both(
        stem,
        (640, 420),
        |r| draw_fpr_t(r, title, series, (tmin, tmax), ymax),
        |r| draw_fpr_t(r, title, series, (tmin, tmax), ymax),
    )
}

fn draw_fpr_t<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    series: &[Series],
    (tmin, tmax): (f64, f64),
    ymax: f64,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(52)
        .build_cartesian_2d((tmin * 0.8..tmax * 1.25).log_scale(), 0.0..ymax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("temperature T (log scale)")
        .y_desc("FPR95 (%)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let color = SERIES[i % SERIES.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Colour of an FPR in [0, 100] percent: white (0) to dark red (100).
pub fn heat_color(fpr_percent: f64) -> RGBColor {
    let t = (fpr_percent / 100.0).clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(lerp(255.0, 165.0), lerp(255.0, 15.0), lerp(255.0, 21.0))
}

/// Figure 4b: FPR95 (percent) over the margin grid; `fpr[i][j]` is for `m_in[i]`, `m_out[j]`
/// (`None`: not run). Cells carry their value.
pub fn margin_heatmap(
    stem: &Path,
    title: &str,
    m_in: &[f64],
    m_out: &[f64],
    fpr: &[Vec<Option<f64>>],
) -> Result<Vec<PathBuf>, FigureError> {
    if m_in.is_empty()
        || m_out.is_empty()
        || fpr.len() != m_in.len()
        || fpr.iter().any(|r| r.len() != m_out.len())
    {
        return Err(FigureError::Empty(format!(
            "margin heatmap (grid {}x{} with {} rows of values)",
            m_in.len(),
            m_out.len(),
            fpr.len()
        )));
    }
    let size = (280 + 110 * m_in.len() as u32, 140 + 80 * m_out.len() as u32);
    write_both(
        stem,
        size,
        |r| draw_heatmap(r, title, m_in, m_out, fpr),
        |r| draw_heatmap(r, title, m_in, m_out, fpr),
    )
}

fn draw_heatmap<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    m_in: &[f64],
    m_out: &[f64],
    fpr: &[Vec<Option<f64>>],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (nx, ny) = (m_in.len() as i32, m_out.len() as i32);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        // a segmented range a..b has b - a + 1 segments
        .build_cartesian_2d((0..nx - 1).into_segmented(), (0..ny - 1).into_segmented())
        .map_err(|e| e.to_string())?;
    let fmt = |vals: &[f64], v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) if (*i as usize) < vals.len() => format!("{}", vals[*i as usize]),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("m_in")
        .y_desc("m_out")
        .x_labels(m_in.len())
        .y_labels(m_out.len())
        .x_label_formatter(&|v| fmt(m_in, v))
        .y_label_formatter(&|v| fmt(m_out, v))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, row) in fpr.iter().enumerate() {
        for (j, cell) in row.iter().enumerate() {
            let (i, j) = (i as i32, j as i32);
            let corners = [
                (SegmentValue::Exact(i), SegmentValue::Exact(j)),
                (SegmentValue::Exact(i + 1), SegmentValue::Exact(j + 1)),
            ];
            let color = cell.map_or(RGBColor(220, 220, 220), heat_color);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    corners.clone(),
                    color.filled(),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(Rectangle::new(corners, BLACK.mix(0.25))))
                .map_err(|e| e.to_string())?;
            let text = cell.map_or("n/a".to_string(), |v| format!("{v:.1}"));
            let ink = if cell.is_some_and(|v| v > 60.0) {
                WHITE
            } else {
                BLACK
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (SegmentValue::CenterOf(i), SegmentValue::CenterOf(j)),
                    ("sans-serif", 15)
                        .into_font()
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
