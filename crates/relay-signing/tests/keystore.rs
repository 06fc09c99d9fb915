//! Key files on disk: creation, permissions, rotation, revocation, export.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use relay_protocol::Envelope;
use relay_signing::keystore::HMAC_EXPORT_NOTE;
use relay_signing::{
    sign, verify, Algorithm, KeyFile, KeyLookup, KeyStatus, Keystore, KeystoreError, VerifyError,
};

const NOW: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

fn store() -> (tempfile::TempDir, Keystore) {
    let tmp = tempfile::tempdir().unwrap();
    let ks = Keystore::new(tmp.path().join("nested/keys"));
    (tmp, ks)
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn message() -> Envelope {
    Envelope::from_slice(
        br#"{"v":1,"type":"SEND","id":"m-1","ts":1,"to":"Bob","payload":{"kind":"message","body":"hi"}}"#,
    )
    .unwrap()
}

fn verify_at(
    ks: &dyn KeyLookup,
    sig: &relay_signing::Signature,
    now: u64,
) -> Result<(), VerifyError> {
    let env = message();
    // Only the key's validity is under test here: a window wide enough for any `now`.
    verify(&env, "alice", Some("Bob"), sig, ks, now, u64::MAX)
}

#[test]
fn create_writes_a_private_file_in_a_private_directory() {
    let (_tmp, ks) = store();
    for (agent, alg) in [
        ("alice", Algorithm::Ed25519),
        ("bob", Algorithm::HmacSha256),
    ] {
        let file = ks.create(agent, alg, NOW).unwrap();
        let path = ks.path_for(agent).unwrap();
        assert_eq!(
            path.file_name().unwrap(),
            format!("{agent}.key.json").as_str()
        );
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(ks.dir()), 0o700);
        assert_eq!(ks.load(agent).unwrap(), file);
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["agent"], agent);
        assert_eq!(json["algorithm"], alg.as_str());
        assert_eq!(json["keyId"], file.key_id.as_str());
        assert_eq!(json["createdAt"], NOW);
        assert!(json.get("expiresAt").is_none());
        assert_eq!(json["retired"], serde_json::json!([]));
        assert_eq!(json["revoked"], serde_json::json!([]));
        match alg {
            Algorithm::Ed25519 => {
                assert_eq!(json["seed"].as_str().unwrap().len(), 64);
                assert_eq!(json["public"].as_str().unwrap().len(), 64);
                assert!(json.get("secret").is_none());
            }
            Algorithm::HmacSha256 => {
                assert_eq!(json["secret"].as_str().unwrap().len(), 64);
                assert!(json.get("seed").is_none());
            }
        }
        assert!(
            !format!("{file:?}").contains(file.seed.as_deref().or(file.secret.as_deref()).unwrap())
        );
    }
    // No temporary files left behind.
    let names: Vec<_> = fs::read_dir(ks.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn create_refuses_to_overwrite() {
    let (_tmp, ks) = store();
    let first = ks.create("alice", Algorithm::Ed25519, NOW).unwrap();
    assert!(matches!(
        ks.create("alice", Algorithm::HmacSha256, NOW),
        Err(KeystoreError::AlreadyExists { .. })
    ));
    assert_eq!(ks.load("alice").unwrap(), first);
}

#[test]
fn names_that_are_not_plain_file_names_are_refused() {
    let (_tmp, ks) = store();
    let (too_long, longest) = ("n".repeat(65), "n".repeat(64));
    for bad in [
        "",
        "../alice",
        "a/b",
        ".hidden",
        "..",
        "x y",
        "caf\u{e9}",
        "a\0b",
        too_long.as_str(),
    ] {
        assert!(
            matches!(ks.path_for(bad), Err(KeystoreError::BadName { .. })),
            "{bad:?} accepted"
        );
        assert!(ks.create(bad, Algorithm::Ed25519, NOW).is_err());
    }
    for good in ["alice", "Agent_1.worker-2", "_daemon", longest.as_str()] {
        assert!(ks.path_for(good).is_ok(), "{good:?} refused");
    }
}

#[test]
fn load_reports_missing_open_and_corrupt_files() {
    let (_tmp, ks) = store();
    assert!(matches!(
        ks.load("nobody"),
        Err(KeystoreError::NotFound { .. })
    ));

    ks.create("alice", Algorithm::HmacSha256, NOW).unwrap();
    let path = ks.path_for("alice").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = ks.load("alice").unwrap_err();
    assert!(matches!(
        err,
        KeystoreError::InsecurePermissions { mode: 0o644, .. }
    ));
    assert!(err.to_string().contains("chmod 600"), "{err}");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    json["keyId"] = "0000000000000000".into();
    fs::write(&path, json.to_string()).unwrap();
    assert!(matches!(
        ks.load("alice"),
        Err(KeystoreError::Corrupt { .. })
    ));

    fs::write(&path, "{not json").unwrap();
    assert!(matches!(
        ks.load("alice"),
        Err(KeystoreError::Corrupt { .. })
    ));

    // A file under another agent's name.
    let bob = ks.create("bob", Algorithm::Ed25519, NOW).unwrap();
    fs::copy(ks.path_for("bob").unwrap(), ks.path_for("carol").unwrap()).unwrap();
    let err = ks.load("carol").unwrap_err();
    assert!(
        err.to_string().contains(&format!("{:?}", bob.agent)),
        "{err}"
    );
}

#[test]
fn rotation_keeps_the_old_key_for_the_overlap_only() {
    let (_tmp, ks) = store();
    for alg in [Algorithm::Ed25519, Algorithm::HmacSha256] {
        let _ = fs::remove_file(ks.path_for("alice").unwrap());
        let old = ks.create("alice", alg, NOW).unwrap();
        let old_sig = sign(&message(), "alice", &old.signing_key(NOW).unwrap(), NOW).unwrap();
        assert_eq!(verify_at(&ks, &old_sig, NOW), Ok(()));

        let new = ks.rotate("alice", NOW + HOUR, HOUR).unwrap();
        assert_ne!(new.key_id, old.key_id);
        assert_eq!(new.algorithm, alg);
        assert_eq!(new.created_at, NOW + HOUR);
        assert_eq!(new.retired.len(), 1);
        let retired = &new.retired[0];
        assert_eq!(retired.key_id, old.key_id);
        assert_eq!(retired.retired_at, NOW + HOUR);
        assert_eq!(retired.valid_until, NOW + 2 * HOUR);
        // A retired Ed25519 key keeps its public half only.
        assert_eq!(retired.public.is_some(), alg == Algorithm::Ed25519);
        assert_eq!(retired.secret.is_some(), alg == Algorithm::HmacSha256);
        assert!(!fs::read_to_string(ks.path_for("alice").unwrap())
            .unwrap()
            .contains(old.seed.as_deref().unwrap_or("no seed")));

        assert_eq!(verify_at(&ks, &old_sig, NOW + 2 * HOUR), Ok(()));
        assert!(matches!(
            verify_at(&ks, &old_sig, NOW + 2 * HOUR + 1),
            Err(VerifyError::KeyExpired { until, .. }) if until == NOW + 2 * HOUR
        ));
        let new_sig = sign(
            &message(),
            "alice",
            &new.signing_key(NOW).unwrap(),
            NOW + 3 * HOUR,
        )
        .unwrap();
        assert_eq!(verify_at(&ks, &new_sig, NOW + 3 * HOUR), Ok(()));

        // A second rotation after the overlap drops the first key entirely.
        let newer = ks.rotate("alice", NOW + 3 * HOUR, HOUR).unwrap();
        let ids: Vec<_> = newer.retired.iter().map(|r| r.key_id.as_str()).collect();
        assert_eq!(ids, [new.key_id.as_str()]);
        assert!(matches!(
            verify_at(&ks, &old_sig, NOW),
            Err(VerifyError::UnknownKey { .. })
        ));
    }
}

#[test]
fn expiring_keys_stop_signing_and_verifying() {
    let (_tmp, ks) = store();
    let file = ks
        .create_with_expiry("alice", Algorithm::Ed25519, NOW, Some(NOW + HOUR))
        .unwrap();
    let sig = sign(&message(), "alice", &file.signing_key(NOW).unwrap(), NOW).unwrap();
    assert_eq!(verify_at(&ks, &sig, NOW + HOUR), Ok(()));
    assert!(matches!(
        verify_at(&ks, &sig, NOW + HOUR + 1),
        Err(VerifyError::KeyExpired { .. })
    ));
    assert!(matches!(
        file.signing_key(NOW + HOUR + 1),
        Err(KeystoreError::Expired { .. })
    ));
    // Rotation keeps the lifetime.
    let rotated = ks.rotate("alice", NOW + 2 * HOUR, 0).unwrap();
    assert_eq!(rotated.expires_at, Some(NOW + 3 * HOUR));
}

#[test]
fn revocation_is_immediate() {
    let (_tmp, ks) = store();
    let old = ks.create("alice", Algorithm::HmacSha256, NOW).unwrap();
    let old_sig = sign(&message(), "alice", &old.signing_key(NOW).unwrap(), NOW).unwrap();
    let new = ks.rotate("alice", NOW, HOUR).unwrap();
    let new_sig = sign(&message(), "alice", &new.signing_key(NOW).unwrap(), NOW).unwrap();

    let after = ks.revoke("alice", &old.key_id).unwrap();
    assert!(
        after.retired.is_empty(),
        "a revoked key's secret is deleted"
    );
    assert_eq!(after.revoked, [old.key_id.as_str()]);
    assert!(matches!(
        verify_at(&ks, &old_sig, NOW),
        Err(VerifyError::KeyRevoked { .. })
    ));
    assert_eq!(verify_at(&ks, &new_sig, NOW), Ok(()));

    // Revoking the current key: no more signing or verifying until rotation.
    let after = ks.revoke("alice", &new.key_id).unwrap();
    assert!(matches!(
        after.signing_key(NOW),
        Err(KeystoreError::Revoked { .. })
    ));
    assert!(matches!(
        verify_at(&ks, &new_sig, NOW),
        Err(VerifyError::KeyRevoked { .. })
    ));
    let fresh = ks.rotate("alice", NOW, HOUR).unwrap();
    assert!(fresh.retired.is_empty(), "a revoked key is not retired");
    assert!(fresh.signing_key(NOW).is_ok());

    assert!(matches!(
        ks.revoke("alice", "ffffffffffffffff"),
        Err(KeystoreError::UnknownKey { .. })
    ));
    // Revoking twice is harmless.
    assert!(ks.revoke("alice", &old.key_id).is_ok());
}

#[test]
fn public_export_never_contains_private_material() {
    let (_tmp, ks) = store();
    let ed = ks.create("alice", Algorithm::Ed25519, NOW).unwrap();
    ks.rotate("alice", NOW, HOUR).unwrap();
    let export = ks.export_public("alice").unwrap();
    let text = serde_json::to_string(&export).unwrap();
    assert!(!text.contains("seed") && !text.contains("secret"), "{text}");
    assert!(!text.contains(ed.seed.as_deref().unwrap()));
    assert!(
        text.contains(ed.public.as_deref().unwrap()),
        "the retired public key is exported"
    );
    assert!(export.public.is_some() && export.note.is_none());

    // Another machine imports it and can verify but not sign.
    let (_tmp2, other) = store();
    let imported = KeyFile::from_public_export(&export).unwrap();
    other.save(&imported).unwrap();
    let current = ks.load("alice").unwrap();
    let sig = sign(&message(), "alice", &current.signing_key(NOW).unwrap(), NOW).unwrap();
    assert_eq!(verify_at(&other, &sig, NOW), Ok(()));
    assert!(matches!(
        other.load("alice").unwrap().signing_key(NOW),
        Err(KeystoreError::VerifyOnly { .. })
    ));
    // Public-only files may be world-readable.
    fs::set_permissions(
        other.path_for("alice").unwrap(),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(other.load("alice").is_ok());

    let hmac = ks.create("bob", Algorithm::HmacSha256, NOW).unwrap();
    let export = ks.export_public("bob").unwrap();
    let text = serde_json::to_string(&export).unwrap();
    assert!(!text.contains(hmac.secret.as_deref().unwrap()));
    assert!(export.public.is_none());
    assert_eq!(export.note.as_deref(), Some(HMAC_EXPORT_NOTE));
    assert!(KeyFile::from_public_export(&export).is_err());
}

#[test]
fn list_and_key_ring_cover_every_file() {
    let (_tmp, ks) = store();
    assert!(
        ks.list().unwrap().is_empty(),
        "a missing directory lists nothing"
    );
    ks.create("carol", Algorithm::HmacSha256, NOW).unwrap();
    let alice = ks.create("alice", Algorithm::Ed25519, NOW).unwrap();
    fs::write(ks.dir().join("broken.key.json"), "[]").unwrap();
    fs::write(ks.dir().join("README"), "not a key").unwrap();

    let listed = ks.list().unwrap();
    assert_eq!(listed.len(), 3);
    let alice_summary = listed[0].as_ref().unwrap();
    assert_eq!(alice_summary.agent, "alice");
    assert!(alice_summary.can_sign);
    assert!(matches!(listed[1], Err(KeystoreError::Corrupt { .. })));
    assert_eq!(listed[2].as_ref().unwrap().agent, "carol");

    let (ring, problems) = ks.key_ring().unwrap();
    assert_eq!(ring.len(), 2);
    assert_eq!(problems.len(), 1);
    let sig = sign(&message(), "alice", &alice.signing_key(NOW).unwrap(), NOW).unwrap();
    assert_eq!(verify_at(&ring, &sig, NOW), Ok(()));
    // Keys are per signer: carol cannot use alice's key id.
    assert!(matches!(
        ring.key("carol", &alice.key_id),
        KeyStatus::Unknown
    ));
}
