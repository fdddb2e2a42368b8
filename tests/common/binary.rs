//! The real `lineage` binary as a child process: served on 127.0.0.1 on an
//! ephemeral port (its address read from stdout), killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_lineage");

pub struct Server {
    child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `lineage serve` on `data` with `extra` flags.
pub fn serve(data: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lineage serve");
    let stdout = child.stdout.take().expect("stdout");
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("lineage: listening on ").map(str::to_owned))
        .expect("the server printed its address");
    Server { child, url }
}

/// Runs `lineage ARGS`: success, and stdout followed by stderr.
pub fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().expect("run lineage");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A child process killed (and reaped) when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A blocking GET: status and body, or status 0 and the error.
pub fn get(url: &str) -> (u16, String) {
    match reqwest::blocking::get(url) {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Waits (30 s at most) until the ledger's `/checkpoint` is a note of at
/// least `size` that meets `policy`; the note.
pub fn witnessed(ledger: &Server, policy: &lineage_ledger::policy::Policy, size: u64) -> String {
    let start = std::time::Instant::now();
    loop {
        let (status, note) = get(&format!("{}/checkpoint", ledger.url));
        if status == 200
            && let Ok(e) = policy.verify(note.as_bytes())
            && e.checkpoint().checkpoint().size >= size
        {
            return note;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "no witnessed checkpoint of size {size}: {status} {note}; readyz: {}",
            get(&format!("{}/readyz", ledger.url)).1
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
