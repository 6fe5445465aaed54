//! Table-driven tests of shadow document semantics.

use serde_json::{Value, json};

use super::*;

const NOW: i64 = 1_700_000_000;

fn update(current: Option<&Document>, request: Value) -> Result<UpdateOutcome, ShadowError> {
    let request = parse_update(request.to_string().as_bytes())?;
    apply_update(current, &request, NOW, DEFAULT_MAX_SIZE)
}

fn chain(requests: &[Value]) -> Document {
    let mut doc: Option<Document> = None;
    for r in requests {
        doc = Some(update(doc.as_ref(), r.clone()).unwrap().document);
    }
    doc.unwrap()
}

#[test]
fn first_update_creates_version_one_with_metadata_and_delta() {
    let out = update(None, json!({"state": {"desired": {"color": "blue"}}, "clientToken": "t1"})).unwrap();
    assert_eq!(out.document.version, 1);
    assert_eq!(
        out.accepted,
        json!({"version": 1, "timestamp": NOW, "clientToken": "t1",
               "state": {"desired": {"color": "blue"}}, "metadata": {"desired": {"color": {"timestamp": NOW}}}})
    );
    assert_eq!(
        out.delta.unwrap(),
        json!({"version": 1, "timestamp": NOW, "clientToken": "t1",
               "state": {"color": "blue"}, "metadata": {"color": {"timestamp": NOW}}})
    );
    assert_eq!(out.documents["previous"], Value::Null);
    assert_eq!(out.documents["current"]["state"], json!({"desired": {"color": "blue"}}));
    assert_eq!(out.documents["clientToken"], "t1");
}

#[test]
fn merge_rules_table() {
    let cases: Vec<(Vec<Value>, Value)> = vec![
        // null deletes a key
        (
            vec![json!({"state": {"reported": {"a": 1, "b": 2}}}), json!({"state": {"reported": {"a": null}}})],
            json!({"reported": {"b": 2}}),
        ),
        // nested merge keeps siblings
        (
            vec![
                json!({"state": {"reported": {"o": {"x": 1, "y": 2}}}}),
                json!({"state": {"reported": {"o": {"y": 3}}}}),
            ],
            json!({"reported": {"o": {"x": 1, "y": 3}}}),
        ),
        // arrays replace whole
        (
            vec![json!({"state": {"reported": {"l": [1, 2, 3]}}}), json!({"state": {"reported": {"l": [9]}}})],
            json!({"reported": {"l": [9]}}),
        ),
        // "desired": null clears desired only
        (
            vec![json!({"state": {"desired": {"a": 1}, "reported": {"b": 2}}}), json!({"state": {"desired": null}})],
            json!({"reported": {"b": 2}}),
        ),
        // "state": null clears everything but keeps the shadow
        (vec![json!({"state": {"desired": {"a": 1}, "reported": {"b": 2}}}), json!({"state": null})], json!({})),
        // objects emptied by deletions disappear; all-null new objects are not created
        (
            vec![
                json!({"state": {"reported": {"o": {"x": 1}}}}),
                json!({"state": {"reported": {"o": {"x": null}, "n": {"z": null}}}}),
            ],
            json!({}),
        ),
        // type changes are allowed
        (
            vec![json!({"state": {"reported": {"v": {"x": 1}}}}), json!({"state": {"reported": {"v": [1]}}})],
            json!({"reported": {"v": [1]}}),
        ),
        // {} deletes a key
        (
            vec![json!({"state": {"reported": {"a": 1, "b": 2}}}), json!({"state": {"reported": {"a": {}}}})],
            json!({"reported": {"b": 2}}),
        ),
    ];
    for (requests, expected) in cases {
        let doc = chain(&requests);
        assert_eq!(doc.to_json()["state"], expected, "{requests:?}");
        assert_eq!(doc.version, requests.len() as u64);
    }
}

#[test]
fn metadata_mirrors_state_with_arrays_per_element_and_keeps_old_timestamps() {
    let first = update(None, json!({"state": {"reported": {"a": 1, "l": [1, {"x": 2}]}}})).unwrap().document;
    let second_request = parse_update(json!({"state": {"reported": {"b": 2}}}).to_string().as_bytes()).unwrap();
    let second = apply_update(Some(&first), &second_request, NOW + 10, DEFAULT_MAX_SIZE).unwrap().document;
    let meta = &second.to_json()["metadata"]["reported"];
    assert_eq!(meta["a"], json!({"timestamp": NOW}), "untouched leaves keep their timestamp");
    assert_eq!(meta["b"], json!({"timestamp": NOW + 10}));
    assert_eq!(meta["l"], json!([{"timestamp": NOW}, {"x": {"timestamp": NOW}}]));
}

#[test]
fn delta_is_desired_minus_reported_comparing_numbers_by_value() {
    let doc = chain(&[
        json!({"state": {"desired": {"n": 1, "s": "x", "o": {"p": 1, "q": 2}, "l": [1, 2]}}}),
        json!({"state": {"reported": {"n": 1.0, "s": "y", "o": {"p": 1}, "l": [1, 2]}}}),
    ]);
    let (delta, metadata) = doc.delta().unwrap();
    assert_eq!(delta, json!({"s": "x", "o": {"q": 2}}));
    assert_eq!(metadata, json!({"s": {"timestamp": NOW}, "o": {"q": {"timestamp": NOW}}}));
    let in_sync = chain(&[json!({"state": {"desired": {"a": 1}}}), json!({"state": {"reported": {"a": 1}}})]);
    assert!(in_sync.delta().is_none());
    let get = in_sync.get_payload(NOW, &Some("g".to_owned()));
    assert_eq!(get["state"], json!({"desired": {"a": 1}, "reported": {"a": 1}}));
    assert_eq!(get["clientToken"], "g");
}

#[test]
fn delta_is_published_after_every_update_while_a_difference_exists() {
    let doc = chain(&[json!({"state": {"desired": {"color": "red"}}})]);
    let out = update(Some(&doc), json!({"state": {"reported": {"other": 1}}})).unwrap();
    assert_eq!(out.delta.unwrap()["state"], json!({"color": "red"}));
}

#[test]
fn versions_are_checked_optimistically() {
    let doc = chain(&[json!({"state": {"reported": {"a": 1}}}), json!({"state": {"reported": {"a": 2}}})]);
    assert_eq!(update(Some(&doc), json!({"state": {"reported": {"a": 3}}, "version": 2})).unwrap().document.version, 3);
    let conflict =
        update(Some(&doc), json!({"state": {"reported": {"a": 3}}, "version": 1, "clientToken": "c"})).unwrap_err();
    assert_eq!(
        (conflict.code, conflict.message.as_str(), conflict.client_token.as_deref()),
        (409, "Version conflict", Some("c"))
    );
    assert_eq!(update(None, json!({"state": {}, "version": 1})).unwrap().document.version, 1);
    let invalid_version = update(None, json!({"state": {}, "version": 5})).unwrap_err();
    assert_eq!((invalid_version.code, invalid_version.message.as_str()), (400, "Invalid version"));
}

#[test]
fn malformed_requests_get_aws_errors() {
    let cases: Vec<(&[u8], u16, &str)> = vec![
        (b"", 400, "Missing update payload"),
        (b"   ", 400, "Missing update payload"),
        (b"{", 400, "Invalid JSON: "),
        (b"[1]", 400, "Invalid JSON: array found, object expected"),
        (br#"{"desired": {}}"#, 400, "Invalid JSON: state: is missing but it is required"),
        (br#"{"state": 5}"#, 400, "Invalid JSON: state: number found, object expected"),
        (br#"{"state": {"desired": [1]}}"#, 400, "Invalid JSON: state.desired: array found, object expected"),
        (br#"{"state": {"foo": 1}}"#, 400, "Invalid JSON: state: must contain desired or reported"),
        (br#"{"state": {}, "version": "1"}"#, 400, "Invalid JSON: version: string found, number expected"),
        (br#"{"state": {}, "version": -1}"#, 400, "Invalid JSON: version: must have a minimum value of 0"),
        (br#"{"state": {}, "clientToken": 7}"#, 400, "Invalid JSON: clientToken: number found, string expected"),
    ];
    for (payload, code, prefix) in cases {
        let err = parse_update(payload).unwrap_err();
        assert_eq!(err.code, code, "{}", String::from_utf8_lossy(payload));
        assert!(err.message.starts_with(prefix), "{} -> {}", String::from_utf8_lossy(payload), err.message);
    }
    let long_token = json!({"state": {}, "clientToken": "x".repeat(65)}).to_string();
    assert!(parse_update(long_token.as_bytes()).unwrap_err().message.contains("clientToken"));
    assert!(
        parse_update(json!({"state": {"delta": {"a": 1}}}).to_string().as_bytes()).is_ok(),
        "state.delta is dropped"
    );
}

#[test]
fn depth_and_size_limits() {
    let six = json!({"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}});
    assert!(update(None, six).is_ok());
    let seven = json!({"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}, "clientToken": "d"});
    let err = update(None, seven).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str(), err.client_token.as_deref()),
        (400, "JSON contains too many levels of nesting; maximum is 6", Some("d"))
    );
    let deep_array = json!({"state": {"reported": {"a": [[[[[[1]]]]]]}}});
    assert_eq!(update(None, deep_array).unwrap_err().code, 400);
    let big = json!({"state": {"reported": {"blob": "x".repeat(DEFAULT_MAX_SIZE)}}});
    let err = update(None, big).unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (413, "The payload exceeds the maximum size allowed"));
    let fits = json!({"state": {"reported": {"blob": "x".repeat(DEFAULT_MAX_SIZE - 20)}}});
    assert!(update(None, fits).is_ok());
}

#[test]
fn hostile_payloads_do_not_panic() {
    for payload in [&b"\xff\xfe"[..], b"null", b"\"state\"", b"{\"state\":{\"desired\":{\"\":null}}}"] {
        let _ = parse_update(payload);
    }
    let wide: serde_json::Map<String, Value> = (0..500).map(|i| (format!("k{i}"), json!(i))).collect();
    let out = update(None, json!({"state": {"reported": wide}})).unwrap();
    assert_eq!(out.document.version, 1);
    let nested_text = format!("{}{}{}", "{\"a\":".repeat(200), "1", "}".repeat(200));
    let request = format!("{{\"state\":{{\"desired\":{nested_text}}}}}");
    assert_eq!(parse_update(request.as_bytes()).unwrap_err().code, 400);
}

#[test]
fn stored_documents_round_trip_and_rejections_echo_tokens() {
    let doc = chain(&[json!({"state": {"desired": {"a": 1}, "reported": {"b": [1]}}})]);
    assert_eq!(Document::from_json(&doc.to_json()).unwrap(), doc);
    let rejected = ShadowError::not_found("").payload(NOW);
    assert_eq!(
        rejected,
        json!({"code": 404, "message": "No shadow exists with name: Unnamed Shadow", "timestamp": NOW})
    );
    assert_eq!(ShadowError::not_found("lamp").message, "No shadow exists with name: lamp");
    assert_eq!(
        delete_payload(3, NOW, &Some("t".to_owned())),
        json!({"version": 3, "timestamp": NOW, "clientToken": "t"})
    );
}
