//! Hostile input against a real server over a socket: every bad request gets
//! its status and stable `code` as `application/problem+json`, appends
//! nothing, and leaves the server serving; slow and oversized bodies are cut
//! off; and every parser of untrusted bytes is total (property tests).
//!
//! The rejections of `tests/ingest.rs` are the contract's happy-path list;
//! this file is the attacker's list. After the corpus, the tree holds exactly
//! the valid entries submitted.

mod common;

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use common::*;
use ed25519_dalek::SigningKey;
use lineage_api::HttpLimits;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::keys::KeyId;
use lineage_log::LogConfig;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Body limit of the corpus ledger: small enough to test cheaply, large
/// enough for a 100k-deep array body to reach the JSON parser.
const BODY_LIMIT: usize = 512 * 1024;
/// Most envelopes per array on the corpus ledger.
const BATCH_LIMIT: usize = 50;

fn corpus_limits() -> HttpLimits {
    HttpLimits {
        max_body_bytes: BODY_LIMIT,
        max_batch: BATCH_LIMIT,
        ..HttpLimits::default()
    }
}

/// One hostile request and what it must get.
struct Case {
    name: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// The problem's `field`, when the code names one.
    field: Option<&'static str>,
}

fn case(name: &'static str, body: Vec<u8>, status: u16, code: &'static str) -> Case {
    Case {
        name,
        body,
        status,
        code,
        field: None,
    }
}

fn at(
    name: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    field: &'static str,
) -> Case {
    Case {
        field: Some(field),
        ..case(name, body, status, code)
    }
}

fn body(env: &SignedEnvelope) -> Vec<u8> {
    serde_json::to_vec(&env.to_wire()).expect("json")
}

fn wire(env: &SignedEnvelope) -> Value {
    serde_json::to_value(env.to_wire()).expect("json")
}

/// The envelope's JSON with `edit` applied.
fn edited(env: &SignedEnvelope, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = wire(env);
    edit(&mut v);
    serde_json::to_vec(&v).expect("json")
}

/// The envelope's JSON text with one substring replaced (for shapes a
/// `Value` cannot hold: duplicate keys, raw bytes, huge numbers).
fn replaced(env: &SignedEnvelope, from: &str, to: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(body(env)).expect("utf8");
    let at = text.find(from).expect("substring present");
    let mut out = text.as_bytes()[..at].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&text.as_bytes()[at + from.len()..]);
    out
}

/// Signs raw payload bytes as an event.
fn raw_event(payload: &[u8], k: &SigningKey) -> SignedEnvelope {
    SignedEnvelope::sign(PayloadType::Event, payload.to_vec(), k)
}

/// A minimal valid first event of `workload` for runtime `agent/a`, as text,
/// with `attrs_json` (already JSON) as its attrs when given.
fn event_text(workload: &str, attrs_json: Option<&str>) -> Vec<u8> {
    let mut text = format!(
        r#"{{"runtime":"agent/a","workload":"{workload}","seq":0,"kind":"x","at":"{}""#,
        rfc3339(now())
    );
    if let Some(a) = attrs_json {
        text.push_str(r#","attrs":"#);
        text.push_str(a);
    }
    text.push('}');
    text.into_bytes()
}

fn payload_with(
    workload: &str,
    seq: u64,
    prev: Option<&str>,
    edit: impl FnOnce(&mut Value),
) -> Value {
    let mut p = event_payload("agent/a", workload, seq, prev, &[], "x");
    edit(&mut p);
    p
}

#[track_caller]
fn check_problem(name: &str, status: u16, v: &Value, want_status: u16, code: &str) {
    assert_eq!(
        (status, v["code"].as_str()),
        (want_status, Some(code)),
        "{name}: {v}"
    );
    assert_eq!(v["status"], want_status, "{name}: {v}");
    assert_eq!(
        v["type"].as_str(),
        Some(format!("urn:lineage:problem:{code}").as_str()),
        "{name}: {v}"
    );
    // Debug text never reaches a client.
    let detail = v["detail"].as_str().unwrap_or_default();
    for debug in ["KeyId(", "EventId(", "Some(", " { ", "Error {"] {
        assert!(!detail.contains(debug), "{name}: Debug text in {detail:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_corpus_gets_its_status_and_code_and_appends_only_valid_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start_with_limits(dir.path(), LogConfig::default(), corpus_limits()).await;
    let authority = key("authority");
    let rk = key("runtime-a");
    let rk2 = key("runtime-a-2");
    let rb = key("runtime-b");
    let revoked = key("revoked");
    let stranger = key("never-granted");

    // The valid entries; `valid` counts every one the ledger must hold.
    let mut valid = 0u64;
    for (runtime, k) in [
        ("agent/a", &rk),
        ("agent/b", &rb),
        ("agent/a", &revoked),
        ("agent/a", &rk2),
    ] {
        check_receipt(&l.grant(runtime, k).await, &l.verifier(), &authority);
        valid += 1;
    }
    let (s, v) = l
        .post(&governance("revoke", "agent/a", &revoked, &authority))
        .await;
    assert_eq!(s, 201, "{v}");
    valid += 1;
    let start = sign_event(
        &event_payload("agent/a", "wl", 0, None, &[], "workload.start"),
        &rk,
    );
    let (s, start_receipt) = l.post(&start).await;
    assert_eq!(s, 201, "{start_receipt}");
    check_receipt(&start_receipt, &l.verifier(), &rk);
    valid += 1;
    let start_id = event_id(&start);
    let ghost = "0".repeat(64);
    let size = l.size().await;
    assert_eq!(size, valid);

    // An envelope that would be valid: the base of the envelope-level edits.
    let fresh = sign_event(&event_payload("agent/a", "fresh", 0, None, &[], "x"), &rk);
    let fresh_text = String::from_utf8(body(&fresh)).expect("utf8");
    let payload_b64 = STANDARD.encode(&fresh.payload);
    let sig_b64 = STANDARD.encode(fresh.signature.to_bytes());
    let keyid = fresh.key_id.to_string();
    let authority_keyid = KeyId::from_public_key(&authority.verifying_key()).to_string();

    let deep_attrs = {
        // The deepest nesting that fits a payload: 16,000 levels.
        let depth = 16_000;
        let attrs = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        let p = event_text("deep", Some(&attrs));
        assert!(p.len() <= lineage_ledger::event::MAX_PAYLOAD_BYTES);
        body(&raw_event(&p, &rk))
    };
    let very_deep_attrs = {
        let depth = 100_000;
        let attrs = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        body(&raw_event(&event_text("deeper", Some(&attrs)), &rk))
    };
    let very_deep_object_body = {
        let depth = 20_000;
        let mut b = fresh_text.trim_end_matches('}').to_owned();
        b.push_str(",\"x\":");
        b.push_str(&"{\"a\":".repeat(depth));
        b.push('1');
        b.push_str(&"}".repeat(depth + 1));
        b.into_bytes()
    };
    let seventeen_parents: Vec<String> = (0..17).map(|i| format!("{i:064x}")).collect();
    let bad_sig = {
        let mut e = sign_event(
            &event_payload("agent/a", "wl", 1, Some(&start_id), &[], "x"),
            &rk,
        );
        e.payload = serde_json::to_vec(&event_payload(
            "agent/a",
            "wl",
            1,
            Some(&start_id),
            &[],
            "y",
        ))
        .expect("json");
        e
    };
    let retargeted = {
        // The accepted start event, moved to another workload under its old signature.
        let mut e = start.clone();
        let mut p: Value = serde_json::from_slice(&e.payload).expect("payload");
        p["workload"] = json!("wl-other");
        e.payload = serde_json::to_vec(&p).expect("json");
        e
    };
    let type_confused = {
        // An event payload signed under the governance payload type, sent as an event.
        let mut e = SignedEnvelope::sign(
            PayloadType::Governance,
            serde_json::to_vec(&event_payload("agent/a", "conf", 0, None, &[], "x")).expect("json"),
            &rk,
        );
        e.payload_type = PayloadType::Event;
        e
    };
    let forged_authority_keyid = {
        let mut e = governance("grant", "agent/a", &stranger, &rk);
        e.key_id = KeyId::from_public_key(&authority.verifying_key());
        e
    };
    let dup_payload_key = {
        // Two `payload` members: two readers could see two different events.
        let other = sign_event(&event_payload("agent/a", "dup-env", 0, None, &[], "x"), &rk);
        replaced(
            &fresh,
            "\"payload\":",
            format!(
                "\"payload\":\"{}\",\"payload\":",
                STANDARD.encode(&other.payload)
            )
            .as_bytes(),
        )
    };
    let big_payload = |len: usize| {
        let text = String::from_utf8(event_text("big", Some("{\"pad\":\"PAD\"}"))).expect("utf8");
        let pad = "a".repeat(len - (text.len() - 3));
        let p = text.replace("PAD", &pad).into_bytes();
        assert_eq!(p.len(), len);
        body(&raw_event(&p, &rk))
    };
    let unpadded_payload = {
        // A payload whose length is not a multiple of 3 has padding to drop.
        let e = sign_event(
            &payload_with("unpadded", 0, None, |p| p["attrs"] = json!({"p": ""})),
            &rk,
        );
        let e = if e.payload.len().is_multiple_of(3) {
            sign_event(
                &payload_with("unpadded", 0, None, |p| p["attrs"] = json!({"p": "x"})),
                &rk,
            )
        } else {
            e
        };
        let b64 = STANDARD.encode(&e.payload);
        assert!(b64.ends_with('='));
        edited(&e, |v| v["payload"] = json!(b64.trim_end_matches('=')))
    };
    let url_safe_payload = {
        // Three '?' put a '/' in the standard base64 whatever the alignment,
        // so the url-safe spelling differs.
        let e = sign_event(
            &payload_with("url", 0, None, |p| p["attrs"] = json!({"q": "???"})),
            &rk,
        );
        assert!(STANDARD.encode(&e.payload).contains('/'));
        edited(&e, |v| v["payload"] = json!(URL_SAFE.encode(&e.payload)))
    };

    // One line per case: the table reads better than rustfmt's layout of it.
    #[rustfmt::skip]
    let cases = vec![
        // Framing and JSON syntax.
        case("empty body", vec![], 400, "invalid_envelope"),
        case("whitespace only", b" \r\n\t ".to_vec(), 400, "invalid_envelope"),
        case("malformed json", b"{not json".to_vec(), 400, "invalid_envelope"),
        case("truncated envelope", fresh_text.as_bytes()[..fresh_text.len() / 2].to_vec(), 400, "invalid_envelope"),
        case("trailing garbage", format!("{fresh_text} x").into_bytes(), 400, "invalid_envelope"),
        case("two envelopes back to back", format!("{fresh_text}{fresh_text}").into_bytes(), 400, "invalid_envelope"),
        case("json null", b"null".to_vec(), 400, "invalid_envelope"),
        case("json string", b"\"envelope\"".to_vec(), 400, "invalid_envelope"),
        case("huge number body", b"1e400".to_vec(), 400, "invalid_envelope"),
        case("utf-8 bom", [b"\xef\xbb\xbf".as_slice(), fresh_text.as_bytes()].concat(), 400, "invalid_envelope"),
        case("non-utf-8 body", b"\xff\xfe\xfd{}".to_vec(), 400, "invalid_envelope"),
        case("non-utf-8 in a string", replaced(&fresh, "application/vnd", b"application/\xffvnd"), 400, "invalid_envelope"),
        case("lone surrogate escape", replaced(&fresh, "application/vnd", b"application/\\ud800vnd"), 400, "invalid_envelope"),
        // Wrong JSON types and huge numbers at the envelope level.
        case("payload is a number", edited(&fresh, |v| v["payload"] = json!(123)), 400, "invalid_envelope"),
        case("payload is null", edited(&fresh, |v| v["payload"] = Value::Null), 400, "invalid_envelope"),
        case("payloadType 1e400", replaced(&fresh, "\"application/vnd.lineage.event.v1+json\"", b"1e400"), 400, "invalid_envelope"),
        case("payloadType 2^64", replaced(&fresh, "\"application/vnd.lineage.event.v1+json\"", b"18446744073709551616"), 400, "invalid_envelope"),
        case("signatures is an object", edited(&fresh, |v| v["signatures"] = json!({"keyid": keyid, "sig": sig_b64})), 400, "invalid_envelope"),
        case("signature is an array", edited(&fresh, |v| v["signatures"] = json!([[keyid, sig_b64]])), 400, "invalid_envelope"),
        case("keyid is a number", edited(&fresh, |v| v["signatures"][0]["keyid"] = json!(7)), 400, "invalid_envelope"),
        case("unknown envelope field", edited(&fresh, |v| v["extra"] = json!(1)), 400, "invalid_envelope"),
        case("unknown signature field", edited(&fresh, |v| v["signatures"][0]["cert"] = json!("x")), 400, "invalid_envelope"),
        case("missing payloadType", edited(&fresh, |v| { v.as_object_mut().expect("obj").remove("payloadType"); }), 400, "invalid_envelope"),
        // Duplicate keys at the envelope level.
        case("duplicate payloadType", replaced(&fresh, "\"payloadType\":", b"\"payloadType\":\"application/json\",\"payloadType\":"), 400, "invalid_envelope"),
        case("duplicate payload", dup_payload_key, 400, "invalid_envelope"),
        case("duplicate keyid", replaced(&fresh, "\"keyid\":", format!("\"keyid\":\"{authority_keyid}\",\"keyid\":").as_bytes()), 400, "invalid_envelope"),
        // Base64.
        at("bad base64 payload", edited(&fresh, |v| v["payload"] = json!("!!")), 400, "invalid_envelope", "payload"),
        at("unpadded base64 payload", unpadded_payload, 400, "invalid_envelope", "payload"),
        at("non-canonical base64 payload", edited(&fresh, |v| v["payload"] = json!("e31=")), 400, "invalid_envelope", "payload"),
        at("base64 payload with a newline", edited(&fresh, |v| v["payload"] = json!(format!("{}\n{}", &payload_b64[..4], &payload_b64[4..]))), 400, "invalid_envelope", "payload"),
        at("url-safe base64 payload", url_safe_payload, 400, "invalid_envelope", "payload"),
        at("bad base64 sig", edited(&fresh, |v| v["signatures"][0]["sig"] = json!("%%%%")), 400, "invalid_envelope", "signatures[0].sig"),
        at("63-byte sig", edited(&fresh, |v| v["signatures"][0]["sig"] = json!(STANDARD.encode([1u8; 63]))), 400, "invalid_envelope", "signatures[0].sig"),
        at("upper-case keyid", edited(&fresh, |v| v["signatures"][0]["keyid"] = json!(keyid.to_uppercase())), 400, "invalid_envelope", "signatures[0].keyid"),
        at("short keyid", edited(&fresh, |v| v["signatures"][0]["keyid"] = json!(&keyid[..63])), 400, "invalid_envelope", "signatures[0].keyid"),
        // Payload type.
        at("wrong payloadType", edited(&fresh, |v| v["payloadType"] = json!("application/json")), 400, "invalid_envelope", "payloadType"),
        at("payloadType in other case", edited(&fresh, |v| v["payloadType"] = json!("application/vnd.lineage.EVENT.v1+json")), 400, "invalid_envelope", "payloadType"),
        at("in-toto payloadType", edited(&fresh, |v| v["payloadType"] = json!("application/vnd.in-toto+json")), 400, "invalid_envelope", "payloadType"),
        // Signature count.
        at("no signatures", edited(&fresh, |v| v["signatures"] = json!([])), 400, "invalid_envelope", "signatures"),
        case("missing signatures", edited(&fresh, |v| { v.as_object_mut().expect("obj").remove("signatures"); }), 400, "invalid_envelope"),
        at("two identical signatures", edited(&fresh, |v| { let s = v["signatures"][0].clone(); v["signatures"] = json!([s.clone(), s]); }), 400, "invalid_envelope", "signatures"),
        at("a second signature by a stranger", edited(&fresh, |v| {
            let other = sign_event(&event_payload("agent/a", "fresh", 0, None, &[], "x"), &stranger);
            v["signatures"].as_array_mut().expect("arr").push(wire(&other)["signatures"][0].clone());
        }), 400, "invalid_envelope", "signatures"),
        // Keys and signatures.
        at("right key, different payload", body(&bad_sig), 401, "bad_signature", "signatures[0].keyid"),
        at("another workload under the old signature", body(&retargeted), 401, "bad_signature", "signatures[0].keyid"),
        at("signed as governance, sent as event", body(&type_confused), 401, "bad_signature", "signatures[0].keyid"),
        at("all-zero signature", edited(&fresh, |v| v["signatures"][0]["sig"] = json!(STANDARD.encode([0u8; 64]))), 401, "bad_signature", "signatures[0].keyid"),
        at("unknown key", body(&sign_event(&event_payload("agent/a", "w-unknown", 0, None, &[], "x"), &stranger)), 403, "unknown_key", "signatures[0].keyid"),
        at("event signed by an authority key", body(&sign_event(&event_payload("agent/a", "w-auth", 0, None, &[], "x"), &authority)), 403, "unknown_key", "signatures[0].keyid"),
        at("grant signed by a runtime key", body(&governance("grant", "agent/a", &stranger, &rk)), 403, "unknown_key", "signatures[0].keyid"),
        at("grant naming the authority keyid, signed by a runtime key", body(&forged_authority_keyid), 401, "bad_signature", "signatures[0].keyid"),
        at("event payload under the governance type", body(&SignedEnvelope::sign(PayloadType::Governance, serde_json::to_vec(&event_payload("agent/a", "w-gov", 0, None, &[], "x")).expect("json"), &rk)), 403, "unknown_key", "signatures[0].keyid"),
        at("revoked key", body(&sign_event(&event_payload("agent/a", "w-revoked", 0, None, &[], "x"), &revoked)), 403, "revoked_key", "signatures[0].keyid"),
        at("grant of an authority key", body(&governance("grant", "agent/a", &authority, &authority)), 409, "key_conflict", "public_key"),
        at("re-grant of a revoked key", body(&governance("grant", "agent/a", &revoked, &authority)), 409, "key_conflict", "public_key"),
        at("revoke naming another runtime", body(&governance("revoke", "agent/b", &rk, &authority)), 409, "key_conflict", "public_key"),
        at("grant of a weak key", {
            let p = json!({"action": "grant", "runtime": "agent/a", "public_key": STANDARD.encode([0u8; 32]), "at": rfc3339(now())});
            body(&SignedEnvelope::sign(PayloadType::Governance, serde_json::to_vec(&p).expect("json"), &authority))
        }, 400, "invalid_payload", "public_key"),
        case("same event re-signed by another key of the runtime", body(&SignedEnvelope::sign(PayloadType::Event, start.payload.clone(), &rk2)), 409, "duplicate_event"),
        at("another runtime re-signs the event", body(&SignedEnvelope::sign(PayloadType::Event, start.payload.clone(), &rb)), 403, "runtime_mismatch", "runtime"),
        // Payload bytes and JSON.
        case("payload is not utf-8", body(&raw_event(b"{\"runtime\":\"agent/a\",\"workload\":\"\xff\"}", &rk)), 400, "invalid_payload"),
        case("payload is not json", body(&raw_event(b"runtime=agent/a", &rk)), 400, "invalid_payload"),
        case("payload is empty", body(&raw_event(b"", &rk)), 400, "invalid_payload"),
        case("payload is an array", body(&raw_event(b"[]", &rk)), 400, "invalid_payload"),
        case("payload with trailing bytes", body(&raw_event(&[event_text("trail", None), b" {}".to_vec()].concat(), &rk)), 400, "invalid_payload"),
        at("duplicate payload key", body(&raw_event(&String::from_utf8(event_text("dup", None)).expect("utf8").replacen("\"seq\":0", "\"seq\":0,\"seq\":1", 1).into_bytes(), &rk)), 400, "invalid_payload", "seq"),
        at("duplicate key inside attrs", body(&raw_event(&event_text("dup-attrs", Some(r#"{"a":{"b":1,"b":2}}"#)), &rk)), 400, "invalid_payload", "attrs.a.b"),
        case("seq 1e400", body(&raw_event(String::from_utf8(event_text("huge", None)).expect("utf8").replacen("\"seq\":0", "\"seq\":1e400", 1).as_bytes(), &rk)), 400, "invalid_payload"),
        at("seq 2^64", body(&raw_event(String::from_utf8(event_text("huge", None)).expect("utf8").replacen("\"seq\":0", "\"seq\":18446744073709551616", 1).as_bytes(), &rk)), 400, "invalid_payload", "seq"),
        at("seq -1", body(&sign_event(&payload_with("neg", 0, None, |p| p["seq"] = json!(-1)), &rk)), 400, "invalid_payload", "seq"),
        at("seq 1.0", body(&raw_event(String::from_utf8(event_text("frac", None)).expect("utf8").replacen("\"seq\":0", "\"seq\":0.0", 1).as_bytes(), &rk)), 400, "invalid_payload", "seq"),
        at("seq as a string", body(&sign_event(&payload_with("str", 0, None, |p| p["seq"] = json!("0")), &rk)), 400, "invalid_payload", "seq"),
        at("runtime is a number", body(&sign_event(&payload_with("num", 0, None, |p| p["runtime"] = json!(1)), &rk)), 400, "invalid_payload", "runtime"),
        at("attrs is null", body(&sign_event(&payload_with("null-attrs", 0, None, |p| p["attrs"] = Value::Null), &rk)), 400, "invalid_payload", "attrs"),
        at("attrs is an array", body(&sign_event(&payload_with("arr-attrs", 0, None, |p| p["attrs"] = json!([1])), &rk)), 400, "invalid_payload", "attrs"),
        at("unknown payload field", body(&sign_event(&payload_with("extra", 0, None, |p| p["extra"] = json!(1)), &rk)), 400, "invalid_payload", "extra"),
        at("kind with upper case", body(&sign_event(&payload_with("kind", 0, None, |p| p["kind"] = json!("Start")), &rk)), 400, "invalid_payload", "kind"),
        at("workload with a space", body(&sign_event(&payload_with("a b", 0, None, |_| {}), &rk)), 400, "invalid_payload", "workload"),
        at("at with an offset", body(&sign_event(&payload_with("tz", 0, None, |p| p["at"] = json!("2026-01-01T00:00:00+00:00")), &rk)), 400, "invalid_payload", "at"),
        at("17 parents", body(&sign_event(&payload_with("parents", 0, None, |p| p["parents"] = json!(seventeen_parents)), &rk)), 400, "invalid_payload", "parents"),
        at("duplicate parents", body(&sign_event(&payload_with("dup-parents", 0, None, |p| p["parents"] = json!([start_id, start_id])), &rk)), 400, "invalid_payload", "parents[1]"),
        at("prev missing at seq 1", body(&sign_event(&event_payload("agent/a", "wl", 1, None, &[], "x"), &rk)), 400, "invalid_payload", "prev"),
        at("prev present at seq 0", body(&sign_event(&event_payload("agent/a", "w-prev0", 0, Some(&start_id), &[], "x"), &rk)), 400, "invalid_payload", "prev"),
        case("16,000-deep attrs", deep_attrs, 400, "invalid_payload"),
        // Sizes.
        case("oversized attrs", body(&sign_event(&payload_with("big-attrs", 0, None, |p| p["attrs"] = json!({"blob": "a".repeat(40 * 1024)})), &rk)), 413, "payload_too_large"),
        case("payload one byte over the limit", big_payload(lineage_ledger::event::MAX_PAYLOAD_BYTES + 1), 413, "payload_too_large"),
        case("100,000-deep attrs", very_deep_attrs, 413, "payload_too_large"),
        case("20,000-deep object in an envelope", very_deep_object_body, 413, "payload_too_large"),
        case("body over the limit", vec![b' '; BODY_LIMIT + 1], 413, "payload_too_large"),
        case("array over the batch limit", serde_json::to_vec(&vec![wire(&fresh); BATCH_LIMIT + 1]).expect("json"), 413, "payload_too_large"),
        case("array that is not json", b"[1,".to_vec(), 400, "invalid_request"),
        // Lineage rules.
        at("runtime of another key", body(&sign_event(&event_payload("agent/b", "w-b", 0, None, &[], "x"), &rk)), 403, "runtime_mismatch", "runtime"),
        at("workload of another runtime", body(&sign_event(&event_payload("agent/b", "wl", 1, Some(&start_id), &[], "x"), &rb)), 403, "runtime_mismatch", "runtime"),
        at("an hour in the past", body(&sign_event(&payload_with("past", 0, None, |p| p["at"] = json!(rfc3339(now() - time::Duration::hours(1)))), &rk)), 422, "clock_skew", "at"),
        at("an hour in the future", body(&sign_event(&payload_with("future", 0, None, |p| p["at"] = json!(rfc3339(now() + time::Duration::hours(1)))), &rk)), 422, "clock_skew", "at"),
        at("equivocation", body(&sign_event(&event_payload("agent/a", "wl", 0, None, &[], "other.start"), &rk)), 409, "equivocation", "seq"),
        at("sequence gap", body(&sign_event(&event_payload("agent/a", "wl", 2, Some(&start_id), &[], "x"), &rk)), 422, "sequence_gap", "seq"),
        at("seq u64::MAX", body(&sign_event(&event_payload("agent/a", "wl", u64::MAX, Some(&start_id), &[], "x"), &rk)), 422, "sequence_gap", "seq"),
        at("first event at seq 1", body(&sign_event(&event_payload("agent/a", "w-new", 1, Some(&start_id), &[], "x"), &rk)), 422, "sequence_gap", "seq"),
        at("prev mismatch", body(&sign_event(&event_payload("agent/a", "wl", 1, Some(&ghost), &[], "x"), &rk)), 422, "prev_mismatch", "prev"),
        at("unknown parent", body(&sign_event(&event_payload("agent/a", "w-orphan", 0, None, &[&ghost], "x"), &rk)), 422, "unknown_parent", "parents[0]"),
        at("second parent unknown", body(&sign_event(&event_payload("agent/a", "w-orphan2", 0, None, &[&start_id, &ghost], "x"), &rk)), 422, "unknown_parent", "parents[1]"),
    ];
    let count = cases.len();
    for c in cases {
        let (s, v) = l.post_raw(c.body).await;
        check_problem(c.name, s, &v, c.status, c.code);
        if let Some(field) = c.field {
            assert_eq!(v["field"].as_str(), Some(field), "{}: {v}", c.name);
        }
        assert_eq!(l.size().await, size, "{} appended something", c.name);
    }
    assert!(count >= 90, "{count} cases");

    // A replay of an accepted envelope is answered with its original receipt
    // and appends nothing.
    let (s, again) = l.post(&start).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["index"], start_receipt["index"]);
    assert_eq!(again["entry"], start_receipt["entry"]);
    assert_eq!(l.size().await, size);

    // In an array, each item gets its own answer; only the valid one lands.
    let next = sign_event(
        &event_payload("agent/a", "wl", 1, Some(&start_id), &[], "tool.invoke"),
        &rk,
    );
    let items = [
        wire(&bad_sig).to_string(),
        wire(&next).to_string(),
        "\"not an envelope\"".to_owned(),
        r#"{"payloadType": 1e400}"#.to_owned(),
        wire(&start).to_string(),
        wire(&sign_event(
            &payload_with("w-arr", 0, None, |p| {
                p["parents"] = json!(seventeen_parents)
            }),
            &rk,
        ))
        .to_string(),
        // A valid envelope in serde's sequence form of a struct: refused.
        {
            let w = wire(&sign_event(&payload_with("w-seq", 0, None, |_| {}), &rk));
            json!([w["payloadType"], w["payload"], w["signatures"]]).to_string()
        },
    ];
    let (s, v) = l
        .post_raw(format!("[{}]", items.join(",")).into_bytes())
        .await;
    assert_eq!(s, 200, "{v}");
    let got: Vec<(Option<u64>, Option<&str>)> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|i| (i["index"].as_u64(), i["code"].as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (None, Some("bad_signature")),
            (Some(size), None),
            (None, Some("invalid_envelope")),
            (None, Some("invalid_envelope")),
            (start_receipt["index"].as_u64(), None),
            (None, Some("invalid_payload")),
            (None, Some("invalid_envelope")),
        ],
        "{v}"
    );
    check_receipt(&v[1], &l.verifier(), &rk);
    valid += 1;

    // Deep nesting as an array body: the body parser only splits items (no
    // recursion, no depth limit needed), and each item meets the envelope
    // checks: over the size limit, or not an envelope.
    for (depth, code, item_status) in [
        (100_000, "payload_too_large", 413),
        (30_000, "invalid_envelope", 400),
    ] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
        let (s, v) = l.post_raw(deep).await;
        assert_eq!(s, 200, "{depth}-deep array body: {v}");
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
        check_problem(
            &format!("{depth}-deep array item"),
            item_status,
            &v[0],
            item_status,
            code,
        );
        assert_eq!(l.size().await, size + 1);
    }

    // The server still serves, and the tree holds exactly the valid entries.
    let (s, info) = l.get_json("/v1/log").await;
    assert_eq!(s, 200);
    assert_eq!(info["tree_size"], valid, "{info}");
    assert_eq!(l.size().await, valid);
    l.stop().await;
}

// ---------------------------------------------------------------------------
// Slow and unbounded bodies, over raw TCP.

/// How a raw exchange ended.
#[derive(Debug)]
enum Ending {
    /// The server answered; the status line and when.
    Answered(String, Duration),
    /// The server closed the connection (or reset it) without an answer.
    Closed(Duration),
    /// Still open when the client gave up.
    StillOpen,
}

/// Sends `head`, then `trickle` one byte at a time, one byte per `pace`
/// (the read timeout paces it: no sleep), until the server answers or
/// closes, or `give_up` passes.
fn slow_request(
    addr: &str,
    head: &[u8],
    trickle: &[u8],
    pace: Duration,
    give_up: Duration,
) -> Ending {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(pace)).expect("timeout");
    if stream.write_all(head).is_err() {
        return Ending::Closed(started.elapsed());
    }
    let mut answer = Vec::new();
    let mut next = trickle.iter().cycle();
    while started.elapsed() < give_up {
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(0) if answer.is_empty() => return Ending::Closed(started.elapsed()),
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let byte = next.next().copied().unwrap_or(b' ');
                if stream.write_all(&[byte]).is_err() {
                    return Ending::Closed(started.elapsed());
                }
            }
            Err(_) => return Ending::Closed(started.elapsed()),
        }
    }
    if answer.is_empty() {
        return Ending::StillOpen;
    }
    let text = String::from_utf8_lossy(&answer);
    Ending::Answered(
        text.lines().next().unwrap_or_default().to_owned(),
        started.elapsed(),
    )
}

const SLOW_TIMEOUT: Duration = Duration::from_secs(1);
/// Slack on top of the request timeout before a slow client counts as not cut off.
const SLACK: Duration = Duration::from_secs(4);

async fn slow_ledger(dir: &std::path::Path) -> TestLedger {
    TestLedger::start_with_limits(
        dir,
        LogConfig::default(),
        HttpLimits {
            request_timeout: SLOW_TIMEOUT,
            ..corpus_limits()
        },
    )
    .await
}

#[track_caller]
fn assert_cut_off(what: &str, ending: &Ending) {
    println!("{what}: {ending:?}");
    match ending {
        Ending::Answered(line, t) => {
            assert!(
                line.starts_with("HTTP/1.1 408"),
                "{what}: answered {line:?}"
            );
            assert!(*t < SLOW_TIMEOUT + SLACK, "{what}: answered after {t:?}");
        }
        Ending::Closed(t) => assert!(*t < SLOW_TIMEOUT + SLACK, "{what}: closed after {t:?}"),
        Ending::StillOpen => panic!(
            "{what}: the connection was still open {:?} after a request timeout of {SLOW_TIMEOUT:?}",
            SLOW_TIMEOUT + SLACK
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_off_by_the_request_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = slow_ledger(dir.path()).await;
    let addr = l.url.trim_start_matches("http://").to_owned();
    let ending = tokio::task::spawn_blocking(move || {
        slow_request(
            &addr,
            b"POST /v1/entries HTTP/1.1\r\nHost: ledger\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
            b"{\"payloadType\": ",
            Duration::from_millis(100),
            SLOW_TIMEOUT + SLACK,
        )
    })
    .await
    .expect("slow client");
    assert_cut_off("slow body", &ending);
    // The server still serves and nothing was appended.
    let (s, _) = l.get("/readyz").await;
    assert_eq!(s, 200);
    assert_eq!(l.size().await, 0);
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_by_the_request_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = slow_ledger(dir.path()).await;
    let addr = l.url.trim_start_matches("http://").to_owned();
    let ending = tokio::task::spawn_blocking(move || {
        slow_request(
            &addr,
            b"POST /v1/entries HTTP/1.1\r\nHost: ledger\r\n",
            b"X-Slow: aaaaaaaaaaaaaaaa\r\n",
            Duration::from_millis(100),
            SLOW_TIMEOUT + SLACK,
        )
    })
    .await
    .expect("slow client");
    assert_cut_off("slow headers", &ending);
    l.stop().await;
}

/// Sends `head`, then only reads (whatever the server sends is ignored)
/// until the server closes the connection: when it did, or `None` if it was
/// still open at `give_up`.
fn closed_after(addr: &str, head: &[u8], give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    if stream.write_all(head).is_err() {
        return Some(started.elapsed());
    }
    let mut buf = [0u8; 1024];
    while started.elapsed() < give_up {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// A connection that never sends a byte holds a socket and a task: it must
/// be closed like a slow one, or idle connections exhaust file descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_within_the_request_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = slow_ledger(dir.path()).await;
    let addr = l.url.trim_start_matches("http://").to_owned();
    let closed =
        tokio::task::spawn_blocking(move || closed_after(&addr, b"", SLOW_TIMEOUT + SLACK))
            .await
            .expect("idle client");
    assert!(
        closed.is_some(),
        "a connection that sent nothing was still open {:?} after a request timeout of {SLOW_TIMEOUT:?}",
        SLOW_TIMEOUT + SLACK
    );
    l.stop().await;
}

/// A kept-alive connection that goes quiet after a complete request is an
/// idle connection too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_within_the_request_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = slow_ledger(dir.path()).await;
    let addr = l.url.trim_start_matches("http://").to_owned();
    let closed = tokio::task::spawn_blocking(move || {
        closed_after(
            &addr,
            b"GET /healthz HTTP/1.1\r\nHost: ledger\r\n\r\n",
            SLOW_TIMEOUT + SLACK,
        )
    })
    .await
    .expect("idle client");
    assert!(
        closed.is_some(),
        "a quiet keep-alive connection was still open {:?} after a request timeout of {SLOW_TIMEOUT:?}",
        SLOW_TIMEOUT + SLACK
    );
    l.stop().await;
}

/// The same over cleartext HTTP/2: a client that sends the connection
/// preface and then no request must not hold the connection forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_within_the_request_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = slow_ledger(dir.path()).await;
    let addr = l.url.trim_start_matches("http://").to_owned();
    let closed = tokio::task::spawn_blocking(move || {
        // The preface and an empty SETTINGS frame.
        let mut head = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        head.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        closed_after(&addr, &head, SLOW_TIMEOUT + SLACK)
    })
    .await
    .expect("idle client");
    assert!(
        closed.is_some(),
        "an HTTP/2 connection without requests was still open {:?} after a request timeout of {SLOW_TIMEOUT:?}",
        SLOW_TIMEOUT + SLACK
    );
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start_with_limits(dir.path(), LogConfig::default(), corpus_limits()).await;
    let addr = l.url.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream
            .write_all(b"POST /v1/entries HTTP/1.1\r\nHost: ledger\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            .expect("head");
        // No Content-Length: the limit must hold on the stream itself. Stop
        // just past it (no final chunk) so the server has read all we sent.
        let chunk = vec![b' '; 16 * 1024];
        let mut sent = 0;
        while sent <= BODY_LIMIT {
            let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
            c.extend_from_slice(&chunk);
            c.extend_from_slice(b"\r\n");
            if stream.write_all(&c).is_err() {
                break;
            }
            sent += chunk.len();
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("client");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        answer.contains("\"code\":\"payload_too_large\""),
        "{answer}"
    );
    assert_eq!(l.size().await, 0);
    l.stop().await;
}

/// Posts a body; status, `Retry-After` and the JSON answer.
async fn post_with_retry_after(l: &TestLedger, body: Vec<u8>) -> (u16, Option<String>, Value) {
    let r = l.send(body).await;
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, r.json().await.expect("json answer"))
}

/// A flood against a one-slot sequencer queue: what does not fit is refused
/// at once with `503 overloaded` and `Retry-After` (memory does not grow),
/// and only acknowledged entries land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_refused_with_503_overloaded_and_only_receipts_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start_with_limits(
        dir.path(),
        LogConfig {
            queue_depth: 1,
            ..LogConfig::default()
        },
        HttpLimits::default(),
    )
    .await;
    let rk = key("runtime-a");
    l.grant("agent/a", &rk).await;
    let mut landed = 1;
    let mut overloaded = 0;
    // The sequencer drains its queue while it lingers, so a refusal needs
    // requests to arrive while it commits a large batch: a few rounds of
    // one 500-envelope array racing 32 single envelopes make that certain.
    for round in 0..20 {
        let event = |w: String| sign_event(&event_payload("agent/a", &w, 0, None, &[], "x"), &rk);
        let big: Vec<Value> = (0..500)
            .map(|i| wire(&event(format!("big-{round}-{i}"))))
            .collect();
        let singles: Vec<Vec<u8>> = (0..32)
            .map(|i| body(&event(format!("one-{round}-{i}"))))
            .collect();
        let (big, singles) = tokio::join!(
            post_with_retry_after(&l, serde_json::to_vec(&big).expect("json")),
            futures::future::join_all(singles.into_iter().map(|b| post_with_retry_after(&l, b))),
        );
        for (status, retry, v) in std::iter::once(big).chain(singles) {
            match status {
                503 => {
                    check_problem("flood", status, &v, 503, "overloaded");
                    assert_eq!(retry.as_deref(), Some("1"), "{v}");
                    overloaded += 1;
                }
                201 => landed += 1,
                200 => landed += v.as_array().map_or(0, Vec::len) as u64,
                _ => panic!("{status}: {v}"),
            }
        }
        if overloaded > 0 {
            break;
        }
    }
    println!("flood: {overloaded} requests refused, {landed} entries landed");
    assert!(
        overloaded > 0,
        "20 rounds of flooding never filled the queue"
    );
    assert_eq!(l.size().await, landed);
    l.stop().await;
}

// ---------------------------------------------------------------------------
// Totality of the parsers the ledger crate's own property tests do not cover
// (they cover the envelope and payload parsers on bytes, notes, checkpoints,
// tile paths, entry bundles and log entries).

/// Arbitrary JSON values, a few levels deep, with strings that look like the
/// real thing (base64, hex IDs, timestamps, payload types) often enough.
fn json_value() -> impl Strategy<Value = Value> {
    let id = "[0-9a-f]{64}";
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        any::<String>().prop_map(Value::String),
        "[A-Za-z0-9+/]{0,12}={0,2}".prop_map(Value::String),
        id.prop_map(Value::String),
        Just(json!("application/vnd.lineage.event.v1+json")),
        Just(json!("application/vnd.lineage.grant.v1+json")),
        Just(json!("lineage-bundle/v1")),
        Just(json!(STANDARD.encode([7u8; 64]))),
        Just(json!(STANDARD.encode([7u8; 32]))),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names of the envelope, the receipt and the answers, plus noise.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "payloadType",
            "payload",
            "signatures",
            "keyid",
            "sig",
            "format",
            "event_id",
            "index",
            "entry",
            "checkpoint",
            "inclusion_proof",
            "type",
            "title",
            "status",
            "code",
            "detail",
            "field",
        ])
        .prop_map(str::to_owned),
        "[a-z]{1,3}",
    ]
}

/// JSON objects shaped like an envelope: the real field names with arbitrary
/// values, and a well-formed signature object some of the time.
fn envelope_like() -> impl Strategy<Value = Vec<u8>> {
    let signature = prop_oneof![
        json_value(),
        ("[0-9a-f]{60,66}", "[A-Za-z0-9+/]{80,90}={0,2}")
            .prop_map(|(k, s)| json!([{"keyid": k, "sig": s}])),
    ];
    (
        prop::option::of(prop_oneof![
            json_value(),
            Just(json!("application/vnd.lineage.event.v1+json"))
        ]),
        prop::option::of(prop_oneof![
            json_value(),
            "[A-Za-z0-9+/]{0,40}={0,2}".prop_map(Value::String)
        ]),
        prop::option::of(signature),
        prop::option::of(json_value()),
    )
        .prop_map(|(t, p, s, extra)| {
            let mut m = serde_json::Map::new();
            for (k, v) in [
                ("payloadType", t),
                ("payload", p),
                ("signatures", s),
                ("x", extra),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            }
            serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// `SignedEnvelope::parse` on JSON-shaped input: Ok or Err, and whatever
    /// parses re-encodes to an envelope that parses equal.
    #[test]
    fn envelope_parser_is_total_on_json_shaped_input(bytes in envelope_like()) {
        if let Ok(env) = SignedEnvelope::parse(&bytes) {
            let again = serde_json::to_vec(&env.to_wire()).expect("json");
            prop_assert_eq!(SignedEnvelope::parse(&again), Ok(env));
        }
    }

    /// The receipt parser (`lineage_schemas::Receipt` via serde_json), on bytes
    /// and on receipt-shaped objects; a parsed receipt round-trips.
    #[test]
    fn receipt_parser_is_total(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        shaped in json_value(),
    ) {
        let _ = serde_json::from_slice::<lineage_schemas::Receipt>(&bytes);
        let text = serde_json::to_vec(&shaped).expect("json");
        if let Ok(r) = serde_json::from_slice::<lineage_schemas::Receipt>(&text) {
            let again = serde_json::to_vec(&r).expect("json");
            prop_assert_eq!(serde_json::from_slice::<lineage_schemas::Receipt>(&again).ok(), Some(r));
        }
    }

    /// The answer of an array submission (`Vec<SubmitItem>`) and problem bodies.
    #[test]
    fn submit_answer_parsers_are_total(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        shaped in proptest::collection::vec(json_value(), 0..4),
    ) {
        let _ = serde_json::from_slice::<Vec<lineage_schemas::SubmitItem>>(&bytes);
        let _ = serde_json::from_slice::<lineage_schemas::Problem>(&bytes);
        let text = serde_json::to_vec(&shaped).expect("json");
        let _ = serde_json::from_slice::<Vec<lineage_schemas::SubmitItem>>(&text);
    }

    /// The small text parsers behind the envelope, payload and read API:
    /// public keys, key and event IDs, hashes, timestamps.
    #[test]
    fn text_parsers_are_total(s in any::<String>(), b64 in "[A-Za-z0-9+/]{40,46}={0,2}") {
        for text in [s.as_str(), b64.as_str()] {
            let _ = lineage_ledger::keys::parse_public_key(text);
            let _ = text.parse::<KeyId>();
            let _ = text.parse::<lineage_ledger::keys::EventId>();
            let _ = lineage_ledger::Hash::from_base64(text);
            let _ = lineage_ledger::event::parse_timestamp(text);
            let _ = lineage_ledger::event::RuntimeId::new(text);
        }
    }
}

/// Arbitrary bodies against the real server: never a 5xx, always a problem
/// body for an error, and nothing appended.
#[test]
fn arbitrary_bodies_never_fail_the_server_and_never_append() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let l = rt.block_on(TestLedger::start_with_limits(
        dir.path(),
        LogConfig::default(),
        corpus_limits(),
    ));
    let rk = key("runtime-a");
    rt.block_on(l.grant("agent/a", &rk));
    let valid = body(&sign_event(
        &event_payload("agent/a", "wl", 0, None, &[], "x"),
        &rk,
    ));
    let bodies = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1024),
        envelope_like(),
        // A valid envelope (of a granted key) with a few bytes changed.
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6).prop_map({
            let valid = valid.clone();
            move |edits| {
                let mut b = valid.clone();
                for (i, byte) in edits {
                    let i = i.index(b.len());
                    b[i] = byte;
                }
                b
            }
        }),
        proptest::collection::vec(envelope_like(), 0..4).prop_map(|items| {
            let mut b = b"[".to_vec();
            b.extend(items.join(&b","[..]));
            b.push(b']');
            b
        }),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    });
    runner
        .run(&bodies, |b| {
            let before = l.log.head().size;
            // Edits may put every byte back: that one is the valid envelope.
            let unchanged = b == valid;
            let (status, v) = rt.block_on(post_any(&l, b));
            prop_assert!(status < 500, "{status}: {v}");
            let appended = l.log.head().size - before;
            // A changed envelope is new only if its signature still holds,
            // which a random edit cannot achieve.
            prop_assert!(appended == 0 || (unchanged && appended == 1), "{}", v);
            Ok(())
        })
        .expect("property");
    rt.block_on(l.stop());
}

/// Posts any body; the answer as JSON (problems must be problem+json).
async fn post_any(l: &TestLedger, b: Vec<u8>) -> (u16, Value) {
    let r = l
        .client
        .post(format!("{}/v1/entries", l.url))
        .header("content-type", "application/json")
        .body(b)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    let problem = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json");
    let v: Value = r.json().await.expect("json answer");
    assert!(
        status < 400 || problem,
        "{status} without problem+json: {v}"
    );
    (status, v)
}

/// Every route sits behind the same guards, the explorer's pages included:
/// with `max_in_flight` 1 and a slow POST holding the only slot, pages are
/// shed with `503 overloaded` like the API, and serve again once it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explorer_pages_are_shed_like_the_api_when_the_in_flight_cap_is_reached() {
    use tokio::io::AsyncWriteExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start_with_limits(
        dir.path(),
        LogConfig::default(),
        HttpLimits {
            max_in_flight: 1,
            ..corpus_limits()
        },
    )
    .await;
    let pages = ["/v1/log", "/", "/entries", "/checkpoints"];
    for path in pages {
        assert_eq!(l.get(path).await.0, 200, "{path} before the slot is held");
    }
    let addr = l.url.trim_start_matches("http://").to_owned();
    let mut hold = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    hold.write_all(
        b"POST /v1/entries HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 1000\r\n\r\n{\"payload",
    )
    .await
    .expect("write");
    // The slow POST holds the slot once its headers are read.
    let mut held = false;
    for _ in 0..500 {
        if l.get("/v1/log").await.0 == 503 {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(held, "the slow POST never took the in-flight slot");
    for path in pages {
        let (status, body) = l.get(path).await;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(
            (status, v["code"].as_str()),
            (503, Some("overloaded")),
            "{path} while the only slot is held"
        );
    }
    drop(hold);
    let mut served = false;
    for _ in 0..500 {
        if l.get("/entries").await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        served,
        "pages did not serve again after the slot was released"
    );
    l.stop().await;
}

/// A large answer read slowly is not an idle connection: the idle bound
/// (here 1 s) must not cut a response whose bytes are still going out, even
/// after hyper has taken its whole body. A 60,000-item array answers ~14 MB
/// of problems; the client reads it at ~2 MB/s through a small receive buffer.
/// The request timeout stays at its default: building the answer took over
/// a second in a debug build on a loaded machine, and a 1 s request timeout
/// then answered `408` before any byte was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_read_slowly_is_not_cut_by_the_idle_bound() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start_with_connection_bounds(
        dir.path(),
        LogConfig::default(),
        HttpLimits {
            max_batch: 60_000,
            ..HttpLimits::default()
        },
        Duration::from_secs(1),
    )
    .await;
    let mut body = b"[".to_vec();
    body.extend_from_slice(&b"1,".repeat(59_999));
    body.extend_from_slice(b"1]");
    let addr: std::net::SocketAddr = l.url.trim_start_matches("http://").parse().expect("addr");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(64 * 1024).expect("rcvbuf");
    let mut stream = socket.connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/entries HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body).await.expect("body");
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    let started = Instant::now();
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        // ~2 MB/s: far slower than the server writes.
        tokio::time::sleep(Duration::from_millis(15)).await;
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "gave up reading"
        );
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200 "),
        "answered {:?}",
        text.lines().next()
    );
    let split = text.find("\r\n\r\n").expect("headers") + 4;
    let length: usize = text[..split]
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    assert!(length > 10_000_000, "answer of {length} bytes");
    assert_eq!(
        answer.len() - split,
        length,
        "the answer was cut after {} of {length} bytes ({:?} of reading)",
        answer.len() - split,
        started.elapsed()
    );
    l.stop().await;
}
