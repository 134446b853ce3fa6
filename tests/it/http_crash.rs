//! kill -9 through HTTP: clients reserve concurrently, the server is SIGKILLed at a random
//! moment, restarted on the same directory; every reservation answered 201 must be active,
//! and the cell's `reserved` must cover them all (plus at most what was in flight).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::support::Server;

const ROUNDS: usize = 3;
const CLIENTS: usize = 16;
const QTY_MAX: u64 = 3;
const LOC: &str = "WH-1";
const SKU: &str = "CRASH-1";

#[test]
fn acknowledged_reservations_survive_kill_9_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = crate::support::runtime();
    runtime.block_on(async {
        let mut acked: Vec<(String, u64)> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..ROUNDS {
            let server = Arc::new(Server::start(dir.path()));
            if round == 0 {
                server.seed(LOC, SKU, 1_000_000).await;
            }
            // Everything acknowledged before must still be there, whole.
            for (id, qty) in &acked {
                let answer = server.admin("GET", &format!("/v1/reservations/{id}"), None).await;
                assert_eq!(answer.status, 200, "round {round}: reservation {id} lost: {answer:?}");
                assert_eq!(answer.body["status"], "active", "round {round}: {answer:?}");
                assert_eq!(answer.body["lines"][0]["qty"].as_u64(), Some(*qty));
            }
            let reserved = server.cell(SKU, LOC).await["reserved"].as_u64().expect("reserved");
            let sum: u64 = acked.iter().map(|(_, qty)| qty).sum();
            assert!(reserved >= sum, "round {round}: reserved {reserved} < acknowledged {sum}");
            // Each client has at most one request in flight when the server dies.
            // Each client had at most one request in flight at each earlier kill; those may or
            // may not have been logged, but never in part.
            let in_flight_max = (CLIENTS as u64) * QTY_MAX * round as u64;
            assert!(reserved - sum <= in_flight_max, "round {round}: reserved {reserved}, acknowledged {sum}");

            let this_round = Arc::new(Mutex::new(Vec::new()));
            let mut clients = Vec::new();
            for client in 0..CLIENTS {
                let server = server.clone();
                let this_round = this_round.clone();
                clients.push(tokio::spawn(async move {
                    let mut n = 0u64;
                    loop {
                        n += 1;
                        let qty = 1 + (n + client as u64) % QTY_MAX;
                        let body = json!({"channel": "web", "ttl_seconds": 86_400,
                                          "lines": [{"sku": SKU, "qty": qty, "location": LOC}]});
                        let request = server
                            .client
                            .post(format!("{}/v1/reservations", server.base))
                            .bearer_auth(crate::support::ADMIN)
                            .json(&body)
                            .send()
                            .await;
                        let Ok(response) = request else { break };
                        if response.status().as_u16() != 201 {
                            break;
                        }
                        let Ok(value) = response.json::<serde_json::Value>().await else { break };
                        let id = value["id"].as_str().expect("id").to_owned();
                        this_round.lock().expect("acked list").push((id, qty));
                    }
                }));
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            tokio::time::sleep(Duration::from_millis(200 + seed % 500)).await;
            // Mid-request for most clients: they keep sending until the connection dies.
            server.signal(nix::sys::signal::Signal::SIGKILL);
            for client in clients {
                client.await.expect("client task");
            }
            let got = this_round.lock().expect("acked list").clone();
            assert!(!got.is_empty(), "round {round}: nothing was acknowledged");
            acked.extend(got);
            drop(server);
        }
    });
}
