//! The flash-sale domain's snapshot section: every sale's definition, pool and counts. Claims
//! are reservations and live in the stock section.

use std::cmp::Reverse;
use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};

use crate::flash::{FlashSaleDef, FlashSales, PoolCell, Sale, SaleState};
use crate::stock::views::ReservationStatus;
use crate::stock::Stock;

// Its snapshot section. 1: sales with pools, counts and customers (as in snapshot format 3).
crate::kernel::container::snapshot_section!(FlashSection, "flash", 1);

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SaleImage {
    pub def: FlashSaleDef,
    /// (location index, units remaining in the pool), in claim order.
    pub pool: Vec<(u32, u32)>,
    pub held: u32,
    pub sold: u32,
    pub ended: bool,
    /// Held plus sold units per customer.
    pub customers: Vec<(String, u32)>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct FlashSection {
    pub sales: Vec<SaleImage>,
}

/// The sales copied under their mutexes.
#[derive(Debug)]
pub(crate) struct FlashCapture {
    sales: Vec<SaleState>,
}

impl FlashSales {
    /// Copies every sale's state (the caller holds the shards, so no sale is created meanwhile).
    pub(crate) fn capture(&self) -> FlashCapture {
        FlashCapture { sales: self.all_sales().iter().map(|sale| sale.state.lock().clone()).collect() }
    }

    /// Rebuilds the sales from their section (start-up only).
    pub(crate) fn restore(&self, section: &FlashSection) {
        let mut table = self.sales.write();
        for sale in &section.sales {
            let restored = Arc::new(Sale::new(SaleState {
                def: sale.def.clone(),
                pool: sale.pool.iter().map(|&(location, remaining)| PoolCell { location, remaining }).collect(),
                held: sale.held,
                sold: sale.sold,
                ended: sale.ended,
                customers: sale.customers.iter().map(|(customer, count)| (customer.as_str().into(), *count)).collect(),
                expiries: Default::default(),
            }));
            table.insert(sale.def.code.as_str().into(), restored);
        }
    }

    /// The shared code of sale `code`, for a restored claim to name its sale.
    pub(crate) fn shared_code(&self, code: &str) -> Option<Arc<str>> {
        self.sales.read().get(code).map(|sale| sale.code.clone())
    }

    /// Each live claim's expiry goes back on its sale's heap, after the stock is restored.
    pub(crate) fn restore_claim_expiries(&self, stock: &Stock) {
        let table = self.sales.read();
        for entry in stock.reservations.iter() {
            let (Some(code), ReservationStatus::Active) = (&entry.core.sale, entry.status) else { continue };
            if let Some(sale) = table.get(&**code) {
                sale.state.lock().expiries.push(Reverse((entry.expires_at, entry.id)));
            }
        }
    }
}

impl FlashCapture {
    /// The archivable section (no lock held).
    pub(crate) fn into_section(self) -> FlashSection {
        let sales = self
            .sales
            .into_iter()
            .map(|sale| SaleImage {
                pool: sale.pool.iter().map(|share| (share.location, share.remaining)).collect(),
                held: sale.held,
                sold: sale.sold,
                ended: sale.ended,
                customers: sale
                    .customers
                    .into_iter()
                    .map(|(customer, count)| (customer.into_string(), count))
                    .collect(),
                def: sale.def,
            })
            .collect();
        FlashSection { sales }
    }
}
