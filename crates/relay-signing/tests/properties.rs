//! Property tests: every signed field is covered, no unsigned field is, and
//! canonicalisation agrees with an independent RFC 8785 implementation.

use proptest::prelude::*;
use relay_protocol::{to_raw, DeliveryInfo, Envelope, MessageType, SendMeta};
use relay_signing::{
    canonical, sign, verify, Algorithm, Ed25519Signing, HmacKey, KeyLookup, KeyStatus, Signature,
    SignedFields, SigningKey, VerifyError, DOMAIN_TAG,
};
use serde_json::{json, Map, Value};

const NOW: u64 = 1_700_000_000_000;
const WINDOW: u64 = 300_000;

/// Two keys of each algorithm, all active for every signer.
struct Keys(Vec<SigningKey>);

impl Keys {
    fn new() -> Keys {
        Keys(vec![
            HmacKey::from_secret("secret one").into(),
            HmacKey::from_secret("secret two").into(),
            Ed25519Signing::from_seed(&[1; 32]).into(),
            Ed25519Signing::from_seed(&[2; 32]).into(),
        ])
    }
}

impl KeyLookup for Keys {
    fn key(&self, _signer: &str, key_id: &str) -> KeyStatus {
        self.0
            .iter()
            .find(|k| k.key_id() == key_id)
            .map_or(KeyStatus::Unknown, |k| KeyStatus::Active(k.verify_key()))
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,12}"
}

fn meta() -> impl Strategy<Value = Option<SendMeta>> {
    prop::option::of(
        (
            prop::option::of(any::<bool>()),
            prop::option::of(any::<u32>()),
            prop::option::of(0u8..=100),
            prop::option::of(name()),
            json_value(),
        )
            .prop_map(|(requires_ack, ttl, importance, reply_to, custom)| {
                let mut meta = SendMeta {
                    requires_ack,
                    ttl_ms: ttl.map(u64::from),
                    importance,
                    reply_to,
                    ..SendMeta::default()
                };
                meta.extra.insert("custom".into(), custom);
                meta
            }),
    )
}

#[derive(Debug, Clone)]
struct Case {
    env: Envelope,
    signer: String,
    key: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just(MessageType::Send),
            Just(MessageType::ChannelMessage),
            Just(MessageType::State)
        ],
        "[a-z0-9-]{1,20}",
        name(),
        prop::option::of(name()),
        prop::option::of(name()),
        any::<String>(),
        json_value(),
        meta(),
        0usize..4,
    )
        .prop_map(|(msg_type, id, signer, to, topic, body, data, meta, key)| {
            let payload = json!({"kind": "message", "body": body, "data": data});
            let mut env = Envelope::with_raw_payload(msg_type, to_raw(&payload)).id(id);
            env.ts = NOW;
            env.to = to;
            env.topic = topic;
            env.payload_meta = meta;
            Case { env, signer, key }
        })
}

#[derive(Debug, Clone)]
enum Change {
    Type,
    From,
    To,
    Topic,
    PayloadLeaf(usize),
    PayloadMeta,
    T(u64, bool),
    MessageId,
    KeyId,
    Alg,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        Just(Change::Type),
        Just(Change::From),
        Just(Change::To),
        Just(Change::Topic),
        any::<usize>().prop_map(Change::PayloadLeaf),
        Just(Change::PayloadMeta),
        (1..=WINDOW, any::<bool>()).prop_map(|(d, up)| Change::T(d, up)),
        Just(Change::MessageId),
        Just(Change::KeyId),
        Just(Change::Alg),
    ]
}

fn signed(case: &Case, keys: &Keys) -> Signature {
    sign(&case.env, &case.signer, &keys.0[case.key], NOW).expect("generated payloads are canonical")
}

fn check(case: &Case, from: &str, sig: &Signature, keys: &Keys) -> Result<(), VerifyError> {
    verify(
        &case.env,
        from,
        case.env.to.as_deref(),
        sig,
        keys,
        NOW,
        WINDOW,
    )
}

fn leaves(v: &Value) -> usize {
    match v {
        Value::Array(items) => items.iter().map(leaves).sum(),
        Value::Object(map) => map.values().map(leaves).sum(),
        _ => 1,
    }
}

/// Replaces leaf number `n` with a different value.
fn mutate_leaf(v: &mut Value, n: &mut usize) -> bool {
    match v {
        Value::Array(items) => items.iter_mut().any(|item| mutate_leaf(item, n)),
        Value::Object(map) => map.values_mut().any(|item| mutate_leaf(item, n)),
        leaf => {
            if *n > 0 {
                *n -= 1;
                return false;
            }
            *leaf = match leaf.take() {
                Value::String(mut s) => {
                    s.push('x');
                    Value::String(s)
                }
                Value::Bool(b) => Value::Bool(!b),
                Value::Null => Value::Bool(false),
                other => Value::String(other.to_string()),
            };
            true
        }
    }
}

fn other_name(name: Option<&str>) -> Option<String> {
    match name {
        Some(n) => Some(format!("{n}x")),
        None => Some("someone".into()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_signed_envelope_verifies(case in case()) {
        let keys = Keys::new();
        let sig = signed(&case, &keys);
        prop_assert_eq!(check(&case, &case.signer, &sig, &keys), Ok(()));
        // And survives the wire.
        let mut env = case.env.clone();
        sig.attach_to(&mut env);
        let back = Envelope::from_slice(&env.to_json()).unwrap();
        let sig_back = Signature::from_envelope(&back).unwrap().unwrap();
        prop_assert_eq!(
            verify(&back, &case.signer, back.to.as_deref(), &sig_back, &keys, NOW, WINDOW),
            Ok(())
        );
    }

    #[test]
    fn any_change_to_a_signed_field_breaks_verification(case in case(), change in change()) {
        let keys = Keys::new();
        let mut sig = signed(&case, &keys);
        let mut case = case;
        let mut from = case.signer.clone();
        match change {
            Change::Type => {
                case.env.msg_type = match case.env.msg_type {
                    MessageType::Send => MessageType::ChannelMessage,
                    _ => MessageType::Send,
                };
            }
            Change::From => from.push('x'),
            Change::To => case.env.to = other_name(case.env.to.as_deref()),
            Change::Topic => case.env.topic = other_name(case.env.topic.as_deref()),
            Change::PayloadLeaf(n) => {
                let mut payload: Value = serde_json::from_str(case.env.payload.get()).unwrap();
                let mut n = n % leaves(&payload);
                prop_assert!(mutate_leaf(&mut payload, &mut n));
                case.env.payload = to_raw(&payload);
            }
            Change::PayloadMeta => {
                case.env.payload_meta = match case.env.payload_meta.take() {
                    None => Some(SendMeta::default()),
                    Some(mut meta) if meta.requires_ack.is_none() => {
                        meta.requires_ack = Some(true);
                        Some(meta)
                    }
                    Some(_) => None,
                };
            }
            Change::T(delta, up) => {
                sig.t = if up { sig.t + delta } else { sig.t - delta };
            }
            Change::MessageId => {
                sig.m.push('x');
                case.env.id.push('x');
            }
            Change::KeyId => {
                let same_alg = case.key ^ 1;
                sig.k = keys.0[same_alg].key_id().to_string();
            }
            Change::Alg => {
                sig.a = match sig.a {
                    Algorithm::HmacSha256 => Algorithm::Ed25519,
                    Algorithm::Ed25519 => Algorithm::HmacSha256,
                };
            }
        }
        let result = check(&case, &from, &sig, &keys);
        prop_assert!(result.is_err(), "{:?} still verifies", change);
        match change {
            Change::Alg => prop_assert!(matches!(result, Err(VerifyError::Malformed(_)))),
            _ => prop_assert_eq!(result, Err(VerifyError::BadSignature)),
        }
    }

    #[test]
    fn the_message_id_must_be_the_envelopes(case in case()) {
        let keys = Keys::new();
        let mut sig = signed(&case, &keys);
        sig.m.push('x');
        let result = check(&case, &case.signer, &sig, &keys);
        prop_assert!(matches!(result, Err(VerifyError::MessageIdMismatch { .. })), "{:?}", result);
    }

    #[test]
    fn unsigned_fields_may_change(
        case in case(),
        ts in any::<u64>(),
        v in any::<u32>(),
        seq in any::<u64>(),
        session in name(),
        claimed in prop::option::of(name()),
    ) {
        let keys = Keys::new();
        let sig = signed(&case, &keys);
        let mut case = case;
        case.env.ts = ts;
        case.env.v = v;
        // `from` on the wire is ignored: the signer is the authenticated name.
        case.env.from = claimed;
        case.env.delivery = Some(DeliveryInfo { seq, session_id: session, original_to: None });
        prop_assert_eq!(check(&case, &case.signer, &sig, &keys), Ok(()));
    }

    #[test]
    fn canonical_form_matches_serde_jcs(value in json_value()) {
        let ours = canonical::to_string(&value).unwrap();
        prop_assert_eq!(&ours, &serde_jcs::to_string(&value).unwrap());
        // Canonical text is a fixed point.
        prop_assert_eq!(canonical::canonicalize_str(&ours).unwrap(), ours);
    }

    #[test]
    fn member_order_in_the_text_does_not_matter(members in prop::collection::btree_map(name(), json_value(), 0..6)) {
        let forward: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
            .collect();
        let mut backward = forward.clone();
        backward.reverse();
        let a = canonical::canonicalize_str(&format!("{{{}}}", forward.join(","))).unwrap();
        let b = canonical::canonicalize_str(&format!("{{ {} }}", backward.join(" , "))).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn text_canonicalisation_matches_serde_jcs(value in json_value()) {
        let expected = serde_jcs::to_string(&value).unwrap();
        // Any formatting of the same value canonicalises the same way: compact,
        // indented, and with every non-ASCII character written as a \u escape
        // (strings that cannot be borrowed from the text, surrogate pairs).
        let compact = serde_json::to_string(&value).unwrap();
        prop_assert_eq!(&canonical::canonicalize_str(&compact).unwrap(), &expected);
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        prop_assert_eq!(&canonical::canonicalize_str(&pretty).unwrap(), &expected);
        let escaped = escape_non_ascii(&compact);
        prop_assert_eq!(&canonical::canonicalize_str(&escaped).unwrap(), &expected);
    }

    #[test]
    fn utf16_order_shortcut_agrees_with_code_units(
        prefix in tricky_string(),
        a in tricky_string(),
        b in tricky_string(),
    ) {
        let (a, b) = (format!("{prefix}{a}"), format!("{prefix}{b}"));
        prop_assert_eq!(
            canonical::cmp_utf16(&a, &b),
            a.encode_utf16().cmp(b.encode_utf16())
        );
    }

    #[test]
    fn signed_fields_are_the_canonical_form_of_their_object(
        case in case(),
        key_id in "[0-9a-f]{16}",
        t in any::<u64>(),
        ed25519 in any::<bool>(),
    ) {
        let algorithm = if ed25519 { Algorithm::Ed25519 } else { Algorithm::HmacSha256 };
        let meta = case.env.payload_meta.as_ref().map(|m| serde_json::to_string(m).unwrap());
        let fields = SignedFields {
            algorithm,
            key_id: &key_id,
            t,
            m: &case.env.id,
            msg_type: case.env.msg_type.as_str(),
            from: &case.signer,
            to: case.env.to.as_deref(),
            topic: case.env.topic.as_deref(),
            payload: case.env.payload.get(),
            payload_meta: meta.as_deref(),
        };
        // The same object built as a map and canonicalised by an independent implementation.
        let mut object = Map::new();
        object.insert("a".into(), json!(algorithm.as_str()));
        object.insert("k".into(), json!(key_id));
        object.insert("t".into(), json!(t));
        object.insert("m".into(), json!(case.env.id));
        object.insert("type".into(), json!(case.env.msg_type.as_str()));
        object.insert("from".into(), json!(case.signer));
        if let Some(to) = &case.env.to {
            object.insert("to".into(), json!(to));
        }
        if let Some(topic) = &case.env.topic {
            object.insert("topic".into(), json!(topic));
        }
        object.insert("payload".into(), serde_json::from_str(case.env.payload.get()).unwrap());
        if let Some(meta) = &meta {
            object.insert("payload_meta".into(), serde_json::from_str(meta).unwrap());
        }
        let expected = serde_jcs::to_string(&Value::Object(object)).unwrap();
        prop_assert_eq!(fields.canonical_json().unwrap(), expected.clone());
        let bytes = fields.signing_bytes().unwrap();
        prop_assert_eq!(&bytes[..DOMAIN_TAG.len()], DOMAIN_TAG);
        prop_assert_eq!(&bytes[DOMAIN_TAG.len()..], expected.as_bytes());
    }
}

/// Strings rich in the characters where UTF-8 and UTF-16 orders part: the
/// edges of U+E000..=U+FFFF and of the supplementary planes.
fn tricky_string() -> impl Strategy<Value = String> {
    let edge = prop::sample::select(vec![
        'a',
        '\u{7f}',
        '\u{80}',
        '\u{7ff}',
        '\u{800}',
        '\u{d7ff}',
        '\u{e000}',
        '\u{fb33}',
        '\u{ffff}',
        '\u{10000}',
        '\u{1f600}',
        '\u{10ffff}',
    ]);
    prop::collection::vec(prop_oneof![edge, any::<char>()], 0..4)
        .prop_map(|chars| chars.into_iter().collect())
}

/// JSON text with every non-ASCII character replaced by `\uXXXX` escapes
/// (UTF-16 code units, so supplementary characters become surrogate pairs).
/// Non-ASCII characters occur only inside strings, where escapes are valid.
fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}
