//! Set-up shared by the engine's integration tests.
#![allow(dead_code)]

use aisle_engine::command::Receive;
use aisle_engine::model::{LocationDef, LocationKind, SkuDef};
use aisle_engine::{Context, Engine};

pub fn location(code: &str) -> LocationDef {
    LocationDef {
        code: code.into(),
        name: format!("Location {code}"),
        kind: LocationKind::Warehouse,
        lat: 22.3,
        lon: 114.2,
        channels: vec!["web".into(), "pos".into()],
        pickup: true,
        ships: true,
        priority: 0,
    }
}

pub fn sku(code: &str) -> SkuDef {
    SkuDef { code: code.into(), name: format!("Sku {code}"), price: 1000, attributes: vec![], active: true }
}

/// Creates locations and SKUs and puts `qty` of every SKU at every location.
pub fn seed(engine: &Engine, locations: &[&str], skus: &[&str], qty: u32) {
    let ctx = Context::actor("seed");
    for code in locations {
        engine.wait(engine.put_location(ctx, location(code)).expect("location")).expect("durable");
    }
    for code in skus {
        engine.wait(engine.put_sku(ctx, sku(code)).expect("sku")).expect("durable");
        for loc in locations {
            if qty > 0 {
                let receive = Receive {
                    sku: (*code).into(),
                    location: (*loc).into(),
                    qty,
                    unit_cost: None,
                    lot: None,
                    reason: None,
                };
                engine.wait(engine.receive(ctx, receive).expect("receive")).expect("durable");
            }
        }
    }
}

/// Everything observable about the given SKUs and reservations, as one comparable string.
pub fn digest(engine: &Engine, skus: &[&str], reservations: u64) -> String {
    let mut out = String::new();
    for sku in skus {
        match engine.stock(sku) {
            Ok(stock) => out.push_str(&format!("{:?}\n", stock.locations)),
            Err(_) => out.push_str(&format!("{sku}: none\n")),
        }
    }
    for id in 1..=reservations {
        out.push_str(&format!("{:?}\n", engine.reservation(id)));
    }
    out
}
