//! Prints `verify_strict_per_second <rate>`: ed25519-dalek 3 `verify_strict`
//! on all cores over about `--secs` seconds (default 3), 1,024 pre-signed
//! messages of realistic length, every verdict checked.

use std::time::Instant;

use ed25519_dalek::{Signature, Signer, SigningKey};
use rayon::prelude::*;

fn main() {
    let mut secs = 3.0_f64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--secs", Some(v)) => secs = v.parse().unwrap_or(secs),
            _ => {
                eprintln!("usage: lineage-yardstick [--secs S]");
                std::process::exit(2);
            }
        }
    }
    let key = SigningKey::from_bytes(&[42; 32]);
    let public = key.verifying_key();
    let msgs: Vec<(Vec<u8>, Signature)> = (0..1024u32)
        .map(|i| {
            let m = format!("yardstick message {i} with some realistic length padding ......")
                .into_bytes();
            let s = key.sign(&m);
            (m, s)
        })
        .collect();
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed().as_secs_f64() < secs {
        done += msgs
            .par_iter()
            .filter(|(m, s)| public.verify_strict(m, s).is_ok())
            .count();
    }
    let rate = done as f64 / start.elapsed().as_secs_f64();
    println!("verify_strict_per_second {rate:.0}");
    println!("threads {}", rayon::current_num_threads());
}
