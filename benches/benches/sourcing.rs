//! The sourcing planner in-process: a 3-line basket over a network of 500 locations.
//!
//! `cargo bench -p aisle-benches --bench sourcing` (SPEC target: at least 200,000 plans per
//! second). The network and the baskets are seeded, so every run plans the same inputs. Stock is
//! spread so that some baskets come from one location and others need a split (or fall short):
//! common SKUs sit at most locations, rare ones at a few, with few units each. The set-up prints
//! the mix of outcomes.

use std::hint::black_box;
use std::time::Duration;

use aisle_engine::model::{LocationDef, LocationKind};
use aisle_engine::sourcing::{plan_into, Destination, GeoPoint, Plan, Scratch, Site};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LOCATIONS: usize = 500;
const SKUS: usize = 64;
const BASKETS: usize = 4096;
const CHANNEL: &str = "web";

/// splitmix64: a tiny seeded generator, enough for spreading test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

struct Network {
    defs: Vec<LocationDef>,
    points: Vec<GeoPoint>,
    /// `stock[sku * LOCATIONS + location]`: units the channel may take.
    stock: Vec<u32>,
    baskets: Vec<Basket>,
}

struct Basket {
    skus: [usize; 3],
    qty: [u32; 3],
    destination: Destination,
}

fn network(seed: u64) -> Network {
    let mut rng = Rng(seed);
    // Locations over the Pearl River Delta: warehouses ship, most stores ship, lockers only
    // take pickups; nearly all sell on the web channel.
    let defs: Vec<LocationDef> = (0..LOCATIONS)
        .map(|i| {
            let kind = match rng.below(10) {
                0 => LocationKind::Warehouse,
                1 => LocationKind::Locker,
                _ => LocationKind::Store,
            };
            LocationDef {
                code: format!("LOC-{i:04}"),
                name: format!("Location {i}"),
                kind,
                lat: 21.8 + rng.unit() * 1.2,
                lon: 113.0 + rng.unit() * 1.6,
                channels: if rng.chance(0.95) { vec![CHANNEL.into(), "pos".into()] } else { vec!["pos".into()] },
                pickup: kind != LocationKind::Warehouse,
                ships: kind == LocationKind::Warehouse || (kind == LocationKind::Store && rng.chance(0.7)),
                priority: if kind == LocationKind::Warehouse { 0 } else { 1 },
            }
        })
        .collect();
    let points = defs.iter().map(GeoPoint::of).collect();
    // SKU i is stocked at a share of locations falling from 60% to 0.5%, 1 to 3 units where stocked
    // (warehouses hold more), so baskets of rare SKUs need splits or fall short.
    let mut stock = vec![0u32; SKUS * LOCATIONS];
    for sku in 0..SKUS {
        let share = 0.60 - 0.595 * (sku as f64 / (SKUS - 1) as f64);
        for (location, def) in defs.iter().enumerate() {
            if rng.chance(share) {
                let units = 1 + rng.below(3) as u32;
                stock[sku * LOCATIONS + location] =
                    if def.kind == LocationKind::Warehouse { units * 10 } else { units };
            }
        }
    }
    let baskets = (0..BASKETS)
        .map(|_| {
            let mut skus = [0; 3];
            for k in 0..3 {
                skus[k] = loop {
                    let sku = rng.below(SKUS as u64) as usize;
                    if !skus[..k].contains(&sku) {
                        break sku;
                    }
                };
            }
            let qty = [1 + rng.below(4) as u32, 1 + rng.below(2) as u32, 1];
            let destination = if rng.chance(0.3) {
                // A pickup at a random pickup location.
                loop {
                    let site = rng.below(LOCATIONS as u64) as usize;
                    if defs[site].pickup {
                        break Destination::Pickup { site };
                    }
                }
            } else {
                Destination::Ship { lat: 21.8 + rng.unit() * 1.2, lon: 113.0 + rng.unit() * 1.6 }
            };
            Basket { skus, qty, destination }
        })
        .collect();
    Network { defs, points, stock, baskets }
}

fn sites<'a>(network: &'a Network, channel: &str) -> Vec<Site<'a>> {
    network.defs.iter().zip(&network.points).map(|(def, &point)| Site::new(def, channel, point)).collect()
}

fn run(network: &Network, sites: &[Site<'_>], basket: &Basket, scratch: &mut Scratch, out: &mut Plan) {
    let stock = &network.stock;
    plan_into(
        sites,
        &basket.qty,
        |line, site| stock[basket.skus[line] * LOCATIONS + site],
        basket.destination,
        true,
        scratch,
        out,
    )
    .expect("valid basket");
}

fn report_mix(network: &Network, sites: &[Site<'_>]) {
    let (mut single, mut split, mut short) = (0, 0, 0);
    let (mut scratch, mut out) = (Scratch::default(), Plan::default());
    for basket in &network.baskets {
        run(network, sites, basket, &mut scratch, &mut out);
        match (out.fulfillable, out.shipments.len()) {
            (false, _) => short += 1,
            (true, 1) => single += 1,
            (true, _) => split += 1,
        }
    }
    eprintln!("sourcing baskets: {single} from one location, {split} split, {short} short (of {BASKETS})");
}

fn bench(c: &mut Criterion) {
    let network = network(0x5eed_a151e);
    let web = sites(&network, CHANNEL);
    report_mix(&network, &web);
    let mut group = c.benchmark_group("sourcing");
    group.throughput(Throughput::Elements(1));

    let (mut scratch, mut out) = (Scratch::default(), Plan::default());
    let mut n = 0usize;
    group.bench_function("plan_3_lines_500_locations", |b| {
        b.iter(|| {
            n = (n + 1) % BASKETS;
            run(&network, &web, &network.baskets[n], &mut scratch, &mut out);
            black_box(out.shipments.len())
        })
    });
    // What a caller pays when it also builds the site list per request (channel check per
    // location, points kept beside the definitions) and takes an owned plan.
    group.bench_function("plan_3_lines_500_locations_with_sites", |b| {
        b.iter(|| {
            n = (n + 1) % BASKETS;
            let basket = &network.baskets[n];
            let sites = sites(&network, black_box(CHANNEL));
            let stock = &network.stock;
            let plan = aisle_engine::sourcing::plan(
                &sites,
                &basket.qty,
                |line, site| stock[basket.skus[line] * LOCATIONS + site],
                basket.destination,
                true,
                &mut scratch,
            )
            .expect("valid basket");
            black_box(plan.shipments.len())
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
