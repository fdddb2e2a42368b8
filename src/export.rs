//! `lineage export`: writes the log as a static C2SP tlog-tiles tree (the
//! auditor's input, and what a CDN can serve).
//!
//! Layout under `--out DIR`: `checkpoint`, `tile/<L>/<N>[.p/<W>]`,
//! `tile/entries/<N>[.p/<W>]`, `manifest.json`. The export is of one tree
//! size, the head at the time the store was opened (a read-only RocksDB open
//! is a snapshot, so a running ledger can be exported). Full tiles and
//! bundles already in DIR are kept (incremental export); the checkpoint and
//! manifest are written last, each by rename, so a reader never sees a
//! checkpoint whose tiles are missing.

use std::path::Path;

use anyhow::{Context, bail};
use lineage_ledger::TILE_WIDTH;
use lineage_ledger::keys::{KeyId, public_key_base64};
use lineage_ledger::store::{RocksStore, Store, StoreMeta};
use lineage_ledger::tile::{TileKind, TilePath, encode_bundle, layout};

/// What an export wrote.
#[derive(Debug, Default)]
pub struct ExportReport {
    pub tree_size: u64,
    pub written: u64,
    pub kept: u64,
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp-export");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Exports the store in `data_dir` (read-only) to `out`.
pub fn export(data_dir: &Path, out: &Path, authority: &[String]) -> anyhow::Result<ExportReport> {
    let store = RocksStore::open_read_only(&data_dir.join("db"))
        .with_context(|| format!("opening the store in {} read-only", data_dir.display()))?;
    let Some(meta) = store.meta()? else {
        bail!("{} holds no initialised log", data_dir.display());
    };
    export_store(&store, &meta, out, authority)
}

/// Exports any store.
pub fn export_store(
    store: &dyn Store,
    meta: &StoreMeta,
    out: &Path,
    authority: &[String],
) -> anyhow::Result<ExportReport> {
    let head = store.head()?;
    let size = head.size;
    let mut report = ExportReport {
        tree_size: size,
        ..ExportReport::default()
    };
    // Hash tiles, level by level, up to the first level with no tile.
    for level in 0u8..=63 {
        let l = layout(TileKind::Hash { level }, size);
        if l.full_tiles == 0 && l.partial.is_none() {
            break;
        }
        let partial = l.partial.map(|p| (p.index, p.width));
        for (index, width) in (0..l.full_tiles).map(|i| (i, 256u16)).chain(partial) {
            let path = TilePath::hash(level, index, width)?;
            let file = out.join(path.to_string());
            if file_has_len(&file, usize::from(width) * 32) {
                report.kept += 1;
                continue;
            }
            let stored = store
                .tile(level, index)?
                .with_context(|| format!("hash tile {level}/{index} is missing from the store"))?;
            let bytes = stored
                .get(..usize::from(width) * 32)
                .with_context(|| format!("hash tile {level}/{index} is shorter than {width}"))?;
            write_atomic(&file, bytes)?;
            report.written += 1;
        }
    }
    // Entry bundles.
    let l = layout(TileKind::Entries, size);
    let partial = l.partial.map(|p| (p.index, p.width));
    for (index, width) in (0..l.full_tiles).map(|i| (i, 256u16)).chain(partial) {
        let path = TilePath::entries(index, width)?;
        let file = out.join(path.to_string());
        if width == 256 && file.exists() {
            report.kept += 1;
            continue;
        }
        let start = index * TILE_WIDTH;
        let entries = store.entries(start, start + u64::from(width))?;
        if entries.len() != usize::from(width) {
            bail!(
                "entries {start}..{} are missing from the store",
                start + u64::from(width)
            );
        }
        write_atomic(&file, &encode_bundle(entries.iter().map(Vec::as_slice))?)?;
        report.written += 1;
    }
    let authority_keys: Vec<serde_json::Value> = authority
        .iter()
        .map(|b64| {
            let key = lineage_ledger::keys::parse_public_key(b64)
                .with_context(|| format!("authority key {b64:?}"))?;
            Ok(serde_json::json!({
                "key_id": KeyId::from_public_key(&key).to_string(),
                "public_key": public_key_base64(&key),
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    let manifest = serde_json::json!({
        "format": "lineage-export/v1",
        "origin": meta.origin,
        "vkey": meta.vkey,
        "tree_size": size,
        "authority_keys": authority_keys,
    });
    write_atomic(
        &out.join("manifest.json"),
        format!("{}\n", serde_json::to_string_pretty(&manifest)?).as_bytes(),
    )?;
    write_atomic(&out.join("checkpoint"), head.note.as_bytes())?;
    Ok(report)
}

fn file_has_len(path: &Path, len: usize) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() == len as u64)
}
