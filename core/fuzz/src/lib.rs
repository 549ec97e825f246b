//! The invariants the fuzz targets check: the same functions the property
//! tests run (`tests/checks`), so a libFuzzer finding is a broken property,
//! not only a crash.

#[path = "../../tests/checks/mod.rs"]
pub mod checks;
