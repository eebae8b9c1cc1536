//! `eood detect --bundle DIR IMAGES... | --images batch.npy` (and `eood bundle decide`): one
//! command from pixels to decisions. Each input is brought to the bundle's input contract,
//! run through its model, scored and compared with its tau; one decision per input goes to
//! stdout as it is made (JSON lines, an aligned table, or CSV), in chunks of [`CHUNK`] inputs,
//! so a large batch never sits in memory whole. A bad input stops the run with one line and
//! exit status 2; the decisions already printed stand.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::Array3;
use ood_bundle::{Bundle, Decision};
use ood_data::formats::image_file::{decode_image, ColorMode};
use ood_data::formats::npy_images::NpyImages;
use serde::Serialize;

/// Inputs decided per model run.
pub const CHUNK: usize = 256;
/// Largest image file read.
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;

/// How decisions are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object a line: input, accepted, score, class, label, confidence.
    Jsonl,
    /// Aligned columns for reading.
    Table,
    /// Comma-separated values with a header line (RFC 4180 quoting).
    Csv,
}

#[derive(Serialize)]
struct Line<'a> {
    /// The image file, or `<batch.npy>[i]`.
    input: &'a str,
    #[serde(flatten)]
    decision: &'a Decision,
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

struct Printer {
    format: Format,
    label_width: usize,
    out: std::io::StdoutLock<'static>,
}

impl Printer {
    fn new(format: Format, bundle: &Bundle) -> std::io::Result<Self> {
        let label_width = bundle
            .manifest()
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let mut p = Printer {
            format,
            label_width,
            out: std::io::stdout().lock(),
        };
        match format {
            Format::Jsonl => {}
            Format::Csv => writeln!(p.out, "input,accepted,score,class,label,confidence")?,
            Format::Table => writeln!(
                p.out,
                "{:<8} {:>14} {:>5} {:<w$} {:>10}  input",
                "accepted",
                "score",
                "class",
                "label",
                "confidence",
                w = p.label_width
            )?,
        }
        Ok(p)
    }

    fn print(&mut self, input: &str, d: &Decision) -> anyhow::Result<()> {
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, &Line { input, decision: d })?;
                writeln!(self.out)?;
            }
            Format::Csv => writeln!(
                self.out,
                "{},{},{},{},{},{}",
                csv_field(input),
                d.accepted,
                d.score,
                d.class,
                csv_field(&d.label),
                d.confidence
            )?,
            Format::Table => writeln!(
                self.out,
                "{:<8} {:>14.6} {:>5} {:<w$} {:>10.6}  {input}",
                if d.accepted { "yes" } else { "no" },
                d.score,
                d.class,
                d.label,
                d.confidence,
                w = self.label_width
            )?,
        }
        Ok(())
    }
}

/// Decide image `files` or the uint8 batch `npy` with the bundle in `dir`, printing each.
pub fn run(
    dir: &Path,
    files: &[PathBuf],
    npy: Option<&Path>,
    format: Format,
) -> anyhow::Result<()> {
    let bundle = super::bundle::load(dir)?;
    let mut printer = Printer::new(format, &bundle)?;
    let mut decide = |names: &[String], images: &[Array3<u8>]| -> anyhow::Result<()> {
        let views: Vec<_> = images.iter().map(|i| i.view()).collect();
        for (name, d) in names.iter().zip(bundle.decide(&views)?) {
            printer.print(name, &d)?;
        }
        Ok(())
    };
    if let Some(npy) = npy {
        let batch = NpyImages::open(npy)?;
        for start in (0..batch.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(batch.len());
            let names: Vec<String> = (start..end)
                .map(|i| format!("{}[{i}]", npy.display()))
                .collect();
            let images = (start..end)
                .map(|i| batch.image(i))
                .collect::<Result<Vec<_>, _>>()?;
            decide(&names, &images)?;
        }
        return Ok(());
    }
    let mode = if bundle.manifest().input.channels == 1 {
        ColorMode::Gray
    } else {
        ColorMode::Rgb
    };
    for chunk in files.chunks(CHUNK) {
        let mut images = Vec::with_capacity(chunk.len());
        for p in chunk {
            let bytes = ood_bundle::manifest::read_capped(p, "an image file", MAX_IMAGE_BYTES)?;
            images.push(decode_image(&bytes, p, mode)?);
        }
        let names: Vec<String> = chunk.iter().map(|p| p.display().to_string()).collect();
        decide(&names, &images)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("Ankle boot"), "Ankle boot");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
