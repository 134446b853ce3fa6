//! Helpers shared by aisle's black-box tests.
