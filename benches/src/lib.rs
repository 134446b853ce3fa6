//! Shared set-up for aisle's criterion benchmarks.
