pub mod expiry;
pub mod recovery;
pub mod reserve;
pub mod wal;
