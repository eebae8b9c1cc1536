//! Request bodies of `POST /v1/detect` into [`Work`]: one PNG/JPEG image, a multipart form of
//! images, a uint8 `.npy` batch, or JSON logits/features. Every decoder is the workspace's own
//! (ood-data's image and `.npy` readers, ood-bundle's row check); this file only picks one by
//! content type and bounds what a request may unpack to.

use std::io::Cursor;
use std::path::Path;

use ndarray::Array3;
use ood_bundle::bundle::rows_to_array;
use ood_bundle::Bundle;
use ood_data::formats::image_file::{decode_image, ColorMode};
use ood_data::formats::npy_images;
use serde::Deserialize;

use crate::batcher::Work;
use crate::error::ApiError;
use crate::options::MAX_DECODED_BYTES;

/// The body formats, by content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Image,
    Multipart { boundary: String },
    Npy,
    Json,
}

impl Kind {
    /// From a `Content-Type` value (parameters after `;` ignored except the boundary).
    pub fn from_content_type(ct: Option<&str>) -> Result<Self, ApiError> {
        let ct = ct.unwrap_or("").trim();
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "image/png" | "image/jpeg" => Ok(Kind::Image),
            "application/x-npy" | "application/octet-stream+npy" => Ok(Kind::Npy),
            "application/json" => Ok(Kind::Json),
            "multipart/form-data" => {
                multer_boundary(ct).map(|boundary| Kind::Multipart { boundary })
            }
            _ => Err(ApiError::UnsupportedMedia(
                essence.chars().take(80).collect(),
            )),
        }
    }
}

fn multer_boundary(ct: &str) -> Result<String, ApiError> {
    multer::parse_boundary(ct).map_err(|e| ApiError::bad(format!("multipart content type: {e}")))
}

/// JSON body: logits, and features for fitted methods that take them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectJson {
    logits: Option<Vec<Vec<f64>>>,
    features: Option<Vec<Vec<f64>>>,
}

/// Decode one image (any format ood-data reads), after checking its declared size against
/// what is left of the request's decoded-bytes budget.
pub fn image(bytes: &[u8], index: usize, budget: &mut u64) -> Result<Array3<u8>, ApiError> {
    let name = format!("image {index}");
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ApiError::bad(format!("{name}: {e}")))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| ApiError::bad(format!("{name}: cannot decode image: {e}")))?;
    // up to 4 bytes a pixel while decoding (RGBA), whatever channels are kept
    let need = u64::from(w) * u64::from(h) * 4;
    if need > *budget {
        return Err(ApiError::TooLarge(format!(
            "{name} is {w}x{h}: the request would decode to more than {MAX_DECODED_BYTES} bytes"
        )));
    }
    *budget -= need;
    decode_image(bytes, Path::new(&name), ColorMode::Native)
        .map_err(|e| ApiError::bad(e.to_string()))
}

/// A uint8 `N x H x W (x C)` `.npy` body, header checked by ood-data's image reader.
pub fn npy(bytes: &[u8]) -> Result<Vec<Array3<u8>>, ApiError> {
    let h = npy_images::parse_header(bytes, bytes.len() as u64, Path::new("request body"))
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let (n, hh, w, c) = h.shape;
    if n == 0 || hh == 0 || w == 0 {
        return Err(ApiError::Unprocessable(format!(
            "the batch has shape {:?}: no images",
            (n, hh, w, c)
        )));
    }
    // the payload length equals n*h*w*c (parse_header checked it), so these cannot overflow
    let each = hh * w * c;
    Ok(bytes[h.data_offset..]
        .chunks_exact(each)
        .map(|px| Array3::from_shape_vec((hh, w, c), px.to_vec()).expect("chunk of h*w*c"))
        .collect())
}

/// Whether `{"features": ...}` means anything to this bundle: only fitted zoo methods
/// (`scoring.fitted` present) score features; the plain logit scores never do.
pub fn takes_features(bundle: &Bundle) -> bool {
    bundle.manifest().scoring.fitted.is_some()
}

/// A JSON body into logits (and features) work.
pub fn json(bytes: &[u8], bundle: &Bundle) -> Result<Work, ApiError> {
    let body: DetectJson = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))?;
    let method = &bundle.manifest().scoring.method;
    if body.features.is_some() && !takes_features(bundle) {
        return Err(ApiError::Unprocessable(format!(
            "this bundle's method {method} scores logits, not features: send {{\"logits\": [[...]]}}"
        )));
    }
    let Some(rows) = body.logits else {
        return Err(ApiError::Unprocessable(
            "the body needs \"logits\" (N x K; the decision's class and label come from them)"
                .into(),
        ));
    };
    if rows.is_empty() {
        return Err(ApiError::Unprocessable("\"logits\" has no rows".into()));
    }
    let unprocessable = |e: ood_bundle::BundleError| ApiError::Unprocessable(e.to_string());
    let logits = rows_to_array("logits", &rows).map_err(unprocessable)?;
    let features = body
        .features
        .map(|f| rows_to_array("features", &f))
        .transpose()
        .map_err(unprocessable)?;
    Ok(Work::Logits { logits, features })
}

/// The images of a multipart body (every part is one image file), in order.
pub async fn multipart(
    bytes: axum::body::Bytes,
    boundary: String,
) -> Result<Vec<(usize, axum::body::Bytes)>, ApiError> {
    let stream = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
    let mut form = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::bad(format!("multipart part {}: {e}", parts.len())))?;
                parts.push((parts.len(), data));
            }
            Ok(None) => break,
            Err(e) => return Err(ApiError::bad(format!("malformed multipart body: {e}"))),
        }
    }
    if parts.is_empty() {
        return Err(ApiError::Unprocessable(
            "the multipart body has no parts".into(),
        ));
    }
    Ok(parts)
}
