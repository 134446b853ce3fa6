//! Sourcing over HTTP: quotes and sourced reservations use the same plan, a POS token sources
//! only for pickup at its store, and many clients reserving unlocated lines for the same SKUs
//! at once never oversell a cell, each grant's plan being valid when it was made.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::support::{runtime, Server};

/// (code, lat, lon, channels, pickup, ships, priority)
type LocationRow = (&'static str, f64, f64, &'static [&'static str], bool, bool, i32);

/// Hong Kong: a warehouse far out, two shipping stores, a pickup-only store, a POS-only store.
const NETWORK: &[LocationRow] = &[
    ("WH-TSING-YI", 22.355, 114.105, &["web", "app"], false, true, 5),
    ("ST-CENTRAL", 22.282, 114.158, &["web", "pos"], true, true, 1),
    ("ST-MONGKOK", 22.319, 114.169, &["web", "pos"], true, true, 1),
    ("ST-CAUSEWAY", 22.280, 114.184, &["web", "pos"], true, false, 1),
    ("ST-POS-ONLY", 22.300, 114.172, &["pos"], true, true, 0),
];

async fn build_network(server: &Server, stock: &[(&str, &str, u32)]) {
    for (code, lat, lon, channels, pickup, ships, priority) in NETWORK {
        let body = json!({"name": code, "kind": "store", "lat": lat, "lon": lon, "channels": channels,
                          "pickup": pickup, "ships": ships, "priority": priority});
        let answer = server.admin("PUT", &format!("/v1/locations/{code}"), Some(body)).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    for sku in ["TEE", "CAP", "MUG"] {
        let answer = server.admin("PUT", &format!("/v1/skus/{sku}"), Some(json!({"name": sku, "price": 1000}))).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    for (sku, location, qty) in stock {
        let body = json!({"location": location, "sku": sku, "qty": qty});
        let answer = server.admin("POST", "/v1/stock/receive", Some(body)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
}

/// `{location: [(sku, qty)]}` of a quote's shipments or a reservation's lines.
fn by_location(lines: &Value) -> HashMap<String, Vec<(String, u64)>> {
    let mut out: HashMap<String, Vec<(String, u64)>> = HashMap::new();
    for line in lines.as_array().expect("lines") {
        let location = line["location"].as_str().expect("location").to_owned();
        out.entry(location)
            .or_default()
            .push((line["sku"].as_str().expect("sku").to_owned(), line["qty"].as_u64().expect("qty")));
    }
    for lines in out.values_mut() {
        lines.sort();
    }
    out
}

#[test]
fn quote_and_sourced_reservation_agree_and_respect_the_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        build_network(
            &server,
            &[
                ("TEE", "WH-TSING-YI", 100),
                ("CAP", "WH-TSING-YI", 100),
                ("TEE", "ST-MONGKOK", 2),
                ("CAP", "ST-MONGKOK", 1),
                ("TEE", "ST-CAUSEWAY", 50),
                ("CAP", "ST-CAUSEWAY", 50),
                ("TEE", "ST-POS-ONLY", 50),
            ],
        )
        .await;
        // Shipping to Causeway Bay: the Causeway store does not ship, the POS-only store does not
        // sell to web; Mong Kok has too little, so the far warehouse fills everything.
        let basket = json!([{"sku": "TEE", "qty": 2}, {"sku": "CAP", "qty": 2}]);
        let ship = json!({"type": "ship", "to": {"lat": 22.280, "lon": 114.185}});
        let quote = server
            .admin("POST", "/v1/sourcing/quote", Some(json!({"channel": "web", "lines": basket, "fulfillment": ship})))
            .await;
        assert_eq!(quote.status, 200, "{quote:?}");
        assert_eq!(quote.body["fulfillable"], true);
        let shipments = quote.body["shipments"].as_array().expect("shipments");
        assert_eq!(shipments.len(), 1, "{quote:?}");
        assert_eq!(shipments[0]["location"], "WH-TSING-YI");
        assert!(shipments[0]["distance_km"].as_f64().is_some_and(|d| d > 5.0), "{quote:?}");

        // Picked up at Causeway Bay, which holds both: everything comes from there.
        let pickup = json!({"type": "pickup", "location": "ST-CAUSEWAY"});
        let body = json!({"channel": "web", "lines": basket, "fulfillment": pickup});
        let quote = server.admin("POST", "/v1/sourcing/quote", Some(body.clone())).await;
        assert_eq!(quote.body["shipments"][0]["location"], "ST-CAUSEWAY", "{quote:?}");
        assert_eq!(quote.body["shipments"][0]["distance_km"], 0.0);
        let reserved = server.admin("POST", "/v1/reservations", Some(body)).await;
        assert_eq!(reserved.status, 201, "{reserved:?}");
        let lines = by_location(&reserved.body["lines"]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines["ST-CAUSEWAY"], vec![("CAP".into(), 2), ("TEE".into(), 2)]);

        // Without splitting, a basket no single location fills is short, naming the best one.
        let big = json!({"channel": "web", "lines": [{"sku": "TEE", "qty": 120}], "fulfillment": ship,
                         "allow_split": false});
        let quote = server.admin("POST", "/v1/sourcing/quote", Some(big.clone())).await;
        assert_eq!((quote.status, quote.body["fulfillable"].as_bool()), (200, Some(false)), "{quote:?}");
        let refused = server.admin("POST", "/v1/reservations", Some(big)).await;
        assert_eq!((refused.status, refused.code()), (409, "insufficient_stock"), "{refused:?}");
        assert_eq!(refused.body["shortfalls"][0]["requested"], 120);
        // With splitting it is filled from the warehouse and Mong Kok (most units first).
        let split = json!({"channel": "web", "lines": [{"sku": "TEE", "qty": 101}], "fulfillment": ship});
        let reserved = server.admin("POST", "/v1/reservations", Some(split)).await;
        assert_eq!(reserved.status, 201, "{reserved:?}");
        let lines = by_location(&reserved.body["lines"]);
        assert_eq!(lines["WH-TSING-YI"], vec![("TEE".into(), 100)]);
        assert_eq!(lines["ST-MONGKOK"], vec![("TEE".into(), 1)]);

        // A pickup at a location that takes no pickups conflicts with the catalog as it is.
        let body = json!({"channel": "web", "lines": [{"sku": "TEE", "qty": 1}],
                          "fulfillment": {"type": "pickup", "location": "WH-TSING-YI"}});
        let answer = server.admin("POST", "/v1/sourcing/quote", Some(body)).await;
        assert_eq!((answer.status, answer.code()), (409, "conflict"), "{answer:?}");

        // A POS token sources only for pickup at its own store.
        let token = server
            .admin("POST", "/v1/tokens", Some(json!({"name": "till-1", "role": "pos", "location": "ST-POS-ONLY"})))
            .await;
        assert_eq!(token.status, 201, "{token:?}");
        let secret = token.body["secret"].as_str().expect("secret").to_owned();
        let here = json!({"channel": "pos", "lines": [{"sku": "TEE", "qty": 3}],
                          "fulfillment": {"type": "pickup", "location": "ST-POS-ONLY"}});
        let answer = server.call("POST", "/v1/reservations", &secret, Some(here)).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        assert_eq!(by_location(&answer.body["lines"])["ST-POS-ONLY"], vec![("TEE".into(), 3)]);
        let elsewhere = json!({"channel": "pos", "lines": [{"sku": "TEE", "qty": 1}], "fulfillment": ship});
        let answer = server.call("POST", "/v1/reservations", &secret, Some(elsewhere)).await;
        assert_eq!((answer.status, answer.code()), (403, "forbidden"), "{answer:?}");
    });
}

#[test]
fn concurrent_sourced_reservations_never_oversell() {
    const CLIENTS: usize = 32;
    const ROUNDS: usize = 40;
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Arc::new(Server::start(dir.path()));
        let stock: Vec<(&str, &str, u32)> = ["TEE", "CAP"]
            .iter()
            .flat_map(|sku| {
                [("WH-TSING-YI", 60), ("ST-CENTRAL", 25), ("ST-MONGKOK", 15), ("ST-CAUSEWAY", 40)]
                    .into_iter()
                    .map(move |(location, qty)| (*sku, location, qty))
            })
            .collect();
        build_network(&server, &stock).await;
        let granted: Arc<Mutex<Vec<Value>>> = Arc::default();
        let mut tasks = Vec::new();
        for client in 0..CLIENTS {
            let (server, granted) = (server.clone(), granted.clone());
            tasks.push(tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let n = client * ROUNDS + round;
                    let fulfillment = if n % 3 == 0 {
                        json!({"type": "pickup", "location": "ST-CAUSEWAY"})
                    } else {
                        json!({"type": "ship", "to": {"lat": 22.28 + (n % 7) as f64 * 0.01, "lon": 114.16}})
                    };
                    let body = json!({"channel": "web", "ttl_seconds": 3600, "fulfillment": fulfillment,
                                      "allow_split": n % 4 != 0,
                                      "lines": [{"sku": "TEE", "qty": 1 + n % 3}, {"sku": "CAP", "qty": 1 + n % 2}]});
                    let answer = server.admin("POST", "/v1/reservations", Some(body)).await;
                    match answer.status {
                        201 => granted.lock().expect("granted").push(answer.body),
                        409 => assert_eq!(answer.code(), "insufficient_stock", "{answer:?}"),
                        other => panic!("unexpected {other}: {answer:?}"),
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("client");
        }
        let granted = granted.lock().expect("granted").clone();
        assert!(!granted.is_empty());
        let mut held: HashMap<(String, String), u64> = HashMap::new();
        for grant in &granted {
            for line in grant["lines"].as_array().expect("lines") {
                let location = line["location"].as_str().expect("location");
                let row = NETWORK.iter().find(|row| row.0 == location).expect("a known location");
                assert!(row.3.contains(&"web"), "{location} does not sell to web: {grant}");
                assert!(row.5 || location == "ST-CAUSEWAY", "{location} does not ship: {grant}");
                let key = (line["sku"].as_str().expect("sku").to_owned(), location.to_owned());
                *held.entry(key).or_default() += line["qty"].as_u64().expect("qty");
            }
        }
        for (sku, location, qty) in &stock {
            let cell = server.cell(sku, location).await;
            let held = held.get(&((*sku).to_owned(), (*location).to_owned())).copied().unwrap_or(0);
            assert_eq!(cell["reserved"].as_u64(), Some(held), "{sku}@{location}: {cell}");
            assert!(held <= u64::from(*qty), "{sku}@{location} oversold: {held} of {qty}");
            assert_eq!(cell["available"].as_u64(), Some(u64::from(*qty) - held));
        }
        let total: u64 = held.values().sum();
        let supply: u64 = stock.iter().map(|s| u64::from(s.2)).sum();
        assert!(total > supply / 2, "the stampede used most of the stock: {total} of {supply}");
    });
}

#[test]
fn availability_for_pos_terminals() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        build_network(
            &server,
            &[
                ("TEE", "WH-TSING-YI", 100),
                ("TEE", "ST-MONGKOK", 2),
                ("TEE", "ST-POS-ONLY", 5),
                ("CAP", "ST-CENTRAL", 1),
            ],
        )
        .await;
        let answer = server
            .admin("GET", "/v1/availability?skus=TEE,CAP,MUG&location=ST-CENTRAL&channel=web&limit=1", None)
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let items = answer.body["items"].as_array().expect("items");
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["sku"], "TEE");
        assert_eq!(items[0]["here"]["available"], 0);
        assert_eq!(items[0]["nearby"][0]["location"], "ST-MONGKOK", "nearest with stock: {answer:?}");
        assert_eq!(items[0]["nearby"].as_array().map(Vec::len), Some(1), "limit 1");
        assert_eq!(items[0]["network"], 102, "ST-POS-ONLY does not sell to web");
        assert_eq!((items[1]["here"]["available"].as_i64(), items[1]["network"].as_i64()), (Some(1), Some(1)));
        assert_eq!(items[2]["network"], 0);

        // A POS token answers for its own store by default.
        let token = server
            .admin("POST", "/v1/tokens", Some(json!({"name": "till-2", "role": "pos", "location": "ST-POS-ONLY"})))
            .await;
        let secret = token.body["secret"].as_str().expect("secret").to_owned();
        let answer = server.call("GET", "/v1/availability?skus=TEE&channel=pos", &secret, None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body["items"][0]["here"]["location"], "ST-POS-ONLY");
        assert_eq!(answer.body["items"][0]["here"]["available"], 5);

        // Valuation: on hand × moving-average cost, per location.
        let body = json!({"location": "ST-CENTRAL", "sku": "MUG", "qty": 4, "unit_cost": 250});
        assert_eq!(server.admin("POST", "/v1/stock/receive", Some(body)).await.status, 200);
        let report = server.admin("GET", "/v1/stock/valuation?location=ST-CENTRAL", None).await;
        assert_eq!(report.status, 200, "{report:?}");
        assert_eq!(report.body["locations"][0]["location"], "ST-CENTRAL");
        assert_eq!((report.body["on_hand"].as_i64(), report.body["value"].as_i64()), (Some(5), Some(1000)));
        let report = server.admin("GET", "/v1/stock/valuation", None).await;
        assert_eq!(report.body["on_hand"], 112, "{report:?}");
        let wrong = server.admin("GET", "/v1/stock/valuation?location=NOWHERE", None).await;
        assert_eq!(wrong.status, 404);

        for (query, status) in [
            ("skus=NOPE", 404),
            ("skus=TEE&near=north", 422),
            ("skus=TEE&limit=-1", 422),
            ("skus=TEE&limit=1000", 422),
            ("skus=TEE&colour=red", 422),
            ("", 422),
        ] {
            let answer = server.admin("GET", &format!("/v1/availability?{query}"), None).await;
            assert_eq!(answer.status, status, "{query}: {answer:?}");
        }
    });
}
