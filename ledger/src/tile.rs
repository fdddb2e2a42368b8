//! C2SP tlog-tiles resource paths and entry bundles.
//!
//! A tiled log serves its Merkle tree as *tiles* at `tile/<L>/<N>[.p/<W>]` and
//! its entries as *entry bundles* at `tile/entries/<N>[.p/<W>]`
//! (c2sp.org/tlog-tiles, "Merkle Tree" and "Log entries"). [`TilePath`] is
//! one such path relative to the log prefix; [`TilePath::parse`] accepts
//! exactly the paths the spec allows, so a server can answer anything else
//! with a 4xx, and [`fmt::Display`] writes the one canonical spelling back.
//!
//! An entry bundle is a sequence of big-endian `u16` length-prefixed entries:
//! [`encode_bundle`] and [`decode_bundle`] convert between the two forms.
//!
//! This module knows paths and byte layouts only: which hashes go into a tile
//! is the tree's business (`tree`), and where tiles are kept is the store's.

use std::fmt;

use crate::{TILE_HEIGHT, TILE_WIDTH};

/// Highest tile level the spec allows (`<L>` is "between 0 and 63").
pub const MAX_LEVEL: u8 = 63;

/// Most entries in one bundle: a full bundle holds [`TILE_WIDTH`] entries.
pub const MAX_BUNDLE_ENTRIES: usize = TILE_WIDTH as usize;

/// Largest entry a bundle can carry: its length prefix is a `u16`.
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// Width of a full tile, as stored in [`TilePath::width`].
const FULL_WIDTH: u16 = TILE_WIDTH as u16;

/// What a tile path names: a row of Merkle tree hashes at a level, or an entry bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// `tile/<level>/...`: hashes of the tree at `level` (0 holds leaf hashes).
    Hash {
        /// Tile level, `0..=63`.
        level: u8,
    },
    /// `tile/entries/...`: the entries whose leaf hashes make up the level-0 tile of the same index.
    Entries,
}

/// A tlog-tiles resource path relative to the log prefix, such as
/// `tile/0/x001/234.p/17` or `tile/entries/000`.
///
/// The fields are public for matching; [`TilePath::hash`] and
/// [`TilePath::entries`] check the ranges. A path built by hand with a level
/// above 63 or a width outside `1..=256` still displays, but
/// [`TilePath::parse`] rejects what it displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TilePath {
    /// Hash tile (with its level) or entry bundle.
    pub kind: TileKind,
    /// Index `<N>` of the tile within its level.
    pub index: u64,
    /// Number of hashes or entries, `1..=256`; 256 is a full tile (no `.p/<W>` suffix).
    pub width: u16,
}

/// Why a string is not a tlog-tiles path, or a tile is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilePathError {
    /// The path does not start with `tile/`.
    #[error("tile path does not start with \"tile/\": {path:?}")]
    MissingPrefix {
        /// The rejected path (truncated to 100 characters).
        path: String,
    },
    /// The level element is neither `entries` nor a canonical decimal in `0..=63`.
    #[error("tile level {level:?} is not \"entries\" or a decimal 0..=63 without leading zeros")]
    Level {
        /// The rejected level element (truncated to 100 characters).
        level: String,
    },
    /// A level above 63 was given to a constructor.
    #[error("tile level {level} is above the maximum 63")]
    LevelTooHigh {
        /// The rejected level.
        level: u8,
    },
    /// The index elements are missing, not zero-padded 3-digit groups with `x` on all
    /// but the last, have a redundant leading `x000`, or overflow a `u64`.
    #[error("tile index {index:?} is not canonical zero-padded 3-digit groups")]
    Index {
        /// The rejected index elements (truncated to 100 characters).
        index: String,
    },
    /// The `.p/<W>` width is not a canonical decimal in `1..=255`.
    #[error("partial tile width {width:?} is not a decimal 1..=255 without leading zeros")]
    PartialWidth {
        /// The rejected width element (truncated to 100 characters).
        width: String,
    },
    /// A width outside `1..=256` was given to a constructor.
    #[error("tile width {width} is outside 1..=256")]
    Width {
        /// The rejected width.
        width: u16,
    },
}

/// Why bytes are not an entry bundle, or entries cannot form one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// An entry is longer than a `u16` length prefix can describe.
    #[error("entry {position} is {len} bytes, more than the 65535 a bundle allows")]
    EntryTooLarge {
        /// Zero-based position of the entry in the bundle.
        position: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// More entries than a full tile holds.
    #[error("bundle has more than {max} entries", max = MAX_BUNDLE_ENTRIES)]
    TooManyEntries,
    /// The bytes end inside an entry's length prefix or inside its data.
    #[error("bundle truncated in entry {position}: needs {needed} more bytes at offset {offset}")]
    Truncated {
        /// Zero-based position of the incomplete entry.
        position: usize,
        /// Byte offset where the incomplete part starts.
        offset: usize,
        /// How many bytes are missing.
        needed: usize,
    },
}

fn truncated(s: &str) -> String {
    s.chars().take(100).collect()
}

impl TilePath {
    /// The hash tile `tile/<level>/<index>` of `width` hashes (256 for a full tile).
    ///
    /// # Errors
    /// [`TilePathError::LevelTooHigh`] for a level above 63,
    /// [`TilePathError::Width`] for a width outside `1..=256`.
    pub fn hash(level: u8, index: u64, width: u16) -> Result<TilePath, TilePathError> {
        if level > MAX_LEVEL {
            return Err(TilePathError::LevelTooHigh { level });
        }
        TilePath::checked(TileKind::Hash { level }, index, width)
    }

    /// The entry bundle `tile/entries/<index>` of `width` entries (256 for a full bundle).
    ///
    /// # Errors
    /// [`TilePathError::Width`] for a width outside `1..=256`.
    pub fn entries(index: u64, width: u16) -> Result<TilePath, TilePathError> {
        TilePath::checked(TileKind::Entries, index, width)
    }

    fn checked(kind: TileKind, index: u64, width: u16) -> Result<TilePath, TilePathError> {
        if !(1..=FULL_WIDTH).contains(&width) {
            return Err(TilePathError::Width { width });
        }
        Ok(TilePath { kind, index, width })
    }

    /// Whether this is a full tile (256 wide, no `.p/<W>` suffix).
    pub fn is_full(&self) -> bool {
        self.width == FULL_WIDTH
    }

    /// Parses a path relative to the log prefix, such as `tile/0/x001/234.p/17`
    /// or `tile/entries/000`.
    ///
    /// Strict: the level is `entries` or a decimal `0..=63` without leading
    /// zeros; the index is zero-padded 3-digit groups, all but the last
    /// prefixed with `x`, with no leading `x000` group and no `u64` overflow;
    /// `.p/<W>` appears only with a decimal `1..=255` without leading zeros.
    /// Anything else (trailing slash, old `tile/<H>/<L>/...` form, ...) is an
    /// error, so every accepted path is the [`Display`](fmt::Display) of its result.
    ///
    /// # Errors
    /// A [`TilePathError`] naming the first element that is not canonical.
    pub fn parse(path: &str) -> Result<TilePath, TilePathError> {
        let rest = path
            .strip_prefix("tile/")
            .ok_or_else(|| TilePathError::MissingPrefix {
                path: truncated(path),
            })?;
        let (level, rest) = rest.split_once('/').ok_or_else(|| TilePathError::Index {
            index: String::new(),
        })?;
        let kind = if level == "entries" {
            TileKind::Entries
        } else {
            let level_err = || TilePathError::Level {
                level: truncated(level),
            };
            let level = parse_canonical_decimal(level, 2)
                .and_then(|l| u8::try_from(l).ok())
                .filter(|l| *l <= MAX_LEVEL)
                .ok_or_else(level_err)?;
            TileKind::Hash { level }
        };

        let index_err = || TilePathError::Index {
            index: truncated(rest),
        };
        let (groups, width) = match rest.split_once(".p/") {
            Some((groups, width_str)) => {
                let width = parse_canonical_decimal(width_str, 3)
                    .and_then(|w| u16::try_from(w).ok())
                    .filter(|w| (1..FULL_WIDTH).contains(w))
                    .ok_or_else(|| TilePathError::PartialWidth {
                        width: truncated(width_str),
                    })?;
                (groups, width)
            }
            None => (rest, FULL_WIDTH),
        };
        let index = parse_index(groups).ok_or_else(index_err)?;
        Ok(TilePath { kind, index, width })
    }
}

/// A decimal of at most `max_digits` ASCII digits, without leading zeros unless it is `0`.
fn parse_canonical_decimal(s: &str, max_digits: usize) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= max_digits
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// `x001/x234/067` -> 1234067; `None` unless canonical and within `u64`.
fn parse_index(groups: &str) -> Option<u64> {
    let mut parts = groups.split('/').peekable();
    let mut index: u64 = 0;
    let mut first = true;
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let digits = if last { part } else { part.strip_prefix('x')? };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // A leading all-zero group would give a second spelling of the same index.
        if first && !last && digits == "000" {
            return None;
        }
        let group: u64 = digits.parse().ok()?;
        index = index.checked_mul(1000)?.checked_add(group)?;
        first = false;
    }
    Some(index)
}

impl fmt::Display for TilePath {
    /// The canonical path, e.g. `tile/1/x001/x234/067.p/17`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TileKind::Hash { level } => write!(f, "tile/{level}/")?,
            TileKind::Entries => f.write_str("tile/entries/")?,
        }
        let mut groups = Vec::with_capacity(7);
        let mut n = self.index;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        for (i, group) in groups.iter().rev().enumerate() {
            if i + 1 < groups.len() {
                write!(f, "x{group:03}/")?;
            } else {
                write!(f, "{group:03}")?;
            }
        }
        if self.width != FULL_WIDTH {
            write!(f, ".p/{}", self.width)?;
        }
        Ok(())
    }
}

/// Which tiles of one kind make up a tree: `full_tiles` full ones (indexes
/// `0..full_tiles`) and at most one partial tile after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileLayout {
    /// Number of full (256-wide) tiles, at indexes `0..full_tiles`.
    pub full_tiles: u64,
    /// The partial tile at index `full_tiles`, if the width left over is not zero.
    pub partial: Option<TilePath>,
}

/// The tiles of `kind` that a tree of `tree_size` leaves has
/// (c2sp.org/tlog-tiles, "Partial Tiles"): at level *l* there are
/// `floor(s / 256^(l+1))` full tiles and a partial tile of width
/// `floor(s / 256^l) mod 256` when that is not zero. Entry bundles follow level 0.
/// A level above 63 has no tiles.
pub fn layout(kind: TileKind, tree_size: u64) -> TileLayout {
    let level = match kind {
        TileKind::Hash { level } => u32::from(level),
        TileKind::Entries => 0,
    };
    // Hashes at this level (each covering 256^level leaves); none above level 63.
    let nodes = if level > u32::from(MAX_LEVEL) {
        0
    } else {
        tree_size
            .checked_shr(level * u32::from(TILE_HEIGHT))
            .unwrap_or(0)
    };
    let full_tiles = nodes / TILE_WIDTH;
    // Lossless: the remainder is below 256.
    let width = (nodes % TILE_WIDTH) as u16;
    let partial = (width != 0).then_some(TilePath {
        kind,
        index: full_tiles,
        width,
    });
    TileLayout {
        full_tiles,
        partial,
    }
}

/// Encodes entries as an entry bundle: each entry as a big-endian `u16`
/// length followed by its bytes.
///
/// # Errors
/// [`BundleError::EntryTooLarge`] for an entry over 65535 bytes,
/// [`BundleError::TooManyEntries`] for more than 256 entries (so that every
/// bundle this makes, [`decode_bundle`] reads back).
pub fn encode_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::new();
    for (position, entry) in entries.into_iter().enumerate() {
        if position >= MAX_BUNDLE_ENTRIES {
            return Err(BundleError::TooManyEntries);
        }
        let len = u16::try_from(entry.len()).map_err(|_| BundleError::EntryTooLarge {
            position,
            len: entry.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Decodes an entry bundle into its entries, borrowing from `bytes`.
///
/// Total on any input. Empty input is an empty bundle; checking the entry
/// count against the tile's width is the caller's job.
///
/// # Errors
/// [`BundleError::Truncated`] when the bytes end inside a length prefix or an
/// entry, [`BundleError::TooManyEntries`] for more than 256 entries.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let position = entries.len();
        if position >= MAX_BUNDLE_ENTRIES {
            return Err(BundleError::TooManyEntries);
        }
        let offset = bytes.len() - rest.len();
        let (prefix, after) = rest
            .split_at_checked(2)
            .ok_or_else(|| BundleError::Truncated {
                position,
                offset,
                needed: 2 - rest.len(),
            })?;
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        let (entry, after) = after
            .split_at_checked(len)
            .ok_or_else(|| BundleError::Truncated {
                position,
                offset: offset + 2,
                needed: len - after.len(),
            })?;
        entries.push(entry);
        rest = after;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hash, leaf_hash};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/vectors");

    fn read_vector(path: &str) -> Vec<u8> {
        let full = format!("{VECTORS}/{path}");
        std::fs::read(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
    }

    fn tiles_json() -> serde_json::Value {
        serde_json::from_slice(&read_vector("tiles.json")).expect("tiles.json is JSON")
    }

    fn str_of<'v>(v: &'v serde_json::Value, key: &str) -> &'v str {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} not a string in {v}"))
    }

    fn u64_of(v: &serde_json::Value, key: &str) -> u64 {
        v[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} not a u64 in {v}"))
    }

    #[track_caller]
    fn check_valid(path: &str, want: TilePath) {
        assert_eq!(TilePath::parse(path), Ok(want), "parsing {path}");
        assert_eq!(want.to_string(), path, "formatting {want:?}");
    }

    #[track_caller]
    fn check_invalid(path: &str) {
        let got = TilePath::parse(path);
        assert!(got.is_err(), "{path:?} parsed as {got:?}");
    }

    #[test]
    fn vector_paths_format_and_parse_back() {
        let v = tiles_json();
        let paths = v["paths"].as_array().expect("paths");
        assert!(!paths.is_empty());
        for p in paths {
            let index = u64_of(p, "index");
            let width = u16::try_from(u64_of(p, "width")).expect("width fits u16");
            let want = match str_of(p, "kind") {
                "hash" => {
                    let level = u8::try_from(u64_of(p, "level")).expect("level fits u8");
                    TilePath::hash(level, index, width)
                }
                "entries" => TilePath::entries(index, width),
                other => panic!("unknown kind {other}"),
            }
            .expect("vector tile is in range");
            check_valid(str_of(p, "path"), want);
        }
    }

    #[test]
    fn vector_invalid_paths_are_rejected() {
        let v = tiles_json();
        let paths = v["invalid_paths"].as_array().expect("invalid_paths");
        assert!(!paths.is_empty());
        for p in paths {
            check_invalid(p.as_str().expect("string"));
        }
    }

    #[test]
    fn more_invalid_paths_are_rejected() {
        for path in [
            "",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "/tile/0/000",
            "tiles/0/000",
            "tile/0/000/x001",
            "tile/0/x001",
            "tile/0/x001/",
            "tile/0/xx01/000",
            "tile/0/x0001/000",
            "tile/0/00a",
            "tile/0/+01",
            "tile/0/ 001",
            "tile/0/000.p/",
            "tile/0/000.p",
            "tile/0/000.p/1/",
            "tile/0/000.p/+1",
            "tile/0/000.p/1.p/1",
            "tile/0/000.p/x001",
            "tile/0/x001.p/1/000",
            "tile/01/000",
            "tile/+1/000",
            "tile/100/000",
            "tile/255/000",
            "tile/256/000",
            "tile/ 0/000",
            "tile/Entries/000",
            "tile/entries/000.p/256",
            "tile/entries/entries/000",
            "tile/0/000\n",
            "tile/0/000?x=1",
            // 2^64 = 18446744073709551616 overflows.
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x001/x018/x446/x744/x073/x709/x551/615",
            "tile/０/000",
        ] {
            check_invalid(path);
        }
    }

    #[test]
    fn index_edges_round_trip() {
        let max = TilePath::hash(0, u64::MAX, 256).expect("in range");
        check_valid("tile/0/x018/x446/x744/x073/x709/x551/615", max);
        check_valid(
            "tile/entries/x001/x000/000.p/255",
            TilePath::entries(1_000_000, 255).expect("in range"),
        );
        check_valid(
            "tile/63/999",
            TilePath::hash(63, 999, 256).expect("in range"),
        );
    }

    #[test]
    fn constructors_check_ranges() {
        assert_eq!(
            TilePath::hash(64, 0, 1),
            Err(TilePathError::LevelTooHigh { level: 64 })
        );
        assert_eq!(
            TilePath::hash(0, 0, 0),
            Err(TilePathError::Width { width: 0 })
        );
        assert_eq!(
            TilePath::entries(0, 257),
            Err(TilePathError::Width { width: 257 })
        );
        assert!(TilePath::entries(0, 256).is_ok_and(|t| t.is_full()));
        assert!(TilePath::entries(0, 255).is_ok_and(|t| !t.is_full()));
    }

    #[test]
    fn vector_tree_layouts_match() {
        let v = tiles_json();
        let layouts = v["tree_layouts"].as_array().expect("tree_layouts");
        assert!(!layouts.is_empty());
        for l in layouts {
            let size = u64_of(l, "size");
            let bundles = &l["entry_bundles"];
            let got = layout(TileKind::Entries, size);
            assert_eq!(got.full_tiles, u64_of(bundles, "full"), "size {size}");
            assert_eq!(
                got.partial.map(|p| p.to_string()).as_deref(),
                bundles["partial_path"].as_str(),
                "size {size}"
            );
            assert_eq!(
                got.partial.map_or(0, |p| u64::from(p.width)),
                u64_of(bundles, "partial_width")
            );
            let levels = l["levels"].as_array().expect("levels");
            for lv in levels {
                let level = u8::try_from(u64_of(lv, "level")).expect("level");
                let got = layout(TileKind::Hash { level }, size);
                assert_eq!(got.full_tiles, u64_of(lv, "full_tiles"), "size {size}");
                assert_eq!(
                    got.partial.map(|p| p.to_string()).as_deref(),
                    lv["partial_path"].as_str(),
                    "size {size} level {level}"
                );
                assert_eq!(
                    got.partial.map_or(0, |p| u64::from(p.width)),
                    u64_of(lv, "partial_width")
                );
            }
            // The level above the last listed one has no tiles at all.
            let above = u8::try_from(levels.len()).expect("few levels");
            assert_eq!(
                layout(TileKind::Hash { level: above }, size),
                TileLayout {
                    full_tiles: 0,
                    partial: None
                }
            );
        }
    }

    #[test]
    fn layout_at_the_top_levels() {
        let top = layout(TileKind::Hash { level: 7 }, u64::MAX);
        assert_eq!(top.full_tiles, 0);
        assert_eq!(top.partial.map(|p| p.width), Some(255));
        for level in [8, 63, 64, 255] {
            assert_eq!(layout(TileKind::Hash { level }, u64::MAX).partial, None);
        }
        assert_eq!(
            layout(TileKind::Entries, 0),
            TileLayout {
                full_tiles: 0,
                partial: None
            }
        );
    }

    #[test]
    fn vector_bundle_example_encodes_and_decodes() {
        let v = tiles_json();
        let ex = &v["bundle_example"];
        let entries: Vec<Vec<u8>> = ex["entries_base64"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| STANDARD.decode(e.as_str().expect("str")).expect("base64"))
            .collect();
        let want = STANDARD
            .decode(str_of(ex, "bundle_base64"))
            .expect("base64");
        let encoded = encode_bundle(entries.iter().map(Vec::as_slice)).expect("encodes");
        assert_eq!(encoded, want);
        let decoded = decode_bundle(&want).expect("decodes");
        assert_eq!(
            decoded,
            entries.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        let hashes: Vec<String> = decoded.iter().map(|e| leaf_hash(e).to_base64()).collect();
        let want_hashes: Vec<&str> = ex["leaf_hashes"]
            .as_array()
            .expect("leaf_hashes")
            .iter()
            .map(|h| h.as_str().expect("str"))
            .collect();
        assert_eq!(hashes, want_hashes);
    }

    fn decimal_leaves(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
        range.map(|i| i.to_string().into_bytes()).collect()
    }

    #[test]
    fn log_300_entry_bundles_are_reproduced() {
        let full = TilePath::entries(0, 256).expect("in range");
        let partial = TilePath::entries(1, 44).expect("in range");
        assert_eq!(layout(TileKind::Entries, 300).partial, Some(partial));
        for (tile, leaves) in [(full, 0..256), (partial, 256..300)] {
            let leaves = decimal_leaves(leaves);
            let want = read_vector(&format!("log-300/{tile}"));
            let got = encode_bundle(leaves.iter().map(Vec::as_slice)).expect("encodes");
            assert_eq!(got, want, "{tile}");
            let decoded = decode_bundle(&want).expect("decodes");
            assert_eq!(decoded.len(), usize::from(tile.width));
        }
    }

    #[test]
    fn log_300_hash_tiles_match_the_bundles() {
        let all = decimal_leaves(0..300);
        let hashes: Vec<Hash> = all.iter().map(|l| leaf_hash(l)).collect();
        let concat = |hs: &[Hash]| hs.iter().flat_map(|h| h.to_bytes()).collect::<Vec<u8>>();
        assert_eq!(read_vector("log-300/tile/0/000"), concat(&hashes[..256]));
        assert_eq!(
            read_vector("log-300/tile/0/001.p/44"),
            concat(&hashes[256..])
        );
        assert_eq!(
            read_vector("log-300/tile/1/000.p/1"),
            crate::tree::row_root(&hashes[..256]).to_bytes().to_vec()
        );
        assert_eq!(
            layout(TileKind::Hash { level: 1 }, 300).partial,
            Some(TilePath::hash(1, 0, 1).expect("in range"))
        );
    }

    #[test]
    fn bundle_rejects_oversized_entries_and_counts() {
        let big = vec![0u8; 65536];
        assert_eq!(
            encode_bundle([b"a".as_slice(), big.as_slice()]),
            Err(BundleError::EntryTooLarge {
                position: 1,
                len: 65536
            })
        );
        let max = vec![7u8; 65535];
        let encoded = encode_bundle([max.as_slice()]).expect("65535 fits");
        assert_eq!(decode_bundle(&encoded), Ok(vec![max.as_slice()]));

        let empty: &[u8] = &[];
        let full = encode_bundle(std::iter::repeat_n(empty, 256)).expect("256 fit");
        assert_eq!(full, vec![0u8; 512]);
        assert_eq!(decode_bundle(&full).map(|e| e.len()), Ok(256));
        assert_eq!(
            encode_bundle(std::iter::repeat_n(empty, 257)),
            Err(BundleError::TooManyEntries)
        );
        assert_eq!(decode_bundle(&[0u8; 514]), Err(BundleError::TooManyEntries));
    }

    #[test]
    fn bundle_rejects_truncation() {
        assert_eq!(decode_bundle(&[]), Ok(vec![]));
        assert_eq!(
            decode_bundle(&[0]),
            Err(BundleError::Truncated {
                position: 0,
                offset: 0,
                needed: 1
            })
        );
        assert_eq!(
            decode_bundle(&[0, 1, b'a', 0, 3, b'b']),
            Err(BundleError::Truncated {
                position: 1,
                offset: 5,
                needed: 2
            })
        );
    }

    fn valid_tile() -> impl Strategy<Value = TilePath> {
        let kind = prop_oneof![
            Just(TileKind::Entries),
            (0..=MAX_LEVEL).prop_map(|level| TileKind::Hash { level }),
        ];
        let index = prop_oneof![0..2000u64, any::<u64>()];
        (kind, index, 1..=FULL_WIDTH).prop_map(|(kind, index, width)| TilePath {
            kind,
            index,
            width,
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = TilePath::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_near_paths(s in "tile/(entries|[0-9x]{0,3})/[0-9x./p]{0,24}") {
            if let Ok(tile) = TilePath::parse(&s) {
                prop_assert_eq!(tile.to_string(), s);
            }
        }

        #[test]
        fn display_then_parse_is_identity(tile in valid_tile()) {
            prop_assert_eq!(TilePath::parse(&tile.to_string()), Ok(tile));
        }

        #[test]
        fn decode_bundle_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            if let Ok(entries) = decode_bundle(&bytes) {
                prop_assert_eq!(encode_bundle(entries), Ok(bytes));
            }
        }

        #[test]
        fn encode_then_decode_is_identity(
            entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..=256)
        ) {
            let encoded = encode_bundle(entries.iter().map(Vec::as_slice));
            prop_assert!(encoded.is_ok());
            let encoded = encoded.unwrap_or_default();
            let decoded = decode_bundle(&encoded);
            prop_assert_eq!(decoded, Ok(entries.iter().map(Vec::as_slice).collect::<Vec<_>>()));
        }
    }
}
