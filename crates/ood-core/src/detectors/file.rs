//! The fitted-detector file: JSON `{"format": "eood-detector", "version": 1, "detector":
//! {"method": key, ...}}`, written atomically and never over a device node; read only from a
//! regular file of bounded size, and every array checked (shape, finite) as it is parsed.

use std::io::{BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{DetectorError, Fitted};
use crate::io::{check_output, open_regular, write_atomic, IoError};
use crate::limits::check_alloc;

const FORMAT: &str = "eood-detector";

#[derive(Serialize, Deserialize)]
struct FileForm<D> {
    format: String,
    version: u32,
    detector: D,
}

impl Fitted {
    /// Write to `path` atomically (refusing to replace a device node or a directory).
    pub fn save(&self, path: &Path) -> Result<(), DetectorError> {
        check_output(path, &[])?;
        let form = FileForm {
            format: FORMAT.to_string(),
            version: 1,
            detector: self,
        };
        write_atomic(path, |w| {
            serde_json::to_writer(&mut *w, &form)
                .map_err(|e| DetectorError::Io(IoError::new(path, std::io::Error::other(e))))?;
            w.write_all(b"\n")
                .map_err(|e| DetectorError::Io(IoError::new(path, e)))
        })
    }

    /// Read a file written by [`Fitted::save`].
    pub fn load(path: &Path) -> Result<Fitted, DetectorError> {
        let (file, len) = open_regular(path)?;
        // the parsed form holds every number as f64: bound it by the file size
        check_alloc("detector file", len as u128, 8)?;
        let form: FileForm<Fitted> =
            serde_json::from_reader(BufReader::new(file)).map_err(|source| {
                DetectorError::Parse {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        if form.format != FORMAT || form.version != 1 {
            return Err(DetectorError::Corrupt {
                path: path.to_path_buf(),
                what: "not an eood-detector version 1 file",
            });
        }
        Ok(form.detector)
    }
}
