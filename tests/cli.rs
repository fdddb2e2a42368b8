//! The README walk-through against the real `lineage` binary: serve on an
//! ephemeral port, keygen, grant, submit, read back; then a restart with
//! another origin is refused and changes nothing.

use std::process::Command;

mod common;

use common::binary::{BIN, Killed, get, run, serve};

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

/// `serve` caps glibc's malloc arenas (it runs itself again with
/// `MALLOC_ARENA_MAX`), and leaves an operator's own setting alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn serve_caps_malloc_arenas_unless_the_operator_did() {
    let environ = |pid: u32| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .expect("environ")
            .split(|b| *b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok().map(str::to_owned))
            .find_map(|v| v.strip_prefix("MALLOC_ARENA_MAX=").map(str::to_owned))
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir.path().join("data"), &[]);
    let cap: usize = environ(server.pid())
        .expect("MALLOC_ARENA_MAX set")
        .parse()
        .expect("a number");
    assert!(cap >= 2, "{cap}");
    let (status, _) = get(&format!("{}/readyz", server.url));
    assert_eq!(status, 200, "the server started again serves");
    drop(server);
    let mut child = Killed(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("MALLOC_ARENA_MAX", "7")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    // Listening: past the point where it would have run itself again.
    let stdout = child.0.stdout.take().expect("stdout");
    let listening = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .any(|l| l.starts_with("lineage: listening on "));
    assert!(listening);
    assert_eq!(environ(child.0.id()).as_deref(), Some("7"));
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

/// The first JSON object in `text` (a problem printed on stderr, before the
/// error line).
fn problem(text: &str) -> serde_json::Value {
    let start = text
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in {text}"));
    serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<serde_json::Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON object in {text}"))
}

/// Runs `lineage ARGS`: exit code, stdout, stderr.
fn run_split(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run lineage");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A runtime key file in `dir`; its public key.
fn runtime_key(dir: &std::path::Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let path = path.to_str().expect("utf8").to_owned();
    let (ok, out) = run(&["keygen", "--out", &path]);
    assert!(ok, "{out}");
    let public = out
        .lines()
        .find_map(|l| l.strip_prefix("public_key:"))
        .map(str::trim)
        .expect("public key printed")
        .to_owned();
    (path, public)
}

/// `lineage submit` of `event` (a JSON object, `at` filled in by the CLI),
/// signed with `key`: exit code, stdout, stderr.
fn submit(
    server: &str,
    key: &str,
    dir: &std::path::Path,
    event: serde_json::Value,
) -> (Option<i32>, String, String) {
    let file = dir.join("event.json");
    std::fs::write(&file, event.to_string()).expect("write");
    run_split(&[
        "submit",
        "--key",
        key,
        "--server",
        server,
        file.to_str().expect("utf8"),
    ])
}

/// `lineage submit` that must be accepted; the receipt.
#[track_caller]
fn accepted(
    server: &str,
    key: &str,
    dir: &std::path::Path,
    event: serde_json::Value,
) -> serde_json::Value {
    let (code, out, err) = submit(server, key, dir, event);
    assert_eq!(code, Some(0), "{out}{err}");
    serde_json::from_str(&out).expect("receipt json")
}

/// `lineage halt` and `lineage resume` against a real server: a halted
/// workload's sub-workload is refused `halted` with the halt's index, a
/// second halt is a conflict with a non-zero exit, and after the resume the
/// chain continues where it stopped.
#[test]
fn halt_and_resume_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = serve(&data, &[]);
    let authority = data.join("authority.key");
    let authority = authority.to_str().expect("utf8");
    let (key, public) = runtime_key(dir.path(), "agent.key");
    let (code, out, err) = run_split(&[
        "grant",
        "--authority-key",
        authority,
        "--runtime",
        "agent/planner",
        "--public-key",
        &public,
        "--server",
        &server.url,
    ]);
    assert_eq!(code, Some(0), "{out}{err}");

    let start = accepted(
        &server.url,
        &key,
        dir.path(),
        serde_json::json!({"runtime": "agent/planner", "workload": "run-7", "seq": 0, "kind": "workload.start"}),
    );
    let child = accepted(
        &server.url,
        &key,
        dir.path(),
        serde_json::json!({"runtime": "agent/planner", "workload": "run-7/child", "seq": 0,
            "kind": "workload.start", "parents": [start["event_id"]]}),
    );
    let next = serde_json::json!({"runtime": "agent/planner", "workload": "run-7/child", "seq": 1,
        "kind": "tool.invoke", "prev": child["event_id"], "attrs": {"tool": "search"}});

    let halt = [
        "--authority-key",
        authority,
        "--workload",
        "run-7",
        "--reason",
        "runaway tool loop",
        "--server",
        &server.url,
    ];
    let (code, out, err) = run_split(&[&["halt"], &halt[..]].concat());
    assert_eq!(code, Some(0), "{out}{err}");
    let halt_index = serde_json::from_str::<serde_json::Value>(&out).expect("receipt")["index"]
        .as_u64()
        .expect("index");

    // The sub-workload's next event is refused: 403 `halted`, naming the halt.
    let (code, out, err) = submit(&server.url, &key, dir.path(), next.clone());
    assert_ne!(code, Some(0));
    assert!(out.is_empty(), "{out}");
    let p = problem(&err);
    assert_eq!(p["code"], "halted", "{err}");
    assert_eq!(p["status"], 403, "{err}");
    assert_eq!(p["halt_index"], halt_index, "{err}");
    assert!(err.contains("403"), "{err}");

    // Halting it again is a conflict, and the CLI says so with a non-zero exit.
    let (code, out, err) = run_split(&[&["halt"], &halt[..]].concat());
    assert_ne!(code, Some(0));
    assert!(out.is_empty(), "{out}");
    assert_eq!(problem(&err)["code"], "governance_conflict", "{err}");
    assert!(err.contains("409"), "{err}");

    let (code, out, err) = run_split(&[
        "resume",
        "--authority-key",
        authority,
        "--workload",
        "run-7",
        "--server",
        &server.url,
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let resume: serde_json::Value = serde_json::from_str(&out).expect("receipt");
    assert!(resume["index"].as_u64() > Some(halt_index));

    // The chain continues where it stopped.
    let receipt = accepted(&server.url, &key, dir.path(), next);
    assert!(receipt["index"].as_u64() > resume["index"].as_u64());

    // A second resume has nothing to lift.
    let (code, _, err) = run_split(&[
        "resume",
        "--authority-key",
        authority,
        "--workload",
        "run-7",
        "--server",
        &server.url,
    ]);
    assert_ne!(code, Some(0));
    assert_eq!(problem(&err)["code"], "governance_conflict", "{err}");
}

/// `halt` and `resume` take exactly one target; without or with both, clap
/// refuses with its usage error (exit code 2).
#[test]
fn halt_takes_exactly_one_target() {
    for extra in [&[][..], &["--workload", "w", "--runtime", "r"][..]] {
        for command in ["halt", "resume"] {
            let (code, out, err) =
                run_split(&[&[command, "--authority-key", "unused.key"][..], extra].concat());
            assert_eq!(code, Some(2), "{command} {extra:?}: {out}{err}");
            assert!(err.contains("--workload"), "{err}");
        }
    }
}

/// A grant's validity window and scope, set by the CLI, are what the ledger
/// enforces: a grant whose window already ended is logged and its key signs
/// nothing (`key_expired`); a key scoped to `tool.*` cannot sign `llm.call`
/// (`out_of_scope`, field `kind`).
#[test]
fn grant_windows_and_scopes_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = serve(&data, &[]);
    let authority = data.join("authority.key");
    let authority = authority.to_str().expect("utf8");
    let grant = |runtime: &str, public: &str, extra: &[&str]| {
        run_split(
            &[
                &[
                    "grant",
                    "--authority-key",
                    authority,
                    "--runtime",
                    runtime,
                    "--public-key",
                    public,
                    "--server",
                    &server.url,
                ][..],
                extra,
            ]
            .concat(),
        )
    };

    // A window that ended long ago: logged, with a note on stderr.
    let (old, old_public) = runtime_key(dir.path(), "old.key");
    let (code, out, err) = grant(
        "agent/old",
        &old_public,
        &[
            "--not-before",
            "2000-01-01T00:00:00Z",
            "--not-after",
            "2001-01-01T00:00:00Z",
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(err.contains("already past"), "{err}");
    let (code, _, err) = submit(
        &server.url,
        &old,
        dir.path(),
        serde_json::json!({"runtime": "agent/old", "workload": "w-old", "seq": 0, "kind": "workload.start"}),
    );
    assert_ne!(code, Some(0));
    let p = problem(&err);
    assert_eq!(p["code"], "key_expired", "{err}");
    assert_eq!(p["status"], 403, "{err}");

    // A key scoped to tool kinds (and the workload's own start and end).
    let (tools, tools_public) = runtime_key(dir.path(), "tools.key");
    let (code, out, err) = grant(
        "tools/runner",
        &tools_public,
        &[
            "--scope-kinds",
            "tool.*,workload.*",
            "--scope-workloads",
            "job-*",
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let start = accepted(
        &server.url,
        &tools,
        dir.path(),
        serde_json::json!({"runtime": "tools/runner", "workload": "job-1", "seq": 0, "kind": "workload.start"}),
    );
    let (code, _, err) = submit(
        &server.url,
        &tools,
        dir.path(),
        serde_json::json!({"runtime": "tools/runner", "workload": "job-1", "seq": 1,
            "kind": "llm.call", "prev": start["event_id"]}),
    );
    assert_ne!(code, Some(0));
    let p = problem(&err);
    assert_eq!(p["code"], "out_of_scope", "{err}");
    assert_eq!(p["field"], "kind", "{err}");
    // Outside the workload patterns.
    let (code, _, err) = submit(
        &server.url,
        &tools,
        dir.path(),
        serde_json::json!({"runtime": "tools/runner", "workload": "other", "seq": 0, "kind": "tool.invoke"}),
    );
    assert_ne!(code, Some(0));
    assert_eq!(problem(&err)["field"], "workload", "{err}");
    // In scope.
    accepted(
        &server.url,
        &tools,
        dir.path(),
        serde_json::json!({"runtime": "tools/runner", "workload": "job-1", "seq": 1,
            "kind": "tool.invoke", "prev": start["event_id"]}),
    );
}

/// A malformed window or scope fails before anything is signed or sent:
/// clap's usage error, exit code 2, naming the flag; the server sees no
/// connection. `revoke` takes no window or scope at all.
#[test]
fn bad_grant_flags_fail_locally_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (authority, _) = runtime_key(dir.path(), "authority.key");
    let (_, public) = runtime_key(dir.path(), "agent.key");
    // A listener nobody would answer on: any request would be a connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let base = [
        "grant",
        "--authority-key",
        &authority,
        "--runtime",
        "agent/a",
        "--public-key",
        &public,
        "--server",
        &url,
    ];
    let cases: &[(&[&str], &str)] = &[
        (&["--not-after", "next tuesday"], "--not-after"),
        (&["--not-after", "2030-01-01"], "--not-after"),
        (&["--not-after", "2030-01-01T00:00:00+01:00"], "UTC"),
        (&["--not-before", "2030-13-01T00:00:00Z"], "--not-before"),
        (
            &[
                "--not-before",
                "2030-01-02T00:00:00Z",
                "--not-after",
                "2030-01-01T00:00:00Z",
            ],
            "--not-after must be after --not-before",
        ),
        (&["--scope-kinds", "tool.*,ll*m"], "--scope-kinds"),
        (&["--scope-workloads", ""], "--scope-workloads"),
        (&["--scope-domains", "corp internal"], "--scope-domains"),
    ];
    for (extra, expected) in cases {
        let (code, out, err) = run_split(&[&base[..], extra].concat());
        assert_eq!(code, Some(2), "{extra:?}: {out}{err}");
        assert!(out.is_empty(), "{extra:?}: {out}");
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
    for extra in [
        &["--not-after", "2030-01-01T00:00:00Z"][..],
        &["--scope-kinds", "tool.*"][..],
    ] {
        let (code, _, err) = run_split(
            &[
                &[
                    "revoke",
                    "--authority-key",
                    &authority,
                    "--runtime",
                    "agent/a",
                ][..],
                &["--public-key", &public, "--server", &url][..],
                extra,
            ]
            .concat(),
        );
        assert_eq!(code, Some(2), "revoke {extra:?}: {err}");
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a request was sent: {other:?}"),
    }
}
