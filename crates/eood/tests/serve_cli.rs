//! `eood serve` as a process: bad flags are one line and exit 2; SIGTERM drains a request in
//! flight (it is answered, then the process exits 0); and (with `nn`) its decisions equal the
//! extract -> score -> detect path through libtorch.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ood_core::io::npy::{header_bytes, Dtype};
use ood_data::formats::npy_images::NpyImages;
use ood_serve::testkit;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mnist_npy() -> PathBuf {
    root().join("crates/ood-bundle/tests/fixtures/mnist-t10k-first8.npy")
}

/// The eight digits as one `8 x 28 x 28` uint8 `.npy` body.
fn digits_npy() -> Vec<u8> {
    let imgs = NpyImages::open(&mnist_npy()).unwrap();
    let mut out = header_bytes(Dtype::U8, &[imgs.len(), 28, 28]);
    for i in 0..imgs.len() {
        out.extend_from_slice(imgs.image(i).unwrap().as_slice().unwrap());
    }
    out
}

/// A served `eood serve` child and the address from its "listening" log line.
struct Served {
    child: Child,
    addr: SocketAddr,
    log: std::thread::JoinHandle<Vec<String>>,
}

fn serve(extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eood"))
        .args(["serve", "--addr", "127.0.0.1:0", "--bundle"])
        .arg(root().join("models/fmnist-bundle"))
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["event"], "listening", "{first}");
    let addr = v["addr"].as_str().unwrap().parse().unwrap();
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    Served { child, addr, log }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < until, "eood serve did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_flags_are_one_line_exit_2() {
    for (flag, value, says) in [
        (
            "--max-batch",
            "0",
            "--max-batch must be between 1 and 4096, got 0",
        ),
        ("--drift-alpha", "NaN", "--drift-alpha must be between"),
        ("--queue", "0", "--queue must be between"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_eood"))
            .args(["serve", "--bundle"])
            .arg(root().join("models/fmnist-bundle"))
            .args([flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_eood"))
        .args(["serve", "--bundle", "/nonexistent/bundle"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("/nonexistent/bundle"));
}

#[cfg(unix)]
#[test]
fn sigterm_drains_the_request_in_flight_then_exits_0() {
    let mut s = serve(&[]);
    let body = digits_npy();
    let mut conn = TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = testkit::head("POST", "/v1/detect", Some("application/x-npy"), body.len());
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body[..body.len() / 2]).unwrap();
    // the request is being read when the signal comes
    std::thread::sleep(Duration::from_millis(300));
    let pid = s.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    conn.write_all(&body[body.len() / 2..]).unwrap();
    let a = testkit::read_answer(conn).unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["results"].as_array().unwrap().len(), 8);
    let status = wait_exit(&mut s.child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    let log = s.log.join().unwrap();
    let events: Vec<serde_json::Value> = log
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    // the eight MNIST digits (3 accepted) also flip the drift warning on: one line for it
    assert_eq!(
        names,
        ["shutdown", "drift_warning_on", "request", "stopped"],
        "{log:?}"
    );
    assert_eq!(events[0]["signal"], "SIGTERM");
    assert_eq!(events[1]["accept_rate"], 0.375);
    assert_eq!(events[1]["warning"], true);
    assert_eq!(events[2]["status"], 200);
    assert_eq!(events[2]["inputs"], 8);
    // nothing listens any more
    assert!(TcpStream::connect(s.addr).is_err());
}

/// Served decisions equal the libtorch path: extract (tch) -> score energy -> detect.
#[cfg(feature = "nn")]
#[test]
fn served_decisions_equal_extract_score_detect() {
    let t = tempfile::tempdir().unwrap();
    let ex = t.path().join("ex");
    let eood = |args: &[&std::ffi::OsStr]| {
        let st = Command::new(env!("CARGO_BIN_EXE_eood"))
            .args(args)
            .status()
            .unwrap();
        assert!(st.success());
    };
    let p = |s: &str| std::ffi::OsString::from(s);
    eood(&[
        &p("extract"),
        &p("--checkpoint"),
        root().join("models/fmnist-wrn-10-1.json").as_os_str(),
        &p("--data"),
        mnist_npy().as_os_str(),
        &p("--quiet"),
        &p("--out-dir"),
        ex.as_os_str(),
    ]);
    let scores = t.path().join("scores.npy");
    eood(&[
        &p("score"),
        &p("--method"),
        &p("energy"),
        &p("--logits"),
        ex.join("logits.npy").as_os_str(),
        &p("--out"),
        scores.as_os_str(),
    ]);
    let flags = t.path().join("flags.npy");
    eood(&[
        &p("detect"),
        &p("--detector"),
        root().join("models/fmnist-detector.json").as_os_str(),
        &p("--scores"),
        scores.as_os_str(),
        &p("--out"),
        flags.as_os_str(),
    ]);
    let want_scores: ndarray::Array1<f64> = ndarray_npy::read_npy(&scores).unwrap();
    let want_flags: ndarray::Array1<u8> = ndarray_npy::read_npy(&flags).unwrap();
    let mut s = serve(&[]);
    let a = testkit::post(s.addr, "application/x-npy", &digits_npy());
    assert_eq!(a.status, 200, "{a:?}");
    let j = a.json();
    for i in 0..8 {
        let r = &j["results"][i];
        let score = r["score"].as_f64().unwrap();
        assert!(
            (score - want_scores[i]).abs() < 1e-4,
            "{i}: served {score}, tch {}",
            want_scores[i]
        );
        assert_eq!(r["accepted"] == true, want_flags[i] == 1, "{i}");
    }
    s.child.kill().unwrap();
    let _ = s.child.wait();
}
