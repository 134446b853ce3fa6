//! `Idempotency-Key` over HTTP (SPEC §3): a key belongs to the token (by id) and to the exact
//! request (method, concrete path with its query string, body). The same request again gets
//! the first answer and changes nothing; the same key with another request is a 422
//! `invalid_request` naming the header and changes nothing; another token's key of the same
//! spelling is another key, even when the two tokens share a name.

use serde_json::{json, Value};

use crate::support::{runtime, Answer, Server, ADMIN};

const LOC: &str = "IDEM-LOC";
const SKU: &str = "IDEM-SKU";

/// One request: method, path, JSON body.
type Req = (&'static str, String, Value);

async fn send(server: &Server, token: &str, key: &str, (method, path, body): &Req) -> Answer {
    let bytes = serde_json::to_vec(body).expect("json");
    server.raw_with(method, path, Some(token), Some(bytes), &[("Idempotency-Key", key)]).await
}

async fn reserve(server: &Server) -> String {
    let hold = json!({"channel": "web", "lines": [{"sku": SKU, "qty": 1, "location": LOC}]});
    let made = server.admin("POST", "/v1/reservations", Some(hold)).await;
    assert_eq!(made.status, 201, "{made:?}");
    made.body["id"].as_str().expect("id").to_owned()
}

fn receive(qty: u32) -> Value {
    json!({"location": LOC, "sku": SKU, "qty": qty})
}

fn assert_names_the_key(answer: &Answer, what: &str) {
    assert_eq!((answer.status, answer.code()), (422, "invalid_request"), "{what}: {answer:?}");
    assert_eq!(answer.body["errors"][0]["field"], "Idempotency-Key", "{what}: {answer:?}");
}

#[test]
fn a_key_belongs_to_one_method_path_and_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        server.seed(LOC, SKU, 100).await;
        let (one, two, three) = (reserve(&server).await, reserve(&server).await, reserve(&server).await);
        let sku = json!({"name": "Idem", "price": 100});
        let cell = format!("/v1/stock/{SKU}/{LOC}");
        // (what, first request and its status, the same key with the second request and its
        // status, a GET whose answer the second request must not change).
        let cases: Vec<(&str, Req, u16, Req, u16, String)> = vec![
            (
                "another SKU code in the path",
                ("PUT", "/v1/skus/IDEM-A".into(), sku.clone()),
                201,
                ("PUT", "/v1/skus/IDEM-B".into(), sku.clone()),
                422,
                "/v1/skus/IDEM-B".into(),
            ),
            (
                "another reservation id in the path",
                ("POST", format!("/v1/reservations/{one}/commit"), json!({})),
                200,
                ("POST", format!("/v1/reservations/{two}/commit"), json!({})),
                422,
                format!("/v1/reservations/{two}"),
            ),
            (
                "another method",
                ("POST", format!("/v1/reservations/{three}/commit"), json!({})),
                200,
                ("DELETE", format!("/v1/reservations/{three}"), json!({})),
                422,
                format!("/v1/reservations/{three}"),
            ),
            (
                "another body",
                ("POST", "/v1/stock/receive".into(), receive(5)),
                200,
                ("POST", "/v1/stock/receive".into(), receive(6)),
                422,
                cell.clone(),
            ),
            (
                "another query string",
                ("POST", "/v1/stock/receive".into(), receive(5)),
                200,
                ("POST", "/v1/stock/receive?batch=2".into(), receive(5)),
                422,
                cell.clone(),
            ),
            (
                "the same request",
                ("POST", "/v1/stock/receive".into(), receive(7)),
                200,
                ("POST", "/v1/stock/receive".into(), receive(7)),
                200,
                cell.clone(),
            ),
        ];
        let mut answers = Vec::new();
        for (i, (what, first, first_status, second, second_status, probe)) in cases.iter().enumerate() {
            let key = format!("case-{i}");
            let answer = send(&server, ADMIN, &key, first).await;
            assert_eq!(answer.status, *first_status, "{what}: first request: {answer:?}");
            let before = server.admin("GET", probe, None).await;
            let again = send(&server, ADMIN, &key, second).await;
            assert_eq!(again.status, *second_status, "{what}: second request: {again:?}");
            if *second_status == 422 {
                assert_names_the_key(&again, what);
            } else {
                assert_eq!(again.body, answer.body, "{what}: a retry gets the first answer");
            }
            let after = server.admin("GET", probe, None).await;
            assert_eq!((after.status, &after.body), (before.status, &before.body), "{what}: the retry changed {probe}");
            answers.push(answer);
        }
        // What the refused requests would have done is still possible under a fresh key.
        let b = send(&server, ADMIN, "fresh-b", &("PUT", "/v1/skus/IDEM-B".into(), sku)).await;
        assert_eq!(b.status, 201, "{b:?}");
        let committed =
            send(&server, ADMIN, "fresh-2", &("POST", format!("/v1/reservations/{two}/commit"), json!({}))).await;
        assert_eq!((committed.status, &committed.body["id"]), (200, &json!(two)), "{committed:?}");
        assert_eq!(committed.body["status"], "committed");
        // 100 seeded, then 5 + 5 + 7: every receive applied exactly once.
        assert_eq!(server.cell(SKU, LOC).await["on_hand"], 117);

        // Keys and their answers survive a restart.
        server.signal(nix::sys::signal::Signal::SIGKILL);
        drop(server);
        let server = Server::start(dir.path());
        let replay = send(&server, ADMIN, "case-5", &cases[5].1).await;
        assert_eq!((replay.status, &replay.body), (200, &answers[5].body), "{replay:?}");
        assert_names_the_key(&send(&server, ADMIN, "case-3", &cases[3].3).await, "after a restart");
        assert_eq!(server.cell(SKU, LOC).await["on_hand"], 117, "nothing applied twice after the restart");
    });
}

#[test]
fn a_key_belongs_to_the_token_id_not_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        server.seed(LOC, SKU, 0).await;
        let token = |name: &'static str| {
            let server = &server;
            async move {
                let made = server.admin("POST", "/v1/tokens", Some(json!({"name": name, "role": "admin"}))).await;
                assert_eq!(made.status, 201, "{made:?}");
                (
                    made.body["id"].as_str().expect("id").to_owned(),
                    made.body["secret"].as_str().expect("secret").to_owned(),
                )
            }
        };
        let (_, other) = token("other-admin").await;
        let (twin_a_id, twin_a) = token("twin").await;
        let (twin_b_id, twin_b) = token("twin").await;
        assert_ne!(twin_a_id, twin_b_id);
        let request = ("POST", "/v1/stock/receive".to_owned(), receive(1));
        let mut expected = 0;
        for (what, first, second) in
            [("two tokens named alike", twin_a.as_str(), twin_b.as_str()), ("two tokens", ADMIN, other.as_str())]
        {
            let key = format!("shared {what}");
            for token in [first, second] {
                let answer = send(&server, token, &key, &request).await;
                assert_eq!(answer.status, 200, "{what}: {answer:?}");
                expected += 1;
                assert_eq!(server.cell(SKU, LOC).await["on_hand"], expected, "{what}: each token's request applies");
                // Each token's own retry is still a replay.
                let again = send(&server, token, &key, &request).await;
                assert_eq!((again.status, &again.body), (200, &answer.body), "{what}");
                assert_eq!(server.cell(SKU, LOC).await["on_hand"], expected, "{what}: a retry applies nothing");
            }
            // Within one token the key is still bound to its first request.
            let other_body = ("POST", "/v1/stock/receive".to_owned(), receive(2));
            assert_names_the_key(&send(&server, second, &key, &other_body).await, what);
            assert_eq!(server.cell(SKU, LOC).await["on_hand"], expected);
        }
    });
}
