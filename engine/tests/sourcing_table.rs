//! The sourcing planner (SPEC §3 "Sourcing"), case by case: each case states the exact plan —
//! which location every line comes from, in which shipment order, and every shortfall — and a
//! property test checks the plan's invariants on random networks.

use std::cell::RefCell;

use aisle_engine::sourcing::{
    haversine_km, plan, plan_into, Destination, GeoPoint, Plan, PlanError, Scratch, Site, EARTH_RADIUS_KM,
};
use proptest::prelude::*;

/// A location of a case, with its stock per line.
#[derive(Debug, Clone)]
struct Loc {
    code: &'static str,
    lat: f64,
    lon: f64,
    priority: i32,
    sells: bool,
    ships: bool,
    pickup: bool,
    stock: Vec<u32>,
}

/// A location on the equator, `lon` degrees east of the default destination (0, 0): about
/// 111 km per degree, so a larger `lon` is farther.
fn loc(code: &'static str, lon: f64, stock: &[u32]) -> Loc {
    Loc { code, lat: 0.0, lon, priority: 0, sells: true, ships: true, pickup: true, stock: stock.to_vec() }
}

impl Loc {
    fn at(mut self, lat: f64, lon: f64) -> Self {
        (self.lat, self.lon) = (lat, lon);
        self
    }
    fn prio(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    fn not_selling(mut self) -> Self {
        self.sells = false;
        self
    }
    fn not_shipping(mut self) -> Self {
        self.ships = false;
        self
    }
    fn no_pickup(mut self) -> Self {
        self.pickup = false;
        self
    }
}

#[derive(Debug, Clone, Copy)]
enum Dest {
    Ship(f64, f64),
    Pickup(&'static str),
    PickupIndex(usize),
}

const HOME: Dest = Dest::Ship(0.0, 0.0);

/// (line, qty)
type Lines = &'static [(usize, u32)];

#[derive(Debug)]
enum Expect {
    Error(PlanError),
    /// Shipments in order as (location, allocations), shortfalls as
    /// (line, requested, available, location).
    Plan(Vec<(&'static str, Lines)>, Vec<(usize, u32, u32, Option<&'static str>)>),
}

struct Case {
    name: &'static str,
    locs: Vec<Loc>,
    lines: Vec<u32>,
    dest: Dest,
    split: bool,
    expect: Expect,
}

fn case(name: &'static str, locs: Vec<Loc>, lines: &[u32], dest: Dest, split: bool, expect: Expect) -> Case {
    Case { name, locs, lines: lines.to_vec(), dest, split, expect }
}

fn ok(shipments: Vec<(&'static str, Lines)>) -> Expect {
    Expect::Plan(shipments, vec![])
}

fn short(shipments: Vec<(&'static str, Lines)>, shortfalls: Vec<(usize, u32, u32, Option<&'static str>)>) -> Expect {
    Expect::Plan(shipments, shortfalls)
}

fn sites_of(locs: &[Loc]) -> Vec<Site<'_>> {
    locs.iter()
        .map(|l| Site {
            code: l.code,
            point: GeoPoint::new(l.lat, l.lon),
            priority: l.priority,
            sells_to_channel: l.sells,
            ships: l.ships,
            pickup: l.pickup,
        })
        .collect()
}

fn destination(locs: &[Loc], dest: Dest) -> Destination {
    match dest {
        Dest::Ship(lat, lon) => Destination::Ship { lat, lon },
        Dest::Pickup(code) => {
            Destination::Pickup { site: locs.iter().position(|l| l.code == code).expect("pickup code in case") }
        }
        Dest::PickupIndex(site) => Destination::Pickup { site },
    }
}

/// Plans a case, checking the callback contract on the way: only candidates are asked, at most
/// once per (site, line), sites ascending for every line.
fn run(c: &Case, scratch: &mut Scratch) -> Result<Plan, PlanError> {
    let sites = sites_of(&c.locs);
    let dest = destination(&c.locs, c.dest);
    let pickup = match dest {
        Destination::Pickup { site } => Some(site),
        Destination::Ship { .. } => None,
    };
    let calls = RefCell::new(Vec::new());
    let result = plan(
        &sites,
        &c.lines,
        |line, site| {
            calls.borrow_mut().push((line, site));
            c.locs[site].stock.get(line).copied().unwrap_or(0)
        },
        dest,
        c.split,
        scratch,
    );
    let calls = calls.into_inner();
    for &(line, site) in &calls {
        let l = &c.locs[site];
        assert!(
            l.sells && (l.ships || pickup == Some(site)),
            "{}: asked non-candidate {} for line {line}",
            c.name,
            l.code
        );
    }
    for line in 0..c.lines.len() {
        let order: Vec<usize> = calls.iter().filter(|(l, _)| *l == line).map(|(_, s)| *s).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{}: line {line} asked in order {order:?}", c.name);
    }
    result
}

/// The plan in the shape of [`Expect::Plan`], after checking what every plan must satisfy.
#[allow(clippy::type_complexity)]
fn shape(
    c: &Case,
    plan: &Plan,
) -> (Vec<(&'static str, Vec<(usize, u32)>)>, Vec<(usize, u32, u32, Option<&'static str>)>) {
    let sites = sites_of(&c.locs);
    let origin = match destination(&c.locs, c.dest) {
        Destination::Ship { lat, lon } => (lat, lon),
        Destination::Pickup { site } => (c.locs[site].lat, c.locs[site].lon),
    };
    let mut last = f64::NEG_INFINITY;
    for s in &plan.shipments {
        let expected = haversine_km(origin.0, origin.1, c.locs[s.site].lat, c.locs[s.site].lon);
        assert!((s.distance_km - expected).abs() < 1e-9, "{}: distance of {}", c.name, sites[s.site].code);
        assert!(s.distance_km >= last - 1e-9, "{}: shipments not nearest first", c.name);
        last = s.distance_km;
        assert!(plan.allocations_of(s).iter().all(|a| a.site == s.site && a.qty > 0), "{}", c.name);
    }
    assert_eq!(plan.allocations.len(), plan.shipments.iter().map(|s| s.allocations.len()).sum::<usize>());
    assert_eq!(plan.fulfillable, plan.shortfalls.is_empty(), "{}", c.name);
    let shipments = plan
        .shipments
        .iter()
        .map(|s| (c.locs[s.site].code, plan.allocations_of(s).iter().map(|a| (a.line, a.qty)).collect()))
        .collect();
    let shortfalls = plan
        .shortfalls
        .iter()
        .map(|s| (s.line, s.requested, s.available, s.location.map(|i| c.locs[i].code)))
        .collect();
    (shipments, shortfalls)
}

fn cases() -> Vec<Case> {
    vec![
        // --- rule 2: one location, nearest first ---
        case(
            "ship: the nearest location that has everything",
            vec![loc("FAR", 0.3, &[5]), loc("NEAR", 0.1, &[5]), loc("MID", 0.2, &[5])],
            &[2],
            HOME,
            true,
            ok(vec![("NEAR", &[(0, 2)])]),
        ),
        case(
            "ship: exact stock is enough",
            vec![loc("A", 0.1, &[3, 1])],
            &[3, 1],
            HOME,
            true,
            ok(vec![("A", &[(0, 3), (1, 1)])]),
        ),
        case(
            "ship: nearest lacks a line, a farther one has all",
            vec![loc("NEAR", 0.1, &[5, 0]), loc("FAR", 0.5, &[5, 5])],
            &[2, 2],
            HOME,
            true,
            ok(vec![("FAR", &[(0, 2), (1, 2)])]),
        ),
        case(
            "ship: distance beats priority",
            vec![loc("NEAR", 0.1, &[1]).prio(9), loc("FAR", 0.2, &[1]).prio(-5)],
            &[1],
            HOME,
            true,
            ok(vec![("NEAR", &[(0, 1)])]),
        ),
        case(
            "ship: same distance, lower priority wins",
            vec![loc("A", 0.1, &[1]).prio(5), loc("B", 0.1, &[1]).prio(1), loc("C", 0.1, &[1]).prio(3)],
            &[1],
            HOME,
            true,
            ok(vec![("B", &[(0, 1)])]),
        ),
        case(
            "ship: negative priority is lower still",
            vec![loc("A", 0.1, &[1]).prio(0), loc("B", 0.1, &[1]).prio(-1)],
            &[1],
            HOME,
            true,
            ok(vec![("B", &[(0, 1)])]),
        ),
        case(
            "ship: same distance and priority, smaller code wins",
            vec![loc("ZED", 0.1, &[1]), loc("ALPHA", 0.1, &[1]), loc("MIKE", 0.1, &[1])],
            &[1],
            HOME,
            true,
            ok(vec![("ALPHA", &[(0, 1)])]),
        ),
        case(
            "ship: codes compare bytewise (LOC-10 before LOC-9)",
            vec![loc("LOC-9", 0.1, &[1]), loc("LOC-10", 0.1, &[1])],
            &[1],
            HOME,
            true,
            ok(vec![("LOC-10", &[(0, 1)])]),
        ),
        case(
            "ship: four points at one degree around the destination tie, code decides",
            vec![
                loc("E", 1.0, &[1]),
                loc("W", -1.0, &[1]),
                loc("N", 0.0, &[1]).at(1.0, 0.0),
                loc("S", 0.0, &[1]).at(-1.0, 0.0),
            ],
            &[1],
            HOME,
            true,
            ok(vec![("E", &[(0, 1)])]),
        ),
        case(
            "ship: a location that does not sell to the channel is skipped",
            vec![loc("NEAR", 0.1, &[9]).not_selling(), loc("FAR", 0.4, &[9])],
            &[1],
            HOME,
            true,
            ok(vec![("FAR", &[(0, 1)])]),
        ),
        case(
            "ship: a store that does not ship is skipped",
            vec![loc("STORE", 0.05, &[9]).not_shipping(), loc("DC", 0.4, &[9])],
            &[1],
            HOME,
            true,
            ok(vec![("DC", &[(0, 1)])]),
        ),
        case(
            "ship: a location without the pickup flag still ships",
            vec![loc("DC", 0.1, &[2]).no_pickup()],
            &[2],
            HOME,
            true,
            ok(vec![("DC", &[(0, 2)])]),
        ),
        case(
            "ship: destination elsewhere on the globe (Hong Kong)",
            vec![
                loc("HK-CWB", 0.0, &[1]).at(22.2803, 114.1849),
                loc("HK-TST", 0.0, &[1]).at(22.2988, 114.1722),
                loc("SZ-DC", 0.0, &[1]).at(22.5431, 114.0579),
            ],
            &[1],
            Dest::Ship(22.3027, 114.1772),
            true,
            ok(vec![("HK-TST", &[(0, 1)])]),
        ),
        case(
            "ship: single full location beats a split from nearer ones",
            vec![loc("A", 0.1, &[1, 1, 1, 1, 0]), loc("B", 0.2, &[0, 0, 0, 0, 1]), loc("ALL", 0.9, &[1, 1, 1, 1, 1])],
            &[1, 1, 1, 1, 1],
            HOME,
            true,
            ok(vec![("ALL", &[(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)])]),
        ),
        // --- rule 1 and ship-to-store ---
        case(
            "pickup: the pickup store has everything, even with a preferred location beside it",
            vec![loc("DC", 1.0, &[5, 5]).prio(-9), loc("STORE", 1.0, &[2, 1]).prio(9)],
            &[2, 1],
            Dest::Pickup("STORE"),
            true,
            ok(vec![("STORE", &[(0, 2), (1, 1)])]),
        ),
        case(
            "pickup: store misses, nearest full location measured from the store",
            vec![loc("W1", 0.0, &[5]), loc("STORE", 1.0, &[1]), loc("W2", 1.2, &[5]), loc("W3", 0.7, &[5])],
            &[2],
            Dest::Pickup("STORE"),
            true,
            ok(vec![("W2", &[(0, 2)])]),
        ),
        case(
            "pickup: store not selling to the channel is supplied ship-to-store",
            vec![loc("LOCKER", 1.0, &[9]).not_selling(), loc("W1", 0.0, &[3]), loc("W2", 1.5, &[3])],
            &[3],
            Dest::Pickup("LOCKER"),
            true,
            ok(vec![("W2", &[(0, 3)])]),
        ),
        case(
            "pickup: store without the pickup flag is refused",
            vec![loc("DC", 0.0, &[3]).no_pickup()],
            &[1],
            Dest::Pickup("DC"),
            true,
            Expect::Error(PlanError::NotAPickupLocation),
        ),
        case(
            "pickup: index outside the sites is refused",
            vec![loc("A", 0.0, &[3])],
            &[1],
            Dest::PickupIndex(7),
            true,
            Expect::Error(PlanError::UnknownLocation),
        ),
        case(
            "pickup: a non-shipping store serves its own pickup",
            vec![loc("DC", 1.0, &[5]), loc("STORE", 1.0, &[5]).not_shipping()],
            &[4],
            Dest::Pickup("STORE"),
            true,
            ok(vec![("STORE", &[(0, 4)])]),
        ),
        case(
            "pickup: a non-shipping store takes part in its own pickup split, nearest",
            vec![loc("DC", 1.3, &[0, 2]), loc("STORE", 1.0, &[2, 0]).not_shipping()],
            &[2, 2],
            Dest::Pickup("STORE"),
            true,
            ok(vec![("STORE", &[(0, 2)]), ("DC", &[(1, 2)])]),
        ),
        case(
            "pickup: another non-shipping store is no source",
            vec![loc("STORE2", 1.01, &[9]).not_shipping(), loc("STORE", 1.0, &[0]), loc("DC", 2.0, &[9])],
            &[1],
            Dest::Pickup("STORE"),
            true,
            ok(vec![("DC", &[(0, 1)])]),
        ),
        case(
            "pickup: partial store stock wins the units tie at distance 0, then nearest",
            vec![loc("W1", 3.0, &[0, 2]), loc("STORE", 1.0, &[2, 0]), loc("W2", 1.5, &[0, 2])],
            &[2, 2],
            Dest::Pickup("STORE"),
            true,
            ok(vec![("STORE", &[(0, 2)]), ("W2", &[(1, 2)])]),
        ),
        case(
            "pickup: without split a full warehouse replaces a partial store",
            vec![loc("STORE", 1.0, &[1, 1]), loc("DC", 2.0, &[3, 3])],
            &[2, 1],
            Dest::Pickup("STORE"),
            false,
            ok(vec![("DC", &[(0, 2), (1, 1)])]),
        ),
        case(
            "pickup: store not selling and nothing else: short, network-wide",
            vec![loc("LOCKER", 1.0, &[9]).not_selling()],
            &[2],
            Dest::Pickup("LOCKER"),
            true,
            short(vec![], vec![(0, 2, 0, None)]),
        ),
        // --- rule 3: split ---
        case(
            "split: most units first, shipments nearest first",
            vec![loc("A", 0.1, &[4, 0]), loc("B", 0.2, &[0, 3]), loc("C", 0.3, &[2, 4])],
            &[4, 4],
            HOME,
            true,
            ok(vec![("A", &[(0, 2)]), ("C", &[(0, 2), (1, 4)])]),
        ),
        case(
            "split: a farther location with more units is taken before a nearer one",
            vec![loc("NEAR", 0.1, &[1, 0]), loc("FAR", 0.9, &[2, 1])],
            &[3, 1],
            HOME,
            true,
            ok(vec![("NEAR", &[(0, 1)]), ("FAR", &[(0, 2), (1, 1)])]),
        ),
        case(
            "split: equal units, nearest first; the farthest is not needed",
            vec![loc("A", 0.3, &[1]), loc("B", 0.1, &[1]), loc("C", 0.2, &[1])],
            &[2],
            HOME,
            true,
            ok(vec![("B", &[(0, 1)]), ("C", &[(0, 1)])]),
        ),
        case(
            "split: equal units and distance, lower priority first",
            vec![loc("A", 0.2, &[1]).prio(2), loc("B", 0.2, &[1]).prio(1), loc("C", 0.2, &[1]).prio(0)],
            &[2],
            HOME,
            true,
            ok(vec![("C", &[(0, 1)]), ("B", &[(0, 1)])]),
        ),
        case(
            "split: equal units, distance and priority, smaller code first",
            vec![loc("Y", 0.2, &[1]), loc("X", 0.2, &[1]), loc("Z", 0.2, &[1])],
            &[2],
            HOME,
            true,
            ok(vec![("X", &[(0, 1)]), ("Y", &[(0, 1)])]),
        ),
        case(
            "split forbidden: the best single location names each short line",
            vec![loc("A", 0.1, &[2, 2]), loc("B", 0.2, &[2, 1])],
            &[3, 3],
            HOME,
            false,
            short(vec![("A", &[(0, 2), (1, 2)])], vec![(0, 3, 2, Some("A")), (1, 3, 2, Some("A"))]),
        ),
        case(
            "split: each location once in the split",
            vec![loc("A", 0.1, &[2, 2]), loc("B", 0.2, &[2, 1])],
            &[3, 4],
            HOME,
            true,
            short(vec![("A", &[(0, 2), (1, 2)]), ("B", &[(0, 1), (1, 1)])], vec![(1, 4, 3, None)]),
        ),
        case(
            "split: many lines, one location has all but one",
            vec![loc("B", 0.5, &[0, 0, 0, 0, 1]), loc("A", 0.1, &[1, 1, 1, 1, 0])],
            &[1, 1, 1, 1, 1],
            HOME,
            true,
            ok(vec![("A", &[(0, 1), (1, 1), (2, 1), (3, 1)]), ("B", &[(4, 1)])]),
        ),
        case(
            "split: stock beyond the request is not taken",
            vec![loc("A", 0.1, &[100, 0]), loc("B", 0.2, &[0, 100])],
            &[2, 3],
            HOME,
            true,
            ok(vec![("A", &[(0, 2)]), ("B", &[(1, 3)])]),
        ),
        // --- rule 4: shortfalls ---
        case(
            "short: split finds what it can, each short line listed",
            vec![loc("A", 0.1, &[5, 1, 0]), loc("B", 0.2, &[0, 0, 1])],
            &[5, 2, 3],
            HOME,
            true,
            short(vec![("A", &[(0, 5), (1, 1)]), ("B", &[(2, 1)])], vec![(1, 2, 1, None), (2, 3, 1, None)]),
        ),
        case(
            "short: split forbidden, the best single location and its units",
            vec![loc("A", 0.1, &[4, 0]), loc("B", 0.2, &[0, 3]), loc("C", 0.3, &[2, 4])],
            &[4, 4],
            HOME,
            false,
            short(vec![("C", &[(0, 2), (1, 4)])], vec![(0, 4, 2, Some("C"))]),
        ),
        case(
            "short: split forbidden, units tie between two locations, nearest is the best single",
            vec![loc("FAR", 0.3, &[2, 0]), loc("NEAR", 0.1, &[0, 2])],
            &[2, 2],
            HOME,
            false,
            short(vec![("NEAR", &[(1, 2)])], vec![(0, 2, 0, Some("NEAR"))]),
        ),
        case(
            "short: split forbidden and no stock anywhere",
            vec![loc("A", 0.1, &[0, 0]), loc("B", 0.2, &[0, 0])],
            &[1, 2],
            HOME,
            false,
            short(vec![], vec![(0, 1, 0, None), (1, 2, 0, None)]),
        ),
        case(
            "short: zero-stock network",
            vec![loc("A", 0.1, &[0]), loc("B", 0.2, &[0])],
            &[1],
            HOME,
            true,
            short(vec![], vec![(0, 1, 0, None)]),
        ),
        case("short: no locations at all", vec![], &[1], HOME, true, short(vec![], vec![(0, 1, 0, None)])),
        case(
            "short: stock only where the channel is not sold",
            vec![loc("A", 0.1, &[5]).not_selling(), loc("B", 0.2, &[5]).not_shipping()],
            &[1],
            HOME,
            true,
            short(vec![], vec![(0, 1, 0, None)]),
        ),
        // --- edges ---
        case(
            "edge: a zero-quantity line gets no allocation",
            vec![loc("A", 0.1, &[5, 5])],
            &[0, 2],
            HOME,
            true,
            ok(vec![("A", &[(1, 2)])]),
        ),
        case("edge: empty basket", vec![loc("A", 0.1, &[5])], &[], HOME, true, ok(vec![])),
        case(
            "edge: destination latitude out of range",
            vec![loc("A", 0.1, &[5])],
            &[1],
            Dest::Ship(91.0, 0.0),
            true,
            Expect::Error(PlanError::InvalidDestination),
        ),
        case(
            "edge: destination not a number",
            vec![loc("A", 0.1, &[5])],
            &[1],
            Dest::Ship(0.0, f64::NAN),
            true,
            Expect::Error(PlanError::InvalidDestination),
        ),
        case(
            "edge: the pickup check comes before an empty basket's answer",
            vec![loc("A", 0.1, &[5]).no_pickup()],
            &[],
            Dest::Pickup("A"),
            true,
            Expect::Error(PlanError::NotAPickupLocation),
        ),
    ]
}

#[test]
fn table() {
    let cases = cases();
    assert!(cases.len() >= 30);
    // One scratch for every case, so leftovers of a previous plan would show.
    let mut scratch = Scratch::default();
    for c in &cases {
        let first = run(c, &mut scratch);
        match (&c.expect, &first) {
            (Expect::Error(expected), Err(got)) => assert_eq!(expected, got, "{}", c.name),
            (Expect::Plan(shipments, shortfalls), Ok(plan)) => {
                let (got_shipments, got_shortfalls) = shape(c, plan);
                let want: Vec<(&str, Vec<(usize, u32)>)> = shipments.iter().map(|(s, l)| (*s, l.to_vec())).collect();
                assert_eq!(got_shipments, want, "{}: shipments", c.name);
                assert_eq!(&got_shortfalls, shortfalls, "{}: shortfalls", c.name);
            }
            (expected, got) => panic!("{}: expected {expected:?}, got {got:?}", c.name),
        }
        // Deterministic: again with the used scratch and with a fresh one.
        assert_eq!(first, run(c, &mut scratch), "{}: second run", c.name);
        assert_eq!(first, run(c, &mut Scratch::default()), "{}: fresh scratch", c.name);
    }
}

#[test]
fn table_in_reverse_with_reused_output() {
    // plan_into reuses the result buffers; a stale shipment must never survive.
    let cases = cases();
    let mut scratch = Scratch::default();
    let mut out = Plan::default();
    for c in cases.iter().rev() {
        let sites = sites_of(&c.locs);
        let result = plan_into(
            &sites,
            &c.lines,
            |line, site| c.locs[site].stock.get(line).copied().unwrap_or(0),
            destination(&c.locs, c.dest),
            c.split,
            &mut scratch,
            &mut out,
        );
        let fresh = run(c, &mut Scratch::default());
        match fresh {
            Ok(plan) => {
                assert_eq!(result, Ok(()), "{}", c.name);
                assert_eq!(out, plan, "{}", c.name);
            }
            Err(e) => assert_eq!(result, Err(e), "{}", c.name),
        }
    }
}

#[test]
fn pickup_rule_stops_asking_for_stock() {
    // Rule 1 decides as soon as the pickup store is seen to have everything.
    let locs = [loc("STORE", 0.0, &[1]), loc("DC", 0.1, &[1])];
    let sites = sites_of(&locs);
    let mut asked = Vec::new();
    let plan = plan(
        &sites,
        &[1],
        |line, site| {
            asked.push((line, site));
            1
        },
        Destination::Pickup { site: 0 },
        true,
        &mut Scratch::default(),
    )
    .expect("plan");
    assert_eq!(asked, vec![(0, 0)]);
    assert_eq!(plan.shipments.len(), 1);
    assert_eq!(plan.shipments[0].distance_km, 0.0);
}

#[test]
fn distances_are_reported_in_km() {
    let locs = [loc("A", 1.0, &[1])];
    let sites = sites_of(&locs);
    let plan = plan(&sites, &[1], |_, _| 1, Destination::Ship { lat: 0.0, lon: 0.0 }, true, &mut Scratch::default())
        .expect("plan");
    let one_degree = EARTH_RADIUS_KM * std::f64::consts::PI / 180.0;
    assert!((plan.shipments[0].distance_km - one_degree).abs() < 1e-9);
}

#[test]
fn haversine_reference_distances() {
    // Nashville (BNA) to Los Angeles (LAX), the textbook example: 2887.26 km on a 6372.8 km
    // sphere, so 2887.26 × 6371.0088 / 6372.8 on ours.
    let d = haversine_km(36.12, -86.67, 33.94, -118.40);
    assert!((d - 2887.26 * EARTH_RADIUS_KM / 6372.8).abs() < 0.05, "{d}");
    // Pole to pole: half a meridian.
    let d = haversine_km(90.0, 0.0, -90.0, 0.0);
    assert!((d - EARTH_RADIUS_KM * std::f64::consts::PI).abs() < 1e-6, "{d}");
    // Symmetric.
    assert_eq!(haversine_km(22.3, 114.2, 1.35, 103.8), haversine_km(1.35, 103.8, 22.3, 114.2));
    // Hong Kong to Singapore: about 2,590 km.
    let d = haversine_km(22.3193, 114.1694, 1.3521, 103.8198);
    assert!((2550.0..2620.0).contains(&d), "{d}");
}

// --- properties on random networks ---

#[derive(Debug, Clone)]
struct Network {
    locs: Vec<Loc>,
    lines: Vec<u32>,
    dest: Destination,
    split: bool,
}

const CODES: [&str; 8] = ["A", "B", "C", "D", "E", "F", "G", "H"];

fn network() -> impl Strategy<Value = Network> {
    (1usize..5, 0usize..=8).prop_flat_map(|(lines, sites)| {
        let loc = (
            0i8..3,
            0i8..3,
            0i32..3,
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.7),
            any::<bool>(),
            prop::collection::vec(prop_oneof![2 => Just(0u32), 3 => 0u32..6], lines),
        );
        (
            prop::collection::vec(loc, sites),
            prop::collection::vec(0u32..6, lines),
            prop_oneof![(0i8..3, 0i8..3).prop_map(|(a, b)| (None, a, b)), (0usize..9).prop_map(|s| (Some(s), 0, 0))],
            any::<bool>(),
            Just(CODES.to_vec()).prop_shuffle(),
        )
            .prop_map(|(sites, lines, dest, split, codes)| {
                let locs = sites
                    .into_iter()
                    .enumerate()
                    .map(|(i, (lat, lon, priority, sells, ships, pickup, stock))| Loc {
                        code: codes[i],
                        lat: f64::from(lat) * 0.1,
                        lon: f64::from(lon) * 0.1,
                        priority,
                        sells,
                        ships,
                        pickup,
                        stock,
                    })
                    .collect();
                let dest = match dest {
                    (Some(site), _, _) => Destination::Pickup { site },
                    (None, lat, lon) => Destination::Ship { lat: f64::from(lat) * 0.1, lon: f64::from(lon) * 0.1 },
                };
                Network { locs, lines, dest, split }
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn plans_respect_stock_and_rules(n in network()) {
        let sites = sites_of(&n.locs);
        let stock = |line: usize, site: usize| n.locs[site].stock[line];
        let result = plan(&sites, &n.lines, stock, n.dest, n.split, &mut Scratch::default());
        let pickup = match n.dest {
            Destination::Pickup { site } => Some(site),
            Destination::Ship { .. } => None,
        };
        if let Some(site) = pickup {
            match n.locs.get(site) {
                None => { prop_assert_eq!(result, Err(PlanError::UnknownLocation)); return Ok(()); }
                Some(l) if !l.pickup => { prop_assert_eq!(result, Err(PlanError::NotAPickupLocation)); return Ok(()); }
                Some(_) => {}
            }
        }
        let p = result.expect("valid request plans");
        let candidate = |site: usize| {
            let l = &n.locs[site];
            l.sells && (l.ships || pickup == Some(site))
        };

        // Every allocated site is a candidate, used in one shipment, never beyond its stock.
        let mut used = Vec::new();
        for s in &p.shipments {
            prop_assert!(candidate(s.site));
            prop_assert!(!used.contains(&s.site));
            used.push(s.site);
            for a in p.allocations_of(s) {
                prop_assert!(a.qty > 0 && a.qty <= stock(a.line, a.site));
            }
        }
        if !n.split {
            prop_assert!(p.shipments.len() <= 1);
        }

        // Allocated + shortfall == requested, line by line.
        for (line, &requested) in n.lines.iter().enumerate() {
            let allocated: u32 = p.allocations.iter().filter(|a| a.line == line).map(|a| a.qty).sum();
            match p.shortfalls.iter().find(|s| s.line == line) {
                Some(s) => {
                    prop_assert_eq!(s.requested, requested);
                    prop_assert!(s.available < requested);
                    prop_assert_eq!(allocated, s.available);
                }
                None => prop_assert_eq!(allocated, requested),
            }
        }
        prop_assert_eq!(p.fulfillable, p.shortfalls.is_empty());

        // Fulfillable exactly when the rules allow it: with a split, when the candidates hold
        // enough of every line; without, when one candidate holds everything.
        let candidates: Vec<usize> = (0..n.locs.len()).filter(|&s| candidate(s)).collect();
        let enough = if n.split {
            n.lines.iter().enumerate().all(|(line, &q)| candidates.iter().map(|&s| stock(line, s)).sum::<u32>() >= q)
        } else {
            n.lines.iter().all(|&q| q == 0)
                || candidates.iter().any(|&s| n.lines.iter().enumerate().all(|(line, &q)| stock(line, s) >= q))
        };
        prop_assert_eq!(p.fulfillable, enough);

        // With a split, a shortage is network-wide and everything the candidates hold is used.
        if n.split {
            for s in &p.shortfalls {
                prop_assert_eq!(s.location, None);
                prop_assert_eq!(s.available, candidates.iter().map(|&c| stock(s.line, c)).sum::<u32>());
            }
        }

        // Same input, same plan.
        let again = plan(&sites, &n.lines, stock, n.dest, n.split, &mut Scratch::default());
        prop_assert_eq!(Ok(p), again);
    }
}

// --- against a reference on a line of locations with no accidental distance ties ---

/// Marks of a Golomb ruler (every pairwise difference distinct), in tenths of a degree of
/// longitude on the equator: from any mark, two different marks are never equally far, so the
/// reference can rank distances exactly by integer differences.
const RULER: [i32; 5] = [0, 1, 4, 9, 11];

#[derive(Debug, Clone)]
struct RulerNet {
    /// (mark index, priority, sells, ships, pickup, stock per line)
    locs: Vec<(usize, i32, bool, bool, bool, Vec<u32>)>,
    codes: Vec<&'static str>,
    lines: Vec<u32>,
    /// Ship to a mark, or pick up at a site index.
    dest: Result<usize, usize>,
    split: bool,
}

fn ruler_net() -> impl Strategy<Value = RulerNet> {
    (1usize..5, 0usize..=8).prop_flat_map(|(lines, sites)| {
        let loc = (
            0..RULER.len(),
            0i32..2,
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.7),
            any::<bool>(),
            prop::collection::vec(prop_oneof![2 => Just(0u32), 3 => 0u32..6], lines),
        );
        (
            prop::collection::vec(loc, sites),
            Just(CODES.to_vec()).prop_shuffle(),
            prop::collection::vec(0u32..6, lines),
            prop_oneof![(0..RULER.len()).prop_map(Ok), (0usize..9).prop_map(Err)],
            any::<bool>(),
        )
            .prop_map(|(locs, codes, lines, dest, split)| RulerNet { locs, codes, lines, dest, split })
    })
}

type Shape = (Vec<(usize, Vec<(usize, u32)>)>, Vec<(usize, u32, u32, Option<usize>)>);

/// SPEC §3 written out plainly, with exact integer distances.
fn reference(n: &RulerNet) -> Result<Shape, PlanError> {
    let pickup = n.dest.err();
    if let Some(p) = pickup {
        match n.locs.get(p) {
            None => return Err(PlanError::UnknownLocation),
            Some(l) if !l.4 => return Err(PlanError::NotAPickupLocation),
            Some(_) => {}
        }
    }
    if n.lines.iter().all(|&q| q == 0) {
        return Ok((vec![], vec![]));
    }
    let origin = match n.dest {
        Ok(mark) => RULER[mark],
        Err(p) => RULER[n.locs[p].0],
    };
    let key = |s: usize| ((RULER[n.locs[s].0] - origin).abs(), n.locs[s].1, n.codes[s], s);
    let candidates: Vec<usize> =
        (0..n.locs.len()).filter(|&s| n.locs[s].2 && (n.locs[s].3 || pickup == Some(s))).collect();
    let full = |s: usize| n.lines.iter().enumerate().all(|(l, &q)| n.locs[s].5[l] >= q);
    let whole = |s: usize| (s, n.lines.iter().enumerate().filter(|(_, &q)| q > 0).map(|(l, &q)| (l, q)).collect());
    if let Some(p) = pickup.filter(|p| candidates.contains(p) && full(*p)) {
        return Ok((vec![whole(p)], vec![]));
    }
    if let Some(&s) = candidates.iter().filter(|&&s| full(s)).min_by_key(|&&s| key(s)) {
        return Ok((vec![whole(s)], vec![]));
    }
    let mut remaining = n.lines.clone();
    let mut picked: Vec<(usize, Vec<(usize, u32)>)> = Vec::new();
    loop {
        let fill = |s: usize, remaining: &[u32]| -> u32 {
            remaining.iter().enumerate().map(|(l, &r)| n.locs[s].5[l].min(r)).sum()
        };
        let best = candidates
            .iter()
            .copied()
            .filter(|s| !picked.iter().any(|(p, _)| p == s) && fill(*s, &remaining) > 0)
            .min_by_key(|&s| (std::cmp::Reverse(fill(s, &remaining)), key(s)));
        let Some(s) = best else { break };
        let mut taken = Vec::new();
        for (l, r) in remaining.iter_mut().enumerate() {
            let t = n.locs[s].5[l].min(*r);
            if t > 0 {
                taken.push((l, t));
                *r -= t;
            }
        }
        picked.push((s, taken));
        if !n.split || remaining.iter().all(|&r| r == 0) {
            break;
        }
    }
    let location = if n.split { None } else { picked.first().map(|(s, _)| *s) };
    let shortfalls = n
        .lines
        .iter()
        .zip(&remaining)
        .enumerate()
        .filter(|(_, (_, &r))| r > 0)
        .map(|(l, (&q, &r))| (l, q, q - r, location))
        .collect();
    picked.sort_by_key(|(s, _)| key(*s));
    Ok((picked, shortfalls))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn plans_match_the_reference(n in ruler_net()) {
        let sites: Vec<Site<'_>> = n
            .locs
            .iter()
            .zip(&n.codes)
            .map(|(l, code)| Site {
                code,
                point: GeoPoint::new(0.0, f64::from(RULER[l.0]) * 0.1),
                priority: l.1,
                sells_to_channel: l.2,
                ships: l.3,
                pickup: l.4,
            })
            .collect();
        let dest = match n.dest {
            Ok(mark) => Destination::Ship { lat: 0.0, lon: f64::from(RULER[mark]) * 0.1 },
            Err(site) => Destination::Pickup { site },
        };
        let got = plan(&sites, &n.lines, |line, site| n.locs[site].5[line], dest, n.split, &mut Scratch::default())
            .map(|p| -> Shape {
                (
                    p.shipments.iter().map(|s| (s.site, p.allocations_of(s).iter().map(|a| (a.line, a.qty)).collect())).collect(),
                    p.shortfalls.iter().map(|s| (s.line, s.requested, s.available, s.location)).collect(),
                )
            });
        prop_assert_eq!(got, reference(&n));
    }
}
