//! A flat copy of the complete level-0 tiles, in one file beside RocksDB's.
//!
//! A random inclusion proof in a large log needs one [run](crate::tree::RUN_WIDTH) of a
//! level-0 tile: the 16 leaf hashes (512 bytes) under one node of the tile's stratum. From
//! RocksDB that costs a point lookup, an 8 KiB block read, its checksum and a block-cache
//! insert that rarely hits again (10M entries: 320 MB of level-0 tiles). From this file it
//! is one 512-byte `pread` at `tile * 8192 + run * 512`. A complete tile never changes, so
//! the file only grows, in tile order.
//!
//! It is a cache: RocksDB keeps every tile, and this file is written after the commit that
//! completes a tile, outside it. So that a lost or torn write can never give a wrong proof:
//! - a reader checks every run it takes from here against the tile's stratum, which
//!   RocksDB keeps and checksums ([`RunNodes::checked`](crate::tree::RunNodes::checked)),
//!   and falls back to the stored row when it does not match;
//! - the file is synced every [`SYNC_EVERY`] tiles (by the commit that completes the 64th: one
//!   `fdatasync` of at most 512 KiB per 16,384 entries), and an open compares the tiles that
//!   could have been written since the last sync with RocksDB's, and cuts the file at the
//!   first that differs ([`LeafTiles::keep_verified`]);
//! - the first read or write that fails leaves the copy alone until the next open (one
//!   warning; a full disk does not log one per tile or proof).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::tree::{RUN_BYTES, RUN_WIDTH};
use crate::{HASH_SIZE, TILE_WIDTH};

/// The file's name in the store's directory (RocksDB leaves files of names it does not own
/// alone).
pub(super) const FILE_NAME: &str = "lineage-leaf-tiles";

/// Bytes of a complete tile.
const TILE_BYTES: u64 = TILE_WIDTH * HASH_SIZE as u64;

/// Tiles written between syncs (16,384 entries); an open checks twice as many.
pub(super) const SYNC_EVERY: u64 = 64;

/// The complete level-0 tiles `0..tiles()`, each [`TILE_BYTES`] at its index's offset.
pub(super) struct LeafTiles {
    file: File,
    /// How many tiles the file holds (readers see a tile only once written).
    tiles: AtomicU64,
    /// Serialises writers: the commit that completes a tile, and [`fill`](Self::fill).
    writer: Mutex<()>,
    /// Set by the first failed read or write: the copy is then left alone
    /// until the next open (one warning, not one per tile or proof).
    failed: AtomicBool,
}

impl LeafTiles {
    /// Opens (creating if needed) the file in `dir`. Its tiles are those its length holds
    /// whole; a torn last tile is cut.
    pub(super) fn open(dir: &Path) -> io::Result<LeafTiles> {
        if cfg!(not(unix)) {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(FILE_NAME))?;
        let len = file.metadata()?.len();
        let tiles = len / TILE_BYTES;
        if len % TILE_BYTES != 0 {
            file.set_len(tiles * TILE_BYTES)?;
        }
        Ok(LeafTiles {
            file,
            tiles: AtomicU64::new(tiles),
            writer: Mutex::new(()),
            failed: AtomicBool::new(false),
        })
    }

    /// How many tiles the file holds.
    pub(super) fn tiles(&self) -> u64 {
        self.tiles.load(Ordering::Acquire)
    }

    /// Run `run` of tile `tile` as written (unchecked: see the module's doc), or `None`
    /// when the file does not hold the tile, or failed before.
    ///
    /// # Errors
    /// I/O errors reading the file (the first one only).
    pub(super) fn run(&self, tile: u64, run: u16) -> io::Result<Option<Vec<u8>>> {
        if tile >= self.tiles()
            || run >= TILE_WIDTH as u16 / RUN_WIDTH
            || self.failed.load(Ordering::Relaxed)
        {
            return Ok(None);
        }
        let mut bytes = vec![0; RUN_BYTES];
        let at = tile * TILE_BYTES + u64::from(run) * RUN_BYTES as u64;
        self.first_failure(read_exact_at(&self.file, &mut bytes, at))?;
        Ok(Some(bytes))
    }

    /// `result`, an error only the first time the copy fails (later calls
    /// find `failed` set and do nothing).
    fn first_failure<T>(&self, result: io::Result<T>) -> io::Result<T> {
        result.inspect_err(|_| self.failed.store(true, Ordering::Relaxed))
    }

    /// Keeps the tiles below `complete` (the store's complete level-0 tiles) whose newest
    /// [`2 * SYNC_EVERY`](SYNC_EVERY) are as `stored` gives them; cuts the file at the
    /// first tile past `complete` or that differs. Returns how many tiles it kept.
    ///
    /// # Errors
    /// I/O errors, and those of `stored`.
    pub(super) fn keep_verified<E: From<io::Error>>(
        &self,
        complete: u64,
        stored: impl Fn(u64) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<u64, E> {
        let _writer = self.lock();
        let tiles = self.tiles().min(complete);
        let mut keep = tiles;
        let mut bytes = vec![0; TILE_BYTES as usize];
        for tile in tiles.saturating_sub(2 * SYNC_EVERY)..tiles {
            read_exact_at(&self.file, &mut bytes, tile * TILE_BYTES)?;
            if stored(tile)?.as_deref() != Some(&bytes[..]) {
                keep = tile;
                break;
            }
        }
        if keep < self.tiles() {
            self.file.set_len(keep * TILE_BYTES)?;
            self.file.sync_all()?;
            self.tiles.store(keep, Ordering::Release);
        }
        Ok(keep)
    }

    /// Appends the complete tiles a commit wrote (`(index, bytes)`, in index order), when
    /// the file is not behind them by more than a few tiles, which `stored` then gives.
    /// Skips them when the file is further behind: [`fill`](Self::fill) is catching up, or
    /// will at the next open. Waits while `fill` writes one tile, so that no commit between
    /// `fill`'s last look at the store's size and its end is skipped. Does nothing once the
    /// copy has failed.
    ///
    /// # Errors
    /// I/O errors (the first one only), and those of `stored`.
    pub(super) fn append<'t, E: From<io::Error>>(
        &self,
        tiles: impl IntoIterator<Item = (u64, &'t [u8])>,
        stored: impl Fn(u64) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<(), E> {
        /// A commit completes at most a few tiles; further behind, `fill` is at work.
        const MAX_GAP: u64 = 4;
        let _writer = self.lock();
        if self.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        for (index, bytes) in tiles {
            let next = self.tiles();
            if index < next {
                continue;
            }
            if index - next > MAX_GAP {
                return Ok(());
            }
            for gap in next..index {
                let Some(tile) = stored(gap)? else {
                    return Ok(());
                };
                self.first_failure(self.write(gap, &tile))?;
            }
            self.first_failure(self.write(index, bytes))?;
        }
        Ok(())
    }

    /// Writes the tiles the file lacks below `complete()` (read again when they are
    /// written, so that it ends at the store's size however much was committed meanwhile),
    /// taking them from `stored`; asks `stop` between tiles. Returns how many it wrote;
    /// none once the copy has failed.
    ///
    /// A tile is read without the writers' lock and written with it: a commit's
    /// [`append`](Self::append) waits for one write at most, never for a run of them (the
    /// lock is not fair, and a fill that kept it across reads held commits back for most
    /// of its run).
    ///
    /// # Errors
    /// I/O errors (the first one only), those of `complete` and `stored`, and `missing` of
    /// a tile below `complete()` that `stored` lacks.
    pub(super) fn fill<E: From<io::Error>>(
        &self,
        complete: impl Fn() -> Result<u64, E>,
        stored: impl Fn(u64) -> Result<Option<Vec<u8>>, E>,
        missing: impl Fn(u64) -> E,
        stop: &dyn Fn() -> bool,
    ) -> Result<u64, E> {
        let mut wrote = 0;
        let mut end = complete()?;
        while !stop() && !self.failed.load(Ordering::Relaxed) {
            let next = self.tiles();
            if next >= end {
                // Done, unless a commit completed tiles since `end` was read: a commit
                // appends after its write, under the lock, so what it wrote before this
                // read is in `end`, and what it writes after is its own to append.
                let _writer = self.lock();
                end = complete()?;
                if self.tiles() >= end {
                    break;
                }
                continue;
            }
            let bytes = stored(next)?.ok_or_else(|| missing(next))?;
            let _writer = self.lock();
            // A commit may have appended it meanwhile (when `fill` was near the end).
            if self.tiles() == next {
                self.first_failure(self.write(next, &bytes))?;
                wrote += 1;
            }
        }
        Ok(wrote)
    }

    /// Writes tile `index`, the next one, and syncs every [`SYNC_EVERY`] tiles. A tile of
    /// another length is not written (nor any after it).
    fn write(&self, index: u64, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() as u64 != TILE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "tile 0/{index} is {} bytes, not a complete tile",
                    bytes.len()
                ),
            ));
        }
        write_all_at(&self.file, bytes, index * TILE_BYTES)?;
        if (index + 1).is_multiple_of(SYNC_EVERY) {
            self.file.sync_data()?;
        }
        self.tiles.store(index + 1, Ordering::Release);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Positional reads and writes (`pread`, `pwrite`): readers share the file
/// without a cursor. Unix only; elsewhere [`LeafTiles::open`] refuses, and the
/// store keeps no copy.
#[cfg(unix)]
fn read_exact_at(file: &File, bytes: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, bytes, at)
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, at)
}

#[cfg(not(unix))]
fn read_exact_at(_: &File, _: &mut [u8], _: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(unix))]
fn write_all_at(_: &File, _: &[u8], _: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    fn tile(n: u8) -> Vec<u8> {
        (0..TILE_BYTES).map(|i| n.wrapping_add(i as u8)).collect()
    }

    type Result<T> = std::result::Result<T, io::Error>;

    /// The rows a store holds: tiles `0..n`.
    fn stored(n: u8) -> Vec<Vec<u8>> {
        (0..n).map(tile).collect()
    }

    /// `stored` as the store's reads give it.
    fn reads(stored: &[Vec<u8>]) -> impl Fn(u64) -> Result<Option<Vec<u8>>> + Copy + '_ {
        |i| Ok(stored.get(i as usize).cloned())
    }

    /// [`LeafTiles::fill`] up to `complete` tiles of `stored`, stopping at once when
    /// `stop` says so; a tile `stored` lacks is `NotFound`.
    fn fill(leaves: &LeafTiles, complete: u64, stored: &[Vec<u8>], stop: bool) -> Result<u64> {
        leaves.fill(
            || Ok(complete),
            reads(stored),
            |_| io::ErrorKind::NotFound.into(),
            &|| stop,
        )
    }

    #[test]
    fn tiles_are_written_in_order_and_read_by_run() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let stored = stored(10);
        let get = reads(&stored);
        let leaves = LeafTiles::open(dir.path())?;
        assert_eq!(leaves.run(0, 0)?, None);
        // The commit of tiles 0 and 1, then one that skips tile 2 (it is stored): filled.
        leaves.append([(0, &stored[0][..]), (1, &stored[1][..])], get)?;
        leaves.append([(3, &stored[3][..])], get)?;
        assert_eq!(leaves.tiles(), 4);
        for t in 0..4u64 {
            for run in [0u16, 1, 15] {
                let at = usize::from(run) * RUN_BYTES;
                assert_eq!(
                    leaves.run(t, run)?.as_deref(),
                    stored[t as usize].get(at..at + RUN_BYTES)
                );
            }
        }
        assert_eq!(leaves.run(4, 0)?, None);
        assert_eq!(leaves.run(0, 16)?, None);
        // A tile already there is not written again; too far ahead is left to `fill`.
        leaves.append([(1, &tile(99)[..])], get)?;
        leaves.append([(9, &stored[9][..])], get)?;
        assert_eq!(leaves.tiles(), 4);
        assert_eq!(leaves.run(1, 0)?.as_deref(), stored[1].get(..RUN_BYTES));
        // `fill` catches up to what `complete` says; `stop` ends it early.
        assert_eq!(fill(&leaves, 10, &stored, true)?, 0);
        let wrote = fill(&leaves, 10, &stored, false)?;
        assert_eq!((wrote, leaves.tiles()), (6, 10));
        assert_eq!(
            leaves.run(9, 3)?.as_deref(),
            stored[9].get(3 * RUN_BYTES..4 * RUN_BYTES)
        );
        // A stored tile that is missing is an error, not a hole.
        assert!(fill(&leaves, 12, &stored, false).is_err());
        assert_eq!(leaves.tiles(), 10);
        // A failed write (here a tile of the wrong length) is reported once;
        // the copy is then left alone until the next open.
        assert!(leaves.append([(10, &tile(10)[..100])], get).is_err());
        assert_eq!(leaves.tiles(), 10);
        leaves.append([(10, &tile(10)[..])], get)?;
        assert_eq!(leaves.tiles(), 10);
        assert_eq!(leaves.run(0, 0)?, None);
        let leaves = LeafTiles::open(dir.path())?;
        assert_eq!(leaves.run(0, 0)?.as_deref(), stored[0].get(..RUN_BYTES));
        Ok(())
    }

    #[test]
    fn a_fill_reads_its_tiles_without_the_writers_lock() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let stored = stored(4);
        let leaves = LeafTiles::open(dir.path())?;
        let (reading, read_started) = std::sync::mpsc::channel();
        let (proceed, may_proceed) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let (leaves, stored) = (&leaves, &stored);
            let fill = scope.spawn(move || {
                let slow = |i: u64| {
                    if i == 2 {
                        reading.send(()).ok();
                        may_proceed.recv().ok();
                    }
                    reads(stored)(i)
                };
                leaves.fill(|| Ok(4), slow, |_| io::ErrorKind::NotFound.into(), &|| {
                    false
                })
            });
            read_started.recv().expect("the fill reads tile 2");
            // While the fill reads, a commit's `append` can take the lock
            // (asserted after the fill is let go, so that a failure fails
            // rather than hangs).
            let free = leaves.writer.try_lock().is_ok();
            proceed.send(()).expect("the fill waits");
            assert_eq!(fill.join().expect("the fill ends")?, 4);
            assert!(free, "the fill held the writers' lock while reading");
            Ok(())
        })
    }

    #[test]
    fn an_open_cuts_a_torn_tail_and_tiles_that_differ_from_the_store() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let stored = stored(8);
        let get = reads(&stored);
        fill(&LeafTiles::open(dir.path())?, 8, &stored, false)?;
        // Half a tile more, as a crash in a write leaves it: cut.
        let path = dir.path().join(FILE_NAME);
        let file = OpenOptions::new().write(true).open(&path)?;
        file.set_len(8 * TILE_BYTES + 100)?;
        let leaves = LeafTiles::open(dir.path())?;
        assert_eq!(leaves.tiles(), 8);
        assert_eq!(std::fs::metadata(&path)?.len(), 8 * TILE_BYTES);
        // All as stored: kept. Past the store's complete tiles: cut.
        assert_eq!(leaves.keep_verified(8, get)?, 8);
        assert_eq!(leaves.keep_verified(7, get)?, 7);
        assert_eq!(leaves.tiles(), 7);
        // A tile lost in a crash (zeros where it was): cut there, and filled again after.
        file.write_all_at(&[0; 64], 4 * TILE_BYTES + 8)?;
        let leaves = LeafTiles::open(dir.path())?;
        assert_eq!(leaves.keep_verified(8, get)?, 4);
        assert_eq!(std::fs::metadata(&path)?.len(), 4 * TILE_BYTES);
        fill(&leaves, 8, &stored, false)?;
        assert_eq!(leaves.keep_verified(8, get)?, 8);
        assert_eq!(leaves.run(4, 0)?.as_deref(), stored[4].get(..RUN_BYTES));
        Ok(())
    }
}
