//! Memory the real binary spends on hostile bodies, read from the kernel's
//! peak resident set size (`VmHWM`) of the server process.

mod common;

use common::binary::serve;

/// The server's peak resident set size, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// An array body of millions of tiny items is refused at item 1,001 without
/// first collecting every item: the server's peak memory stays within a
/// small multiple of the body limit (it was ~10x the body before).
#[test]
fn a_huge_array_is_refused_without_collecting_its_items() {
    const LIMIT: usize = 64 * 1024 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir.path().join("data"), &[]);
    let before = peak_rss(server.pid());
    // `[1,1,1,...,1]`, just under the default 64 MiB body limit.
    let mut body = Vec::with_capacity(LIMIT);
    body.push(b'[');
    while body.len() < LIMIT - 4 {
        body.extend_from_slice(b"1,");
    }
    body.extend_from_slice(b"1]");
    assert!(body.len() <= LIMIT);
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("client");
    let r = client
        .post(format!("{}/v1/entries", server.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("post");
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().expect("problem");
    assert_eq!(
        (status, v["code"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );
    let peak = peak_rss(server.pid());
    println!(
        "peak RSS {} MiB before, {} MiB after a {} MiB array body",
        before >> 20,
        peak >> 20,
        LIMIT >> 20
    );
    // The buffered body itself may be held twice while it grows; the items
    // must not add another ~10x on top.
    assert!(
        peak < before + 3 * LIMIT as u64,
        "peak RSS {} MiB after a {} MiB body",
        peak >> 20,
        LIMIT >> 20
    );
}
