//! `lineage`: the ledger server and its command-line tools.
//!
//! `main` only parses the command line, sets up tracing and dispatches:
//! `serve` (`serve.rs`) opens the store, binds and serves; everything else
//! lives in the library crates.

mod client;
mod config;
mod demo;
mod serve;
mod witness;
mod witnessing;

use lineage::export;

use std::path::Path;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use lineage::keyfile::{generate_signing_key, read_key_file, write_key_file};
use lineage_schemas::GovernanceAction;

/// Rust's heap is jemalloc's (see the workspace Cargo.toml): a request
/// allocates dozens of small objects and a few buffers of kilobytes, and
/// glibc's malloc merged its free lists on each of those buffers.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "lineage",
    version,
    about = "Append-only, verifiable execution-lineage ledger"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the ledger (embedded RocksDB in the data directory).
    Serve(config::ServeArgs),
    /// Run the ledger (same flags as serve; data in ./lineage-demo unless
    /// given) plus a simulator of runtimes posting signed lineage to it.
    Demo(config::ServeArgs),
    /// Create an Ed25519 key file (mode 0600) and print its public key and key ID.
    Keygen {
        /// Where to write the key (refuses to overwrite).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Grant a runtime key (signed by an authority key), optionally for a
    /// validity window and a scope of kinds, workloads and trust domains.
    Grant(client::GrantArgs),
    /// Revoke a runtime key (signed by an authority key).
    Revoke(client::RevokeArgs),
    /// Halt a workload or a runtime (signed by an authority key): its next
    /// events, and those of every workload deriving from it, are refused
    /// `halted` until a resume.
    Halt(client::HaltArgs),
    /// Lift a halt set by `halt` on the same workload or runtime (a workload
    /// also halted in its own right, or through another halt, stays halted).
    Resume(client::HaltArgs),
    /// Sign an event payload (JSON file, `-` for stdin) and submit it.
    Submit(client::SubmitArgs),
    /// Run this ledger's code as a C2SP tlog-witness for other logs, and manage it.
    Witness {
        #[command(subcommand)]
        command: witness::WitnessCommand,
    },
    /// Write the log as a static C2SP tlog-tiles tree for auditors (works on a
    /// running ledger: the store is opened read-only, as a snapshot).
    Export {
        /// The ledger's data directory.
        #[arg(long, default_value = config::DEFAULT_DATA_DIR)]
        data_dir: std::path::PathBuf,
        /// Output directory; full tiles already there are kept (incremental).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Authority public keys to list in the manifest (default: the
        /// development authority key of the data directory, if any).
        #[arg(long = "authority")]
        authority: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    cap_malloc_arenas();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => rt.block_on(serve::serve(args.resolve()?, None)),
        Command::Demo(args) => rt.block_on(demo::run(args)),
        Command::Keygen { out } => keygen(&out),
        Command::Grant(a) => governance(&rt, "grant", client::grant(a)),
        Command::Revoke(a) => governance(&rt, "revoke", client::revoke(a)),
        Command::Halt(a) => governance(&rt, "halt", client::halt(GovernanceAction::Halt, a)),
        Command::Resume(a) => governance(&rt, "resume", client::halt(GovernanceAction::Resume, a)),
        Command::Submit(a) => rt.block_on(client::submit(a)),
        Command::Witness { command } => witness::run(&rt, command),
        Command::Export {
            data_dir,
            out,
            mut authority,
        } => {
            let dev = data_dir.join("authority.key");
            if authority.is_empty() && dev.exists() {
                let key =
                    read_key_file(&dev).with_context(|| format!("reading {}", dev.display()))?;
                authority.push(lineage_ledger::keys::public_key_base64(
                    &key.verifying_key(),
                ));
            }
            let r = export::export(&data_dir, &out, &authority)?;
            println!(
                "exported tree size {} to {}: {} files written, {} kept",
                r.tree_size,
                out.display(),
                r.written,
                r.kept
            );
            Ok(())
        }
    }
}

/// glibc's malloc (RocksDB's C++ heap; Rust's is jemalloc) gives each
/// thread that allocates an arena of its own (up to eight per core), and
/// each arena keeps what its threads freed: under RocksDB's block-cache
/// churn a server at 10M entries held 170 MiB against 148 MiB with one
/// arena per core, at the same throughput (measured when Rust's heap was
/// glibc's too; docs/PERFORMANCE.md). glibc reads the cap from the
/// environment when the process starts, before `main`, so `serve` executes
/// itself again, once,
/// with `MALLOC_ARENA_MAX` set to the number of cores (at least 2); an
/// operator's own `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` is left alone.
/// If the executable cannot be found or run again, the server simply runs
/// with glibc's default.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cap_malloc_arenas() {
    use std::os::unix::process::CommandExt as _;
    let mut args = std::env::args_os();
    let arg0 = args.next();
    if args.next().as_deref() != Some(std::ffi::OsStr::new("serve"))
        || std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let mut again = std::process::Command::new(exe);
    if let Some(arg0) = arg0 {
        again.arg0(arg0);
    }
    // `exec` returns only if it failed; the server then runs as it is.
    let _failed = again
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", cores.to_string())
        .exec();
}

/// Sends a checked governance statement; flags the ledger's rules refuse are
/// a usage error of `subcommand` (clap's format, exit code 2), and nothing
/// is sent.
fn governance(
    rt: &tokio::runtime::Runtime,
    subcommand: &str,
    checked: Result<client::Governance, String>,
) -> anyhow::Result<()> {
    match checked {
        Ok(statement) => rt.block_on(client::send(statement)),
        Err(message) => {
            let mut cli = Cli::command();
            // Built, so the usage line names `lineage <subcommand>`.
            cli.build();
            let error = match cli.find_subcommand_mut(subcommand) {
                Some(sub) => sub.error(ErrorKind::ValueValidation, message),
                None => cli.error(ErrorKind::ValueValidation, message),
            };
            error.exit()
        }
    }
}

fn keygen(out: &Path) -> anyhow::Result<()> {
    let key = generate_signing_key()?;
    write_key_file(out, &key).with_context(|| format!("writing {}", out.display()))?;
    let public = key.verifying_key();
    println!(
        "public_key: {}",
        lineage_ledger::keys::public_key_base64(&public)
    );
    println!(
        "key_id:     {}",
        lineage_ledger::keys::KeyId::from_public_key(&public)
    );
    Ok(())
}
