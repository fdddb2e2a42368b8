//! The README walk-through against the real `lineage` binary: serve on an
//! ephemeral port, keygen, grant, submit, read back; then a restart with
//! another origin is refused and changes nothing.

use std::process::Command;

mod common;

use common::binary::{BIN, run, serve};

#[test]
fn readme_walkthrough_works_against_the_real_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = serve(&data, &[]);
    let authority = data.join("authority.key");
    let agent = dir.path().join("agent.key");

    let (ok, out) = run(&["keygen", "--out", agent.to_str().expect("utf8")]);
    assert!(ok, "{out}");
    let public = out
        .lines()
        .find_map(|l| l.strip_prefix("public_key:"))
        .map(str::trim)
        .expect("public key printed")
        .to_owned();
    // Key files are private.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&agent)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // keygen never overwrites.
    let (ok, _) = run(&["keygen", "--out", agent.to_str().expect("utf8")]);
    assert!(!ok);

    let (ok, out) = run(&[
        "grant",
        "--authority-key",
        authority.to_str().expect("utf8"),
        "--runtime",
        "agent/planner",
        "--public-key",
        &public,
        "--server",
        &server.url,
    ]);
    assert!(ok, "{out}");
    let grant: serde_json::Value = serde_json::from_str(&out).expect("receipt json");
    assert_eq!(grant["index"], 0);

    let event = dir.path().join("start.json");
    std::fs::write(
        &event,
        r#"{"runtime":"agent/planner","workload":"run-42","seq":0,"kind":"workload.start","attrs":{"goal":"triage"}}"#,
    )
    .expect("write");
    let (ok, out) = run(&[
        "submit",
        "--key",
        agent.to_str().expect("utf8"),
        "--server",
        &server.url,
        event.to_str().expect("utf8"),
    ]);
    assert!(ok, "{out}");
    let receipt: serde_json::Value = serde_json::from_str(&out).expect("receipt json");
    assert_eq!(receipt["index"], 1);
    assert_eq!(receipt["format"], "lineage-bundle/v1");

    // The same event again from another runtime's key is refused, with a non-zero exit.
    let stranger = dir.path().join("stranger.key");
    run(&["keygen", "--out", stranger.to_str().expect("utf8")]);
    // The problem goes to stderr: stdout (`> receipt.json`) holds receipts only.
    let out = Command::new(BIN)
        .args([
            "submit",
            "--key",
            stranger.to_str().expect("utf8"),
            "--server",
            &server.url,
            event.to_str().expect("utf8"),
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown_key"), "{err}");
    drop(server);

    // Restarting with another origin is refused; the data is untouched.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--origin",
            "other.example/log",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("origin") && err.contains("Nothing was changed"),
        "{err}"
    );
    // And the original configuration still serves the same log.
    let server = serve(&data, &[]);
    let body = reqwest::blocking::get(format!("{}/v1/log", server.url))
        .expect("get")
        .text()
        .expect("text");
    let log: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(log["tree_size"], 2);
}

#[test]
fn a_log_key_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("log.key");
    let (ok, _) = run(&["keygen", "--out", key.to_str().expect("utf8")]);
    assert!(ok);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-key"])
        .arg(&key)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

/// A new log is created only on purpose: in a missing or empty directory,
/// and then loudly (origin, log key ID, path); a directory that holds
/// anything else and no ledger is refused and left untouched.
#[test]
fn a_data_dir_that_is_not_a_ledger_is_refused_and_a_new_log_is_announced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = |data: &std::path::Path| {
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .output()
            .expect("run")
    };
    // Somebody's files, no ledger: refused, nothing written.
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).expect("mkdir");
    std::fs::write(photos.join("cat.jpg"), b"not a ledger").expect("write");
    let out = start(&photos);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds no ledger") && err.contains("cat.jpg"),
        "{err}"
    );
    let mut left: Vec<_> = std::fs::read_dir(&photos)
        .expect("read")
        .map(|e| e.expect("entry").file_name())
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("cat.jpg")],
        "nothing written"
    );
    // A new directory: created, and said so.
    let data = dir.path().join("fresh");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let line = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .find(|l| l.contains("CREATED A NEW LOG"));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a new log is announced");
    assert!(
        line.contains("origin ") && line.contains("log key ID "),
        "{line}"
    );
    assert!(line.contains("fresh"), "{line}");
    // The same directory again is the ledger, not a new one.
    let server = serve(&data, &[]);
    drop(server);
    // A ledger whose key file is gone is refused, and no new key is minted:
    // a new log key would not be this log's, a new authority not its own.
    for key in ["log.key", "authority.key"] {
        let saved = std::fs::read(data.join(key)).expect("key");
        std::fs::remove_file(data.join(key)).expect("remove");
        let out = start(&data);
        assert!(!out.status.success(), "{key}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is missing") && err.contains(key),
            "{key}: {err}"
        );
        assert!(!data.join(key).exists(), "{key} was created again");
        std::fs::write(data.join(key), saved).expect("restore");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(data.join(key), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    drop(serve(&data, &[]));
    // A fresh file system's lost+found is not somebody's files.
    let volume = dir.path().join("volume");
    std::fs::create_dir_all(volume.join("lost+found")).expect("mkdir");
    drop(serve(&volume, &[]));
    assert!(volume.join("db").join("CURRENT").is_file());
}

/// A ledger that accepts the connection and never answers does not hang the
/// CLI: `--timeout-secs` bounds the whole exchange.
#[test]
fn the_cli_gives_up_on_a_ledger_that_never_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("agent.key");
    let (ok, _) = run(&["keygen", "--out", key.to_str().expect("utf8")]);
    assert!(ok);
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"runtime":"agent/a","workload":"w","seq":0,"kind":"workload.start"}"#,
    )
    .expect("write");
    // Connections complete in the kernel's backlog; nobody reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let started = std::time::Instant::now();
    let out = Command::new(BIN)
        .args([
            "submit",
            "--key",
            key.to_str().expect("utf8"),
            "--server",
            &url,
        ])
        .args(["--timeout-secs", "1", event.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("POST"), "{err}");
    drop(silent);
}
