//! The engine's typed errors, split by who is at fault.
//!
//! The HTTP front maps each variant to one problem+json code (one table, at the edge). Nothing
//! here knows about HTTP; the split only says whose fault a failure is: the caller's input
//! ([`EngineError::Invalid`], [`EngineError::NotFound`]), the state of the world
//! ([`EngineError::InsufficientStock`], [`EngineError::Conflict`]), the engine's capacity
//! ([`EngineError::Busy`], [`EngineError::ReadOnly`]) or a bug ([`EngineError::Internal`]).

use crate::wal::WalError;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `lines[2].qty`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// What a missing thing was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Sku,
    Location,
    Reservation,
    Cell,
    FlashSale,
    Transfer,
    Replenishment,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entity::Sku => "sku",
            Entity::Location => "location",
            Entity::Reservation => "reservation",
            Entity::Cell => "stock cell",
            Entity::FlashSale => "flash sale",
            Entity::Transfer => "transfer",
            Entity::Replenishment => "replenishment",
        })
    }
}

/// One line that could not be filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub sku: String,
    pub location: Option<String>,
    pub requested: u64,
    pub available: u64,
}

impl Shortfall {
    /// What is missing to take `requested` units where `available` are free, if anything.
    pub fn of(sku: &str, location: Option<&str>, requested: u32, available: i64) -> Option<Shortfall> {
        (available < i64::from(requested)).then(|| Shortfall {
            sku: sku.to_owned(),
            location: location.map(str::to_owned),
            requested: u64::from(requested),
            available: available.max(0) as u64,
        })
    }
}

/// Why a well-formed request conflicts with the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("reservation {id} is {status}, not {expected}")]
    ReservationState { id: u64, status: &'static str, expected: &'static str },
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyKeyInProgress,
    /// The sale's pool has fewer units left than claimed.
    #[error("flash sale {sale} is sold out ({remaining} left)")]
    SoldOut { sale: String, remaining: u32 },
    /// The customer already holds or bought as many units as the sale allows.
    #[error("flash sale {sale} allows {limit} unit(s) per customer; this customer has {already}")]
    PerCustomerLimit { sale: String, limit: u32, already: u32 },
    #[error("flash sale {sale} is {status}")]
    SaleNotActive { sale: String, status: &'static str },
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is malformed or out of bounds; nothing changed.
    #[error("invalid request: {}", summary(.0))]
    Invalid(Vec<FieldError>),
    #[error("{entity} {code:?} not found")]
    NotFound { entity: Entity, code: String },
    #[error("insufficient stock on {} line(s)", .0.len())]
    InsufficientStock(Vec<Shortfall>),
    #[error("conflict: {0}")]
    Conflict(#[from] Conflict),
    /// The write-ahead log's queue is full: try again shortly.
    #[error("engine is busy; retry shortly")]
    Busy,
    /// An fsync failed earlier: the engine takes no more writes until restarted.
    #[error("engine is read-only: {reason}")]
    ReadOnly { reason: String },
    /// An I/O failure of the log or snapshot store.
    #[error("storage failure: {0}")]
    Storage(String),
    /// A broken internal promise: always a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summary(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

impl EngineError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        EngineError::Invalid(vec![FieldError::new(field, message)])
    }
    pub fn not_found(entity: Entity, code: impl Into<String>) -> Self {
        EngineError::NotFound { entity, code: code.into() }
    }
}

impl From<WalError> for EngineError {
    fn from(error: WalError) -> Self {
        match error {
            WalError::Busy => EngineError::Busy,
            WalError::ReadOnly { reason } => EngineError::ReadOnly { reason },
            WalError::Closed => EngineError::ReadOnly { reason: "the write-ahead log is closed".into() },
            other => EngineError::Storage(other.to_string()),
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
