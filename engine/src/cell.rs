//! A stock cell (one SKU at one location): its quantities, lots and moving-average cost.
//!
//! **Architecture Invariant:** this module is the one place where `available` and `oversold`
//! are computed ([`Cell::available_raw`]). Everything else (reservations, sourcing, views,
//! tests' models) asks a cell instead of re-deriving the formula.

use rkyv::{Archive, Deserialize, Serialize};

use crate::time::Day;

/// Fixed-point scale of [`Cell::avg_cost_micros`]: minor currency units × 10⁶.
pub const COST_SCALE: u128 = 1_000_000;

/// A lot of units sharing an expiry date.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    pub code: String,
    /// Last day (UTC) the lot may be sold; from the next day its units are expired.
    pub expires_on: Day,
    pub qty: i64,
}

/// The quantities of one SKU at one location. Kept small: there may be millions.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Cell {
    pub on_hand: i64,
    pub reserved: i64,
    pub committed: i64,
    pub safety_stock: i64,
    pub incoming: i64,
    pub reorder_point: i64,
    pub reorder_qty: i64,
    /// Moving-average unit cost in minor units × [`COST_SCALE`].
    pub avg_cost_micros: u64,
    /// Lots sorted by (`expires_on`, `code`); `None` when the cell tracks none (most cells).
    pub lots: Option<Box<Vec<Lot>>>,
}

impl Cell {
    /// Units on hand whose lot is past its expiry date on `today`.
    pub fn expired(&self, today: Day) -> i64 {
        self.lots().iter().filter(|lot| lot.expires_on < today).map(|lot| lot.qty).sum()
    }

    /// `on_hand - reserved - committed - safety_stock - expired`, before clamping (SPEC §2).
    pub fn available_raw(&self, today: Day) -> i64 {
        self.on_hand - self.reserved - self.committed - self.safety_stock - self.expired(today)
    }

    /// Units that can be offered to channels: never negative.
    pub fn available(&self, today: Day) -> i64 {
        self.available_raw(today).max(0)
    }

    /// Units promised (reserved or committed) beyond the sellable units on hand.
    ///
    /// Safety stock is a policy buffer, not a promise, so eating into it is not an oversell;
    /// only a downward count (or a lot expiring under a hold) can make this positive.
    pub fn oversold(&self, today: Day) -> i64 {
        (self.reserved + self.committed + self.expired(today) - self.on_hand).max(0)
    }

    pub fn lots(&self) -> &[Lot] {
        self.lots.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Units on hand not tracked in any lot.
    pub fn untracked(&self) -> i64 {
        self.on_hand - self.lots().iter().map(|lot| lot.qty).sum::<i64>()
    }

    /// Unit cost rounded to minor units.
    pub fn avg_cost(&self) -> u64 {
        ((self.avg_cost_micros as u128 + COST_SCALE / 2) / COST_SCALE) as u64
    }

    /// Units arrive: on hand rises, the average cost moves, a lot grows.
    pub fn receive(&mut self, qty: i64, unit_cost: Option<u64>, lot: Option<(&str, Day)>) {
        debug_assert!(qty > 0);
        if let Some(cost) = unit_cost {
            let before = self.on_hand.max(0) as u128;
            let total = before * self.avg_cost_micros as u128 + qty as u128 * cost as u128 * COST_SCALE;
            self.avg_cost_micros = (total / (before + qty as u128)) as u64;
        }
        self.on_hand += qty;
        if let Some((code, expires_on)) = lot {
            self.add_to_lot(code, expires_on, qty);
        }
    }

    fn add_to_lot(&mut self, code: &str, expires_on: Day, qty: i64) {
        let lots = self.lots.get_or_insert_with(Default::default);
        match lots.iter_mut().find(|lot| lot.code == code) {
            Some(lot) => lot.qty += qty,
            None => {
                lots.push(Lot { code: code.to_owned(), expires_on, qty });
                lots.sort_by(|a, b| (a.expires_on, &a.code).cmp(&(b.expires_on, &b.code)));
            }
        }
    }

    /// Whether `lot` may receive more units with this expiry date (a lot has one date).
    pub fn lot_conflicts(&self, code: &str, expires_on: Day) -> bool {
        self.lots().iter().any(|lot| lot.code == code && lot.expires_on != expires_on)
    }

    /// Units leave for customers (fulfilment): the earliest-expiring sellable lot goes first
    /// (FEFO), then untracked units, and expired lots only when nothing else is left.
    pub fn ship(&mut self, qty: i64, today: Day) {
        debug_assert!(qty >= 0 && qty <= self.on_hand);
        self.on_hand -= qty;
        let mut left = qty;
        if let Some(lots) = self.lots.as_deref_mut() {
            for lot in lots.iter_mut().filter(|lot| lot.expires_on >= today) {
                let take = left.min(lot.qty);
                lot.qty -= take;
                left -= take;
            }
        }
        // Untracked units absorb what the sellable lots could not.
        let untracked = self.untracked();
        if untracked < 0 {
            self.take_from_lots_expired_first(-untracked);
        }
        self.drop_empty_lots();
    }

    /// Units disappear (count, damage, loss): a named lot first, then untracked units, then
    /// expired lots, then the earliest-expiring ones.
    pub fn remove(&mut self, qty: i64, lot: Option<&str>) {
        debug_assert!(qty >= 0 && qty <= self.on_hand);
        self.on_hand -= qty;
        if let (Some(code), Some(lots)) = (lot, self.lots.as_deref_mut()) {
            if let Some(lot) = lots.iter_mut().find(|l| l.code == code) {
                lot.qty -= qty.min(lot.qty);
            }
        }
        let untracked = self.untracked();
        if untracked < 0 {
            self.take_from_lots_expired_first(-untracked);
        }
        self.drop_empty_lots();
    }

    /// Units appear (found, count up): into a named lot when given, else untracked.
    pub fn add(&mut self, qty: i64, lot: Option<(&str, Day)>) {
        self.on_hand += qty;
        if let Some((code, expires_on)) = lot {
            self.add_to_lot(code, expires_on, qty);
        }
    }

    fn take_from_lots_expired_first(&mut self, mut qty: i64) {
        let Some(lots) = self.lots.as_deref_mut() else {
            return;
        };
        // Lots are sorted by expiry, so expired ones come first and FEFO follows naturally.
        for lot in lots.iter_mut() {
            let take = qty.min(lot.qty);
            lot.qty -= take;
            qty -= take;
        }
        debug_assert_eq!(qty, 0, "lots held fewer units than on hand said");
    }

    fn drop_empty_lots(&mut self) {
        if let Some(lots) = self.lots.as_deref_mut() {
            lots.retain(|lot| lot.qty > 0);
            if lots.is_empty() {
                self.lots = None;
            }
        }
    }

    /// Internal consistency every operation must keep (checked by tests after every step).
    pub fn check(&self) -> Result<(), String> {
        if self.on_hand < 0 {
            return Err(format!("on_hand {} < 0", self.on_hand));
        }
        if self.reserved < 0 {
            return Err(format!("reserved {} < 0", self.reserved));
        }
        if self.committed < 0 {
            return Err(format!("committed {} < 0", self.committed));
        }
        if self.incoming < 0 {
            return Err(format!("incoming {} < 0", self.incoming));
        }
        if self.lots().iter().any(|lot| lot.qty <= 0) {
            return Err("a lot holds no units".into());
        }
        if self.untracked() < 0 {
            return Err(format!("lots hold more than on_hand {}", self.on_hand));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_formula() {
        let mut cell = Cell { on_hand: 10, reserved: 3, committed: 2, safety_stock: 1, ..Cell::default() };
        assert_eq!(cell.available(0), 4);
        assert_eq!(cell.oversold(0), 0);
        cell.remove(8, None); // a count finds only 2
        assert_eq!(cell.available(0), 0);
        assert_eq!(cell.available_raw(0), -4);
        assert_eq!(cell.oversold(0), 3);
    }

    #[test]
    fn moving_average_cost() {
        let mut cell = Cell::default();
        cell.receive(10, Some(100), None);
        assert_eq!(cell.avg_cost(), 100);
        cell.receive(30, Some(200), None);
        assert_eq!(cell.avg_cost(), 175);
        cell.receive(5, None, None);
        assert_eq!(cell.avg_cost(), 175);
    }

    #[test]
    fn expired_lots_are_not_available_and_fefo_ships_earliest_sellable_first() {
        let mut cell = Cell::default();
        cell.receive(5, None, Some(("OLD", 10)));
        cell.receive(5, None, Some(("MID", 20)));
        cell.receive(5, None, Some(("NEW", 30)));
        cell.receive(2, None, None);
        assert_eq!(cell.available(10), 17);
        assert_eq!(cell.available(11), 12, "OLD expired after day 10");
        cell.ship(7, 11);
        let left: Vec<_> = cell.lots().iter().map(|l| (l.code.as_str(), l.qty)).collect();
        assert_eq!(left, [("OLD", 5), ("NEW", 3)]);
        assert_eq!(cell.untracked(), 2);
        cell.check().expect("consistent");
    }

    #[test]
    fn removal_takes_untracked_then_expired_then_fefo() {
        let mut cell = Cell::default();
        cell.receive(4, None, Some(("A", 5)));
        cell.receive(4, None, Some(("B", 50)));
        cell.receive(1, None, None);
        cell.remove(3, None);
        let left: Vec<_> = cell.lots().iter().map(|l| (l.code.as_str(), l.qty)).collect();
        assert_eq!(left, [("A", 2), ("B", 4)]);
        cell.remove(2, Some("B"));
        let left: Vec<_> = cell.lots().iter().map(|l| (l.code.as_str(), l.qty)).collect();
        assert_eq!(left, [("A", 2), ("B", 2)]);
        cell.check().expect("consistent");
    }
}
