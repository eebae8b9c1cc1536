use super::*;
use crate::formats::tar_subset::build_image_subset;

/// One ustar header block (as GNU tar writes them): name, size, type; checksum filled in.
fn header(name: &[u8], size: u64, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0001750\0");
    h[116..124].copy_from_slice(b"0001750\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn member(out: &mut Vec<u8>, name: &[u8], data: &[u8], kind: u8) {
    out.extend(header(name, data.len() as u64, kind));
    out.extend(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn end(out: &mut Vec<u8>) {
    out.extend([0u8; 1024]);
}

fn members(bytes: &[u8]) -> Result<Vec<Member>> {
    let mut t = TarStream::new(bytes, Path::new("x.tar"));
    let mut v = Vec::new();
    while let Some(m) = t.next_member()? {
        v.push(m);
    }
    Ok(v)
}

fn err(bytes: &[u8]) -> String {
    members(bytes).unwrap_err().to_string()
}

#[test]
fn reads_files_dirs_long_names_and_pax_paths() {
    let mut t = Vec::new();
    member(&mut t, b"test_256/", b"", b'5');
    member(&mut t, b"test_256/a.jpg", b"abc", b'0');
    let long = format!("test_256/{}.jpg", "n".repeat(150));
    member(
        &mut t,
        b"././@LongLink",
        format!("{long}\0").as_bytes(),
        b'L',
    );
    member(&mut t, b"ignored", b"12345", b'0');
    member(&mut t, b"PaxHeaders/x", b"25 path=test_256/pax.jpg\n", b'x');
    member(&mut t, b"short", b"z", b'0');
    end(&mut t);
    let m = members(&t).unwrap();
    let names: Vec<_> = m
        .iter()
        .map(|m| (m.name.as_str(), m.kind, m.size))
        .collect();
    assert_eq!(
        names,
        vec![
            ("test_256", MemberKind::Dir, 0),
            ("test_256/a.jpg", MemberKind::File, 3),
            (long.as_str(), MemberKind::File, 5),
            ("test_256/pax.jpg", MemberKind::File, 1),
        ]
    );
    assert_eq!(m[1].header_offset, 512);
    // Data reads back exactly, and is capped.
    let mut s = TarStream::new(&t[..], Path::new("x.tar"));
    s.next_member().unwrap();
    let a = s.next_member().unwrap().unwrap();
    assert!(s
        .read_data(&a, 2)
        .unwrap_err()
        .to_string()
        .contains("over the 2-byte cap"));
    assert_eq!(s.read_data(&a, 3).unwrap(), b"abc");
}

#[test]
fn hostile_members_are_refused_with_their_offset() {
    let cases: [(&[u8], u8, &str); 7] = [
        (b"/etc/passwd", b'0', "absolute"),
        (b"test_256/../../x.jpg", b'0', "`..`"),
        (b"..", b'5', "`..`"),
        (b"link.jpg", b'2', "links are refused"),
        (b"hard.jpg", b'1', "links are refused"),
        (b"fifo", b'6', "FIFOs are refused"),
        (b"sparse", b'S', "not supported"),
    ];
    for (name, kind, want) in cases {
        let mut t = Vec::new();
        member(&mut t, b"ok.jpg", b"x", b'0');
        member(&mut t, name, b"", kind);
        end(&mut t);
        let e = err(&t);
        assert!(e.contains(want) && e.contains("at byte 1024"), "{e}");
    }
    // a corrupted header, a truncated member, a long name over the cap
    let mut t = Vec::new();
    member(&mut t, b"ok.jpg", b"x", b'0');
    t[0] = b'p';
    assert!(err(&t).contains("header checksum"));
    let mut t = Vec::new();
    member(&mut t, b"ok.jpg", &[7u8; 2000], b'0');
    t.truncate(1500);
    let mut s = TarStream::new(&t[..], Path::new("x.tar"));
    let m = s.next_member().unwrap().unwrap();
    assert!(s
        .read_data(&m, 4096)
        .unwrap_err()
        .to_string()
        .contains("archive truncated"));
    assert!(err(&t).contains("archive truncated"), "{}", err(&t));
    let mut t = Vec::new();
    member(&mut t, b"././@LongLink", &vec![b'a'; 5000], b'L');
    assert!(err(&t).contains("GNU long name of 5000 bytes"));
}

#[test]
fn image_subset_is_seeded_recorded_and_extracted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Vec::new();
    member(&mut t, b"test_256/", b"", b'5');
    for i in 1..=8 {
        let name = format!("test_256/Places365_test_{i:08}.jpg");
        member(
            &mut t,
            name.as_bytes(),
            format!("jpeg {i}").as_bytes(),
            b'0',
        );
    }
    member(&mut t, b"test_256/README.txt", b"not an image", b'0');
    end(&mut t);
    let tar = tmp.path().join("test_256.tar");
    std::fs::write(&tar, &t).unwrap();
    let a = build_image_subset(&tar, &tmp.path().join("a"), 3, 5).unwrap();
    let b = build_image_subset(&tar, &tmp.path().join("b"), 3, 5).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        (a.candidates, a.members.len(), a.seed, a.source_bytes),
        (8, 3, 5, t.len() as u64)
    );
    let sha = crate::download::sha256_reader(&t[..]).unwrap();
    assert_eq!(a.source_sha256, sha);
    for m in &a.members {
        let file = m.rsplit('/').next().unwrap();
        let i: usize = file[15..23].parse().unwrap();
        let got = std::fs::read(tmp.path().join("a/images").join(file)).unwrap();
        assert_eq!(got, format!("jpeg {i}").as_bytes());
    }
    let listed: SubsetManifestCheck =
        serde_json::from_slice(&std::fs::read(tmp.path().join("a/manifest.json")).unwrap())
            .unwrap();
    assert_eq!((listed.seed, listed.members), (5, a.members.clone()));
    let other: Vec<_> = (0..6u64)
        .map(|s| {
            build_image_subset(&tar, &tmp.path().join(format!("s{s}")), 3, s)
                .unwrap()
                .members
        })
        .collect();
    assert!(
        other.iter().any(|m| *m != a.members),
        "the seed must matter"
    );
    // a non-empty output folder, more images than the archive holds
    assert!(build_image_subset(&tar, &tmp.path().join("a"), 3, 5).is_err());
    let e = build_image_subset(&tar, &tmp.path().join("c"), 9, 5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("9 asked, the archive holds 8"), "{e}");
}

#[derive(serde::Deserialize)]
struct SubsetManifestCheck {
    seed: u64,
    members: Vec<String>,
}
