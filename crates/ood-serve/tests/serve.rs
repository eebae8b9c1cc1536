//! The server on a loopback port (in-process, port 0) with the shipped bundle
//! (models/fmnist-bundle): decisions equal `Bundle::decide`, every bad request is a 4xx JSON
//! error after which the server still answers, batching really batches, the queue and the
//! timeout answer 503/504, and drift is flagged.
//!
//! Over 500 lines on purpose: one server scenario per test, sharing the client helpers here;
//! the bad-request table is long because every refusal is listed with its status.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use ndarray::{Array3, Array4};
use ood_bundle::{Bundle, Decision};
use ood_core::io::npy::{header_bytes, Dtype};
use ood_data::formats::npy_images::NpyImages;
use ood_serve::testkit::{self, get, multipart, post, sample};
use ood_serve::{DriftOptions, ServeOptions};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bundle() -> Bundle {
    Bundle::load(&root().join("models/fmnist-bundle")).unwrap()
}

/// The first eight MNIST test digits (28 x 28 x 1), near-OOD for the Fashion-MNIST model.
fn digits() -> Vec<Array3<u8>> {
    let imgs =
        NpyImages::open(&root().join("crates/ood-bundle/tests/fixtures/mnist-t10k-first8.npy"))
            .unwrap();
    (0..imgs.len()).map(|i| imgs.image(i).unwrap()).collect()
}

fn png(img: &Array3<u8>) -> Vec<u8> {
    let (h, w, c) = img.dim();
    let color = if c == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        img.as_slice().unwrap(),
        w as u32,
        h as u32,
        color,
    )
    .unwrap();
    out
}

fn npy(imgs: &[Array3<u8>]) -> Vec<u8> {
    let (h, w, c) = imgs[0].dim();
    let mut out = header_bytes(Dtype::U8, &[imgs.len(), h, w, c]);
    for i in imgs {
        out.extend_from_slice(i.as_slice().unwrap());
    }
    out
}

/// CRC-32 (IEEE) of a PNG chunk's type and data.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn opts() -> ServeOptions {
    ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ServeOptions::default()
    }
}

/// The answer's results against `Bundle::decide`'s decisions: same classes, labels and
/// decisions; scores to 1e-5 (tract may sum in another order for another batch size).
fn assert_same(answer: &Value, want: &[Decision]) {
    let got = answer["results"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{answer}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let score = g["score"].as_f64().unwrap();
        assert!(
            (score - w.score).abs() < 1e-5,
            "{i}: {score} vs {}",
            w.score
        );
        assert_eq!(g["accepted"], w.accepted, "{i}");
        assert_eq!(g["class"], w.class, "{i}");
        assert_eq!(g["label"], w.label.as_str(), "{i}");
        assert!((g["confidence"].as_f64().unwrap() - w.confidence).abs() < 1e-5);
    }
}

#[test]
fn images_in_every_body_format_get_bundle_decide_decisions() {
    let b = bundle();
    let imgs = digits();
    let views: Vec<_> = imgs.iter().map(|i| i.view()).collect();
    let want = b.decide(&views).unwrap();
    // MNIST digits: 0, 1 and 6 accepted (ood-bundle's test), the rest refused
    let accepted: Vec<usize> = (0..8).filter(|&i| want[i].accepted).collect();
    assert_eq!(accepted, [0, 1, 6]);
    let s = ood_serve::spawn(bundle(), opts()).unwrap();

    for (i, img) in imgs.iter().enumerate() {
        let a = post(s.addr, "image/png", &png(img));
        assert_eq!(a.status, 200, "{a:?}");
        let j = a.json();
        assert_same(&j, &want[i..=i]);
        assert_eq!(j["method"], "energy");
        assert_eq!(j["tau"], 5.651373015166513);
        assert_eq!(j["version"], "0.1.0");
    }
    let (ct, body) = multipart(&imgs.iter().map(png).collect::<Vec<_>>());
    assert_same(&post(s.addr, &ct, &body).json(), &want);
    assert_same(
        &post(s.addr, "application/x-npy", &npy(&imgs)).json(),
        &want,
    );
    // an N x H x W batch (no channel axis) is gray
    let mut flat = header_bytes(Dtype::U8, &[8, 28, 28]);
    flat.extend_from_slice(&npy(&imgs)[header_bytes(Dtype::U8, &[8, 28, 28, 1]).len()..]);
    assert_same(&post(s.addr, "application/x-npy", &flat).json(), &want);

    // another size and RGB: resized by the bundle's rule, as Bundle::decide does it
    let big = Array3::from_shape_fn((56, 70, 3), |(y, x, c)| {
        ((y * 3 + x * 2 + c * 40) % 256) as u8
    });
    let want_big = b.decide(&[big.view()]).unwrap();
    let a = post(s.addr, "image/png", &png(&big));
    assert_same(&a.json(), &want_big);
    let jpeg = {
        let mut out = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95),
            imgs[2].as_slice().unwrap(),
            28,
            28,
            image::ExtendedColorType::L8,
        )
        .unwrap();
        out
    };
    let decoded = ood_data::formats::decode_image(
        &jpeg,
        Path::new("x.jpg"),
        ood_data::formats::ColorMode::Native,
    )
    .unwrap();
    assert_same(
        &post(s.addr, "image/jpeg", &jpeg).json(),
        &b.decide(&[decoded.view()]).unwrap(),
    );
    s.stop().unwrap();
}

#[test]
fn json_logits_are_decided_by_the_energy_rule() {
    let b = bundle();
    let s = ood_serve::spawn(bundle(), opts()).unwrap();
    let body = br#"{"logits": [[9.0, 1, 0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]}"#;
    let a = post(s.addr, "application/json", body);
    assert_eq!(a.status, 200, "{a:?}");
    let j = a.json();
    let r = &j["results"];
    // energy = logsumexp: 9 + ln(1 + e^-8 + 8 e^-9) > tau; 1 + ln 10 = 3.30 < tau
    let e0 = 9.0 + (1.0 + (-8f64).exp() + 8.0 * (-9f64).exp()).ln();
    assert!((r[0]["score"].as_f64().unwrap() - e0).abs() < 1e-12);
    assert_eq!(r[0]["accepted"], true);
    assert_eq!(r[0]["label"], "T-shirt/top");
    assert!((r[1]["score"].as_f64().unwrap() - (1.0 + 10f64.ln())).abs() < 1e-12);
    assert_eq!(r[1]["accepted"], false);
    assert!((r[1]["confidence"].as_f64().unwrap() - 0.1).abs() < 1e-12);
    let rows = ndarray::array![[9.0, 1., 0., 0., 0., 0., 0., 0., 0., 0.]];
    assert_eq!(
        r[0]["score"].as_f64().unwrap(),
        b.decide_logits(rows.view(), None).unwrap()[0].score
    );
    s.stop().unwrap();
}

/// Send a request, check its status and JSON error, then check that a good request still works.
fn refused(addr: SocketAddr, a: testkit::Answer, status: u16, says: &str, good: &[u8]) {
    assert_eq!(a.status, status, "{a:?}");
    let e = a.json()["error"].as_str().unwrap().to_string();
    assert!(e.contains(says), "{says:?} not in {e:?}");
    let ok = post(addr, "image/png", good);
    assert_eq!(ok.status, 200, "after {says:?}: {ok:?}");
    assert_eq!(ok.json()["results"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_requests_are_4xx_json_and_the_server_keeps_serving() {
    let s = ood_serve::spawn(
        bundle(),
        ServeOptions {
            max_body_bytes: 64 << 10,
            ..opts()
        },
    )
    .unwrap();
    let addr = s.addr;
    let good = png(&digits()[0]);
    let r = |a, st, says: &str| refused(addr, a, st, says, &good);

    r(
        post(addr, "image/png", b"\x89PNG\r\n\x1a\nnot really"),
        400,
        "image 0",
    );
    r(post(addr, "image/png", b""), 400, "image 0");
    let mut cut = good.clone();
    cut.truncate(good.len() / 2);
    r(post(addr, "image/png", &cut), 400, "image 0");
    // a PNG header that claims 60000 x 60000 pixels: refused from its header, never decoded
    let mut huge = good.clone();
    huge[16..20].copy_from_slice(&60000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&60000u32.to_be_bytes());
    let crc = crc32(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    r(
        post(addr, "image/png", &huge),
        413,
        "image 0 is 60000x60000",
    );
    // wrong shapes: 2 channels, a float batch, an empty batch, a lying header
    let two = Array4::<u8>::zeros((1, 28, 28, 2));
    let mut body = header_bytes(Dtype::U8, &[1, 28, 28, 2]);
    body.extend_from_slice(two.as_slice().unwrap());
    r(post(addr, "application/x-npy", &body), 422, "2 channels");
    let mut f32s = header_bytes(Dtype::F32, &[1, 28, 28]);
    f32s.extend_from_slice(&[0u8; 28 * 28 * 4]);
    r(post(addr, "application/x-npy", &f32s), 400, "uint8");
    r(
        post(
            addr,
            "application/x-npy",
            &header_bytes(Dtype::U8, &[0, 28, 28]),
        ),
        422,
        "no images",
    );
    let mut short = header_bytes(Dtype::U8, &[4, 28, 28]);
    short.extend_from_slice(&[0u8; 100]);
    r(
        post(addr, "application/x-npy", &short),
        400,
        "header declares",
    );
    // JSON: NaN is not JSON, 3 columns for 10 classes, ragged rows, features for energy
    r(
        post(addr, "application/json", b"{\"logits\": [[NaN, 1]]}"),
        400,
        "invalid JSON",
    );
    r(
        post(addr, "application/json", b"{\"logits\": [[1e999, 1]]}"),
        400,
        "invalid JSON",
    );
    r(
        post(addr, "application/json", b"{\"logits\": [[1, 2, 3]]}"),
        422,
        "3 columns",
    );
    r(
        post(addr, "application/json", b"{\"logits\": [[1, 2], [1]]}"),
        422,
        "row has 1 values",
    );
    r(
        post(addr, "application/json", b"{\"logits\": []}"),
        422,
        "no rows",
    );
    r(
        post(addr, "application/json", b"{\"features\": [[1, 2]]}"),
        422,
        "not features",
    );
    r(
        post(addr, "application/json", b"{\"logit\": [[1]]}"),
        400,
        "unknown field",
    );
    // other content types, multipart without parts, oversized bodies, routes and methods
    r(post(addr, "text/plain", b"hello"), 415, "text/plain");
    r(
        post(addr, "multipart/form-data; boundary=x", b"--x--\r\n"),
        422,
        "no parts",
    );
    r(
        post(addr, "multipart/form-data", b"--x--\r\n"),
        400,
        "boundary",
    );
    let (ct, mp) = multipart(&[good.clone(), b"junk".to_vec()]);
    r(post(addr, &ct, &mp), 400, "image 1");
    // a declared length over the limit is refused from the header, nothing read
    let head = testkit::head("POST", "/v1/detect", Some("image/png"), 1 << 30);
    r(
        testkit::raw(addr, head.as_bytes()).unwrap(),
        413,
        "65536-byte limit",
    );
    // a chunked body that grows past the limit while it is read
    let chunk = vec![b'a'; 40 << 10];
    let mut msg = b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..2 {
        msg.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        msg.extend_from_slice(&chunk);
        msg.extend_from_slice(b"\r\n");
    }
    msg.extend_from_slice(b"0\r\n\r\n");
    r(testkit::raw(addr, &msg).unwrap(), 413, "65536-byte limit");
    r(get(addr, "/v2/nothing"), 404, "no route /v2/nothing");
    r(get(addr, "/v1/detect"), 405, "method GET is not allowed");

    let m = get(addr, "/metrics").body;
    assert_eq!(
        sample(
            &m,
            "eood_http_requests_total{route=\"other\",status=\"404\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "eood_http_requests_total{route=\"/v1/detect\",status=\"413\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &m,
            "eood_http_requests_total{route=\"/v1/detect\",status=\"405\"}"
        ),
        Some(1.0)
    );
    // one good request after each of the 23 refusals
    assert_eq!(
        sample(
            &m,
            "eood_http_requests_total{route=\"/v1/detect\",status=\"200\"}"
        ),
        Some(23.0)
    );
    s.stop().unwrap();
}

#[test]
fn health_bundle_and_drift_routes() {
    let s = ood_serve::spawn(
        bundle(),
        ServeOptions {
            drift: DriftOptions {
                window: 8,
                ..DriftOptions::default()
            },
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(get(s.addr, "/healthz").json()["status"], "ok");
    let m = get(s.addr, "/v1/bundle").json();
    assert_eq!(m["format"], "eood-bundle");
    assert_eq!(m["scoring"]["tau"], 5.651373015166513);
    assert_eq!(m["labels"][9], "Ankle boot");
    let d = get(s.addr, "/v1/drift").json();
    assert_eq!(d["count"], 0);
    assert_eq!(d["warning"], false);
    assert_eq!(d["target"], 0.95);
    // eight MNIST digits, 3 accepted: P[X <= 3 | Binomial(8, 0.90)] = 4.3165e-4 < 0.01 -> warning
    let a = post(s.addr, "application/x-npy", &npy(&digits()));
    assert_eq!(a.status, 200);
    let d = get(s.addr, "/v1/drift").json();
    assert_eq!(d["count"], 8);
    assert_eq!(d["accept_rate"], 0.375);
    assert!(
        (d["p_value"].as_f64().unwrap() - 4.3165e-4).abs() < 1e-7,
        "{d}"
    );
    assert_eq!(d["warning"], true);
    let m = get(s.addr, "/metrics").body;
    assert_eq!(sample(&m, "eood_drift_warning"), Some(1.0));
    assert_eq!(sample(&m, "eood_drift_accept_rate"), Some(0.375));
    assert_eq!(
        sample(&m, "eood_inputs_total{decision=\"accepted\"}"),
        Some(3.0)
    );
    assert_eq!(
        sample(&m, "eood_inputs_total{decision=\"refused\"}"),
        Some(5.0)
    );
    s.stop().unwrap();
}

#[test]
fn concurrent_requests_share_model_calls() {
    let s = ood_serve::spawn(
        bundle(),
        ServeOptions {
            max_wait: Duration::from_millis(400),
            max_batch: 64,
            workers: 1,
            ..opts()
        },
    )
    .unwrap();
    let addr = s.addr;
    let body = Arc::new(png(&digits()[1]));
    let n = 12;
    let gate = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (body, gate) = (body.clone(), gate.clone());
            std::thread::spawn(move || {
                gate.wait();
                post(addr, "image/png", &body)
            })
        })
        .collect();
    for t in threads {
        let a = t.join().unwrap();
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.json()["results"][0]["accepted"], true);
    }
    let m = get(addr, "/metrics").body;
    let calls = sample(&m, "eood_model_calls_total").unwrap();
    assert_eq!(sample(&m, "eood_batch_size_sum"), Some(n as f64));
    // one 400 ms window gathers them all on an idle machine; allow stragglers on a busy one
    assert!(
        calls < n as f64 / 2.0,
        "{calls} model calls for {n} requests\n{m}"
    );
    s.stop().unwrap();
}

/// With two model threads a long request occupies one; a small one is answered by the other
/// while the long one still runs (one thread would answer it only after all 64 model calls).
/// (A long timeout: the 64 calls of a debug build on a loaded machine took more than the
/// default's 30 s once, and this test is about the second worker, not the timeout.)
#[test]
fn a_second_worker_answers_while_the_first_is_busy() {
    let s = ood_serve::spawn(
        bundle(),
        ServeOptions {
            workers: 2,
            timeout: Duration::from_secs(600),
            ..opts()
        },
    )
    .unwrap();
    let addr = s.addr;
    let imgs: Vec<Array3<u8>> = (0..4096).map(|i| digits()[i % 8].clone()).collect();
    let big = npy(&imgs);
    let busy = std::thread::spawn(move || post(addr, "application/x-npy", &big));
    while sample(&get(addr, "/metrics").body, "eood_model_calls_total") == Some(0.0) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let small = post(addr, "image/png", &png(&digits()[1]));
    assert_eq!(small.status, 200, "{small:?}");
    // the small answer came while the long request's 64 calls were not all done
    let calls = sample(&get(addr, "/metrics").body, "eood_model_calls_total").unwrap();
    assert!(calls < 65.0, "{calls} model calls before the small answer");
    assert_eq!(busy.join().unwrap().status, 200);
    s.stop().unwrap();
}

#[test]
fn a_full_queue_is_503_and_a_late_answer_504() {
    let s = ood_serve::spawn(
        bundle(),
        ServeOptions {
            queue: 1,
            timeout: Duration::from_millis(1500),
            workers: 1,
            ..opts()
        },
    )
    .unwrap();
    let addr = s.addr;
    // keep the model thread busy with one large batch (64 model calls)
    let imgs: Vec<Array3<u8>> = (0..4096).map(|i| digits()[i % 8].clone()).collect();
    let big = npy(&imgs);
    let busy = std::thread::spawn(move || post(addr, "application/x-npy", &big));
    while sample(&get(addr, "/metrics").body, "eood_model_calls_total") == Some(0.0) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let one = png(&digits()[0]);
    let one2 = one.clone();
    let waiting = std::thread::spawn(move || post(addr, "image/png", &one2));
    while sample(&get(addr, "/metrics").body, "eood_queue_depth") == Some(0.0) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let full = post(addr, "image/png", &one);
    assert_eq!(full.status, 503, "{full:?}");
    assert!(full.json()["error"]
        .as_str()
        .unwrap()
        .contains("at capacity"));
    let late = waiting.join().unwrap();
    assert_eq!(late.status, 504, "{late:?}");
    assert_eq!(late.json()["error"], "no answer within 1500 ms");
    // the large request timed out too, but its model calls run to the end (64 of them); the
    // expired request behind them is dropped unrun, and then the server answers again
    assert_eq!(busy.join().unwrap().status, 504);
    let until = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let m = get(addr, "/metrics").body;
        if sample(&m, "eood_batch_size_count") == Some(64.0)
            && sample(&m, "eood_queue_depth") == Some(0.0)
        {
            break;
        }
        assert!(std::time::Instant::now() < until, "{m}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(post(addr, "image/png", &one).status, 200);
    let m = get(addr, "/metrics").body;
    assert_eq!(sample(&m, "eood_batch_size_count"), Some(65.0));
    assert_eq!(sample(&m, "eood_batch_size_sum"), Some(4097.0));
    s.stop().unwrap();
}
