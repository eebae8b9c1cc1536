//! Sizes checked before anything is allocated from them. A size that comes from a user (a flag,
//! a file header, a checkpoint sidecar) is checked here first: an overflow, a size beyond a sane
//! cap, or one larger than the memory this machine has free gives one clear error instead of an
//! abort or a machine-wide out-of-memory.

/// Refusal of a size.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("{what}: {count} x {elem_bytes} bytes overflows")]
    Overflow {
        what: String,
        count: u128,
        elem_bytes: u128,
    },
    #[error("{what}: needs {bytes} bytes, more than the {limit}-byte limit ({why})")]
    TooLarge {
        what: String,
        bytes: u128,
        limit: u128,
        why: &'static str,
    },
    #[error("{what} must be between {min} and {max}, got {value}")]
    OutOfRange {
        what: String,
        value: String,
        min: String,
        max: String,
    },
}

/// Upper bound for one allocation derived from untrusted input, whatever the machine (64 GiB).
pub const MAX_ALLOC_BYTES: u128 = 64 << 30;

/// Bytes of memory available now (`MemAvailable` of /proc/meminfo), where the OS says.
pub fn available_memory() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Peak resident memory of this process so far (`VmHWM` of /proc/self/status), KiB, where
/// the OS says: for benchmarks that report memory next to time.
pub fn peak_resident_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Check that `count` elements of `elem_bytes` each can be allocated: no overflow, at most
/// [`MAX_ALLOC_BYTES`], and at most the memory available now. Returns the byte count.
pub fn check_alloc(what: &str, count: u128, elem_bytes: u128) -> Result<u128, LimitError> {
    let bytes = count
        .checked_mul(elem_bytes)
        .ok_or_else(|| LimitError::Overflow {
            what: what.to_string(),
            count,
            elem_bytes,
        })?;
    if bytes > MAX_ALLOC_BYTES {
        return Err(LimitError::TooLarge {
            what: what.to_string(),
            bytes,
            limit: MAX_ALLOC_BYTES,
            why: "hard cap for sizes read from input",
        });
    }
    if let Some(avail) = available_memory() {
        if bytes > avail {
            return Err(LimitError::TooLarge {
                what: what.to_string(),
                bytes,
                limit: avail,
                why: "memory available on this machine",
            });
        }
    }
    Ok(bytes)
}

/// Check `min <= value <= max` for a user-given number (a flag, a sidecar field).
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    what: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, LimitError> {
    // Written so that NaN (for which every comparison is false) is refused too.
    if value >= min && value <= max {
        Ok(value)
    } else {
        Err(LimitError::OutOfRange {
            what: what.to_string(),
            value: value.to_string(),
            min: min.to_string(),
            max: max.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_overflow_huge_and_out_of_range() {
        assert!(matches!(
            check_alloc("labels", u128::MAX, 8),
            Err(LimitError::Overflow { .. })
        ));
        let e = check_alloc("logits", 1_000_000_000_000, 4).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("logits: needs 4000000000000 bytes"),
            "{e}"
        );
        assert_eq!(check_alloc("small", 10, 4).unwrap(), 40);
        assert!(check_range("--draws", 1_000_000_000u64, 1, 100_000).is_err());
        assert!(check_range("--temperature", f64::NAN, 1e-3, 1e3).is_err());
        assert_eq!(check_range("--depth", 40, 10, 1000).unwrap(), 40);
    }
}
