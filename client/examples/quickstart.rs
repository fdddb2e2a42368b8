//! The README's "Use from Rust": a runtime that records a gated tool call.
//!
//! ```sh
//! lineage keygen --out agent.key            # prints the public key
//! lineage grant --authority-key lineage-data/authority.key \
//!     --runtime agent/planner --public-key <that key>
//! cargo run -p lineage-client --example quickstart -- agent.key
//! ```
//!
//! `LINEAGE_SERVER` (default `http://127.0.0.1:7878`) and `LINEAGE_LOG_KEY`
//! (the log's vkey; without it the served key is pinned on first use) are
//! read from the environment.

use std::path::Path;

use lineage_client::keyfile::read_key_file;
use lineage_client::{Attrs, Client, Config, Error};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_file = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "agent.key".into());
    let server = std::env::var("LINEAGE_SERVER").unwrap_or_else(|_| "http://127.0.0.1:7878".into());
    let config = Config {
        log_key: std::env::var("LINEAGE_LOG_KEY").ok(),
        state_file: Some("lineage-client-state.json".into()),
        ..Config::new(server)
    };

    let client = Client::new(config)?;
    let runtime = client.runtime("agent/planner", read_key_file(Path::new(&key_file))?)?;
    let workload = format!("task-{}", std::process::id());
    let mut task = runtime
        .start(
            &workload,
            "workload.start",
            Attrs::new(),
            &[],
            Some("corp.internal"),
        )
        .await?;
    let attrs: Attrs = json!({"tool": "search", "query": "open invoices"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    match task.record("tool.invoke", attrs).await {
        Ok(receipt) => {
            // Recorded and verified: only now does the tool run.
            println!(
                "recorded at index {} (tree size {})",
                receipt.index, receipt.tree_size
            );
        }
        Err(Error::Denied(d)) => {
            // Halted, revoked, expired, out of scope...: the tool never runs.
            println!(
                "denied: {} (governing entry {:?})",
                d.code, d.governing_index
            );
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    }
    task.end(Attrs::new()).await?;
    Ok(())
}
