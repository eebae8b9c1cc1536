//! Fuzzing of every binary parser with proptest: random bytes, random byte mutations, random
//! splices, length fields set to huge values and every kind of truncation of valid files written
//! here. Properties: no panic; random bytes and truncations are rejected (`Err`); every error
//! names the file; no single allocation exceeds [`MAX_ALLOC`] (a counting global allocator: the
//! seeds are a few KB, so a larger allocation means a size taken from the input unchecked).
//!
//! Cases per property: `FUZZ_CASES` (default 1000). The run recorded in docs/formats.md:
//! `FUZZ_CASES=20000 cargo test --release -p ood-data --test formats_fuzz -- --nocapture`
//! (each property prints how many cases it ran).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Cursor, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray_npy::WriteNpyExt;
use ood_data::formats::{
    cifar, gimp_pat, idx, image_file, npy_images, svhn_mat, tiny_images, zip_images,
};
use ood_data::Error;
use proptest::prelude::*;

/// Largest single allocation any parser may make on these small inputs.
const MAX_ALLOC: usize = 64 << 20;

/// The largest allocation requested so far by this test process.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: forwards to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn check_alloc_bounded(what: &str) -> Result<(), TestCaseError> {
    let largest = LARGEST.load(Ordering::Relaxed);
    prop_assert!(
        largest <= MAX_ALLOC,
        "{what}: an allocation of {largest} bytes"
    );
    Ok(())
}

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// A parser under test: name (also the file name in errors) and a closure returning Ok(()) or the error.
type Parser = fn(&[u8]) -> Result<(), Error>;

const NAME: &str = "fuzzed.bin";

fn p() -> &'static Path {
    Path::new(NAME)
}

fn parsers() -> Vec<(&'static str, Parser, Vec<u8>)> {
    vec![
        (
            "idx-images",
            |b| idx::parse_images(b, p()).map(drop),
            idx_file(),
        ),
        (
            "idx-images-gz",
            |b| idx::parse_images(b, p()).map(drop),
            gzip(&idx_file()),
        ),
        (
            "idx-labels",
            |b| idx::parse_labels(b, p()).map(drop),
            idx_labels(),
        ),
        (
            "cifar-bin",
            |b| cifar::parse_bin(b, p(), cifar::CifarLabels::Cifar10).map(drop),
            cifar_bin(),
        ),
        (
            "cifar-pickle",
            |b| cifar::parse_pickle(b, p(), cifar::CifarLabels::Cifar10).map(drop),
            cifar_pickle(),
        ),
        (
            "svhn-mat",
            |b| svhn_mat::parse_svhn(b, p()).map(drop),
            svhn_mat(),
        ),
        ("gimp-pat", |b| gimp_pat::parse_pat(b, p()).map(drop), pat()),
        (
            "npy-header",
            |b| npy_images::parse_header(b, b.len() as u64, p()).map(drop),
            npy(),
        ),
        (
            "png",
            |b| image_file::decode_image(b, p(), image_file::ColorMode::Rgb).map(drop),
            png(),
        ),
        (
            "zip-images",
            |b| zip_images::parse_zip_images(b, p(), image_file::ColorMode::Gray).map(drop),
            zip(),
        ),
        ("pickle-vm", parse_pickle_vm, pickle_vm()),
    ]
}

/// Parsers fuzzed (the length of [`parsers`]).
const N: usize = 11;

/// The pickle VM alone, with hooks that accept `collections.OrderedDict` (as an empty dict)
/// and refuse every other global.
fn parse_pickle_vm(b: &[u8]) -> Result<(), Error> {
    use ood_data::formats::pickle::{load, HookError, Hooks, Limits, Value};
    struct H;
    impl Hooks for H {
        type Ext = ();
        fn find_class(&mut self, m: &str, n: &str) -> Result<Value<()>, HookError> {
            match (m, n) {
                ("collections", "OrderedDict") => Ok(Value::Ext(())),
                _ => Err(HookError::new("refused")),
            }
        }
        fn call(&mut self, f: Value<()>, _: Value<()>) -> Result<Value<()>, HookError> {
            match f {
                Value::Ext(()) => Ok(Value::Dict(Default::default())),
                _ => Err(HookError::new("refused")),
            }
        }
        fn build(&mut self, obj: Value<()>, _: Value<()>) -> Result<Value<()>, HookError> {
            Ok(obj)
        }
    }
    // Like the real callers: a PROTO 2 header and nothing after STOP (otherwise two random
    // bytes such as `N.` are a valid pickle).
    if !b.starts_with(b"\x80\x02") {
        return Err(Error::format(p(), 0, "no PROTO 2"));
    }
    match load(b, &mut H, &Limits::default()) {
        Ok((_, used)) if used == b.len() => Ok(()),
        Ok((_, used)) => Err(Error::format(p(), used as u64, "bytes after STOP")),
        Err(e) => Err(Error::format(p(), e.offset, e.kind.to_string())),
    }
}

/// Offsets of length fields in a seed (`u32`, either byte order), for the huge-length property.
fn length_fields(what: &str, seed: &[u8]) -> Vec<usize> {
    let find = |pat: &[u8]| -> Vec<usize> {
        (0..seed.len().saturating_sub(pat.len()))
            .filter(|&i| &seed[i..i + pat.len()] == pat)
            .collect()
    };
    match what {
        "idx-images" => vec![4, 8, 12],
        "idx-labels" => vec![4],
        "gimp-pat" => vec![0, 4, 8, 12, 16],
        "svhn-mat" => vec![128, 132],
        "cifar-pickle" => find(b"T\x00\x0c").into_iter().map(|i| i + 1).collect(),
        "pickle-vm" => find(b"X").into_iter().map(|i| i + 1).collect(),
        "zip-images" => {
            let mut v: Vec<usize> = find(b"PK\x03\x04")
                .iter()
                .flat_map(|i| [i + 18, i + 22])
                .collect();
            v.extend(
                find(b"PK\x01\x02")
                    .iter()
                    .flat_map(|i| [i + 20, i + 24, i + 42]),
            );
            v.extend(find(b"PK\x05\x06").iter().flat_map(|i| [i + 12, i + 16]));
            v
        }
        _ => Vec::new(),
    }
}

/// A protocol-2 pickle with a memoized OrderedDict, nested list/tuple and strings.
fn pickle_vm() -> Vec<u8> {
    let mut o = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00aq\x02]q\x03(K\x01K\x02h\x02e".to_vec();
    o.extend(
        b"X\x01\x00\x00\x00bh\x03h\x03\x86X\x03\x00\x00\x00cccG?\xf8\x00\x00\x00\x00\x00\x00u.",
    );
    o
}

// ---- valid seed files, in the real formats -------------------------------------------------

fn idx_file() -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
    v.extend(0..18u8);
    v
}

fn idx_labels() -> Vec<u8> {
    vec![0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 9]
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn cifar_bin() -> Vec<u8> {
    let mut v = Vec::new();
    for l in [3u8, 7] {
        v.push(l);
        v.extend((0..3072).map(|i| (i * 7 % 256) as u8));
    }
    v
}

/// A CIFAR-10 batch of one image as Python 2's cPickle writes it (protocol 2).
fn cifar_pickle() -> Vec<u8> {
    let mut o = b"\x80\x02}q\x01(U\x06labelsq\x02]q\x03(K\x05eU\x04dataq\x04".to_vec();
    o.extend(b"cnumpy.core.multiarray\n_reconstruct\nq\x05cnumpy\nndarray\nq\x06K\x00\x85U\x01b\x87Rq\x07");
    o.extend(b"(K\x01K\x01M\x00\x0c\x86cnumpy\ndtype\nq\x08U\x02u1K\x00K\x01\x87Rq\x09");
    o.extend(b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T\x00\x0c\x00\x00");
    o.extend((0..3072).map(|i| (i % 251) as u8));
    o.extend(b"tbu.");
    o
}

fn mat_element(ty: u32, data: &[u8]) -> Vec<u8> {
    let mut v = ty.to_le_bytes().to_vec();
    v.extend((data.len() as u32).to_le_bytes());
    v.extend(data);
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
    v
}

fn mat_matrix(name: &str, class: u8, dims: &[i32], ty: u32, real: &[u8]) -> Vec<u8> {
    let mut body = mat_element(6, &[class, 0, 0, 0, 0, 0, 0, 0]);
    body.extend(mat_element(
        5,
        &dims
            .iter()
            .flat_map(|d| d.to_le_bytes())
            .collect::<Vec<_>>(),
    ));
    body.extend(mat_element(1, name.as_bytes()));
    body.extend(mat_element(ty, real));
    mat_element(14, &body)
}

fn svhn_mat() -> Vec<u8> {
    let mut f = b"MATLAB 5.0 MAT-file, fuzz seed".to_vec();
    f.resize(116, b' ');
    f.extend([0u8; 8]);
    f.extend([0, 1, b'I', b'M']);
    let x = mat_matrix(
        "X",
        9,
        &[32, 32, 3, 1],
        2,
        &(0..3072).map(|i| (i % 256) as u8).collect::<Vec<_>>(),
    );
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&x).unwrap();
    let zx = z.finish().unwrap();
    f.extend(15u32.to_le_bytes());
    f.extend((zx.len() as u32).to_le_bytes());
    f.extend(zx);
    f.extend(mat_matrix("y", 6, &[1, 1], 9, &10f64.to_le_bytes()));
    f
}

fn pat() -> Vec<u8> {
    let mut v = Vec::new();
    for x in [24u32 + 4, 1, 3, 2, 3] {
        v.extend(x.to_be_bytes());
    }
    v.extend(b"GPATabc\0");
    v.extend(0..18u8);
    v
}

fn npy() -> Vec<u8> {
    let a = ndarray::Array4::<u8>::from_elem((2, 3, 3, 3), 5);
    let mut c = Cursor::new(Vec::new());
    a.write_npy(&mut c).unwrap();
    c.into_inner()
}

fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 7]));
    let mut c = Cursor::new(Vec::new());
    img.write_to(&mut c, image::ImageFormat::Png).unwrap();
    c.into_inner()
}

fn zip() -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for name in ["a/b/1.png", "a/c/2.png"] {
        z.start_file(name, opts).unwrap();
        z.write_all(&png()).unwrap();
    }
    z.finish().unwrap().into_inner()
}

// ---- properties ----------------------------------------------------------------------------

fn check_error(what: &str, e: &Error) {
    let text = e.to_string();
    assert!(
        text.contains(NAME),
        "{what}: error does not name the file: {text}"
    );
}

/// Cases run, per property (random, mutated, spliced, truncated) and parser.
static COUNTS: [[AtomicUsize; N]; 5] = [const { [const { AtomicUsize::new(0) }; N] }; 5];
static EXCLUSION: AtomicUsize = AtomicUsize::new(0);

#[test]
fn seeds_are_valid() {
    assert_eq!(parsers().len(), N);
    for (what, parse, seed) in parsers() {
        parse(&seed).unwrap_or_else(|e| panic!("{what}: seed rejected: {e}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Random bytes (sometimes behind the first 1-4 bytes of a valid file: its magic) are
    /// rejected by every parser. (A longer valid prefix can make the bytes valid: an IDX label
    /// header followed by as many random bytes as it declares is a label file.)
    #[test]
    fn random_bytes_are_rejected(which in 0usize..N, keep_prefix in 0usize..5, tail in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (what, parse, seed) = &parsers()[which];
        let mut b = seed[..keep_prefix.min(seed.len())].to_vec();
        b.extend(&tail);
        COUNTS[0][which].fetch_add(1, Ordering::Relaxed);
        match parse(&b) {
            Err(e) => check_error(what, &e),
            Ok(()) => prop_assert!(false, "{what}: accepted {} random bytes", b.len()),
        }
        check_alloc_bounded(what)?;
    }

    /// Random byte replacements of valid files never panic; errors name the file.
    #[test]
    fn mutated_files_never_panic(which in 0usize..N, edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let (what, parse, seed) = &parsers()[which];
        let mut b = seed.clone();
        for (i, v) in edits {
            let at = i.index(b.len());
            b[at] = v;
        }
        COUNTS[1][which].fetch_add(1, Ordering::Relaxed);
        if let Err(e) = parse(&b) {
            check_error(what, &e);
        }
        check_alloc_bounded(what)?;
    }

    /// Random insertions and deletions never panic.
    #[test]
    fn spliced_files_never_panic(which in 0usize..N, at in any::<prop::sample::Index>(), cut in 0usize..64, insert in proptest::collection::vec(any::<u8>(), 0..64)) {
        let (what, parse, seed) = &parsers()[which];
        let pos = at.index(seed.len());
        let end = (pos + cut).min(seed.len());
        let mut b = seed[..pos].to_vec();
        b.extend(&insert);
        b.extend(&seed[end..]);
        COUNTS[2][which].fetch_add(1, Ordering::Relaxed);
        if let Err(e) = parse(&b) {
            check_error(what, &e);
        }
        check_alloc_bounded(what)?;
    }

    /// A length field (or any 4 bytes) set to a huge value, in either byte order: no panic, no
    /// allocation from the unchecked size.
    #[test]
    fn huge_length_fields_never_panic(which in 0usize..N, pick in any::<prop::sample::Index>(), known in any::<bool>(), value in prop_oneof![Just(u32::MAX), Just(i32::MAX as u32), Just(0x8000_0000u32), Just(1u32 << 24), any::<u32>()], big_endian in any::<bool>()) {
        let (what, parse, seed) = &parsers()[which];
        let fields = length_fields(what, seed);
        let at = if known && !fields.is_empty() {
            fields[pick.index(fields.len())]
        } else {
            pick.index(seed.len().saturating_sub(3).max(1))
        };
        let mut b = seed.clone();
        let bytes = if big_endian { value.to_be_bytes() } else { value.to_le_bytes() };
        for (k, v) in bytes.iter().enumerate() {
            if let Some(x) = b.get_mut(at + k) {
                *x = *v;
            }
        }
        COUNTS[4][which].fetch_add(1, Ordering::Relaxed);
        if let Err(e) = parse(&b) {
            check_error(what, &e);
        }
        check_alloc_bounded(what)?;
    }

    /// Every strict prefix of a valid file is rejected. (PNG: the `png` decoder accepts a file
    /// whose 12-byte IEND trailer is cut once all pixel data is read; such prefixes are skipped.
    /// CIFAR binary: cuts at record boundaries are moved one byte earlier, see below.)
    #[test]
    fn truncated_files_are_rejected(which in 0usize..N, at in any::<prop::sample::Index>()) {
        let (what, parse, seed) = &parsers()[which];
        let usable = if *what == "png" { seed.len() - 12 } else { seed.len() };
        let mut cut = at.index(usable);
        if *what == "cifar-bin" && cut > 0 && cut % 3073 == 0 {
            // Header-less records: a cut at a record boundary is a valid, shorter batch (the
            // registry's SHA-256 check is what catches it). Test the byte before instead.
            cut -= 1;
        }
        COUNTS[3][which].fetch_add(1, Ordering::Relaxed);
        match parse(&seed[..cut]) {
            Err(e) => check_error(what, &e),
            Ok(()) => prop_assert!(false, "{what}: accepted a truncation to {cut} of {} bytes", seed.len()),
        }
        check_alloc_bounded(what)?;
    }

    /// The Tiny Images CIFAR-exclusion list parser: never panics; accepted indices are in range.
    #[test]
    fn exclusion_list_never_panics(text in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b' '), b'0'..=b'9', any::<u8>()], 0..200), n in 1u64..1000) {
        EXCLUSION.fetch_add(1, Ordering::Relaxed);
        match tiny_images::parse_exclusion_list(&text, n, p()) {
            Ok(v) => prop_assert!(v.iter().all(|&i| i < n) && v.windows(2).all(|w| w[0] < w[1])),
            Err(e) => check_error("exclusion list", &e),
        }
    }
}

/// Prints the cases run per parser and property (with `--nocapture --test-threads=1` this runs
/// last, after every property; in parallel runs it reports whatever has finished).
#[test]
fn zz_report_counts() {
    let names = parsers();
    eprintln!("| parser | random | mutated | spliced | truncated | huge lengths |");
    eprintln!("|---|---|---|---|---|---|");
    let mut totals = [0usize; 5];
    for (k, (what, _, _)) in names.iter().enumerate() {
        let c: Vec<usize> = (0..5)
            .map(|p| COUNTS[p][k].load(Ordering::Relaxed))
            .collect();
        (0..5).for_each(|p| totals[p] += c[p]);
        eprintln!(
            "| {what} | {} | {} | {} | {} | {} |",
            c[0], c[1], c[2], c[3], c[4]
        );
    }
    eprintln!(
        "| all | {} | {} | {} | {} | {} |",
        totals[0], totals[1], totals[2], totals[3], totals[4]
    );
    eprintln!(
        "largest single allocation: {} bytes (cap {MAX_ALLOC})",
        LARGEST.load(Ordering::Relaxed)
    );
    eprintln!(
        "exclusion list: {} cases (FUZZ_CASES = {})",
        EXCLUSION.load(Ordering::Relaxed),
        cases()
    );
}
