//! The stylesheet and the scripts, embedded in the binary. Pages link
//! them as `/static/<name>?v=<content hash>`, so they are served with a
//! one-year immutable cache and a new build changes the URL.
//!
//! It knows no page: the route (`lib.rs`) answers a name that is not here
//! with the explorer's 404 page, whose layout links these files.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        mime: "text/css; charset=utf-8",
        body: include_str!("../static/style.css"),
    },
    Asset {
        name: "explorer.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../static/explorer.js"),
    },
    Asset {
        name: "verify.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../static/verify.js"),
    },
    Asset {
        name: "health.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../static/health.js"),
    },
    Asset {
        name: "console.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../static/console.js"),
    },
];

/// FNV-1a, 64-bit: a cache-busting tag, not a security property.
const fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

/// The versioned URL of an asset.
pub(crate) fn url(name: &str) -> String {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => format!("/static/{}?v={:012x}", a.name, fnv(a.body.as_bytes()) >> 16),
        None => format!("/static/{name}"),
    }
}

/// The response serving asset `name`: its body, type and a one-year
/// immutable cache; `None` when there is no such asset.
pub(crate) fn response(name: &str) -> Option<Response> {
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    let mut r = asset.body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(r)
}
