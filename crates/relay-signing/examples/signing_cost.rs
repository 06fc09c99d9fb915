//! Cost of each step of signing and verifying one benchmark-sized message
//! (the SEND that `agent-relay bench throughput --sign hmac-sha256` sends:
//! a 100-byte body), in microseconds per message.
//!
//! ```text
//! cargo run --release -p relay-signing --example signing_cost
//! ```
//!
//! The steps run in tight loops with warm caches, so the numbers are a floor:
//! inside the daemon the same work costs more (see docs/PERFORMANCE.md).

use std::error::Error;
use std::hint::black_box;
use std::time::Instant;

use relay_protocol::{to_raw, Envelope, MessageType, PayloadKind, SendPayload};
use relay_signing::{
    sign, signing_bytes_for, verify, Ed25519Signing, HmacKey, KeyLookup, KeyStatus, ReplayCache,
    SignatureRef, SigningKey,
};

const ROUNDS: u32 = 50_000;
const NOW: u64 = 1_700_000_000_000;
const WINDOW: u64 = 300_000;
const SIGNER: &str = "bench-s1-k3x9";
/// Signed messages the replay cache holds in the last measurement.
const HELD_IN_WINDOW: u32 = 320_000;

/// Every signer holds the one key.
struct OneKey(SigningKey);

impl KeyLookup for OneKey {
    fn key(&self, _signer: &str, _key_id: &str) -> KeyStatus {
        KeyStatus::Active(self.0.verify_key())
    }
}

/// Runs `step` [`ROUNDS`] times and prints its mean cost.
fn measure(name: &str, step: impl FnMut(u32)) {
    measure_times(name, ROUNDS, step);
}

/// Runs `step` `rounds` times and prints its mean cost.
fn measure_times(name: &str, rounds: u32, mut step: impl FnMut(u32)) {
    let start = Instant::now();
    for i in 0..rounds {
        step(i);
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("{name:<34} {micros:>6.3} µs");
}

fn main() -> Result<(), Box<dyn Error>> {
    measure_algorithm(HmacKey::generate()?.into())?;
    println!();
    measure_algorithm(Ed25519Signing::generate()?.into())
}

fn measure_algorithm(key: SigningKey) -> Result<(), Box<dyn Error>> {
    let body = format!("12:345:{}", "x".repeat(92));
    let payload = SendPayload {
        kind: PayloadKind::Message,
        body,
        data: None,
        thread: None,
    };
    let mut env = Envelope::with_raw_payload(MessageType::Send, to_raw(&payload))
        .id("01JDX5V7Q8ZK2M3N4P5R6S7T8V")
        .to("bench-r1-k3x9");
    let keys = OneKey(key.clone());

    let unsigned_frame = env.to_json();
    let sig = sign(&env, SIGNER, &key, NOW)?;
    sig.attach_to(&mut env);
    let frame = env.to_json();
    let signed = signing_bytes_for(&env, SIGNER, env.to.as_deref(), &sig)?;
    println!(
        "{}, {}-byte frame, {} signed bytes, {ROUNDS} rounds each",
        key.algorithm(),
        frame.len(),
        signed.len()
    );

    measure("sender: sign (canonical + MAC)", |_| {
        black_box(sign(&env, SIGNER, &key, NOW).ok());
    });
    measure("sender: attach _sig", |_| {
        black_box(sig.to_json());
    });
    measure("daemon: parse the frame unsigned", |_| {
        black_box(Envelope::from_slice(&unsigned_frame).ok());
    });
    measure("daemon: parse the frame", |_| {
        black_box(Envelope::from_slice(&frame).ok());
    });
    measure("daemon: parse _sig", |_| {
        black_box(SignatureRef::from_envelope(&env).ok());
    });
    measure("daemon: canonical signed bytes", |_| {
        black_box(signing_bytes_for(&env, SIGNER, env.to.as_deref(), &sig).ok());
    });
    let verify_key = key.verify_key();
    let signature = key.sign_bytes(&signed);
    measure("daemon: check the signed bytes", |_| {
        black_box(verify_key.verify(&signed, &signature));
    });
    measure("daemon: parse _sig + verify", |_| {
        if let Ok(Some(s)) = SignatureRef::from_envelope(&env) {
            black_box(verify(&env, SIGNER, env.to.as_deref(), &s, &keys, NOW, WINDOW).ok());
        }
    });
    let ids: Vec<String> = (0..ROUNDS)
        .map(|i| format!("01JDX5V7Q8ZK2M3{i:011}"))
        .collect();
    let mut cache = ReplayCache::default();
    measure("daemon: replay cache check + insert", |i| {
        let id = &ids[i as usize];
        black_box(cache.check_and_insert(SIGNER, id, NOW, NOW, WINDOW).ok());
    });
    // What a busy daemon's cache holds: a throughput run's 320,000 signed messages are all
    // inside the window, so each new id probes a table far larger than the CPU's caches. First
    // the cost of filling it from empty (growth included), then of 50,000 more once ~270,000
    // are held.
    let held: Vec<String> = (0..HELD_IN_WINDOW)
        .map(|i| format!("01JDX5V7Q8ZK2M4{i:011}"))
        .collect();
    let mut cache = ReplayCache::default();
    measure_times("daemon: replay cache, fill to 320k", HELD_IN_WINDOW, |i| {
        let id = &held[i as usize];
        black_box(cache.check_and_insert(SIGNER, id, NOW, NOW, WINDOW).ok());
    });
    let mut cache = ReplayCache::default();
    for id in &held[..(HELD_IN_WINDOW - ROUNDS) as usize] {
        black_box(cache.check_and_insert(SIGNER, id, NOW, NOW, WINDOW).ok());
    }
    measure("daemon: replay cache, 270k held", |i| {
        let id = &ids[i as usize];
        black_box(cache.check_and_insert(SIGNER, id, NOW, NOW, WINDOW).ok());
    });
    Ok(())
}
