pub mod expiry;
pub mod flash;
pub mod recovery;
pub mod reserve;
pub mod wal;
