//! Consistency checks of a server's final state against what the client counted.
//!
//! Requests whose outcome the client never learned (timeouts, broken connections after the
//! request went out) may or may not have taken effect; the checks then accept the range
//! between "none applied" and "all applied" instead of one exact figure.

use serde::Serialize;

/// One check and its verdict.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    fn new(name: &str, passed: bool, detail: String) -> Self {
        Check { name: name.to_owned(), passed, detail }
    }
}

/// The verdict over a run: oversold units and every check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    /// Units sold or held beyond what existed; must be 0.
    pub oversell: i64,
    pub checks: Vec<Check>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.oversell == 0 && self.checks.iter().all(|c| c.passed)
    }

    /// Process exit status for this verdict: 0 when everything adds up, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.passed() {
            0
        } else {
            1
        }
    }

    /// Joins verdicts of several parts of a run (the mixed scenario).
    pub fn join(parts: impl IntoIterator<Item = Verdict>) -> Verdict {
        let mut all = Verdict { oversell: 0, checks: Vec::new() };
        for v in parts {
            all.oversell += v.oversell;
            all.checks.extend(v.checks);
        }
        all
    }
}

/// A flash sale's final state as its backend reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlashFinal {
    pub quantity: i64,
    pub remaining: i64,
    pub held: i64,
    pub sold: i64,
    pub per_customer_limit: i64,
    /// The backend's status word, when it has one (aisle: `active`, `sold_out`, ...).
    pub status: Option<String>,
    /// Largest number of units the backend records for one customer, when it can tell.
    pub customer_units_max: Option<i64>,
    /// Units the backend records over all customers, when it can tell.
    pub customer_units_total: Option<i64>,
}

/// What the client counted of a flash sale.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FlashClient {
    /// Units of claims answered as won.
    pub won_units: i64,
    /// Units of claims whose outcome is unknown.
    pub unknown_units: i64,
    /// Largest number of units the client saw one customer win.
    pub customer_units_max: i64,
    /// Customers the client saw win more than the limit.
    pub customers_over_limit: i64,
}

/// Checks a flash sale: nothing oversold, the pool adds up, the client's wins match the
/// backend's holds and sales, no customer beyond the limit.
pub fn check_flash(client: &FlashClient, fin: &FlashFinal) -> Verdict {
    let taken = fin.held + fin.sold;
    let oversell = (client.won_units - fin.quantity).max(taken - fin.quantity).max(-fin.remaining).max(0);
    let mut checks = vec![Check::new(
        "flash: no oversell",
        oversell == 0,
        format!("client won {} units, backend held+sold {taken}, quantity {}", client.won_units, fin.quantity),
    )];
    let sum = fin.remaining + taken;
    checks.push(Check::new(
        "flash: remaining + held + sold = quantity",
        sum == fin.quantity && fin.remaining >= 0,
        format!("{} + {} + {} = {sum}, quantity {}", fin.remaining, fin.held, fin.sold, fin.quantity),
    ));
    let (lo, hi) = (client.won_units, client.won_units + client.unknown_units);
    checks.push(Check::new(
        "flash: client wins = held + sold",
        (lo..=hi).contains(&taken),
        if client.unknown_units == 0 {
            format!("client {lo}, backend {taken}")
        } else {
            format!("client {lo} (+{} unknown), backend {taken}", client.unknown_units)
        },
    ));
    if let Some(total) = fin.customer_units_total {
        checks.push(Check::new(
            "flash: customer records add up to held + sold",
            total == taken,
            format!("customers hold {total}, held + sold {taken}"),
        ));
    }
    let max = fin.customer_units_max.unwrap_or(0).max(client.customer_units_max);
    checks.push(Check::new(
        "flash: no customer beyond the per-customer limit",
        max <= fin.per_customer_limit && client.customers_over_limit == 0,
        format!(
            "most units for one customer {max}, limit {}, customers over it {}",
            fin.per_customer_limit, client.customers_over_limit
        ),
    ));
    Verdict { oversell, checks }
}

/// One stock cell's final state on the server.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CellFinal {
    pub on_hand: i64,
    pub reserved: i64,
    pub committed: i64,
    pub available: i64,
    pub oversold: i64,
}

/// What the client counted for one cell.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CellClient {
    /// Units received into the cell at set-up.
    pub received: i64,
    /// Units of holds answered as reserved and not (knowingly) finished since.
    pub live: i64,
    /// Units of holds answered as committed.
    pub committed: i64,
    /// Units of reserve requests whose outcome is unknown.
    pub unknown_reserve: i64,
    /// Units of commit or release requests whose outcome is unknown (still counted in `live`).
    pub unknown_finish: i64,
}

/// Checks the cells of a checkout run. Each pair is one cell that only this run touched.
pub fn check_cells(cells: &[(String, CellClient, CellFinal)]) -> Verdict {
    let mut oversell = 0;
    let mut bad_bounds = Vec::new();
    let mut bad_on_hand = Vec::new();
    let mut bad_committed = Vec::new();
    let mut bad_reserved = Vec::new();
    let (mut client_live, mut client_committed, mut server_reserved, mut server_committed) = (0, 0, 0, 0);
    for (name, c, s) in cells {
        let over = (s.reserved + s.committed - s.on_hand).max(s.oversold).max(0);
        oversell += over;
        if over > 0 || s.available < 0 || s.reserved < 0 || s.committed < 0 {
            bad_bounds.push(format!("{name}: {s:?}"));
        }
        if s.on_hand != c.received {
            bad_on_hand.push(format!("{name}: received {}, on_hand {}", c.received, s.on_hand));
        }
        // A hold whose reserve answer was lost has no id the client could commit.
        if !(c.committed..=c.committed + c.unknown_finish).contains(&s.committed) {
            bad_committed.push(format!(
                "{name}: client {} (+{} unknown), server {}",
                c.committed, c.unknown_finish, s.committed
            ));
        }
        if !(c.live - c.unknown_finish..=c.live + c.unknown_reserve).contains(&s.reserved) {
            bad_reserved.push(format!(
                "{name}: client {} (-{} / +{} unknown), server {}",
                c.live, c.unknown_finish, c.unknown_reserve, s.reserved
            ));
        }
        client_live += c.live;
        client_committed += c.committed;
        server_reserved += s.reserved;
        server_committed += s.committed;
    }
    let detail = |bad: &[String], ok: String| match bad.first() {
        None => ok,
        Some(first) => format!("{} cells, e.g. {first}", bad.len()),
    };
    let checks = vec![
        Check::new(
            "checkout: reserved + committed never exceed on_hand",
            bad_bounds.is_empty(),
            detail(&bad_bounds, format!("{} cells", cells.len())),
        ),
        Check::new(
            "checkout: on_hand = units received",
            bad_on_hand.is_empty(),
            detail(&bad_on_hand, format!("{} cells", cells.len())),
        ),
        Check::new(
            "checkout: server committed = client commits",
            bad_committed.is_empty(),
            detail(&bad_committed, format!("client {client_committed}, server {server_committed}")),
        ),
        Check::new(
            "checkout: server reserved = client's live holds",
            bad_reserved.is_empty(),
            detail(&bad_reserved, format!("client {client_live}, server {server_reserved}")),
        ),
    ];
    Verdict { oversell, checks }
}
