use super::*;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn put(path: &Path, text: &str) -> Result<(), IoError> {
    write_atomic::<IoError>(path, |w| {
        w.write_all(text.as_bytes())
            .map_err(|e| IoError::new(path, e))
    })
}

#[test]
fn failed_write_keeps_old_file_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.txt");
    fs::write(&path, "old").unwrap();
    let r: Result<(), IoError> = write_atomic(&path, |w| {
        w.write_all(b"partial").unwrap();
        Err(IoError::new("x", std::io::Error::other("boom")))
    });
    assert!(r.is_err());
    assert_eq!(fs::read_to_string(&path).unwrap(), "old");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    put(&path, "new").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "new");
}

#[cfg(unix)]
#[test]
fn refuses_to_replace_device_nodes_directories_and_fifos() {
    let e = put(Path::new("/dev/null"), "x").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/dev/null: refusing to write over a character device, not a regular file"
    );
    assert!(fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device_like());
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let e = put(&sub, "x").unwrap_err().to_string();
    assert!(
        e.ends_with("sub: refusing to write over a directory, not a regular file"),
        "{e}"
    );
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let e = put(&fifo, "x").unwrap_err().to_string();
    assert!(e.contains("FIFO"), "{e}");
    assert_eq!(names(dir.path()), ["fifo", "sub"]);
}

#[cfg(unix)]
trait CharDev {
    fn is_char_device_like(&self) -> bool;
}
#[cfg(unix)]
impl CharDev for fs::FileType {
    fn is_char_device_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_char_device(self)
    }
}

#[test]
fn temp_names_are_unique_per_call_and_short() {
    let p = Path::new("/x").join("n".repeat(255));
    let prefix = tmp_prefix(&p);
    let (a, b) = (tmp_name(&prefix), tmp_name(&prefix));
    assert_ne!(a, b);
    assert!(a.len() <= 255, "{} bytes", a.len());
    let a = a.to_str().unwrap();
    assert_eq!(
        tmp_target_pid(a),
        Some((&"n".repeat(TMP_NAME_BYTES)[..], std::process::id()))
    );
    assert!(a.starts_with(&format!(".{}.", "n".repeat(TMP_NAME_BYTES))));
}

#[test]
fn long_valid_output_name_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o".repeat(251) + ".npy");
    put(&path, "ok").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "ok");
    assert_eq!(names(dir.path()).len(), 1);
}

#[test]
fn errors_name_the_target_not_the_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("out.npy");
    let e = put(&path, "x").unwrap_err();
    assert_eq!(e.path, path);
    assert!(!e.to_string().contains(".out.npy."), "{e}");
}

#[test]
fn stale_temps_of_dead_processes_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.json");
    // A pid far above any pid_max (4194304 on Linux) is never alive.
    let dead = dir.path().join(".out.json.99999999-0-abc123.tmp");
    let old_style = dir.path().join(".out.json.99999998.tmp");
    let ours = dir
        .path()
        .join(format!(".out.json.{}-7-zzzzzz.tmp", std::process::id()));
    let other_target = dir.path().join(".other.json.99999999-0-abc123.tmp");
    let not_ours = dir.path().join(".out.json.99999999-x.tmp");
    for p in [&dead, &old_style, &ours, &other_target, &not_ours] {
        fs::write(p, "stale").unwrap();
    }
    put(&path, "new").unwrap();
    let left = names(dir.path());
    assert!(!left.contains(&".out.json.99999999-0-abc123.tmp".to_string()));
    assert!(!left.contains(&".out.json.99999998.tmp".to_string()));
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(ours.exists() && other_target.exists() && not_ours.exists());
    // The directory is scanned once per target and process, not on every write.
    fs::write(&dead, "stale").unwrap();
    put(&path, "again").unwrap();
    assert!(dead.exists());
}

#[test]
fn stale_temps_of_a_family_of_files_are_removed_once() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join(".m.e0001-s1.safetensors.99999999.tmp");
    let live = dir
        .path()
        .join(format!(".m.json.{}-0-a.tmp", std::process::id()));
    let other = dir.path().join(".x.json.99999999.tmp");
    let prefix_only = dir.path().join(".mm.json.99999999.tmp");
    for p in [&dead, &live, &other, &prefix_only] {
        fs::write(p, "partial").unwrap();
    }
    remove_stale_temps_of(dir.path(), "m");
    assert!(!dead.exists() && live.exists() && other.exists() && prefix_only.exists());
}
