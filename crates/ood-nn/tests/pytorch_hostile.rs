//! Hostile `torch.save` files: pickle expansion ("billion laughs") and zip bombs must fail (or
//! load) fast with bounded memory, with one clear error naming the file.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use ood_nn::pytorch::load_state_dict;

/// A protocol-2 pickle of `{'state_dict': X}` where X nests `levels` tuples / lists, each
/// holding its predecessor (a memo reference) four times: 4^30 nodes if copied.
fn shared_pickle(levels: u32) -> Vec<u8> {
    let mut p = b"\x80\x02}q\x00X\x0a\x00\x00\x00state_dict)q\x010".to_vec();
    for i in 1..=levels {
        p.push(b'(');
        for _ in 0..4 {
            p.push(b'h');
            p.push(i as u8);
        }
        p.push(if i % 2 == 0 { b't' } else { b'l' });
        p.push(b'q');
        p.push(i as u8 + 1);
        if i < levels {
            p.push(b'0');
        }
    }
    p.extend_from_slice(b"s.");
    p
}

fn zip_with(path: &Path, entries: &[(&str, &[u8])]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn billion_laughs_state_dict_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let pkl = shared_pickle(30);
    assert!(pkl.len() < 3 * 1024);
    let zip = dir.path().join("laughs.pt");
    zip_with(&zip, &[("archive/data.pkl", &pkl)]);
    let legacy = dir.path().join("laughs_legacy.pt");
    std::fs::write(&legacy, &pkl).unwrap();
    for (path, want) in [
        (&zip, "not a state dict"),
        (&legacy, "not a torch.save file"),
    ] {
        let t = Instant::now();
        let err = load_state_dict(path).unwrap_err().to_string();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(err.contains("laughs") && err.contains(want), "{err}");
        assert!(err.len() < 300, "{err}");
    }
    // Nested past the VM's depth cap: refused with the offset.
    zip_with(&zip, &[("archive/data.pkl", &shared_pickle(80))]);
    let err = load_state_dict(&zip).unwrap_err().to_string();
    assert!(err.contains("nested deeper than 64"), "{err}");
}
